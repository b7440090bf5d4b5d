"""The PostgreSQL trial store (``postgresql://user@host:port/db``): one store for a team and its workers.

Same records, rules and answers as :class:`~tracker.store.sqlite.SQLiteStore` (the reference):
rows convert to and from :class:`Trial` with the same functions, status changes are a
compare-and-set ``UPDATE ... WHERE status IN (...)`` (PostgreSQL re-checks the condition on
the row it waited for, so two writers never both win), and every write is one transaction.
JSON columns are ``json``, which keeps their text as written (key order, ``1e999``).
Credentials come from the URL, ``PGPASSWORD`` or ``~/.pgpass`` (libpq's usual chain).
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from tracker.errors import NotFoundError, StoreError, UsageError
from tracker.store.base import BaseStore
from tracker.store.models import Configuration, Event, MetricPoint, Optimization, TestUse, Trial, Worker, sources
from tracker.store.sqlite import (
    _CLEARED,
    _COLUMNS,
    _CONF_COLUMNS,
    _ENDS_ATTEMPT,
    _FIELDS,
    _JSON,
    _OPT_COLUMNS,
    _OPT_SELECT,
    _SELECT,
    _UPDATABLE,
    _WORKER_COLUMNS,
    _row_to_optimization,
    _row_to_trial,
    _row_to_worker,
    _trial_row,
    metrics_json,
    now,
    param_key,
)

_INSERT = f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
_JSON_TYPES = ("json", "jsonb")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as SQLite's ``json_patch``: a None value removes its key, objects
    merge recursively, existing keys keep their place and new ones come last."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


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


def where_of(experiment: str | Sequence[str] | None = None, status: str | Sequence[str] | None = None,
             params: dict[str, Any] | None = None, tags: Sequence[str] | None = None, run_id: str | None = None,
             ids: Sequence[str] | None = None, fingerprints: Sequence[str] | None = None,
             optimization: str | None = None, queue: str | Sequence[str] | None = None,
             owned: bool = False) -> tuple[str, list[Any]]:
    """The WHERE clause (or '') and its arguments for the trial filters (SQLiteStore._where's)."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("experiment", experiment), ("status", status), ("id", ids), ("queue", queue)):
        if value is not None:
            where.append(f"{column} = ANY(%s)")
            args.append([value] if isinstance(value, str) else list(value))
    if run_id:
        where.append("run_id = %s")
        args.append(run_id)
    if owned:  # someone renews its heartbeat (not a trial waiting in a queue)
        where.append("beat IS NOT NULL")
    for name, value in (params or {}).items():
        where.append("id IN (SELECT trial_id FROM params WHERE name = %s AND value = %s)")
        args.extend([name, param_key(value)])
    if fingerprints is not None:
        where.append("extra ->> 'fingerprint' = ANY(%s)")  # the expression index answers it
        args.append(list(fingerprints))
    if optimization:
        where.append("extra ->> 'optimization' = %s")
        args.append(optimization)
    for tag in tags or []:
        where.append("id IN (SELECT trial_id FROM tags WHERE name = %s)")
        args.append(tag)
    return (f" WHERE {' AND '.join(where)}" if where else ""), args


def _assignments(fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """``column = %s`` for each field a status change or update may set, and the values (JSON as text)."""
    columns = {_FIELDS.get(k, k): v for k, v in fields.items()}
    bad = set(columns) - _UPDATABLE
    if bad:
        raise ValueError(f"cannot update {sorted(bad)}")
    return ([f"{k} = %s" for k in columns],
            [json.dumps(v) if k in _JSON else (int(v) if k == "dirty" else v) for k, v in columns.items()])


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


class PostgresStore(BaseStore):
    """Trials, metrics, experiments and environments in a PostgreSQL database (``postgresql://...``).

    Example::

        store = PostgresStore.from_url("postgresql://tracker@db.lab:5432/tracker")
        print(store.count(status="running"))
    """

    def __init__(self, conn: Any, url: str) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.url = url
        # a store nobody closed (a command's project store) closes its connection when it is collected, as
        # sqlite3 connections do; a finalizer runs before the connection's own __del__ even in a cycle
        self._closer = weakref.finalize(self, conn.close)

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

    def close(self) -> None:
        """Close the connection."""
        self._closer()

    def migrations(self) -> list[str]:
        """Names of the applied schema migrations, in order."""
        return [r[0] for r in self._query("SELECT name FROM schema_migrations ORDER BY name")]

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction (a cursor); rolled back on any error."""
        import psycopg

        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(f"could not save to the store: {exc}",
                                 hint=f"check the PostgreSQL server at {where_is(self.url)}") from exc

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        import psycopg

        with self._lock:
            try:
                with self._conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc

    # ------------------------------------------------------------------ experiments & environments

    def save_experiment(self, name: str, config: dict[str, Any], config_hash: str) -> None:
        """Record the latest resolved config of an experiment."""
        with self.transaction() as c:
            c.execute("INSERT INTO experiments (name, config, config_hash, updated) VALUES (%s, %s, %s, %s) "
                      "ON CONFLICT (name) DO UPDATE SET config = excluded.config, "
                      "config_hash = excluded.config_hash, updated = excluded.updated",
                      (name, json.dumps(config), config_hash, now()))

    def experiment(self, name: str) -> dict[str, Any] | None:
        """The config an experiment last ran with, or None."""
        rows = self._query("SELECT config FROM experiments WHERE name = %s", (name,))
        return json.loads(rows[0][0]) if rows else None

    def save_environment(self, env_id: str, data: dict[str, Any]) -> None:
        """Record an environment description (deduplicated by its id, a hash)."""
        with self.transaction() as c:
            c.execute("INSERT INTO environments (id, data) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                      (env_id, json.dumps(data)))

    def environment(self, env_id: str) -> dict[str, Any] | None:
        """The environment a trial ran in."""
        rows = self._query("SELECT data FROM environments WHERE id = %s", (env_id,))
        return json.loads(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ writing trials

    def add_trials(self, trials: Iterable[Trial]) -> None:
        """Insert new trials (and their params) in one transaction."""
        trials = list(trials)
        with self.transaction() as c:
            self._insert(c, trials)
            c.executemany("INSERT INTO events (trial_id, ts, kind, message) VALUES (%s, %s, %s, %s)",
                          [(t.id, t.created, "status", t.status) for t in trials])

    @staticmethod
    def _insert(c: Any, trials: Sequence[Trial]) -> None:
        """The trial rows with their params and tags (one statement each, however many trials)."""
        c.executemany(_INSERT, [_trial_row(t) for t in trials])
        c.executemany("INSERT INTO params (trial_id, name, value) VALUES (%s, %s, %s)",
                      [(t.id, k, param_key(v)) for t in trials for k, v in t.params.items()])
        c.executemany("INSERT INTO tags (trial_id, name) VALUES (%s, %s)",
                      [(t.id, tag) for t in trials for tag in t.tags])

    def update(self, trial_id: str, *, event: str | None = None, **fields: Any) -> None:
        """Set non-status columns of a trial (only those named)."""
        with self.transaction() as c:
            if not self._set(c, trial_id, fields) and fields:
                raise NotFoundError(f"no trial {trial_id}")
            if event:
                self._event(c, trial_id, "note", event)

    def merge_extra(self, trial_id: str, values: dict[str, Any]) -> None:
        """Merge keys into ``extra`` atomically (JSON merge patch: a None value removes its key)."""
        with self.transaction() as c:
            self._merge_extra(c, trial_id, values)

    @staticmethod
    def _merge_extra(c: Any, trial_id: str, values: dict[str, Any]) -> None:
        c.execute("SELECT extra FROM trials WHERE id = %s FOR UPDATE", (trial_id,))
        row = c.fetchone()
        if row is not None:
            c.execute("UPDATE trials SET extra = %s WHERE id = %s",
                      (json.dumps(merge_patch(json.loads(row[0]), values)), trial_id))

    def tag(self, trial_ids: Sequence[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Remove, then add tags of trials, in one transaction; the history says what changed."""
        add, remove = list(dict.fromkeys(add)), set(remove)
        with self.transaction() as c:
            for trial_id in trial_ids:
                c.execute("SELECT tags FROM trials WHERE id = %s FOR UPDATE", (trial_id,))
                row = c.fetchone()
                if row is None:
                    raise NotFoundError(f"no trial {trial_id}")
                old: list[str] = json.loads(row[0])
                new = [t for t in old if t not in remove]
                new += [t for t in add if t not in new]
                if new == old:
                    continue
                c.execute("UPDATE trials SET tags = %s WHERE id = %s", (json.dumps(new), trial_id))
                gone = [t for t in old if t not in new]
                c.executemany("DELETE FROM tags WHERE trial_id = %s AND name = %s", [(trial_id, t) for t in gone])
                came = [t for t in new if t not in old]
                c.executemany("INSERT INTO tags (trial_id, name) VALUES (%s, %s)", [(trial_id, t) for t in came])
                said = [f"+{t}" for t in came] + [f"-{t}" for t in gone]
                self._event(c, trial_id, "note", "tags " + " ".join(said))

    def transition(self, trial_id: str, status: str, *, expected: Iterable[str] | None = None,
                   event: str | None = None, **fields: Any) -> bool:
        """Move a trial to ``status`` if the transition table (and ``expected``) allow it."""
        with self.transaction() as c:
            return self._transition(c, trial_id, status, expected, event, fields)

    def _transition(self, c: Any, trial_id: str, status: str, expected: Iterable[str] | None,
                    event: str | None, fields: dict[str, Any]) -> bool:
        allowed = sources(status)
        if expected is not None:
            allowed = allowed & set(expected)
        if not allowed:
            raise ValueError(f"no trial may become {status!r} from {sorted(expected or [])}")
        if status == "running":  # a new owner starts afresh: no stale stop request
            fields = {"stop_requested": None, **fields}
        columns, values = _assignments(fields)
        # the compare-and-set, the fields and the history in one statement (one round trip)
        c.execute(f"WITH changed AS (UPDATE trials SET {', '.join(['status = %s', *columns])} "
                  "WHERE id = %s AND status = ANY(%s) RETURNING id) "
                  "INSERT INTO events (trial_id, ts, kind, message) SELECT id, %s, 'status', %s FROM changed",
                  (status, *values, trial_id, sorted(allowed), now(), f"{status}: {event}" if event else status))
        if c.rowcount == 0:
            return False
        if status in _ENDS_ATTEMPT and fields.get("error"):  # a queue trial keeps every attempt's error
            c.execute("SELECT errors, attempts, owner ->> 'worker' FROM trials WHERE id = %s AND queue IS NOT NULL",
                      (trial_id,))
            row = c.fetchone()
            if row is not None:
                entry = {"attempt": row[1], "status": status, "error": fields["error"], "at": now(), "worker": row[2]}
                c.execute("UPDATE trials SET errors = %s WHERE id = %s",
                          (json.dumps([*json.loads(row[0]), entry]), trial_id))
        return True

    @staticmethod
    def _set(c: Any, trial_id: str, fields: dict[str, Any]) -> bool:
        columns, values = _assignments(fields)
        if not columns:
            return True
        c.execute(f"UPDATE trials SET {', '.join(columns)} WHERE id = %s", (*values, trial_id))
        return c.rowcount > 0

    @staticmethod
    def _event(c: Any, trial_id: str, kind: str, message: str) -> None:
        c.execute("INSERT INTO events (trial_id, ts, kind, message) VALUES (%s, %s, %s, %s)",
                  (trial_id, now(), kind, message))

    def finalize(self, trial_id: str, status: str, *, metrics: Iterable[MetricPoint] = (),
                 replace_metrics: bool = False, artifacts: Iterable[tuple[str, int, str]] | None = None,
                 extra: dict[str, Any] | None = None, **fields: Any) -> bool:
        """End a running trial in one transaction: status, last metrics, artifacts, extra, fields."""
        points = list(metrics)
        with self.transaction() as c:
            if not self._transition(c, trial_id, status, ["running"], None, {"beat": None, **fields}):
                return False
            self._append(c, trial_id, points, replace_metrics)
            if artifacts is not None:
                c.execute("DELETE FROM artifacts WHERE trial_id = %s", (trial_id,))
                c.executemany("INSERT INTO artifacts (trial_id, path, size, sha256) VALUES (%s, %s, %s, %s)",
                              [(trial_id, *f) for f in artifacts])
            if extra:
                self._merge_extra(c, trial_id, extra)
        return True

    def request_stop(self, trial_id: str, reason: str) -> bool:
        """Record a stop request on a running trial (the first reason wins)."""
        with self.transaction() as c:
            c.execute("UPDATE trials SET stop_requested = COALESCE(stop_requested, %s) "
                      "WHERE id = %s AND status = 'running'", (reason, trial_id))
            if c.rowcount == 0:
                return False
            self._event(c, trial_id, "note", f"stop requested: {reason}")
        return True

    def heartbeat(self, trial_ids: Sequence[str], *, at: float | None = None) -> int:
        """Renew the heartbeat of queued/running trials (one statement)."""
        at = time.time() if at is None else at
        with self.transaction() as c:
            c.execute("UPDATE trials SET beat = %s WHERE id = ANY(%s) AND status IN ('queued', 'running')",
                      (at, list(trial_ids)))
            return c.rowcount

    def expire(self, *, at: float | None = None, ids: Sequence[str] | None = None,
               reason: str | None = None) -> tuple[list[str], list[str]]:
        """Trials whose heartbeat is older than their lease: running -> lost, queued -> cancelled.

        ``ids`` limits the candidates; ``at=math.inf`` expires them whatever their heartbeat.
        """
        at = time.time() if at is None else at
        where = "status IN ('queued', 'running') AND beat IS NOT NULL AND beat + COALESCE(lease, 60) < %s"
        args: list[Any] = [at if math.isfinite(at) else 1e300]
        if ids is not None:
            if not ids:
                return [], []
            where += " AND id = ANY(%s)"
            args.append(list(ids))
        if not self._query(f"SELECT 1 FROM trials WHERE {where} LIMIT 1", args):
            return [], []  # the common case: a read command pays one indexed query, no write
        lost: list[str] = []
        cancelled: list[str] = []
        stamp = now()
        with self.transaction() as c:
            c.execute(f"SELECT id, status, lease, queue FROM trials WHERE {where} ORDER BY created, seq", args)
            for trial_id, status, lease, queue in c.fetchall():
                if status == "running":
                    why = reason or (f"no heartbeat for over {lease or 60:g} s (its lease): the process "
                                     "running it died or lost contact")
                    fix = "it is requeued while it has attempts left" if queue else \
                        "reset it with 'tracker trials reset'"
                    if self._transition(c, trial_id, "lost", ["running"], None,
                                        {"finished": stamp, "beat": None, "error": f"{why}; {fix}"}):
                        lost.append(trial_id)
                        if queue:
                            self._requeue(c, trial_id, ["lost"])
                elif self._transition(c, trial_id, "cancelled", ["queued"], None,
                                      {"finished": stamp, "beat": None, "error": "never started: the run was killed"}):
                    cancelled.append(trial_id)
        return lost, cancelled

    # ------------------------------------------------------------------ the queue

    def claim(self, queue: str, owner: dict[str, Any], *, lease: float, limit: int = 1,
              at: float | None = None) -> list[Trial]:
        """Take up to ``limit`` of the oldest queued trials of ``queue`` in one statement (one round trip, its
        own transaction): the rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers (any
        machine) each take other trials and never wait; the claim's event is written by the same statement."""
        at = time.time() if at is None else at
        who = owner.get("worker") or owner.get("host") or "a worker"
        stamp = now()
        columns = ", ".join(f"t.{c}" for c in _COLUMNS)
        rows = self._query(
            "WITH picked AS (SELECT id FROM trials WHERE queue = %(queue)s AND status = 'queued' "
            "ORDER BY created, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
            "claimed AS (UPDATE trials AS t SET status = 'running', attempts = t.attempts + 1, owner = %(owner)s, "
            "beat = %(at)s, lease = %(lease)s, started = %(stamp)s, handle = '{}', pid = NULL, host = %(host)s, "
            f"stop_requested = NULL FROM picked WHERE t.id = picked.id RETURNING {columns}, t.seq), "
            "noted AS (INSERT INTO events (trial_id, ts, kind, message) SELECT id, %(stamp)s, 'status', "
            "'running: claimed by ' || %(who)s || ' (attempt ' || attempts || ' of ' || "
            "GREATEST(max_attempts, attempts) || ')' FROM claimed) "
            f"SELECT {', '.join(_COLUMNS)} FROM claimed ORDER BY created, seq",
            {"queue": queue, "limit": limit, "owner": json.dumps(owner), "at": at, "lease": lease, "stamp": stamp,
             "host": owner.get("host"), "who": who})
        return [_row_to_trial(r) for r in rows]

    def requeue(self, trial_id: str, *, expected: Iterable[str] = ("lost", "cancelled")) -> bool:
        """Put an ended queue trial back in its queue while it has attempts left (see BaseStore.requeue)."""
        with self.transaction() as c:
            return self._requeue(c, trial_id, list(expected))

    def _requeue(self, c: Any, trial_id: str, expected: list[str]) -> bool:
        c.execute("SELECT status, attempts, max_attempts FROM trials WHERE id = %s AND queue IS NOT NULL FOR UPDATE",
                  (trial_id,))
        row = c.fetchone()
        if row is None or row[0] not in expected or row[1] >= row[2]:
            return False
        if not self._transition(c, trial_id, "queued", expected,
                                f"requeued (attempt {row[1]} of {row[2]} did not finish)", _CLEARED):
            return False
        c.execute("DELETE FROM metrics WHERE trial_id = %s", (trial_id,))
        c.execute("UPDATE trials SET metrics = '{}', step = NULL WHERE id = %s", (trial_id,))
        return True

    def register_worker(self, worker: Worker) -> None:
        w = worker
        with self.transaction() as c:
            c.execute(f"INSERT INTO workers ({', '.join(_WORKER_COLUMNS)}) VALUES "
                      f"({', '.join(['%s'] * len(_WORKER_COLUMNS))})",
                      (w.id, w.queue, w.host, w.pid, w.slots, w.started, w.heartbeat, w.lease, w.status,
                       json.dumps(w.running), w.done, json.dumps(w.info)))

    def worker_beat(self, worker_id: str, *, running: Sequence[str], done: int, at: float | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE workers SET beat = %s, running = %s, done = %s WHERE id = %s",
                      (time.time() if at is None else at, json.dumps(list(running)), done, worker_id))

    def end_worker(self, worker_id: str, status: str = "stopped") -> None:
        with self.transaction() as c:
            c.execute("UPDATE workers SET status = %s, running = '[]' WHERE id = %s", (status, worker_id))

    def workers(self, *, queue: str | None = None, at: float | None = None) -> list[Worker]:
        where, args = (" WHERE queue = %s", [queue]) if queue else ("", [])
        rows = self._query(f"SELECT {', '.join(_WORKER_COLUMNS)} FROM workers{where} ORDER BY started, seq", args)
        return [_row_to_worker(r, time.time() if at is None else at) for r in rows]

    def queue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for queue, exp, status, n in self._query("SELECT queue, experiment, status, COUNT(*) FROM trials "
                                                 "WHERE queue IS NOT NULL GROUP BY queue, experiment, status "
                                                 "ORDER BY queue, experiment, status"):
            out.setdefault(queue, {}).setdefault(exp, {})[status] = n
        return out

    def put_blob(self, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        with self.transaction() as c:
            c.execute("INSERT INTO blobs (sha256, data, size) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                      (sha, data, len(data)))
        return sha

    def record_test_use(self, use: TestUse) -> None:
        import uuid

        with self.transaction() as c:
            c.execute("INSERT INTO test_uses (id, key, experiment, params, commit_sha, run_id, at) "
                      "VALUES (%s, %s, %s, %s, %s, %s, %s)", (uuid.uuid4().hex, use.key, use.experiment,
                                                       json.dumps(use.params), use.commit, use.run_id, use.at))

    def test_uses(self, key: str) -> list[TestUse]:
        rows = self._query("SELECT key, experiment, params, commit_sha, run_id, at FROM test_uses WHERE key = %s "
                           "ORDER BY at, id", (key,))
        return [TestUse(k, e, json.loads(p), c, r, a) for k, e, p, c, r, a in rows]

    def blob(self, sha256: str) -> bytes | None:
        rows = self._query("SELECT data FROM blobs WHERE sha256 = %s", (sha256,))
        return bytes(rows[0][0]) if rows else None

    def append_metrics(self, trial_id: str, points: Iterable[MetricPoint], *, replace: bool = False) -> None:
        """Store metric points and refresh the trial's last values and latest step."""
        points = list(points)
        if not points and not replace:
            return
        with self.transaction() as c:
            self._append(c, trial_id, points, replace)

    @classmethod
    def _append(cls, c: Any, trial_id: str, points: list[MetricPoint], replace: bool) -> None:
        """Store points; a NaN value is left out and the trial's history says which metric reported it."""
        if replace:
            c.execute("DELETE FROM metrics WHERE trial_id = %s", (trial_id,))
        elif not points:
            return
        nan: dict[str, int | None] = {}
        for p in points:
            if math.isnan(p.value):
                nan.setdefault(p.name, p.step)
        if nan:
            points = [p for p in points if not math.isnan(p.value)]
            for name, step in nan.items():
                at = "" if step is None else f" at step {step}"
                cls._event(c, trial_id, "warning", f"metric {name} reported NaN{at} (not stored)")
        c.executemany("INSERT INTO metrics (trial_id, name, step, value, phase, ts) VALUES (%s, %s, %s, %s, %s, %s)",
                      [(trial_id, p.name, p.step, p.value, p.phase, p.ts) for p in points])
        c.execute("SELECT metrics, step FROM trials WHERE id = %s FOR UPDATE", (trial_id,))
        row = c.fetchone()
        last = {} if replace or row is None else json.loads(row[0])
        step = None if replace or row is None else row[1]
        for p in points:
            last[p.name] = p.value
            if p.step is not None:
                step = p.step
        c.execute("UPDATE trials SET metrics = %s, step = %s WHERE id = %s", (metrics_json(last), step, trial_id))

    def add_event(self, trial_id: str, kind: str, message: str) -> None:
        """Log something that happened to a trial."""
        with self.transaction() as c:
            self._event(c, trial_id, kind, message)

    def delete(self, trial_ids: Sequence[str]) -> int:
        """Delete trials (with their params, metrics, artifacts and events)."""
        with self.transaction() as c:
            c.execute("DELETE FROM trials WHERE id = ANY(%s)", (list(trial_ids),))
            return c.rowcount

    def import_trial(self, trial: Trial, metrics: Iterable[MetricPoint],
                     artifacts: Iterable[tuple[str, int, str]] = ()) -> None:
        """Insert a trial record brought back from elsewhere (a restore), replacing any copy.

        Nothing here owns it; a record copied while queued or running arrives ``lost``.
        """
        trial = replace(trial, owner={}, handle={}, heartbeat=None, pid=None, stop_requested=None)
        if trial.status in ("queued", "running"):
            trial = replace(trial, status="lost", error=f"restored from a copy made while it was {trial.status}")
        points = list(metrics)
        with self.transaction() as c:
            c.execute("DELETE FROM trials WHERE id = %s", (trial.id,))
            self._insert(c, [trial])
            if points:  # else the record's own last values stand (old records have no history)
                self._append(c, trial.id, points, True)
            c.executemany("INSERT INTO artifacts (trial_id, path, size, sha256) VALUES (%s, %s, %s, %s)",
                          [(trial.id, *f) for f in artifacts])
            self._event(c, trial.id, "status", f"imported as {trial.status}")

    # ------------------------------------------------------------------ reading (never writes)

    def get(self, ref: str) -> Trial:
        """A trial by id or unique id prefix."""
        if not ref.strip():
            raise UsageError("empty trial id")
        return _row_to_trial(self._by_ref(_SELECT, ref, "trial", "tracker trials list"))

    def _by_ref(self, select: str, ref: str, what: str, listing: str) -> Any:
        """The one row of ``select`` whose id is ``ref`` or, failing that, starts with it (case aside, as
        SQLite's LIKE; the characters % and _ are dropped from a prefix there, so here too)."""
        ref = ref.strip()
        rows = self._query(f"{select} WHERE id = %s", (ref,))
        prefix = ref.replace("%", "").replace("_", "")
        if not rows and not prefix:
            raise NotFoundError(f"no {what} {ref!r}", hint=f"give the start of a {what} id, see '{listing}'")
        if not rows:
            rows = self._query(f"{select} WHERE starts_with(lower(id), lower(%s)) ORDER BY created LIMIT 3",
                               (prefix,))
        if not rows:
            raise NotFoundError(f"no {what} {ref!r}", hint=f"see '{listing}'")
        if len(rows) > 1:
            raise UsageError(f"{what} id {ref!r} is ambiguous ({', '.join(r[0] for r in rows)}, ...)",
                             hint="give more characters of the id")
        return rows[0]

    @staticmethod
    def _select_sql(columns: str, filters: dict[str, Any], limit: int | None,
                    newest_first: bool = False) -> tuple[str, list[Any]]:
        """The query of ``columns`` for the filtered trials; ``limit`` keeps the newest N (oldest first)."""
        where, args = where_of(**filters)
        order = " DESC" if newest_first else ""
        if limit is None:
            return f"SELECT {columns} FROM trials{where} ORDER BY created{order}, seq{order}", args
        inner = f"SELECT * FROM trials{where} ORDER BY created DESC, seq DESC LIMIT %s"
        return f"SELECT {columns} FROM ({inner}) AS trials ORDER BY created{order}, seq{order}", [*args, limit]

    def _select(self, columns: str, filters: dict[str, Any], limit: int | None,
                newest_first: bool = False) -> list[Any]:
        return self._query(*self._select_sql(columns, filters, limit, newest_first))

    def list_trials(self, *, limit: int | None = None, newest_first: bool = False,
                    **filters: Any) -> list[Trial]:
        """Trials matching every filter, oldest first (``limit``: the newest N). One query."""
        return [_row_to_trial(r) for r in self._select(", ".join(_COLUMNS), filters, limit, newest_first)]

    def summaries_json(self, *, limit: int | None = None, **filters: Any) -> str:
        """The ``trials list --json`` array: the server writes each summary (``row_to_json``: compact, the
        json columns as they are), in index order; Python only joins them."""
        summary = ("row_to_json((SELECT s FROM (SELECT id, experiment, status, seed, params, metrics, step, "
                   "commit_sha AS commit, dirty <> 0 AS dirty, host, started, finished, duration, exit_code, tags, "
                   "note) AS s))::text")
        return "[" + ",\n".join(r[0] for r in self._select(summary, filters, limit)) + "]"

    def key_names(self, *, limit: int | None = None, **filters: Any) -> tuple[list[str], list[str]]:
        """Every param name and every metric name among the filtered trials (in the order first met)."""
        found: list[list[str]] = []
        for column in ("params", "metrics"):
            sql, args = self._select_sql(f"{column} AS c, created, seq", filters, limit)
            rows = self._query(f"SELECT k FROM ({sql}) AS t, json_object_keys(t.c) AS k "
                               "GROUP BY k ORDER BY MIN(t.created), MIN(t.seq)", args)
            found.append([r[0] for r in rows])
        return found[0], found[1]

    def metric_rows(self, metric: str, *, experiments: Sequence[str], phase: str = "train", goal: str = "max",
                    also: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Lean rows for comparisons (see BaseStore.metric_rows): per trial, its best value and the first
        step it was reached at are two seeks into the metrics index (trial, name, value, step)."""
        if goal not in ("min", "max"):
            raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
        extras = "".join(f", (t.metrics -> %s)::text AS x{i}" for i in range(len(also)))
        sql = (f"SELECT r.id, r.experiment, r.seed, r.params, r.last, r.best, (SELECT step FROM metrics "
               f"WHERE trial_id = r.id AND name = %s AND value = r.best ORDER BY step NULLS FIRST LIMIT 1)"
               f"{''.join(f', r.x{i}' for i in range(len(also)))} FROM ("
               f"SELECT t.id, t.experiment, t.seed, t.params, (t.metrics -> %s)::text AS last, "
               f"(SELECT {goal.upper()}(value) FROM metrics WHERE trial_id = t.id AND name = %s) AS best{extras}, "
               f"t.created, t.seq FROM trials AS t WHERE experiment = ANY(%s) AND status = 'completed' "
               f"AND phase = %s) AS r ORDER BY r.created, r.seq")
        rows = self._query(sql, [metric, metric, metric, *also, list(experiments), phase])
        return [(*r[:4], sql_value(r[4]), *r[5:7], *(sql_value(x) for x in r[7:])) for r in rows]

    def count(self, **filters: Any) -> int:
        """How many trials match the filters."""
        where, args = where_of(**filters)
        return int(self._query(f"SELECT COUNT(*) FROM trials{where}", args)[0][0])

    def table(self, param_names: Sequence[str], metric_names: Sequence[str], *,
              limit: int | None = None, **filters: Any) -> list[tuple[Any, ...]]:
        """Flat rows: id, experiment, status, seed, step, commit, dirty, host, started, finished,
        duration, exit_code, tags (comma-separated), then each param and each metric (as SQLite gives them)."""
        fixed = ["id", "experiment", "status", "seed", "step", "commit_sha", "dirty", "host", "started", "finished",
                 "duration", "exit_code", "array_to_string(ARRAY(SELECT json_array_elements_text(tags)), ',')"]
        keyed = [f"(params -> {_literal(n)})::text" for n in param_names]
        keyed += [f"(metrics -> {_literal(n)})::text" for n in metric_names]
        rows = self._select(", ".join(fixed + keyed), filters, limit)
        n = len(fixed)
        return [(*r[:n], *(sql_value(v) for v in r[n:])) for r in rows]

    def count_by_status(self, **filters: Any) -> dict[str, dict[str, int]]:
        """{experiment: {status: count}} for the status overview (of the trials matching ``filters``)."""
        out: dict[str, dict[str, int]] = {}
        where, args = where_of(**filters)
        for exp, status, n in self._query(f"SELECT experiment, status, COUNT(*) FROM trials{where} "
                                          "GROUP BY experiment, status ORDER BY experiment, status", args):
            out.setdefault(exp, {})[status] = n
        return out

    def metrics(self, trial_id: str, name: str | None = None) -> list[MetricPoint]:
        """Every logged point of a trial's metrics, in logging order."""
        sql = "SELECT name, value, step, phase, ts FROM metrics WHERE trial_id = %s"
        args: list[Any] = [trial_id]
        if name:
            sql += " AND name = %s"
            args.append(name)
        return [MetricPoint(*r) for r in self._query(sql + " ORDER BY seq", args)]

    def artifacts(self, trial_id: str) -> list[tuple[str, int, str]]:
        """A trial's recorded output files as (path, size, sha256)."""
        return [tuple(r) for r in self._query(
            "SELECT path, size, sha256 FROM artifacts WHERE trial_id = %s ORDER BY path COLLATE \"C\"", (trial_id,))]

    def events(self, trial_id: str) -> list[Event]:
        """A trial's history."""
        return [Event(*r) for r in self._query(
            "SELECT trial_id, ts, kind, message FROM events WHERE trial_id = %s ORDER BY id", (trial_id,))]

    # ------------------------------------------------------------------ optimizations

    def add_optimization(self, optimization: Optimization) -> None:
        o = optimization
        with self.transaction() as c:
            c.execute(f"INSERT INTO optimizations ({', '.join(_OPT_COLUMNS)}) VALUES "
                      f"({', '.join(['%s'] * len(_OPT_COLUMNS))})",
                      (o.id, o.experiment, o.strategy, json.dumps(o.settings), o.status, o.created, o.finished,
                       o.error, json.dumps(o.owner), o.commit))

    def update_optimization(self, optimization_id: str, **fields: Any) -> None:
        columns = {"commit": "commit_sha"}
        sets, args = [], []
        for name, value in fields.items():
            column = columns.get(name, name)
            if column not in _OPT_COLUMNS or column == "id":
                raise ValueError(f"cannot update optimization field {name!r}")
            sets.append(f"{column} = %s")
            args.append(json.dumps(value) if column in ("settings", "owner") else value)
        with self.transaction() as c:
            c.execute(f"UPDATE optimizations SET {', '.join(sets)} WHERE id = %s", (*args, optimization_id))

    def claim_optimization(self, optimization_id: str, owner: dict[str, Any], *, unless: dict[str, Any]) -> bool:
        with self.transaction() as c:
            c.execute("UPDATE optimizations SET owner = %s, status = 'running', finished = NULL, error = NULL "
                      "WHERE id = %s AND owner::text = %s", (json.dumps(owner), optimization_id, json.dumps(unless)))
            return c.rowcount == 1

    def get_optimization(self, ref: str) -> Optimization:
        return _row_to_optimization(self._by_ref(_OPT_SELECT, ref, "optimization", "tracker optimize list"))

    def list_optimizations(self, *, experiment: str | None = None) -> list[Optimization]:
        where, args = (" WHERE experiment = %s", (experiment,)) if experiment else ("", ())
        return [_row_to_optimization(r) for r in self._query(f"{_OPT_SELECT}{where} ORDER BY created, seq", args)]

    def save_configuration(self, configuration: Configuration) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _CONF_COLUMNS[2:])
        self._insert_configuration(configuration, f"(optimization_id, number) DO UPDATE SET {updates}")

    def add_configuration(self, configuration: Configuration) -> bool:
        return self._insert_configuration(configuration, "DO NOTHING")

    def _insert_configuration(self, configuration: Configuration, on_conflict: str) -> bool:
        f = configuration
        with self.transaction() as c:
            c.execute(f"INSERT INTO configurations ({', '.join(_CONF_COLUMNS)}) VALUES "
                      f"({', '.join(['%s'] * len(_CONF_COLUMNS))}) ON CONFLICT {on_conflict}",
                      (f.optimization, f.number, json.dumps(f.params), f.state, f.created, f.value,
                       json.dumps(f.values), f.step, f.error, f.finished))
            return c.rowcount == 1

    def configurations(self, optimization_id: str) -> list[Configuration]:
        rows = self._query(f"SELECT {', '.join(_CONF_COLUMNS)} FROM configurations WHERE optimization_id = %s "
                           "ORDER BY number", (optimization_id,))
        return [Configuration(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9])
                for r in rows]


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


def _literal(text: str) -> str:
    """``text`` as a SQL string literal (for key names written into a query)."""
    return "'" + text.replace("'", "''") + "'"
