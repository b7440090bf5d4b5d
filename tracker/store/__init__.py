"""The trial store: an interface opened by URL, SQLite by default (``.tracker/tracker.db``).

``open_store("sqlite:///path/to/tracker.db")`` returns a :class:`BaseStore`; other
schemes come from the ``tracker.stores`` entry-point group (a PostgreSQL store for
teams and queue workers plugs in here without touching callers).
"""

from __future__ import annotations

from tracker.errors import StoreError, UsageError
from tracker.plugins import Registry
from tracker.store.base import BaseStore
from tracker.store.models import (
    ACTIVE,
    FINISHED,
    RESETTABLE,
    STATUSES,
    TRANSITIONS,
    Event,
    MetricPoint,
    Trial,
    sources,
)
from tracker.store.sqlite import SQLiteStore, now

__all__ = [
    "ACTIVE", "FINISHED", "RESETTABLE", "STATUSES", "TRANSITIONS", "BaseStore", "Event", "MetricPoint",
    "SQLiteStore", "Trial", "now", "open_store", "register", "schemes", "sources",
]

_BUILTIN = {"sqlite": "tracker.store.sqlite:SQLiteStore"}
ENTRY_POINT_GROUP = "tracker.stores"
_registry: Registry[BaseStore] = Registry("store scheme", BaseStore, ENTRY_POINT_GROUP, _BUILTIN, StoreError)


def register(scheme: str, target: str | type[BaseStore], *, replace: bool = False) -> None:
    """Register a store class (or "module:Class") for URLs ``scheme://...``."""
    _registry.register(scheme, target, replace=replace)


def schemes() -> list[str]:
    """Every URL scheme a store is known for."""
    return _registry.names()


def open_store(url: str) -> BaseStore:
    """The store at ``url`` (``sqlite:///path``; more schemes through entry points)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise UsageError(f"store URL {url!r} has no scheme", hint="e.g. sqlite:///path/to/tracker.db")
    if scheme not in schemes():
        raise UsageError(f"no store for {scheme}:// URLs in this installation",
                         hint=f"known schemes: {', '.join(schemes())}")
    return _registry.get(scheme).from_url(url)
