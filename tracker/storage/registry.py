"""Storage backends by type name: built-ins, runtime registrations, and entry points.

Third-party packages add a backend with an entry point in the ``tracker.storage``
group (``mystore = "mypkg.storage:MyStorage"``); the class subclasses
:class:`~tracker.storage.base.BaseStorage`.
"""

from __future__ import annotations

from typing import Any

from tracker.config import validate_data
from tracker.errors import NotFoundError, StorageError
from tracker.plugins import Registry
from tracker.storage.base import BaseStorage

BUILTIN: dict[str, str] = {
    "local": "tracker.storage.local:LocalStorage",
    "ssh": "tracker.storage.ssh:SSHStorage",
    "s3": "tracker.storage.s3:S3Storage",
    "azure": "tracker.storage.azure:AzureStorage",
    "gcs": "tracker.storage.gcs:GCSStorage",
    "b2": "tracker.storage.b2:B2Storage",
}
ENTRY_POINT_GROUP = "tracker.storage"
_registry: Registry[BaseStorage] = Registry("storage type", BaseStorage, ENTRY_POINT_GROUP, BUILTIN, StorageError)


def register(name: str, backend: str | type[BaseStorage], *, replace: bool = False) -> None:
    """Register a backend class (or "module:Class" path) under a type name."""
    _registry.register(name, backend, replace=replace)


def types() -> list[str]:
    """Every known storage type."""
    return _registry.names()


def backend_class(kind: str) -> type[BaseStorage]:
    """The class for a storage type (imported on first use)."""
    return _registry.get(kind)


def validate_options(kind: str, options: dict[str, Any], where: str, lines: dict[Any, int] | None = None) -> Any:
    """Check a target's options against its backend's model (errors name tracker.yaml's line)."""
    cls = backend_class(kind)
    return validate_data({"type": kind, **options}, cls.Options, where, lines or {})


def open_target(project: Any, name: str) -> BaseStorage:
    """The configured storage target ``name`` of ``project``, ready to use.

    ``${VAR}`` in its options is replaced from the environment; a credential written into
    tracker.yaml as is gives a :class:`~tracker.errors.TrackerWarning` (and is masked in
    everything tracker prints).
    """
    from tracker import secrets

    target = project.config.storage.get(name)
    if target is None:
        known = ", ".join(sorted(project.config.storage)) or "none yet"
        raise NotFoundError(f"no storage target named {name!r} in tracker.yaml",
                            hint=f"known: {known}; add one with 'tracker storage add {name} --type ...'")
    secrets.warn_literal({name: target})
    lines = {key[2:]: line for key, line in project.lines.items() if key[:2] == ("storage", name)}
    expanded = secrets.expand(target.options(), f"storage.{name}", lines)
    options = validate_options(target.type, expanded, "tracker.yaml", lines)
    return backend_class(target.type)(name, options, project)
