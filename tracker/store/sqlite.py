"""The embedded trial store: SQLite in WAL mode, safe across threads and processes.

Every write is a short ``BEGIN IMMEDIATE`` transaction: one writer at a time, so a killed
process never leaves half a trial behind and the compare-and-set inside it is safe. This
module is the SQLite dialect of :class:`~tracker.store.sql.SQLStore`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tracker.errors import StoreError, UsageError
from tracker.store.schema import migrate
from tracker.store.sql import CLAIM_EVENT, CLAIM_SET, COLUMNS, Dialect, SQLStore, now

__all__ = ["SQLiteDialect", "SQLiteStore", "now"]

_READ = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_SAFE_PRAGMAS = {"table_info", "table_list", "index_list", "index_info", "foreign_key_list"}
_READ_ONLY_HINT = "only SELECT queries (and WITH ... SELECT) run; change trials with the tracker commands"
_SAVE_HINT = "check the disk has space and the store is writable"


def _use_wal(conn: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch the store to WAL. SQLite answers "locked" at once, without its busy wait, while
    another connection is creating the same file, so first opens at the same moment retry."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _json_path(name: str) -> str:
    """A SQL literal of the JSON path of the key ``name`` (quoted, so '/' and '.' in names are plain)."""
    return "'$.\"" + name.replace("'", "''").replace('"', '\\"') + "\"'"


def _authorize(action: int, arg1: str | None, *_: object) -> int:
    if action in _READ:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _SAFE_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class SQLiteDialect(Dialect):
    """One SQLite connection (shared by threads behind a lock) and SQLite's SQL."""

    summary = ("json_object('id', id, 'experiment', experiment, 'status', status, 'phase', phase, 'seed', seed, "
               "'params', json(params), 'metrics', json(metrics), 'step', step, 'commit', commit_sha, "
               "'dirty', json(CASE WHEN dirty THEN 'true' ELSE 'false' END), 'host', host, "
               "'started', started, 'finished', finished, 'duration', duration, "
               "'exit_code', exit_code, 'tags', json(tags), 'note', note)")
    tags_text = "CASE tags WHEN '[]' THEN '' ELSE (SELECT group_concat(value, ',') FROM json_each(tags)) END"

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"the store is locked or unwritable: {exc}") from exc
            try:
                yield self.conn
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK")
                raise StoreError(f"could not save to the store: {exc}", hint=_SAVE_HINT) from exc
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    with suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                    raise StoreError(f"could not save to the store: {exc}", hint=_SAVE_HINT) from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self.conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def any_of(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``IN (?, ...)``; past 100 values one JSON argument (SQLite limits a statement's arguments)."""
        if len(values) > 100:
            return f"{expr} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]
        return super().any_of(expr, values)

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def json_value(self, column: str, key: str) -> str:
        return f"json_extract({column}, {_json_path(key)})"

    def first_keys(self, rows: str) -> str:
        """SQLite's DISTINCT emits each key when first met, scanning the rows in their order."""
        return f"SELECT DISTINCT j.key FROM ({rows}) AS t, json_each(t.c) AS j"

    def starts_with(self, column: str) -> str:
        return f"{column} LIKE ? || '%'"

    def claim(self, queue: str, limit: int, values: Sequence[Any], who: str, stamp: str) -> list[Any]:
        """One write transaction: SQLite lets one writer in at a time, so two claimers never read the same
        queued row as free."""
        with self.transaction() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM trials WHERE queue = ? AND status = 'queued' "
                                           "ORDER BY created, rowid LIMIT ?", (queue, limit)).fetchall()]
            if not ids:
                return []
            among, args = self.any_of("id", ids)
            c.execute(f"UPDATE trials SET {CLAIM_SET} WHERE {among}", (*values, *args))
            c.execute(f"INSERT INTO events (trial_id, ts, kind, message) SELECT id, ?, 'status', {CLAIM_EVENT} "
                      f"FROM trials WHERE {among} ORDER BY created, rowid", (stamp, who, *args))
            return c.execute(f"SELECT {', '.join(COLUMNS)} FROM trials WHERE {among} ORDER BY created, rowid",
                             args).fetchall()

    def read_only(self, text: str, limit: int | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """On a connection of its own that cannot write: the file opened read-only (``mode=ro``),
        ``query_only`` on, and an authorizer refusing every action but reading (so ``ATTACH``,
        ``PRAGMA`` writes or a ``DELETE`` are refused with a clear error)."""
        if self.path is None:
            raise UsageError("tracker sql needs a store file (sqlite:///...) or a PostgreSQL store")
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
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
                                     hint=_READ_ONLY_HINT) from exc
                raise UsageError(f"SQL error: {message}", hint="see docs/results.md for the tables") from exc
            except sqlite3.Warning as exc:  # several statements at once
                raise UsageError(f"SQL error: {exc}", hint="give one statement") from exc
            return [d[0] for d in cursor.description or []], [tuple(r) for r in rows]
        finally:
            conn.close()


class SQLiteStore(SQLStore):
    """Trials, metrics, experiments and environments in one SQLite file (``sqlite:///path``).

    Example::

        store = SQLiteStore.open(Path(".tracker/tracker.db"))
        for trial in store.list_trials(experiment="baseline"):
            print(trial.id, trial.status, trial.metrics)
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        super().__init__(SQLiteDialect(conn, path), f"sqlite:///{path}" if path else "sqlite:///:memory:")
        self.path = path

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative/or/absolute/path.db`` or ``sqlite:///:memory:``."""
        rest = url.split("://", 1)[1] if "://" in url else url
        rest = rest[1:] if rest.startswith("/") and not rest.startswith("//") else rest
        if rest in ("", ":memory:"):
            return cls.memory()
        if rest.startswith("//"):  # sqlite:////abs/path
            rest = rest[1:]
        return cls.open(Path(rest))

    @classmethod
    def open(cls, path: Path) -> SQLiteStore:
        """Open (creating and migrating as needed) the store at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            _use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}",
                             hint="check the file is a tracker store and the disk is writable") from exc
        return cls(conn, path)

    @classmethod
    def memory(cls) -> SQLiteStore:
        """A throw-away in-memory store (for tests of the layers above)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        return cls(conn, None)
