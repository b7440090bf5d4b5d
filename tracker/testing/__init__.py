"""Test suites that plug-ins run against their own backends, as tracker runs them against its own."""
