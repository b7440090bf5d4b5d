"""The PostgreSQL trial store (``postgresql://user@host:port/db``): one store for a team and its workers.

The PostgreSQL dialect of :class:`~tracker.store.sql.SQLStore`: same records, rules and answers
as SQLite. A status change's ``UPDATE ... WHERE status IN (...)`` is re-checked by PostgreSQL on
the row it waited for, so two writers never both win; rows read to be rewritten are locked
(``FOR UPDATE``); a claim is one statement that skips rows other claimers hold. JSON columns are
``json``, which keeps their text as written (key order, ``1e999``). Credentials come from the
URL, ``PGPASSWORD`` or ``~/.pgpass`` (libpq's usual chain).
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from tracker.errors import StoreError, UsageError
from tracker.store.sql import CLAIM_EVENT, CLAIM_SET, COLUMNS, Dialect, SQLStore, literal

__all__ = ["PostgresDialect", "PostgresStore", "connect", "where_is"]

_JSON_TYPES = ("json", "jsonb")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


@lru_cache(maxsize=1024)
def _placeholders(text: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (outside string literals), ``%`` escaped as ``%%``."""
    return _TOKENS.sub(lambda m: "%s" if m[0] == "?" else m[0].replace("%", "%%"), text)


def sql_value(text: str | None) -> Any:
    """A JSON value as SQLite's ``json_extract`` returns it: numbers and strings as they are, true/false
    as 1/0, arrays and objects as compact JSON text, JSON null or a missing key as None."""
    if text is None:
        return None
    value = json.loads(text)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def connect(url: str) -> Any:
    """A psycopg connection (autocommit: writes open their own transactions) reading json as text.

    It gives up after 10 s unless the URL (``?connect_timeout=``) or ``PGCONNECT_TIMEOUT`` says otherwise.
    """
    import os

    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.string import TextLoader

    conninfo = _libpq_url(url)
    wait = {} if "connect_timeout" in conninfo_to_dict(conninfo) or "PGCONNECT_TIMEOUT" in os.environ else {
        "connect_timeout": 10}
    conn = psycopg.connect(conninfo, autocommit=True, **wait)
    for name in _JSON_TYPES:
        conn.adapters.register_loader(name, TextLoader)
    return conn


def _libpq_url(url: str) -> str:
    """``postgres://`` and ``postgresql+psycopg://`` as libpq reads them (``postgresql://``)."""
    return "postgresql://" + url.split("://", 1)[1]


def where_is(url: str) -> str:
    """host:port/database of a URL, for messages (never its user or password)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(_libpq_url(url))
    except psycopg.Error:  # an unparsable URL: connect itself says what is wrong
        return "the PostgreSQL server"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or '(default)'}"


def _reason(exc: Exception) -> str:
    """libpq's cause of a failed connection, in a few words: 'Connection refused', 'database "x" does not
    exist', 'password authentication failed for user "u"' (not its first line's preamble or its hints)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    reason = lines[0].rsplit("failed: ", 1)[-1].strip()
    for level in ("FATAL:", "ERROR:"):
        reason = reason.removeprefix(level).strip()
    return reason or lines[0]


class _Cursor:
    """A psycopg cursor taking ``?`` placeholders (always with arguments, so ``%%`` reads as ``%``)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.cursor.execute(_placeholders(sql), args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(_placeholders(sql), rows)


class PostgresDialect(Dialect):
    """One psycopg connection (shared by threads behind a lock) and PostgreSQL's SQL."""

    order = "seq"
    for_update = " FOR UPDATE"
    nulls_first = " NULLS FIRST"
    byte_order = ' COLLATE "C"'
    summary = ("row_to_json((SELECT s FROM (SELECT id, experiment, status, phase, seed, params, metrics, step, "
               "commit_sha AS commit, dirty <> 0 AS dirty, host, started, finished, duration, exit_code, tags, "
               "note) AS s))::text")
    tags_text = "array_to_string(ARRAY(SELECT json_array_elements_text(tags)), ',')"

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn
        self.url = url
        self._lock = threading.RLock()
        # a store nobody closed (a command's project store) closes its connection when it is collected, as
        # sqlite3 connections do; a finalizer runs before the connection's own __del__ even in a cycle
        self._closer = weakref.finalize(self, conn.close)

    def sql(self, text: str) -> str:
        return _placeholders(text)

    @contextmanager
    def transaction(self) -> Iterator[_Cursor]:
        import psycopg

        with self._lock:
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    yield _Cursor(cur)
            except psycopg.Error as exc:
                raise StoreError(f"could not save to the store: {exc}",
                                 hint=f"check the PostgreSQL server at {where_is(self.url)}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        import psycopg

        with self._lock:
            try:
                with self.conn.cursor() as cur:
                    cur.execute(self.sql(sql), args)
                    return cur.fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc

    def close(self) -> None:
        self._closer()

    def set_and_note(self, c: Any, update: str, args: Sequence[Any], event: Sequence[Any]) -> bool:
        """One statement (one round trip): the changed row feeds the history's INSERT."""
        return bool(c.execute(f"WITH changed AS ({update} RETURNING id) INSERT INTO events (trial_id, ts, kind, "
                              "message) SELECT id, ?, ?, ? FROM changed", (*args, *event[1:])).rowcount)

    def any_of(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{expr} = ANY(?)", [list(values)]

    def json_text(self, column: str, key: str) -> str:
        return f"{column} ->> '{key}'"

    def json_value(self, column: str, key: str) -> str:
        return f"({column} -> {literal(key)})::text"

    def value(self, raw: Any) -> Any:
        return sql_value(raw)

    def first_keys(self, rows: str) -> str:
        return (f"SELECT k.name FROM ({rows}) AS t, json_object_keys(t.c) WITH ORDINALITY AS k(name, place) "
                "GROUP BY k.name ORDER BY MIN(t.created), MIN(t.o), MIN(k.place)")

    def starts_with(self, column: str) -> str:
        return f"starts_with(lower({column}), lower(?))"

    def as_text(self, column: str) -> str:
        return f"{column}::text"

    def claim(self, queue: str, limit: int, values: Sequence[Any], who: str, stamp: str) -> list[Any]:
        """One statement (one round trip, its own transaction): the rows are locked with ``FOR UPDATE SKIP
        LOCKED``, so concurrent claimers (any machine) each take other trials and never wait; the claim's
        events are written by the same statement."""
        return self.query(
            "WITH picked AS (SELECT id FROM trials WHERE queue = ? AND status = 'queued' "
            "ORDER BY created, seq LIMIT ? FOR UPDATE SKIP LOCKED), "
            f"claimed AS (UPDATE trials AS t SET {CLAIM_SET} FROM picked WHERE t.id = picked.id "
            f"RETURNING {', '.join(f't.{c}' for c in COLUMNS)}, t.seq), "
            f"noted AS (INSERT INTO events (trial_id, ts, kind, message) SELECT id, ?, 'status', {CLAIM_EVENT} "
            f"FROM claimed) SELECT {', '.join(COLUMNS)} FROM claimed ORDER BY created, seq",
            (queue, limit, *values, stamp, who))

    def read_only(self, text: str, limit: int | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """One statement in a READ ONLY transaction (of a read-only session) on a connection of its own. It is
        prepared, and a prepared statement is exactly one statement, so no ``COMMIT; DELETE ...`` can leave
        the transaction. Numeric results (``avg``) come back as floats, as SQLite gives them."""
        from decimal import Decimal

        import psycopg

        conn = connect(self.url)
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
                    hint = "give one statement" if "multiple commands" in message else \
                        "see docs/results.md for the tables"
                    raise UsageError(f"SQL error: {message}", hint=hint) from exc
                columns = [d.name for d in cursor.description or []]
            return columns, [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in rows]
        finally:
            conn.close()


class PostgresStore(SQLStore):
    """Trials, metrics, experiments and environments in a PostgreSQL database (``postgresql://...``).

    Example::

        store = PostgresStore.from_url("postgresql://tracker@db.lab:5432/tracker")
        print(store.count(status="running"))
    """

    def __init__(self, conn: Any, url: str) -> None:
        super().__init__(PostgresDialect(conn, url), url)

    @classmethod
    def from_url(cls, url: str, *, upto: str | None = None) -> PostgresStore:
        """Open (creating the tables and migrating as needed) the database at ``url``."""
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError("the PostgreSQL store needs psycopg", hint="pip install 'seedtracker[postgres]'") from exc
        from tracker.store.pg_schema import migrate

        try:
            conn = connect(url)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the PostgreSQL store at {where_is(url)}: {_reason(exc)}",
                             hint="check the server is up and the URL in --store, TRACKER_STORE or tracker.yaml "
                                  "store:; give a password with PGPASSWORD or ~/.pgpass") from exc
        try:
            migrate(conn, upto=upto)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot set up the PostgreSQL store at {where_is(url)}: {exc}",
                             hint="the user needs CREATE rights on the database") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, url)
