"""The trial store: SQLite by default (``.tracker/tracker.db``).

A PostgreSQL store for teams and queue workers plugs in here later behind the
same :class:`Store` methods.
"""

from __future__ import annotations

from tracker.store.models import FINISHED, RESETTABLE, STATUSES, Event, MetricPoint, Trial
from tracker.store.sqlite import Store, now

__all__ = ["FINISHED", "RESETTABLE", "STATUSES", "Event", "MetricPoint", "Store", "Trial", "now"]
