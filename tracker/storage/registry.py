"""Storage backends by type name: built-ins, runtime registrations, and entry points.

Third-party packages add a backend with an entry point in the ``tracker.storage``
group (``mystore = "mypkg.storage:MyStorage"``); the class subclasses
:class:`~tracker.storage.base.BaseStorage`.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracker.config import validate_data
from tracker.errors import NotFoundError, StorageError, UsageError
from tracker.storage.base import BaseStorage

BUILTIN: dict[str, str] = {
    "local": "tracker.storage.local:LocalStorage",
    "ssh": "tracker.storage.ssh:SSHStorage",
    "s3": "tracker.storage.s3:S3Storage",
    "azure": "tracker.storage.azure:AzureStorage",
    "gcs": "tracker.storage.gcs:GCSStorage",
    "b2": "tracker.storage.b2:B2Storage",
}
_registry: dict[str, str | type[BaseStorage]] = dict(BUILTIN)
_entry_points_loaded = False
ENTRY_POINT_GROUP = "tracker.storage"


def register(name: str, backend: str | type[BaseStorage], *, replace: bool = False) -> None:
    """Register a backend class (or "module:Class" path) under a type name."""
    _load_entry_points()
    if name in _registry and not replace:
        raise UsageError(f"storage type {name!r} is already registered", hint="pass replace=True to override it")
    _registry[name] = backend


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(ep.name, ep.value)


def types() -> list[str]:
    """Every known storage type."""
    _load_entry_points()
    return sorted(_registry)


def backend_class(kind: str) -> type[BaseStorage]:
    """The class for a storage type (imported on first use)."""
    _load_entry_points()
    target = _registry.get(kind)
    if target is None:
        raise UsageError(f"unknown storage type {kind!r}", hint=f"one of: {', '.join(types())}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            target = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise StorageError(f"storage type {kind!r} cannot be loaded from {module}: {exc}") from exc
        if not (isinstance(target, type) and issubclass(target, BaseStorage)):
            raise StorageError(f"storage type {kind!r} ({module}:{attr}) is not a BaseStorage subclass")
        _registry[kind] = target
    return target


def validate_options(kind: str, options: dict[str, Any], where: str, lines: dict[Any, int] | None = None) -> Any:
    """Check a target's options against its backend's model (errors name tracker.yaml's line)."""
    cls = backend_class(kind)
    return validate_data({"type": kind, **options}, cls.Options, where, lines or {})


def open_target(project: Any, name: str) -> BaseStorage:
    """The configured storage target ``name`` of ``project``, ready to use."""
    target = project.config.storage.get(name)
    if target is None:
        known = ", ".join(sorted(project.config.storage)) or "none yet"
        raise NotFoundError(f"no storage target named {name!r} in tracker.yaml",
                            hint=f"known: {known}; add one with 'tracker storage add {name} --type ...'")
    lines = {key[2:]: line for key, line in project.lines.items() if key[:2] == ("storage", name)}
    options = validate_options(target.type, target.options(), "tracker.yaml", lines)
    return backend_class(target.type)(name, options, project)
