"""The remote fixtures (real sshd hosts gpu1/gpu2) for the executor contract's SSH variant."""

from tests.remote.conftest import home, remote_project  # noqa: F401 - fixtures used by test modules here
