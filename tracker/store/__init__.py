"""The trial store: an interface opened by URL, SQLite by default (``.tracker/tracker.db``).

``open_store("sqlite:///path/to/tracker.db")`` or ``open_store("postgresql://user@host/db")``
returns a :class:`BaseStore`; other schemes come from the ``tracker.stores`` entry-point group.
"""

from __future__ import annotations

from tracker.errors import StoreError, UsageError
from tracker.plugins import Registry
from tracker.secrets import redact
from tracker.store.base import BaseStore
from tracker.store.models import (
    ACTIVE,
    FINISHED,
    FORGOTTEN_ON_REQUEUE,
    RESETTABLE,
    STATUSES,
    TRANSITIONS,
    Configuration,
    Event,
    MetricPoint,
    Optimization,
    TestUse,
    Trial,
    Worker,
    sources,
)
from tracker.store.sql import SQLStore, now
from tracker.store.sqlite import SQLiteStore

__all__ = [
    "ACTIVE", "FINISHED", "FORGOTTEN_ON_REQUEUE", "RESETTABLE", "STATUSES", "TRANSITIONS", "BaseStore",
    "Configuration", "Event", "MetricPoint", "Optimization", "SQLStore", "SQLiteStore", "TestUse", "Trial",
    "Worker", "now", "open_store", "sources", "stores",
]

_BUILTIN = {
    "sqlite": "tracker.store.sqlite:SQLiteStore",
    "postgresql": "tracker.store.postgres:PostgresStore",
    "postgres": "tracker.store.postgres:PostgresStore",
}
ENTRY_POINT_GROUP = "tracker.stores"
stores: Registry[BaseStore] = Registry("store scheme", BaseStore, ENTRY_POINT_GROUP, _BUILTIN, StoreError)
"""``stores.register(scheme, "module:Class")``, ``stores.names()``: the URL schemes a store is known for."""


def open_store(url: str) -> BaseStore:
    """The store at ``url`` (``sqlite:///path``; more schemes through entry points)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise UsageError(f"store URL {redact(url)!r} has no scheme", hint="e.g. sqlite:///path/to/tracker.db")
    if scheme not in stores.names():
        raise UsageError(f"no store for {scheme}:// URLs in this installation",
                         hint=f"known schemes: {', '.join(stores.names())}")
    return stores.get(scheme).from_url(url)
