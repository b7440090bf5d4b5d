"""``tracker sql``: read-only SQL over the store, for questions the commands do not answer.

The store runs the query where it cannot write (:meth:`~tracker.store.BaseStore.read_sql`): on
SQLite a read-only connection whose authorizer refuses every action but reading (so ``ATTACH``,
``PRAGMA`` writes or a ``DELETE`` are refused with a clear error, and the store is never
touched); on PostgreSQL one prepared statement alone in a ``READ ONLY`` transaction. Tables:
trials, params, metrics, tags, artifacts, events, experiments, environments, optimizations,
configurations (see docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracker.errors import UsageError
from tracker.project import Project


@dataclass(frozen=True)
class Result:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(project: Project, text: str, limit: int | None = None) -> Result:
    """Run one read-only SQL statement on the project's store; return its columns and rows."""
    if not text.strip():
        raise UsageError("give a query, e.g. tracker sql \"SELECT status, count(*) FROM trials GROUP BY status\"")
    columns, rows = project.store.read_sql(text, limit=limit)
    return Result(columns, rows)
