"""Conformance suites shipped with tracker, so a plug-in runs the same tests as the built-ins
(as fsspec ships ``fsspec.tests.abstract`` and Optuna ``optuna.testing``).

- :mod:`tracker.testing.store`: ``StoreContract``, for a store (``BaseStore``);
- :mod:`tracker.testing.executor`: ``ExecutorContract``, for an executor (``BaseExecutor``);
- :mod:`tracker.testing.storage`: ``StorageContract``, for a backup storage backend (``BaseStorage``).

They import pytest: use them from a test suite, never at run time.
"""
