"""Conformance suites shipped with tracker, so a plug-in runs the same tests as the built-ins
(as fsspec ships ``fsspec.tests.abstract`` and Optuna ``optuna.testing``).

They import pytest: use them from a test suite, never at run time.
"""
