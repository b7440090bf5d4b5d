"""``tracker sql``: read-only SQL over the store, for questions the commands do not answer.

The query runs on a connection that cannot write: the database is opened read-only
(``mode=ro``), ``query_only`` is on, and an authorizer refuses every action but reading
(so ``ATTACH``, ``PRAGMA`` writes or a ``DELETE`` are refused with a clear error, and the store is
never touched). Tables: trials, params, metrics, tags, artifacts, events, experiments,
environments, optimizations, configurations (see docs/results.md).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tracker.errors import UsageError
from tracker.project import Project

_READ = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_SAFE_PRAGMAS = {"table_info", "table_list", "index_list", "index_info", "foreign_key_list"}


@dataclass(frozen=True)
class Result:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def _authorize(action: int, arg1: str | None, *_: object) -> int:
    if action in _READ:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _SAFE_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def query(project: Project, text: str, limit: int | None = None) -> Result:
    """Run one read-only SQL statement on the project's store; return its columns and rows."""
    path = getattr(project.store, "path", None)
    if path is None:
        raise UsageError("tracker sql needs a store file (sqlite:///...)")
    if not text.strip():
        raise UsageError("give a query, e.g. tracker sql \"SELECT status, count(*) FROM trials GROUP BY status\"")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_authorize)
        try:
            cursor = conn.execute(text)
            rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not authorized" in message or "readonly" in message:
                raise UsageError(f"tracker sql is read-only and refused this statement ({message})",
                                 hint="only SELECT queries (and WITH ... SELECT) run; change trials with the "
                                      "tracker commands") from exc
            raise UsageError(f"SQL error: {message}", hint="see docs/results.md for the tables") from exc
        except sqlite3.Warning as exc:  # several statements at once
            raise UsageError(f"SQL error: {exc}", hint="give one statement") from exc
        columns = [d[0] for d in cursor.description or []]
        return Result(columns, [tuple(r) for r in rows])
    finally:
        conn.close()
