"""``tracker sql``: read-only SQL over the store, for questions the commands do not answer.

The query runs on a connection that cannot write: the database is opened read-only
(``mode=ro``), ``query_only`` is on, and an authorizer refuses every action but reading
(so ``ATTACH``, ``PRAGMA`` writes or a ``DELETE`` are refused with a clear error, and the store is
never touched). On PostgreSQL the statement runs alone in a ``READ ONLY``
transaction. Tables: trials, params, metrics, tags, artifacts, events, experiments,
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
    if not text.strip():
        raise UsageError("give a query, e.g. tracker sql \"SELECT status, count(*) FROM trials GROUP BY status\"")
    from tracker.store.postgres import PostgresStore

    if isinstance(project.store, PostgresStore):
        return _pg_query(project.store.url, text, limit)
    path = getattr(project.store, "path", None)
    if path is None:
        raise UsageError("tracker sql needs a store file (sqlite:///...) or a PostgreSQL store")
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


def _pg_query(url: str, text: str, limit: int | None) -> Result:
    """One statement in a READ ONLY transaction (of a read-only session) on a connection of its own. It is
    prepared, and a prepared statement is exactly one statement, so no ``COMMIT; DELETE ...`` can leave
    the transaction. Numeric results (``avg``) come back as floats, as SQLite gives them."""
    from decimal import Decimal

    import psycopg

    from tracker.store.postgres import connect

    conn = connect(url)
    try:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.read_only = True
        with conn.transaction(), conn.cursor() as cursor:
            try:
                cursor.execute(text.replace("%", "%%"), (), prepare=True)
                rows = (cursor.fetchmany(limit) if limit else cursor.fetchall()) if cursor.description else []
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                raise UsageError(f"tracker sql is read-only and refused this statement ({exc})",
                                 hint="only SELECT queries (and WITH ... SELECT) run; change trials with the "
                                      "tracker commands") from exc
            except psycopg.Error as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                hint = "give one statement" if "multiple commands" in message else "see docs/results.md for the tables"
                raise UsageError(f"SQL error: {message}", hint=hint) from exc
            columns = [d.name for d in cursor.description or []]
        return Result(columns, [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in rows])
    finally:
        conn.close()
