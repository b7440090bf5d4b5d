"""Plugin registries: built-in names, runtime registrations and entry points, loaded lazily.

One mechanism serves every seam (storage backends, stores, executors): a name maps to a
class or a ``"module:Class"`` path, third-party packages add names through an entry-point
group, and a class is imported only when first used, so ``tracker --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from tracker.errors import TrackerError, UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to implementations of ``base`` (say, ``BaseStorage``)."""

    def __init__(self, kind: str, base: type[T], group: str, builtin: dict[str, str],
                 error: type[TrackerError] = TrackerError) -> None:
        self.kind = kind
        self.base = base
        self.group = group
        self.error = error
        self._entries: dict[str, str | type[T]] = dict(builtin)
        self._entry_points_loaded = False

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            self._entries.setdefault(ep.name, ep.value)

    def register(self, name: str, target: str | type[T], *, replace: bool = False) -> None:
        """Register a class (or "module:Class" path) under ``name``; an existing name needs ``replace``."""
        self._load_entry_points()
        if name in self._entries and not replace:
            raise UsageError(f"{self.kind} {name!r} is already registered", hint="pass replace=True to override it")
        self._entries[name] = target

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is known (entry points are read only for a name not built in or registered)."""
        if name not in self._entries:
            self._load_entry_points()
        return name in self._entries

    def names(self) -> list[str]:
        """Every known name."""
        self._load_entry_points()
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (imported on first use)."""
        self._load_entry_points()
        target = self._entries.get(name)
        if target is None:
            raise UsageError(f"unknown {self.kind} {name!r}", hint=f"one of: {', '.join(self.names())}")
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise self.error(f"{self.kind} {name!r} cannot be loaded from {module}: {exc}") from exc
            if not (isinstance(target, type) and issubclass(target, self.base)):
                raise self.error(f"{self.kind} {name!r} ({module}:{attr}) is not a {self.base.__name__} subclass")
            self._entries[name] = target
        return target
