"""Test suites that ship with tracker, for plug-in stores, executors and storage backends (imported by tests only)."""
