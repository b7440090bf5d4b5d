"""The embedded trial store: SQLite in WAL mode, safe across threads and processes.

All writes go through short ``BEGIN IMMEDIATE`` transactions, so a killed
process never leaves half a trial behind, and a compare-and-set inside the
transaction makes concurrent status changes safe. JSON columns hold params and
the last value of every metric so listing 100k trials is one query with no joins.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tracker.errors import NotFoundError, StoreError, UsageError
from tracker.store.base import BaseStore
from tracker.store.models import Configuration, Event, MetricPoint, Optimization, TestUse, Trial, Worker, sources
from tracker.store.schema import migrate

_COLUMNS = (
    "id", "run_id", "experiment", "status", "seed", "params", "metrics", "step", "command", "phase",
    "commit_sha", "branch", "dirty", "snapshot", "host", "executor", "handle", "owner", "pid", "env_id",
    "created", "started", "finished", "beat", "lease", "stop_requested", "duration", "exit_code", "error",
    "extra", "tags", "note", "queue", "attempts", "max_attempts", "errors",
)
_JSON = {"params", "metrics", "command", "handle", "owner", "extra", "tags", "errors"}
_FIELDS = {"commit": "commit_sha", "heartbeat": "beat"}  # Trial field -> column, where they differ
# columns update() may set; status goes through transition()/finalize(), extra through merge_extra(),
# tags through tag(), attempts through claim(), errors with the status change that ends an attempt
_UPDATABLE = set(_COLUMNS) - {"id", "created", "params", "metrics", "status", "extra", "tags", "attempts", "errors"}
_ENDS_ATTEMPT = ("failed", "lost", "cancelled")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM trials"
_ATTRS = [next((f for f, c in _FIELDS.items() if c == col), col) for col in _COLUMNS]


def now() -> str:
    """The current UTC time as a sortable ISO-8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_JSON_AT = [i for i, col in enumerate(_COLUMNS) if col in _JSON]
_DIRTY_AT = _COLUMNS.index("dirty")


def _row_to_trial(row: Sequence[Any]) -> Trial:
    values = list(row)
    for i in _JSON_AT:
        v = values[i]
        values[i] = {} if v == "{}" else [] if v == "[]" else json.loads(v)
    values[_DIRTY_AT] = bool(values[_DIRTY_AT])
    return Trial(**dict(zip(_ATTRS, values, strict=True)))


def _trial_row(t: Trial) -> tuple[Any, ...]:
    values = []
    for attr, col in zip(_ATTRS, _COLUMNS, strict=True):
        v = getattr(t, attr)
        values.append(metrics_json(v) if col == "metrics" else json.dumps(v) if col in _JSON
                      else int(v) if col == "dirty" else v)
    return tuple(values)


def metrics_json(values: dict[str, float]) -> str:
    """Last metric values as JSON that SQLite's json functions read: an infinite value (a diverged
    loss) as 1e999, which both SQLite and Python read back as infinity, where ``json.dumps`` would
    write ``Infinity`` (not JSON: every json_extract over the column then fails); NaN as null."""
    def number(v: float) -> str:
        if isinstance(v, float) and not math.isfinite(v):
            return "null" if math.isnan(v) else "1e999" if v > 0 else "-1e999"
        return json.dumps(v)

    return "{" + ", ".join(f"{json.dumps(k)}: {number(v)}" for k, v in values.items()) + "}"


def _json_path(name: str) -> str:
    """A SQL literal of the JSON path of the key ``name`` (quoted, so '/' and '.' in names are plain)."""
    return "'$.\"" + name.replace("'", "''").replace('"', '\\"') + "\"'"


def param_key(value: Any) -> str:
    """How a param value is stored in the ``params`` table (canonical JSON)."""
    return json.dumps(value, sort_keys=True)


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


class SQLiteStore(BaseStore):
    """Trials, metrics, experiments and environments in one SQLite file (``sqlite:///path``).

    Example::

        store = SQLiteStore.open(Path(".tracker/tracker.db"))
        for trial in store.list_trials(experiment="baseline"):
            print(trial.id, trial.status, trial.metrics)
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self.url = f"sqlite:///{path}" if path else "sqlite:///:memory:"

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

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def migrations(self) -> list[str]:
        """Names of the applied schema migrations, in order."""
        return [r[0] for r in self._query("SELECT name FROM schema_migrations ORDER BY name")]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; rolled back on any error."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"the store is locked or unwritable: {exc}") from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"could not save to the store: {exc}",
                                 hint="check the disk has space and the store is writable") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    raise StoreError(f"could not save to the store: {exc}",
                                     hint="check the disk has space and the store is writable") from exc

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc

    # ------------------------------------------------------------------ experiments & environments

    def save_experiment(self, name: str, config: dict[str, Any], config_hash: str) -> None:
        """Record the latest resolved config of an experiment."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO experiments (name, config, config_hash, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config=excluded.config, "
                "config_hash=excluded.config_hash, updated=excluded.updated",
                (name, json.dumps(config), config_hash, now()),
            )

    def experiment(self, name: str) -> dict[str, Any] | None:
        """The config an experiment last ran with (what :meth:`save_experiment` recorded), or None."""
        rows = self._query("SELECT config FROM experiments WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def save_environment(self, env_id: str, data: dict[str, Any]) -> None:
        """Record an environment description (deduplicated by its id, a hash)."""
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO environments (id, data) VALUES (?, ?)",
                      (env_id, json.dumps(data)))

    def environment(self, env_id: str) -> dict[str, Any] | None:
        """The environment a trial ran in."""
        rows = self._query("SELECT data FROM environments WHERE id = ?", (env_id,))
        return json.loads(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ writing trials

    def add_trials(self, trials: Iterable[Trial]) -> None:
        """Insert new trials (and their params) in one transaction."""
        trials = list(trials)
        with self.transaction() as c:
            c.executemany(
                f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [_trial_row(t) for t in trials],
            )
            c.executemany(
                "INSERT INTO params (trial_id, name, value) VALUES (?, ?, ?)",
                [(t.id, k, param_key(v)) for t in trials for k, v in t.params.items()],
            )
            c.executemany("INSERT INTO tags (trial_id, name) VALUES (?, ?)",
                          [(t.id, tag) for t in trials for tag in t.tags])
            c.executemany(
                "INSERT INTO events (trial_id, ts, kind, message) VALUES (?, ?, ?, ?)",
                [(t.id, t.created, "status", t.status) for t in trials],
            )

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
            c.execute("UPDATE trials SET extra = json_patch(extra, ?) WHERE id = ?",
                      (json.dumps(values), trial_id))

    def tag(self, trial_ids: Sequence[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Remove, then add tags of trials, in one transaction; the history says what changed."""
        add, remove = list(dict.fromkeys(add)), set(remove)
        with self.transaction() as c:
            for trial_id in trial_ids:
                row = c.execute("SELECT tags FROM trials WHERE id = ?", (trial_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"no trial {trial_id}")
                old: list[str] = json.loads(row[0])
                new = [t for t in old if t not in remove]
                new += [t for t in add if t not in new]
                if new == old:
                    continue
                c.execute("UPDATE trials SET tags = ? WHERE id = ?", (json.dumps(new), trial_id))
                gone = [t for t in old if t not in new]
                c.executemany("DELETE FROM tags WHERE trial_id = ? AND name = ?", [(trial_id, t) for t in gone])
                came = [t for t in new if t not in old]
                c.executemany("INSERT INTO tags (trial_id, name) VALUES (?, ?)", [(trial_id, t) for t in came])
                said = [f"+{t}" for t in came] + [f"-{t}" for t in gone]
                self._event(c, trial_id, "note", "tags " + " ".join(said))

    def transition(self, trial_id: str, status: str, *, expected: Iterable[str] | None = None,
                   event: str | None = None, **fields: Any) -> bool:
        """Move a trial to ``status`` if the transition table (and ``expected``) allow it."""
        with self.transaction() as c:
            return self._transition(c, trial_id, status, expected, event, fields)

    def _transition(self, c: sqlite3.Connection, trial_id: str, status: str, expected: Iterable[str] | None,
                    event: str | None, fields: dict[str, Any]) -> bool:
        allowed = sources(status)
        if expected is not None:
            allowed = allowed & set(expected)
        if not allowed:
            raise ValueError(f"no trial may become {status!r} from {sorted(expected or [])}")
        marks = ", ".join("?" * len(allowed))
        if status == "running":  # a new owner starts afresh: no stale stop request
            fields = {"stop_requested": None, **fields}
        cur = c.execute(f"UPDATE trials SET status = ? WHERE id = ? AND status IN ({marks})",
                        (status, trial_id, *sorted(allowed)))
        if cur.rowcount == 0:
            return False
        self._set(c, trial_id, fields)
        if status in _ENDS_ATTEMPT and fields.get("error"):  # a queue trial keeps every attempt's error
            c.execute("UPDATE trials SET errors = json_insert(errors, '$[#]', json_object('attempt', attempts, "
                      "'status', ?, 'error', ?, 'at', ?, 'worker', json_extract(owner, '$.worker'))) "
                      "WHERE id = ? AND queue IS NOT NULL", (status, fields["error"], now(), trial_id))
        self._event(c, trial_id, "status", f"{status}: {event}" if event else status)
        return True

    @staticmethod
    def _set(c: sqlite3.Connection, trial_id: str, fields: dict[str, Any]) -> bool:
        columns = {_FIELDS.get(k, k): v for k, v in fields.items()}
        bad = set(columns) - _UPDATABLE
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if not columns:
            return True
        values = [json.dumps(v) if k in _JSON else (int(v) if k == "dirty" else v) for k, v in columns.items()]
        cur = c.execute(f"UPDATE trials SET {', '.join(f'{k} = ?' for k in columns)} WHERE id = ?",
                        (*values, trial_id))
        return cur.rowcount > 0

    @staticmethod
    def _event(c: sqlite3.Connection, trial_id: str, kind: str, message: str) -> None:
        c.execute("INSERT INTO events (trial_id, ts, kind, message) VALUES (?, ?, ?, ?)",
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
                c.execute("DELETE FROM artifacts WHERE trial_id = ?", (trial_id,))
                c.executemany("INSERT INTO artifacts (trial_id, path, size, sha256) VALUES (?, ?, ?, ?)",
                              [(trial_id, *f) for f in artifacts])
            if extra:
                c.execute("UPDATE trials SET extra = json_patch(extra, ?) WHERE id = ?",
                          (json.dumps(extra), trial_id))
        return True

    def request_stop(self, trial_id: str, reason: str) -> bool:
        """Record a stop request on a running trial (the first reason wins)."""
        with self.transaction() as c:
            row = c.execute("SELECT status FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None or row[0] != "running":
                return False
            c.execute("UPDATE trials SET stop_requested = COALESCE(stop_requested, ?) WHERE id = ?",
                      (reason, trial_id))
            self._event(c, trial_id, "note", f"stop requested: {reason}")
        return True

    def heartbeat(self, trial_ids: Sequence[str], *, at: float | None = None) -> int:
        """Renew the heartbeat of queued/running trials (one statement per 500 ids)."""
        at = time.time() if at is None else at
        n = 0
        with self.transaction() as c:
            for start in range(0, len(trial_ids), 500):
                chunk = list(trial_ids[start:start + 500])
                n += c.execute(f"UPDATE trials SET beat = ? WHERE id IN ({', '.join('?' * len(chunk))}) "
                               "AND status IN ('queued', 'running')", (at, *chunk)).rowcount
        return n

    def expire(self, *, at: float | None = None, ids: Sequence[str] | None = None,
               reason: str | None = None) -> tuple[list[str], list[str]]:
        """Trials whose heartbeat is older than their lease: running -> lost, queued -> cancelled.

        ``ids`` limits the candidates; ``at=math.inf`` expires them whatever their heartbeat
        (the caller proved their owner dead). Only rows change: no process is signalled.
        """
        at = time.time() if at is None else at
        where = "status IN ('queued', 'running') AND beat IS NOT NULL AND beat + COALESCE(lease, 60) < ?"
        args: list[Any] = [at if math.isfinite(at) else 1e300]
        if ids is not None:
            if not ids:
                return [], []
            where += f" AND id IN ({', '.join('?' * len(ids))})"
            args += list(ids)
        if not self._query(f"SELECT 1 FROM trials WHERE {where} LIMIT 1", args):
            return [], []  # the common case: a read command pays one indexed query, no write
        lost: list[str] = []
        cancelled: list[str] = []
        stamp = now()
        with self.transaction() as c:
            for trial_id, status, lease, queue in c.execute(
                    f"SELECT id, status, lease, queue FROM trials WHERE {where}", args).fetchall():
                if status == "running":
                    why = reason or (f"no heartbeat for over {lease or 60:g} s (its lease): the process "
                                     "running it died or lost contact")
                    fix = "it is requeued while it has attempts left" if queue else \
                        "reset it with 'tracker trials reset'"
                    self._transition(c, trial_id, "lost", ["running"], None,
                                     {"finished": stamp, "beat": None, "error": f"{why}; {fix}"})
                    lost.append(trial_id)
                    if queue:
                        self._requeue(c, trial_id, ["lost"])
                else:
                    self._transition(c, trial_id, "cancelled", ["queued"], None,
                                     {"finished": stamp, "beat": None,
                                      "error": "never started: the run was killed"})
                    cancelled.append(trial_id)
        return lost, cancelled

    # ------------------------------------------------------------------ the queue

    def claim(self, queue: str, owner: dict[str, Any], *, lease: float, limit: int = 1,
              at: float | None = None) -> list[Trial]:
        """Take up to ``limit`` of the oldest queued trials of ``queue`` in one write transaction (SQLite
        lets one writer in at a time, so two claimers never read the same queued row as free)."""
        at = time.time() if at is None else at
        who = owner.get("worker") or owner.get("host") or "a worker"
        with self.transaction() as c:
            rows = c.execute("SELECT id, attempts, max_attempts FROM trials WHERE queue = ? AND status = 'queued' "
                             "ORDER BY created, rowid LIMIT ?", (queue, limit)).fetchall()
            for trial_id, attempts, most in rows:
                c.execute("UPDATE trials SET attempts = attempts + 1 WHERE id = ?", (trial_id,))
                self._transition(c, trial_id, "running", ["queued"],
                                 f"claimed by {who} (attempt {attempts + 1} of {max(most, attempts + 1)})",
                                 {"owner": owner, "beat": at, "lease": lease, "started": now(), "handle": {},
                                  "pid": None, "host": owner.get("host")})
        return self.list_trials(ids=[r[0] for r in rows]) if rows else []

    def requeue(self, trial_id: str, *, expected: Iterable[str] = ("lost", "cancelled")) -> bool:
        """Put an ended queue trial back in its queue while it has attempts left (see BaseStore.requeue)."""
        with self.transaction() as c:
            return self._requeue(c, trial_id, list(expected))

    def _requeue(self, c: sqlite3.Connection, trial_id: str, expected: list[str]) -> bool:
        row = c.execute("SELECT status, attempts, max_attempts FROM trials WHERE id = ? AND queue IS NOT NULL",
                        (trial_id,)).fetchone()
        if row is None or row[0] not in expected or row[1] >= row[2]:
            return False
        if not self._transition(c, trial_id, "queued", expected,
                                f"requeued (attempt {row[1]} of {row[2]} did not finish)", _CLEARED):
            return False
        c.execute("DELETE FROM metrics WHERE trial_id = ?", (trial_id,))
        c.execute("UPDATE trials SET metrics = '{}', step = NULL WHERE id = ?", (trial_id,))
        return True

    def register_worker(self, worker: Worker) -> None:
        w = worker
        with self.transaction() as c:
            c.execute(f"INSERT INTO workers ({', '.join(_WORKER_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(_WORKER_COLUMNS))})",
                      (w.id, w.queue, w.host, w.pid, w.slots, w.started, w.heartbeat, w.lease, w.status,
                       json.dumps(w.running), w.done, json.dumps(w.info)))

    def worker_beat(self, worker_id: str, *, running: Sequence[str], done: int, at: float | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE workers SET beat = ?, running = ?, done = ? WHERE id = ?",
                      (time.time() if at is None else at, json.dumps(list(running)), done, worker_id))

    def end_worker(self, worker_id: str, status: str = "stopped") -> None:
        with self.transaction() as c:
            c.execute("UPDATE workers SET status = ?, running = '[]' WHERE id = ?", (status, worker_id))

    def workers(self, *, queue: str | None = None, at: float | None = None) -> list[Worker]:
        where, args = (" WHERE queue = ?", [queue]) if queue else ("", [])
        rows = self._query(f"SELECT {', '.join(_WORKER_COLUMNS)} FROM workers{where} ORDER BY started, rowid", args)
        return [_row_to_worker(r, time.time() if at is None else at) for r in rows]

    def queue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for queue, exp, status, n in self._query("SELECT queue, experiment, status, COUNT(*) FROM trials "
                                                 "WHERE queue IS NOT NULL GROUP BY queue, experiment, status"):
            out.setdefault(queue, {}).setdefault(exp, {})[status] = n
        return out

    def put_blob(self, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO blobs (sha256, data, size) VALUES (?, ?, ?)", (sha, data, len(data)))
        return sha

    def record_test_use(self, use: TestUse) -> None:
        import uuid

        with self.transaction() as c:
            c.execute("INSERT INTO test_uses (id, key, experiment, params, commit_sha, run_id, at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", (uuid.uuid4().hex, use.key, use.experiment,
                                                       json.dumps(use.params), use.commit, use.run_id, use.at))

    def test_uses(self, key: str) -> list[TestUse]:
        rows = self._query("SELECT key, experiment, params, commit_sha, run_id, at FROM test_uses WHERE key = ? "
                           "ORDER BY at, id", (key,))
        return [TestUse(k, e, json.loads(p), c, r, a) for k, e, p, c, r, a in rows]

    def blob(self, sha256: str) -> bytes | None:
        rows = self._query("SELECT data FROM blobs WHERE sha256 = ?", (sha256,))
        return bytes(rows[0][0]) if rows else None

    def append_metrics(self, trial_id: str, points: Iterable[MetricPoint], *, replace: bool = False) -> None:
        """Store metric points and refresh the trial's last values and latest step."""
        points = list(points)
        if not points and not replace:
            return
        with self.transaction() as c:
            self._append(c, trial_id, points, replace)

    @classmethod
    def _append(cls, c: sqlite3.Connection, trial_id: str, points: list[MetricPoint], replace: bool) -> None:
        """Store points; a NaN value (a diverged loss) is not a number to keep: it is left out, and
        the trial's history says which metric reported it, at which step."""
        if replace:
            c.execute("DELETE FROM metrics WHERE trial_id = ?", (trial_id,))
        elif not points:
            return
        nan = {}
        for p in points:
            if math.isnan(p.value):
                nan.setdefault(p.name, p.step)
        if nan:
            points = [p for p in points if not math.isnan(p.value)]
            for name, step in nan.items():
                at = "" if step is None else f" at step {step}"
                cls._event(c, trial_id, "warning", f"metric {name} reported NaN{at} (not stored)")
        c.executemany(
            "INSERT INTO metrics (trial_id, name, step, value, phase, ts) VALUES (?, ?, ?, ?, ?, ?)",
            [(trial_id, p.name, p.step, p.value, p.phase, p.ts) for p in points],
        )
        row = c.execute("SELECT metrics, step FROM trials WHERE id = ?", (trial_id,)).fetchone()
        last = {} if replace or row is None else json.loads(row[0])
        step = None if replace or row is None else row[1]
        for p in points:
            last[p.name] = p.value
            if p.step is not None:
                step = p.step
        c.execute("UPDATE trials SET metrics = ?, step = ? WHERE id = ?", (metrics_json(last), step, trial_id))

    def add_event(self, trial_id: str, kind: str, message: str) -> None:
        """Log something that happened to a trial."""
        with self.transaction() as c:
            self._event(c, trial_id, kind, message)

    def delete(self, trial_ids: Sequence[str]) -> int:
        """Delete trials (with their params, metrics, artifacts and events)."""
        with self.transaction() as c:
            n = 0
            for tid in trial_ids:
                n += c.execute("DELETE FROM trials WHERE id = ?", (tid,)).rowcount
        return n

    def import_trial(self, trial: Trial, metrics: Iterable[MetricPoint],
                     artifacts: Iterable[tuple[str, int, str]] = ()) -> None:
        """Insert a trial record brought back from elsewhere (a restore), replacing any copy.

        Nothing here owns it: no heartbeat, no owner, no handle, so no command ever signals a
        process for it. A record copied while it was queued or running is not running here:
        it arrives ``lost`` (and can be reset like any other).
        """
        trial = replace(trial, owner={}, handle={}, heartbeat=None, pid=None, stop_requested=None)
        if trial.status in ("queued", "running"):
            trial = replace(trial, status="lost", error=f"restored from a copy made while it was {trial.status}")
        points = list(metrics)
        with self.transaction() as c:
            c.execute("DELETE FROM trials WHERE id = ?", (trial.id,))
            c.execute(f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                      _trial_row(trial))
            c.executemany("INSERT INTO params (trial_id, name, value) VALUES (?, ?, ?)",
                          [(trial.id, k, param_key(v)) for k, v in trial.params.items()])
            c.executemany("INSERT INTO tags (trial_id, name) VALUES (?, ?)", [(trial.id, t) for t in trial.tags])
            if points:  # else the record's own last values stand (old records have no history)
                self._append(c, trial.id, points, True)
            c.executemany("INSERT INTO artifacts (trial_id, path, size, sha256) VALUES (?, ?, ?, ?)",
                          [(trial.id, *f) for f in artifacts])
            self._event(c, trial.id, "status", f"imported as {trial.status}")

    # ------------------------------------------------------------------ reading (never writes)

    def get(self, ref: str) -> Trial:
        """A trial by id or unique id prefix."""
        if not ref.strip():
            raise UsageError("empty trial id")
        return _row_to_trial(self._by_ref(_SELECT, ref, "trial", "tracker trials list"))

    def _by_ref(self, select: str, ref: str, what: str, listing: str) -> Any:
        """The one row of ``select`` whose id is ``ref`` or, failing that, starts with it."""
        ref = ref.strip()
        rows = self._query(f"{select} WHERE id = ?", (ref,))
        prefix = ref.replace("%", "").replace("_", "")
        if not rows and not prefix:
            raise NotFoundError(f"no {what} {ref!r}", hint=f"give the start of a {what} id, see '{listing}'")
        if not rows:
            rows = self._query(f"{select} WHERE id LIKE ? ORDER BY created LIMIT 3", (prefix + "%",))
        if not rows:
            raise NotFoundError(f"no {what} {ref!r}", hint=f"see '{listing}'")
        if len(rows) > 1:
            raise UsageError(f"{what} id {ref!r} is ambiguous ({', '.join(r[0] for r in rows)}, ...)",
                             hint="give more characters of the id")
        return rows[0]

    @staticmethod
    def _where(
        experiment: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        params: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        run_id: str | None = None,
        ids: Sequence[str] | None = None,
        fingerprints: Sequence[str] | None = None,
        optimization: str | None = None,
        queue: str | None = None,
        owned: bool = False,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (or '') and its arguments for the trial filters."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("experiment", experiment), ("status", status), ("id", ids)):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
        if run_id:
            where.append("run_id = ?")
            args.append(run_id)
        if queue:
            where.append("queue = ?")
            args.append(queue)
        if owned:  # someone renews its heartbeat (not a trial waiting in a queue)
            where.append("beat IS NOT NULL")
        for name, value in (params or {}).items():
            where.append("id IN (SELECT trial_id FROM params WHERE name = ? AND value = ?)")
            args.extend([name, param_key(value)])
        if fingerprints is not None:  # one JSON argument, however many; the expression index answers it
            where.append("json_extract(extra, '$.fingerprint') IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(fingerprints)))
        if optimization:
            where.append("json_extract(extra, '$.optimization') = ?")
            args.append(optimization)
        for tag in tags or []:
            where.append("id IN (SELECT trial_id FROM tags WHERE name = ?)")
            args.append(tag)
        return (f" WHERE {' AND '.join(where)}" if where else ""), args

    def _select(self, columns: str, filters: dict[str, Any], limit: int | None,
                newest_first: bool = False) -> list[Any]:
        """Rows of ``columns`` for the filtered trials; ``limit`` keeps the newest N (oldest first)."""
        where, args = self._where(**filters)
        if limit is None:
            order = "DESC" if newest_first else ""
            return self._query(f"SELECT {columns} FROM trials{where} "
                               f"ORDER BY created {order}, rowid {order}", args)
        inner = (f"SELECT rowid AS rid, * FROM trials{where} ORDER BY created DESC, rowid DESC LIMIT ?")
        order = "DESC" if newest_first else ""
        return self._query(f"SELECT {columns} FROM ({inner}) ORDER BY created {order}, rid {order}",
                           [*args, limit])

    def list_trials(self, *, limit: int | None = None, newest_first: bool = False,
                    **filters: Any) -> list[Trial]:
        """Trials matching every filter (experiment, status, params, tags, run_id, ids, fingerprints), oldest first.

        ``limit`` keeps the newest N; ``newest_first`` reverses the order. One query.
        """
        rows = self._select(", ".join(_COLUMNS), filters, limit, newest_first)
        return [_row_to_trial(r) for r in rows]

    def summaries_json(self, *, limit: int | None = None, **filters: Any) -> str:
        """The ``trials list --json`` array, built by SQLite (100k trials in ~0.25 s)."""
        columns = ("json_object('id', id, 'experiment', experiment, 'status', status, 'seed', seed, "
                   "'params', json(params), 'metrics', json(metrics), 'step', step, 'commit', commit_sha, "
                   "'dirty', json(CASE WHEN dirty THEN 'true' ELSE 'false' END), 'host', host, "
                   "'started', started, 'finished', finished, 'duration', duration, "
                   "'exit_code', exit_code, 'tags', json(tags), 'note', note)")
        rows = self._select(columns, filters, limit)
        return "[" + ",\n".join(r[0] for r in rows) + "]"

    def key_names(self, *, limit: int | None = None, **filters: Any) -> tuple[list[str], list[str]]:
        """Every param name and every metric name among the filtered trials."""
        found: list[list[str]] = []
        for column in ("params", "metrics"):
            if limit is None:
                where, args = self._where(**filters)
                rows = self._query(f"SELECT DISTINCT j.key FROM (SELECT {column} AS c FROM trials{where}) "
                                   "AS t, json_each(t.c) AS j", args)
                found.append([r[0] for r in rows])
            else:
                rows = self._select(column, filters, limit)
                found.append(list(dict.fromkeys(k for (c,) in rows for k in json.loads(c))))
        return found[0], found[1]

    def metric_rows(self, metric: str, *, experiments: Sequence[str], phase: str = "train", goal: str = "max",
                    also: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Lean rows for comparisons (see BaseStore.metric_rows): per trial, its best value is one seek
        into the metrics index (trial, name, value, step) and the first step it was reached at another."""
        if goal not in ("min", "max"):
            raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
        marks = ", ".join("?" * len(experiments))
        extras = "".join(f", json_extract(t.metrics, {_json_path(name)}) AS x{i}" for i, name in enumerate(also))
        sql = (f"SELECT r.id, r.experiment, r.seed, r.params, r.last, r.best, (SELECT step FROM metrics "
               f"WHERE trial_id = r.id AND name = ? AND value = r.best ORDER BY step LIMIT 1)"
               f"{''.join(f', r.x{i}' for i in range(len(also)))} FROM ("
               f"SELECT t.id, t.experiment, t.seed, t.params, json_extract(t.metrics, {_json_path(metric)}) AS last, "
               f"(SELECT {goal.upper()}(value) FROM metrics WHERE trial_id = t.id AND name = ?) AS best{extras} "
               f"FROM trials AS t WHERE experiment IN ({marks}) AND status = 'completed' AND phase = ? "
               f"ORDER BY t.created, t.rowid) AS r")
        return self._query(sql, [metric, metric, *experiments, phase])

    def count(self, **filters: Any) -> int:
        """How many trials match the filters."""
        where, args = self._where(**filters)
        return int(self._query(f"SELECT COUNT(*) FROM trials{where}", args)[0][0])

    def table(self, param_names: Sequence[str], metric_names: Sequence[str], *,
              limit: int | None = None, **filters: Any) -> list[tuple[Any, ...]]:
        """Flat rows: id, experiment, status, seed, step, commit, dirty, host, started, finished,
        duration, exit_code, tags (comma-separated), then each param and each metric (extracted by SQLite)."""
        columns = ", ".join(
            ["id", "experiment", "status", "seed", "step", "commit_sha", "dirty", "host", "started", "finished",
             "duration", "exit_code",
             "CASE tags WHEN '[]' THEN '' ELSE (SELECT group_concat(value, ',') FROM json_each(tags)) END"]
            + [f"json_extract(params, {_json_path(n)})" for n in param_names]
            + [f"json_extract(metrics, {_json_path(n)})" for n in metric_names])
        return self._select(columns, filters, limit)

    def count_by_status(self, **filters: Any) -> dict[str, dict[str, int]]:
        """{experiment: {status: count}} for the status overview (of the trials matching ``filters``)."""
        out: dict[str, dict[str, int]] = {}
        where, args = self._where(**filters)
        for exp, status, n in self._query(
            f"SELECT experiment, status, COUNT(*) FROM trials{where} GROUP BY experiment, status", args
        ):
            out.setdefault(exp, {})[status] = n
        return out

    def metrics(self, trial_id: str, name: str | None = None) -> list[MetricPoint]:
        """Every logged point of a trial's metrics, in logging order."""
        sql = "SELECT name, value, step, phase, ts FROM metrics WHERE trial_id = ?"
        args: list[Any] = [trial_id]
        if name:
            sql += " AND name = ?"
            args.append(name)
        return [MetricPoint(*r) for r in self._query(sql + " ORDER BY rowid", args)]

    def artifacts(self, trial_id: str) -> list[tuple[str, int, str]]:
        """A trial's recorded output files as (path, size, sha256)."""
        return [tuple(r) for r in self._query(
            "SELECT path, size, sha256 FROM artifacts WHERE trial_id = ? ORDER BY path", (trial_id,))]

    def events(self, trial_id: str) -> list[Event]:
        """A trial's history."""
        return [Event(*r) for r in self._query(
            "SELECT trial_id, ts, kind, message FROM events WHERE trial_id = ? ORDER BY id", (trial_id,))]

    # ------------------------------------------------------------------ optimizations

    def add_optimization(self, optimization: Optimization) -> None:
        o = optimization
        with self.transaction() as c:
            c.execute(f"INSERT INTO optimizations ({', '.join(_OPT_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(_OPT_COLUMNS))})",
                      (o.id, o.experiment, o.strategy, json.dumps(o.settings), o.status, o.created, o.finished,
                       o.error, json.dumps(o.owner), o.commit))

    def update_optimization(self, optimization_id: str, **fields: Any) -> None:
        columns = {"commit": "commit_sha"}
        sets, args = [], []
        for name, value in fields.items():
            column = columns.get(name, name)
            if column not in _OPT_COLUMNS or column == "id":
                raise ValueError(f"cannot update optimization field {name!r}")
            sets.append(f"{column} = ?")
            args.append(json.dumps(value) if column in ("settings", "owner") else value)
        with self.transaction() as c:
            c.execute(f"UPDATE optimizations SET {', '.join(sets)} WHERE id = ?", (*args, optimization_id))

    def claim_optimization(self, optimization_id: str, owner: dict[str, Any], *, unless: dict[str, Any]) -> bool:
        with self.transaction() as c:
            done = c.execute("UPDATE optimizations SET owner = ?, status = 'running', finished = NULL, error = NULL "
                             "WHERE id = ? AND owner = ?", (json.dumps(owner), optimization_id, json.dumps(unless)))
            return done.rowcount == 1

    def get_optimization(self, ref: str) -> Optimization:
        return _row_to_optimization(self._by_ref(_OPT_SELECT, ref, "optimization", "tracker optimize list"))

    def list_optimizations(self, *, experiment: str | None = None) -> list[Optimization]:
        where, args = (" WHERE experiment = ?", (experiment,)) if experiment else ("", ())
        return [_row_to_optimization(r) for r in self._query(f"{_OPT_SELECT}{where} ORDER BY created, rowid", args)]

    def save_configuration(self, configuration: Configuration) -> None:
        f = configuration
        with self.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO configurations ({', '.join(_CONF_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(_CONF_COLUMNS))})",
                      (f.optimization, f.number, json.dumps(f.params), f.state, f.created, f.value,
                       json.dumps(f.values), f.step, f.error, f.finished))

    def add_configuration(self, configuration: Configuration) -> bool:
        f = configuration
        with self.transaction() as c:
            return c.execute(f"INSERT OR IGNORE INTO configurations ({', '.join(_CONF_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_CONF_COLUMNS))})",
                             (f.optimization, f.number, json.dumps(f.params), f.state, f.created, f.value,
                              json.dumps(f.values), f.step, f.error, f.finished)).rowcount == 1

    def configurations(self, optimization_id: str) -> list[Configuration]:
        rows = self._query(f"SELECT {', '.join(_CONF_COLUMNS)} FROM configurations WHERE optimization_id = ? "
                           "ORDER BY number", (optimization_id,))
        return [Configuration(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9])
                for r in rows]


_OPT_COLUMNS = ("id", "experiment", "strategy", "settings", "status", "created", "finished", "error", "owner",
                "commit_sha")
_OPT_SELECT = f"SELECT {', '.join(_OPT_COLUMNS)} FROM optimizations"
_CONF_COLUMNS = ("optimization_id", "number", "params", "state", "created", "value", "seed_values", "step", "error",
                 "finished")


_WORKER_COLUMNS = ("id", "queue", "host", "pid", "slots", "started", "beat", "lease", "status", "running", "done",
                   "info")
# what a trial back in its queue forgets of the attempt that ended (its errors and attempts stay)
_CLEARED: dict[str, Any] = {"owner": {}, "handle": {}, "beat": None, "pid": None, "host": None, "started": None,
                            "finished": None, "duration": None, "exit_code": None, "error": None,
                            "stop_requested": None}


def _row_to_worker(r: Sequence[Any], at: float) -> Worker:
    status = r[8]
    if status == "running" and (r[6] is None or r[6] + r[7] < at):
        status = "lost"
    return Worker(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], status, json.loads(r[9]), r[10], json.loads(r[11]))


def _row_to_optimization(r: Sequence[Any]) -> Optimization:
    return Optimization(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]), r[9])

