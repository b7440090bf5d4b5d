"""The one SQL trial store: every rule, query and transaction, written once over a :class:`Dialect`.

:class:`SQLStore` holds the logic; a dialect holds what differs between databases: its
connection and transactions, placeholders, JSON functions, the claim statement and its
read-only query for ``tracker sql`` (``sqlite.py`` and ``postgres.py`` are the two shipped).
Statements here are written with ``?`` placeholders; :meth:`Dialect.sql` turns them into the
driver's. A status change is a compare-and-set ``UPDATE ... WHERE status IN (...)`` inside one
transaction, so two writers never both win; JSON columns hold params, the last value of every
metric, tags and extra, so listing 100k trials is one query with no joins.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from tracker.errors import NotFoundError, UsageError
from tracker.store import models
from tracker.store.base import BaseStore, only_match
from tracker.store.models import Configuration, Event, MetricPoint, Optimization, TestUse, Trial, Worker

COLUMNS = (
    "id", "run_id", "experiment", "status", "seed", "params", "metrics", "step", "command", "phase",
    "commit_sha", "branch", "dirty", "snapshot", "host", "executor", "handle", "owner", "pid", "env_id",
    "created", "started", "finished", "beat", "lease", "stop_requested", "duration", "exit_code", "error",
    "extra", "tags", "note", "queue", "attempts", "max_attempts", "errors",
)
"""The columns of the ``trials`` table, in the order rows are read and written."""
_JSON = {"params", "metrics", "command", "handle", "owner", "extra", "tags", "errors"}
_FIELDS = {"commit": "commit_sha", "heartbeat": "beat"}  # Trial field -> column, where they differ
# columns update() may set; status goes through transition()/finalize(), extra through merge_extra(),
# tags through tag(), attempts through claim(), errors with the status change that ends an attempt
_UPDATABLE = set(COLUMNS) - {"id", "created", "params", "metrics", "status", "extra", "tags", "attempts", "errors"}
_ENDS_ATTEMPT = ("failed", "lost", "cancelled")
_ATTRS = [next((f for f, c in _FIELDS.items() if c == col), col) for col in COLUMNS]
_JSON_AT = [i for i, col in enumerate(COLUMNS) if col in _JSON]
_DIRTY_AT = COLUMNS.index("dirty")
_OPT_COLUMNS = ("id", "experiment", "strategy", "settings", "status", "created", "finished", "error", "owner",
                "commit_sha")
_CONF_COLUMNS = ("optimization_id", "number", "params", "state", "created", "value", "seed_values", "step", "error",
                 "finished")
_WORKER_COLUMNS = ("id", "queue", "host", "pid", "slots", "started", "beat", "lease", "status", "running", "done",
                   "info")

CLAIM_SET = ("status = 'running', attempts = attempts + 1, owner = ?, beat = ?, lease = ?, started = ?, "
             "handle = '{}', pid = NULL, host = ?, stop_requested = NULL")
"""The SET clause of a claim (arguments: owner JSON, heartbeat, lease, start time, host)."""
CLAIM_EVENT = ("'running: claimed by ' || ? || ' (attempt ' || attempts || ' of ' || "
               "CASE WHEN max_attempts > attempts THEN max_attempts ELSE attempts END || ')'")
"""The history message of a claimed trial, read from its claimed row (argument: who claimed it)."""


def now() -> str:
    """The current UTC time as a sortable ISO-8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metrics_json(values: dict[str, float]) -> str:
    """Last metric values as JSON that every database's JSON functions read: an infinite value (a diverged
    loss) as 1e999, which SQLite, PostgreSQL's json type and Python read back as infinity, where
    ``json.dumps`` would write ``Infinity`` (not JSON: every JSON function over the column then fails);
    NaN as null."""
    def number(v: float) -> str:
        if isinstance(v, float) and not math.isfinite(v):
            return "null" if math.isnan(v) else "1e999" if v > 0 else "-1e999"
        return json.dumps(v)

    return "{" + ", ".join(f"{json.dumps(k)}: {number(v)}" for k, v in values.items()) + "}"


def param_key(value: Any) -> str:
    """How a param value is stored in the ``params`` table (canonical JSON)."""
    return json.dumps(value, sort_keys=True)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: a None value removes its key, objects merge recursively, existing keys
    keep their place and new ones come last."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def literal(text: str) -> str:
    """``text`` as a SQL string literal (for key names written into a query)."""
    return "'" + text.replace("'", "''") + "'"


def row_to_trial(row: Sequence[Any]) -> Trial:
    """A :class:`Trial` from a row of :data:`COLUMNS` (JSON columns as text)."""
    values = list(row)
    for i in _JSON_AT:
        v = values[i]
        values[i] = {} if v == "{}" else [] if v == "[]" else json.loads(v)
    values[_DIRTY_AT] = bool(values[_DIRTY_AT])
    return Trial(**dict(zip(_ATTRS, values, strict=True)))


def trial_row(t: Trial) -> tuple[Any, ...]:
    """The row of :data:`COLUMNS` that stores ``t``."""
    values = []
    for attr, col in zip(_ATTRS, COLUMNS, strict=True):
        v = getattr(t, attr)
        values.append(metrics_json(v) if col == "metrics" else json.dumps(v) if col in _JSON
                      else int(v) if col == "dirty" else v)
    return tuple(values)


def _assignments(fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """``column = ?`` for each field a status change or update may set, and the values (JSON as text)."""
    columns = {_FIELDS.get(k, k): v for k, v in fields.items()}
    bad = set(columns) - _UPDATABLE
    if bad:
        raise ValueError(f"cannot update {sorted(bad)}")
    return ([f"{k} = ?" for k in columns],
            [json.dumps(v) if k in _JSON else (int(v) if k == "dirty" else v) for k, v in columns.items()])


def _row_to_worker(r: Sequence[Any], at: float) -> Worker:
    status = r[8]
    if status == "running" and (r[6] is None or r[6] + r[7] < at):
        status = "lost"
    return Worker(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], status, json.loads(r[9]), r[10], json.loads(r[11]))


def _row_to_optimization(r: Sequence[Any]) -> Optimization:
    return Optimization(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]), r[9])


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Dialect(ABC):
    """One connection to one kind of SQL database, and the SQL that differs there.

    A new dialect sets the attributes and implements the abstract methods; the defaults
    are standard SQL. Every statement it receives uses ``?`` placeholders (:meth:`sql`
    converts them), every transaction is :meth:`transaction`.
    """

    order = "rowid"
    """The column that orders rows of a table by insertion."""
    for_update = ""
    """What follows a SELECT that reads a row to rewrite it (``" FOR UPDATE"`` where rows are locked)."""
    nulls_first = ""
    """What makes an ascending ORDER BY put NULLs first (SQLite's default)."""
    byte_order = ""
    """The collation that sorts text by its bytes."""
    summary: str
    """The expression of one ``trials list --json`` summary (a JSON object as text) over a trials row."""
    tags_text: str
    """The expression of a trial's tags joined by commas (empty text when it has none)."""

    def sql(self, text: str) -> str:
        """``text`` with the driver's placeholders (it is written with ``?``)."""
        return text

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction, rolled back on any error, translated to StoreError; it yields an object with
        ``execute(sql, args)`` (returning a cursor: ``rowcount``, ``fetchone``, ``fetchall``) and
        ``executemany(sql, rows)``, both taking ``?`` placeholders."""

    @abstractmethod
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read (``?`` placeholders), errors as StoreError."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], *, update: bool) -> str:
        """An INSERT of one row that, where a row with the same ``key`` exists, sets its other columns
        (``update``) or does nothing (then its rowcount is 0)."""
        rest = [c for c in columns if c not in key]
        action = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}" if update else "DO NOTHING"
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(len(columns))}) "
                f"ON CONFLICT ({', '.join(key)}) {action}")

    def set_and_note(self, c: Any, update: str, args: Sequence[Any], event: Sequence[Any]) -> bool:
        """Run ``update`` (a compare-and-set of one row) in transaction ``c`` and, if it changed the row,
        insert ``event`` (trial_id, ts, kind, message) into the history; whether it changed."""
        if not c.execute(update, args).rowcount:
            return False
        c.execute("INSERT INTO events (trial_id, ts, kind, message) VALUES (?, ?, ?, ?)", event)
        return True

    def any_of(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition true where ``expr`` is one of ``values``, and its arguments."""
        return f"{expr} IN ({_marks(len(values))})", list(values)

    @abstractmethod
    def json_text(self, column: str, key: str) -> str:
        """The text at top-level ``key`` of a JSON column, written as the expression indexes are."""

    @abstractmethod
    def json_value(self, column: str, key: str) -> str:
        """The value at top-level ``key`` of a JSON column; :meth:`value` makes it what SQLite's
        ``json_extract`` gives (numbers, text, 1/0 for booleans, JSON text for objects, None)."""

    def value(self, raw: Any) -> Any:
        """A :meth:`json_value` result as SQLite's ``json_extract`` gives it."""
        return raw

    @abstractmethod
    def first_keys(self, rows: str) -> str:
        """A query of the distinct keys of the JSON objects in column ``c`` of the query ``rows`` (whose rows
        are in the order ``created``, ``o``), in the order first met: by row, then within each object."""

    @abstractmethod
    def starts_with(self, column: str) -> str:
        """A condition true where ``column`` starts with the argument, case aside."""

    def as_text(self, column: str) -> str:
        """A JSON column as text, to compare it with text."""
        return column

    @abstractmethod
    def claim(self, queue: str, limit: int, values: Sequence[Any], who: str, stamp: str) -> list[Any]:
        """Claim up to ``limit`` of the oldest queued trials of ``queue`` atomically, so two claimers (any
        process, any machine) never get the same trial: set :data:`CLAIM_SET` (``values``), write a
        status event of ``stamp`` with :data:`CLAIM_EVENT` (``who``); return the claimed rows of
        :data:`COLUMNS`, oldest first."""

    @abstractmethod
    def read_only(self, text: str, limit: int | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one user statement where it cannot write (``tracker sql``); columns and rows.
        Refused or failing SQL raises UsageError."""


class SQLStore(BaseStore):
    """Trials, metrics, experiments and environments in a SQL database reached through ``dialect``."""

    def __init__(self, dialect: Dialect, url: str) -> None:
        self.dialect = dialect
        self.url = url

    def close(self) -> None:
        """Close the connection."""
        self.dialect.close()

    def migrations(self) -> list[str]:
        """Names of the applied schema migrations, in order."""
        return [r[0] for r in self.dialect.query("SELECT name FROM schema_migrations ORDER BY name")]

    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction (see :meth:`Dialect.transaction`)."""
        return self.dialect.transaction()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read with ``?`` placeholders."""
        return self.dialect.query(sql, args)

    # ------------------------------------------------------------------ experiments & environments

    def save_experiment(self, name: str, config: dict[str, Any], config_hash: str) -> None:
        with self.transaction() as c:
            c.execute(self.dialect.upsert("experiments", ("name", "config", "config_hash", "updated"), ("name",),
                                          update=True), (name, json.dumps(config), config_hash, now()))

    def experiment(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT config FROM experiments WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def save_environment(self, env_id: str, data: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute(self.dialect.upsert("environments", ("id", "data"), ("id",), update=False),
                      (env_id, json.dumps(data)))

    def environment(self, env_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT data FROM environments WHERE id = ?", (env_id,))
        return json.loads(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ writing trials

    def add_trials(self, trials: Iterable[Trial]) -> None:
        trials = list(trials)
        with self.transaction() as c:
            self._insert(c, trials)
            c.executemany("INSERT INTO events (trial_id, ts, kind, message) VALUES (?, ?, ?, ?)",
                          [(t.id, t.created, "status", t.status) for t in trials])

    @staticmethod
    def _insert(c: Any, trials: Sequence[Trial]) -> None:
        """The trial rows with their params and tags (one statement each, however many trials)."""
        c.executemany(f"INSERT INTO trials ({', '.join(COLUMNS)}) VALUES ({_marks(len(COLUMNS))})",
                      [trial_row(t) for t in trials])
        c.executemany("INSERT INTO params (trial_id, name, value) VALUES (?, ?, ?)",
                      [(t.id, k, param_key(v)) for t in trials for k, v in t.params.items()])
        c.executemany("INSERT INTO tags (trial_id, name) VALUES (?, ?)",
                      [(t.id, tag) for t in trials for tag in t.tags])

    def update(self, trial_id: str, *, event: str | None = None, **fields: Any) -> None:
        with self.transaction() as c:
            if not self._set(c, trial_id, fields) and fields:
                raise NotFoundError(f"no trial {trial_id}")
            if event:
                self._event(c, trial_id, "note", event)

    def merge_extra(self, trial_id: str, values: dict[str, Any]) -> None:
        """Merge keys into ``extra`` atomically (JSON merge patch: a None value removes its key)."""
        with self.transaction() as c:
            self._merge_extra(c, trial_id, values)

    def _merge_extra(self, c: Any, trial_id: str, values: dict[str, Any]) -> None:
        row = c.execute(f"SELECT extra FROM trials WHERE id = ?{self.dialect.for_update}", (trial_id,)).fetchone()
        if row is not None:
            c.execute("UPDATE trials SET extra = ? WHERE id = ?",
                      (json.dumps(merge_patch(json.loads(row[0]), values)), trial_id))

    def tag(self, trial_ids: Sequence[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        add, remove = list(dict.fromkeys(add)), set(remove)
        with self.transaction() as c:
            for trial_id in trial_ids:
                row = c.execute(f"SELECT tags FROM trials WHERE id = ?{self.dialect.for_update}",
                                (trial_id,)).fetchone()
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
        with self.transaction() as c:
            return self._transition(c, trial_id, status, expected, event, fields)

    def _transition(self, c: Any, trial_id: str, status: str, expected: Iterable[str] | None,
                    event: str | None, fields: dict[str, Any]) -> bool:
        """The compare-and-set: status and fields in one UPDATE that only matches an allowed status."""
        allowed = models.sources(status)
        if expected is not None:
            allowed = allowed & set(expected)
        if not allowed:
            raise ValueError(f"no trial may become {status!r} from {sorted(expected or [])}")
        if status == "running":  # a new owner starts afresh: no stale stop request
            fields = {"stop_requested": None, **fields}
        columns, values = _assignments(fields)
        among, args = self.dialect.any_of("status", sorted(allowed))
        note = (trial_id, now(), "status", f"{status}: {event}" if event else status)
        if not self.dialect.set_and_note(
                c, f"UPDATE trials SET {', '.join(['status = ?', *columns])} WHERE id = ? AND {among}",
                (status, *values, trial_id, *args), note):
            return False
        if status in _ENDS_ATTEMPT and fields.get("error"):  # a queue trial keeps every attempt's error
            row = c.execute("SELECT errors, attempts, owner FROM trials WHERE id = ? AND queue IS NOT NULL",
                            (trial_id,)).fetchone()
            if row is not None:
                entry = {"attempt": row[1], "status": status, "error": fields["error"], "at": now(),
                         "worker": json.loads(row[2]).get("worker")}
                c.execute("UPDATE trials SET errors = ? WHERE id = ?",
                          (json.dumps([*json.loads(row[0]), entry]), trial_id))
        return True

    @staticmethod
    def _set(c: Any, trial_id: str, fields: dict[str, Any]) -> bool:
        columns, values = _assignments(fields)
        if not columns:
            return True
        return c.execute(f"UPDATE trials SET {', '.join(columns)} WHERE id = ?", (*values, trial_id)).rowcount > 0

    @staticmethod
    def _event(c: Any, trial_id: str, kind: str, message: str) -> None:
        c.execute("INSERT INTO events (trial_id, ts, kind, message) VALUES (?, ?, ?, ?)",
                  (trial_id, now(), kind, message))

    def finalize(self, trial_id: str, status: str, *, metrics: Iterable[MetricPoint] = (),
                 replace_metrics: bool = False, artifacts: Iterable[tuple[str, int, str]] | None = None,
                 extra: dict[str, Any] | None = None, **fields: Any) -> bool:
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
                self._merge_extra(c, trial_id, extra)
        return True

    def request_stop(self, trial_id: str, reason: str) -> bool:
        """Record a stop request on a running trial (the first reason wins)."""
        with self.transaction() as c:
            if not c.execute("UPDATE trials SET stop_requested = COALESCE(stop_requested, ?) "
                             "WHERE id = ? AND status = 'running'", (reason, trial_id)).rowcount:
                return False
            self._event(c, trial_id, "note", f"stop requested: {reason}")
        return True

    def heartbeat(self, trial_ids: Sequence[str], *, at: float | None = None) -> int:
        among, args = self.dialect.any_of("id", list(trial_ids))
        with self.transaction() as c:
            return int(c.execute(f"UPDATE trials SET beat = ? WHERE {among} AND status IN ('queued', 'running')",
                                 (time.time() if at is None else at, *args)).rowcount)

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
            among, more = self.dialect.any_of("id", list(ids))
            where += f" AND {among}"
            args += more
        if not self.query(f"SELECT 1 FROM trials WHERE {where} LIMIT 1", args):
            return [], []  # the common case: a read command pays one indexed query, no write
        lost: list[str] = []
        cancelled: list[str] = []
        stamp = now()
        with self.transaction() as c:
            rows = c.execute(f"SELECT id, status, lease, queue FROM trials WHERE {where} "
                             f"ORDER BY created, {self.dialect.order}", args).fetchall()
            for trial_id, status, lease, queue in rows:
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

    def append_metrics(self, trial_id: str, points: Iterable[MetricPoint], *, replace: bool = False) -> None:
        points = list(points)
        if not points and not replace:
            return
        with self.transaction() as c:
            self._append(c, trial_id, points, replace)

    def _append(self, c: Any, trial_id: str, points: list[MetricPoint], replace: bool) -> None:
        """Store points; a NaN value (a diverged loss) is not a number to keep: it is left out, and
        the trial's history says which metric reported it, at which step."""
        if replace:
            c.execute("DELETE FROM metrics WHERE trial_id = ?", (trial_id,))
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
                self._event(c, trial_id, "warning", f"metric {name} reported NaN{at} (not stored)")
        c.executemany("INSERT INTO metrics (trial_id, name, step, value, phase, ts) VALUES (?, ?, ?, ?, ?, ?)",
                      [(trial_id, p.name, p.step, p.value, p.phase, p.ts) for p in points])
        row = c.execute(f"SELECT metrics, step FROM trials WHERE id = ?{self.dialect.for_update}",
                        (trial_id,)).fetchone()
        last = {} if replace or row is None else json.loads(row[0])
        step = None if replace or row is None else row[1]
        for p in points:
            last[p.name] = p.value
            if p.step is not None:
                step = p.step
        c.execute("UPDATE trials SET metrics = ?, step = ? WHERE id = ?", (metrics_json(last), step, trial_id))

    def add_event(self, trial_id: str, kind: str, message: str) -> None:
        with self.transaction() as c:
            self._event(c, trial_id, kind, message)

    def delete(self, trial_ids: Sequence[str]) -> int:
        among, args = self.dialect.any_of("id", list(trial_ids))
        with self.transaction() as c:
            return int(c.execute(f"DELETE FROM trials WHERE {among}", args).rowcount)

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
            self._insert(c, [trial])
            if points:  # else the record's own last values stand (old records have no history)
                self._append(c, trial.id, points, True)
            c.executemany("INSERT INTO artifacts (trial_id, path, size, sha256) VALUES (?, ?, ?, ?)",
                          [(trial.id, *f) for f in artifacts])
            self._event(c, trial.id, "status", f"imported as {trial.status}")

    # ------------------------------------------------------------------ the queue

    def claim(self, queue: str, owner: dict[str, Any], *, lease: float, limit: int = 1,
              at: float | None = None) -> list[Trial]:
        """Take up to ``limit`` of the oldest queued trials of ``queue`` (the dialect's claim statement)."""
        stamp = now()
        values = (json.dumps(owner), time.time() if at is None else at, lease, stamp, owner.get("host"))
        who = owner.get("worker") or owner.get("host") or "a worker"
        return [row_to_trial(r) for r in self.dialect.claim(queue, limit, values, who, stamp)]

    def requeue(self, trial_id: str, *, expected: Iterable[str] = ("lost", "cancelled")) -> bool:
        with self.transaction() as c:
            return self._requeue(c, trial_id, list(expected))

    def _requeue(self, c: Any, trial_id: str, expected: list[str]) -> bool:
        row = c.execute("SELECT status, attempts, max_attempts FROM trials WHERE id = ? AND queue IS NOT NULL"
                        f"{self.dialect.for_update}", (trial_id,)).fetchone()
        if row is None or row[0] not in expected or row[1] >= row[2]:
            return False
        why = f"requeued (attempt {row[1]} of {row[2]} did not finish)"
        if not self._transition(c, trial_id, "queued", expected, why, dict(models.FORGOTTEN_ON_REQUEUE)):
            return False
        self._append(c, trial_id, [], True)
        return True

    def register_worker(self, worker: Worker) -> None:
        w = worker
        with self.transaction() as c:
            c.execute(f"INSERT INTO workers ({', '.join(_WORKER_COLUMNS)}) VALUES ({_marks(len(_WORKER_COLUMNS))})",
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
        rows = self.query(f"SELECT {', '.join(_WORKER_COLUMNS)} FROM workers{where} "
                          f"ORDER BY started, {self.dialect.order}", args)
        return [_row_to_worker(r, time.time() if at is None else at) for r in rows]

    def queue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for queue, exp, status, n in self.query("SELECT queue, experiment, status, COUNT(*) FROM trials "
                                                "WHERE queue IS NOT NULL GROUP BY queue, experiment, status "
                                                "ORDER BY queue, experiment, status"):
            out.setdefault(queue, {}).setdefault(exp, {})[status] = n
        return out

    def put_blob(self, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        with self.transaction() as c:
            c.execute(self.dialect.upsert("blobs", ("sha256", "data", "size"), ("sha256",), update=False),
                      (sha, data, len(data)))
        return sha

    def blob(self, sha256: str) -> bytes | None:
        rows = self.query("SELECT data FROM blobs WHERE sha256 = ?", (sha256,))
        return bytes(rows[0][0]) if rows else None

    def record_test_use(self, use: TestUse) -> None:
        import uuid

        with self.transaction() as c:
            c.execute("INSERT INTO test_uses (id, key, experiment, params, commit_sha, run_id, at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", (uuid.uuid4().hex, use.key, use.experiment,
                                                       json.dumps(use.params), use.commit, use.run_id, use.at))

    def test_uses(self, key: str) -> list[TestUse]:
        rows = self.query("SELECT key, experiment, params, commit_sha, run_id, at FROM test_uses WHERE key = ? "
                          "ORDER BY at, id", (key,))
        return [TestUse(k, e, json.loads(p), c, r, a) for k, e, p, c, r, a in rows]

    # ------------------------------------------------------------------ reading (never writes)

    def get(self, ref: str) -> Trial:
        if not ref.strip():
            raise UsageError("empty trial id")
        return row_to_trial(self._by_ref("trials", COLUMNS, ref, "trial", "tracker trials list"))

    def _by_ref(self, table: str, columns: Sequence[str], ref: str, what: str, listing: str) -> Any:
        """The one row of ``table`` whose id is ``ref`` or, failing that, starts with it (case aside;
        the characters % and _ are dropped from a prefix)."""
        ref = ref.strip()
        select = f"SELECT {', '.join(columns)} FROM {table}"
        rows = self.query(f"{select} WHERE id = ?", (ref,))
        prefix = ref.replace("%", "").replace("_", "")
        if not rows and not prefix:
            raise NotFoundError(f"no {what} {ref!r}", hint=f"give the start of a {what} id, see '{listing}'")
        if not rows:
            rows = self.query(f"{select} WHERE {self.dialect.starts_with('id')} ORDER BY created LIMIT 3", (prefix,))
        return only_match(rows, [r[0] for r in rows], ref, what, listing)

    def where(
        self,
        experiment: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        params: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        run_id: str | None = None,
        ids: Sequence[str] | None = None,
        fingerprints: Sequence[str] | None = None,
        optimization: str | None = None,
        queue: str | Sequence[str] | None = None,
        owned: bool = False,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (or '') and its arguments for the trial filters (one value or several for
        experiment, status, ids and queue)."""
        where: list[str] = []
        args: list[Any] = []
        for expr, value in (("experiment", experiment), ("status", status), ("id", ids), ("queue", queue),
                            (self.dialect.json_text("extra", "fingerprint"), fingerprints)):
            if value is not None:
                condition, more = self.dialect.any_of(expr, [value] if isinstance(value, str) else list(value))
                where.append(condition)
                args += more
        if run_id:
            where.append("run_id = ?")
            args.append(run_id)
        if owned:  # someone renews its heartbeat (not a trial waiting in a queue)
            where.append("beat IS NOT NULL")
        for name, value in (params or {}).items():
            where.append("id IN (SELECT trial_id FROM params WHERE name = ? AND value = ?)")
            args.extend([name, param_key(value)])
        if optimization:
            where.append(f"{self.dialect.json_text('extra', 'optimization')} = ?")
            args.append(optimization)
        for tag in tags or []:
            where.append("id IN (SELECT trial_id FROM tags WHERE name = ?)")
            args.append(tag)
        return (f" WHERE {' AND '.join(where)}" if where else ""), args

    def _select_sql(self, columns: str, filters: dict[str, Any], limit: int | None,
                    newest_first: bool = False) -> tuple[str, list[Any]]:
        """The query of ``columns`` for the filtered trials; ``limit`` keeps the newest N (oldest first)."""
        where, args = self.where(**filters)
        order = " DESC" if newest_first else ""
        if limit is None:
            return f"SELECT {columns} FROM trials{where} ORDER BY created{order}, {self.dialect.order}{order}", args
        inner = (f"SELECT *, {self.dialect.order} AS rid FROM trials{where} "
                 f"ORDER BY created DESC, {self.dialect.order} DESC LIMIT ?")
        return f"SELECT {columns} FROM ({inner}) AS trials ORDER BY created{order}, rid{order}", [*args, limit]

    def _select(self, columns: str, filters: dict[str, Any], limit: int | None,
                newest_first: bool = False) -> list[Any]:
        return self.query(*self._select_sql(columns, filters, limit, newest_first))

    def list_trials(self, *, limit: int | None = None, newest_first: bool = False,
                    **filters: Any) -> list[Trial]:
        """Trials matching every filter, oldest first (``limit``: the newest N). One query."""
        return [row_to_trial(r) for r in self._select(", ".join(COLUMNS), filters, limit, newest_first)]

    def summaries_json(self, *, limit: int | None = None, **filters: Any) -> str:
        """The ``trials list --json`` array: the database writes each summary; Python only joins them."""
        return "[" + ",\n".join(r[0] for r in self._select(self.dialect.summary, filters, limit)) + "]"

    def key_names(self, *, limit: int | None = None, **filters: Any) -> tuple[list[str], list[str]]:
        """Every param name and every metric name among the filtered trials (in the order first met)."""
        found: list[list[str]] = []
        for column in ("params", "metrics"):
            order = self.dialect.order if limit is None else "rid"
            sql, args = self._select_sql(f"{column} AS c, created, {order} AS o", filters, limit)
            rows = self.query(self.dialect.first_keys(sql), args)
            found.append([r[0] for r in rows])
        return found[0], found[1]

    def metric_rows(self, metric: str, *, experiments: Sequence[str], phase: str = "train", goal: str = "max",
                    also: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Lean rows for comparisons (see BaseStore.metric_rows): per trial, its best value and the first
        step it was reached at are two seeks into the metrics index (trial, name, value, step)."""
        if goal not in ("min", "max"):
            raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
        d = self.dialect
        extras = "".join(f", {d.json_value('t.metrics', name)} AS x{i}" for i, name in enumerate(also))
        among, args = d.any_of("experiment", list(experiments))
        sql = (f"SELECT r.id, r.experiment, r.seed, r.params, r.last, r.best, (SELECT step FROM metrics "
               f"WHERE trial_id = r.id AND name = ? AND value = r.best ORDER BY step{d.nulls_first} LIMIT 1)"
               f"{''.join(f', r.x{i}' for i in range(len(also)))} FROM ("
               f"SELECT t.id, t.experiment, t.seed, t.params, {d.json_value('t.metrics', metric)} AS last, "
               f"(SELECT {goal.upper()}(value) FROM metrics WHERE trial_id = t.id AND name = ?) AS best{extras}, "
               f"t.created, t.{d.order} AS o FROM trials AS t WHERE {among} AND status = 'completed' "
               f"AND phase = ?) AS r ORDER BY r.created, r.o")
        rows = self.query(sql, [metric, metric, *args, phase])
        return [(*r[:4], d.value(r[4]), *r[5:7], *(d.value(x) for x in r[7:])) for r in rows]

    def count(self, **filters: Any) -> int:
        where, args = self.where(**filters)
        return int(self.query(f"SELECT COUNT(*) FROM trials{where}", args)[0][0])

    def table(self, param_names: Sequence[str], metric_names: Sequence[str], *,
              limit: int | None = None, **filters: Any) -> list[tuple[Any, ...]]:
        """Flat rows: id, experiment, status, seed, step, commit, dirty, host, started, finished,
        duration, exit_code, tags (comma-separated), phase, then each param and each metric."""
        d = self.dialect
        fixed = ["id", "experiment", "status", "seed", "step", "commit_sha", "dirty", "host", "started", "finished",
                 "duration", "exit_code", d.tags_text, "phase"]
        keyed = [d.json_value("params", n) for n in param_names] + [d.json_value("metrics", n) for n in metric_names]
        rows = self._select(", ".join(fixed + keyed), filters, limit)
        if type(d).value is Dialect.value:  # the database gives the values as they are
            return rows
        n = len(fixed)
        return [(*r[:n], *(d.value(v) for v in r[n:])) for r in rows]

    def count_by_status(self, **filters: Any) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        where, args = self.where(**filters)
        for exp, status, n in self.query(f"SELECT experiment, status, COUNT(*) FROM trials{where} "
                                         "GROUP BY experiment, status ORDER BY experiment, status", args):
            out.setdefault(exp, {})[status] = n
        return out

    def metrics(self, trial_id: str, name: str | None = None) -> list[MetricPoint]:
        sql = "SELECT name, value, step, phase, ts FROM metrics WHERE trial_id = ?"
        args: list[Any] = [trial_id]
        if name:
            sql += " AND name = ?"
            args.append(name)
        return [MetricPoint(*r) for r in self.query(f"{sql} ORDER BY {self.dialect.order}", args)]

    def artifacts(self, trial_id: str) -> list[tuple[str, int, str]]:
        return [tuple(r) for r in self.query("SELECT path, size, sha256 FROM artifacts WHERE trial_id = ? "
                                             f"ORDER BY path{self.dialect.byte_order}", (trial_id,))]

    def events(self, trial_id: str) -> list[Event]:
        return [Event(*r) for r in self.query(
            "SELECT trial_id, ts, kind, message FROM events WHERE trial_id = ? ORDER BY id", (trial_id,))]

    # ------------------------------------------------------------------ optimizations

    def add_optimization(self, optimization: Optimization) -> None:
        o = optimization
        with self.transaction() as c:
            c.execute(f"INSERT INTO optimizations ({', '.join(_OPT_COLUMNS)}) VALUES ({_marks(len(_OPT_COLUMNS))})",
                      (o.id, o.experiment, o.strategy, json.dumps(o.settings), o.status, o.created, o.finished,
                       o.error, json.dumps(o.owner), o.commit))

    def update_optimization(self, optimization_id: str, **fields: Any) -> None:
        sets, args = [], []
        for name, value in fields.items():
            column = "commit_sha" if name == "commit" else name
            if column not in _OPT_COLUMNS or column == "id":
                raise ValueError(f"cannot update optimization field {name!r}")
            sets.append(f"{column} = ?")
            args.append(json.dumps(value) if column in ("settings", "owner") else value)
        with self.transaction() as c:
            c.execute(f"UPDATE optimizations SET {', '.join(sets)} WHERE id = ?", (*args, optimization_id))

    def claim_optimization(self, optimization_id: str, owner: dict[str, Any], *, unless: dict[str, Any]) -> bool:
        with self.transaction() as c:
            return c.execute("UPDATE optimizations SET owner = ?, status = 'running', finished = NULL, error = NULL "
                             f"WHERE id = ? AND {self.dialect.as_text('owner')} = ?",
                             (json.dumps(owner), optimization_id, json.dumps(unless))).rowcount == 1

    def get_optimization(self, ref: str) -> Optimization:
        return _row_to_optimization(self._by_ref("optimizations", _OPT_COLUMNS, ref, "optimization",
                                                 "tracker optimize list"))

    def list_optimizations(self, *, experiment: str | None = None) -> list[Optimization]:
        where, args = (" WHERE experiment = ?", (experiment,)) if experiment else ("", ())
        return [_row_to_optimization(r) for r in self.query(
            f"SELECT {', '.join(_OPT_COLUMNS)} FROM optimizations{where} ORDER BY created, {self.dialect.order}",
            args)]

    def save_configuration(self, configuration: Configuration) -> None:
        self._insert_configuration(configuration, update=True)

    def add_configuration(self, configuration: Configuration) -> bool:
        return self._insert_configuration(configuration, update=False)

    def _insert_configuration(self, configuration: Configuration, *, update: bool) -> bool:
        f = configuration
        with self.transaction() as c:
            return c.execute(self.dialect.upsert("configurations", _CONF_COLUMNS, _CONF_COLUMNS[:2], update=update),
                             (f.optimization, f.number, json.dumps(f.params), f.state, f.created, f.value,
                              json.dumps(f.values), f.step, f.error, f.finished)).rowcount == 1

    def configurations(self, optimization_id: str) -> list[Configuration]:
        rows = self.query(f"SELECT {', '.join(_CONF_COLUMNS)} FROM configurations WHERE optimization_id = ? "
                          "ORDER BY number", (optimization_id,))
        return [Configuration(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9])
                for r in rows]

    # ------------------------------------------------------------------ copying and SQL for users

    def read_sql(self, text: str, *, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.dialect.read_only(text, limit)

    def table_rows(self, table: str, columns: str, *, trial_ids: Sequence[str] | None = None,
                   order: str | None = None) -> list[tuple[Any, ...]]:
        if table not in _TABLES:
            raise ValueError(f"no table {table!r}")
        where, args = "", []
        if trial_ids is not None:
            where, args = self.dialect.any_of("id" if table == "trials" else "trial_id", list(trial_ids))
            where = f" WHERE {where}"
        order_by = {None: "", "insertion": f" ORDER BY {self.dialect.order}",
                    "created": f" ORDER BY created, {self.dialect.order}"}.get(order, f" ORDER BY {order}")
        return [tuple(r) for r in self.query(f"SELECT {columns} FROM {table}{where}{order_by}", args)]

    def insert_rows(self, inserts: Iterable[tuple[str, str, Sequence[Sequence[Any]]]]) -> None:
        with self.transaction() as c:
            for table, columns, rows in inserts:
                if table not in _TABLES:
                    raise ValueError(f"no table {table!r}")
                if rows:
                    c.executemany(f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns.count(',') + 1)})", rows)


_TABLES = {"trials", "params", "tags", "metrics", "artifacts", "events", "experiments", "environments",
           "optimizations", "configurations", "blobs", "workers", "test_uses"}

