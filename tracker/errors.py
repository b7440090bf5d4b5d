"""The one exception hierarchy of tracker.

Every error a user can cause or meet is a :class:`TrackerError`; the CLI turns
it into one line on stderr and an exit code (see docs/errors.md)::

    TrackerError                      exit 1  an operation failed
    ├── UsageError                    exit 2  bad command-line usage or input
    │   ├── ConfigError               exit 2  invalid tracker.yaml / experiment / conf.yaml (file:line)
    │   ├── NotFoundError             exit 2  no such trial, experiment, remote, storage target
    │   └── ProjectError              exit 2  not inside a tracker project / git repository
    ├── TemplateError                 exit 1  cookiecutter template could not be fetched or rendered
    ├── GitError                      exit 1  a git operation failed
    ├── StoreError                    exit 1  the trial store could not be read or written
    ├── ExecutionError                exit 1  a trial could not be started or finished
    ├── RemoteError                   exit 1  SSH connection, sync or remote set-up failed
    │   └── HostKeyError              exit 1  unknown or changed host key (never auto-accepted)
    └── StorageError                  exit 1  a backup target failed
        └── MissingDependencyError    exit 1  an optional extra (seedtracker[s3], ...) is not installed

Third-party exceptions (sqlite3, paramiko, boto3, ...) are translated at the
module boundary and chained with ``from exc``; they never reach users raw.

Problems that do not stop an operation (a credential written into tracker.yaml) are
:class:`TrackerWarning` warnings, which the CLI prints as one ``warning:`` line.
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base of every error tracker reports to users."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(TrackerError):
    """Bad command-line usage or bad input."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration file; names the file and the line."""

    def __init__(
        self, message: str, *, path: object = None, line: int | None = None, hint: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{message}", hint=hint)


class NotFoundError(UsageError):
    """A named thing (trial, experiment, remote, storage target) does not exist."""


class ProjectError(UsageError):
    """Not inside a tracker project or git repository."""


class TemplateError(TrackerError):
    """A cookiecutter template could not be fetched or rendered."""


class GitError(TrackerError):
    """A git command failed."""


class StoreError(TrackerError):
    """The trial store could not be read or written."""


class ExecutionError(TrackerError):
    """A trial could not be started or finished."""


class RemoteError(TrackerError):
    """An SSH connection, code sync or remote set-up failed."""


class HostKeyError(RemoteError):
    """A remote's host key is unknown or has changed."""


class StorageError(TrackerError):
    """A backup storage target failed."""


class MissingDependencyError(StorageError):
    """An optional dependency (a cloud SDK) is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed",
            hint=f"install it with: pip install 'seedtracker[{extra}]'",
        )
        self.package = package
        self.extra = extra


class TrackerWarning(UserWarning):
    """Something the user should fix that does not stop the operation; the CLI prints one line."""
