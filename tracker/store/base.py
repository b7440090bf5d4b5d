"""The store interface: what every trial store (SQLite, PostgreSQL, a plug-in's) provides.

Who may change what:

- A trial's **status** changes only through :meth:`BaseStore.transition` and
  :meth:`BaseStore.finalize`, which enforce :data:`~tracker.store.models.TRANSITIONS`
  with a compare-and-set on the current status, so two writers never both win.
- A **running** trial belongs to its owner (the ``tracker`` process, SSH client or
  worker that drives it). The owner renews :meth:`BaseStore.heartbeat`; when the
  heartbeat is older than the trial's lease, :meth:`BaseStore.expire` (run by any
  command on any machine) makes it ``lost``. Queued trials with an owner that
  stopped renewing become ``cancelled`` (their run was killed). Expiry only
  writes rows: it never signals a process.
- Field updates (:meth:`BaseStore.update`, :meth:`BaseStore.merge_extra`,
  :meth:`BaseStore.request_stop`, :meth:`BaseStore.tag`) touch only the columns they
  name, so a stop request, a tag or a note and the owner's own writes never
  overwrite each other.
- Reads (``get``, ``list_trials``, ``summaries_json``, ...) never write.

A new store subclasses :class:`BaseStore` and implements every abstract method (the
writes, the queue, ``list_trials``, ``metrics``, ``artifacts``, ``events`` and the
optimization records); the other reads have defaults derived from ``list_trials`` and
``metrics`` (correct, but one pass over every trial: a store with a query language
overrides them). ``tracker store migrate`` and ``tracker sql`` need the optional
:meth:`BaseStore.table_rows`, :meth:`BaseStore.insert_rows` and :meth:`BaseStore.read_sql`,
which SQL stores provide (:class:`tracker.store.sql.SQLStore`). A store proves itself by
passing the contract suite, :mod:`tracker.testing.store`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from tracker.errors import NotFoundError, UsageError
from tracker.store.models import Configuration, Event, MetricPoint, Optimization, TestUse, Trial, Worker


def _as_sql(value: Any) -> Any:
    """A JSON value as SQL gives it from a JSON column: 1/0 for booleans, objects and arrays as compact JSON."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def only_match(found: Sequence[Any], ids: Sequence[str], ref: str, what: str, listing: str) -> Any:
    """The one record ``found`` for ``ref`` (``ids``: theirs), else NotFoundError or an ambiguous id's UsageError."""
    if not found:
        raise NotFoundError(f"no {what} {ref.strip()!r}", hint=f"see '{listing}'")
    if len(found) > 1:
        raise UsageError(f"{what} id {ref.strip()!r} is ambiguous ({', '.join(ids[:3])}, ...)",
                         hint="give more characters of the id")
    return found[0]


def _by_prefix(records: Sequence[Any], ref: str, what: str, listing: str) -> Any:
    """The one record whose id starts with ``ref`` (case aside)."""
    prefix = ref.strip().lower()
    found = [r for r in records if prefix and r.id.lower().startswith(prefix)]
    return only_match(found, [r.id for r in found], ref, what, listing)


class BaseStore(ABC):
    """Trials, metrics, experiments and environments, behind one URL (``sqlite:///...``).

    Implement every abstract method; override the derived reads (``get``, ``count``,
    ``count_by_status``, ``summaries_json``, ``key_names``, ``table``, ``metric_rows``,
    ``queue_counts``, ``get_optimization``) when the backend answers them faster.
    """

    url: str

    # ------------------------------------------------------------------ lifecycle of the store

    @classmethod
    @abstractmethod
    def from_url(cls, url: str) -> BaseStore:
        """Open (creating and migrating as needed) the store at ``url``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    def migrations(self) -> list[str]:
        """Names of the schema migrations applied, in order."""

    # ------------------------------------------------------------------ experiments & environments

    @abstractmethod
    def save_experiment(self, name: str, config: dict[str, Any], config_hash: str) -> None:
        """Record the latest resolved config of an experiment."""

    @abstractmethod
    def experiment(self, name: str) -> dict[str, Any] | None:
        """The config an experiment last ran with (what :meth:`save_experiment` recorded), or None."""

    @abstractmethod
    def save_environment(self, env_id: str, data: dict[str, Any]) -> None:
        """Record an environment description (deduplicated by its id, a hash)."""

    @abstractmethod
    def environment(self, env_id: str) -> dict[str, Any] | None:
        """The environment a trial ran in."""

    # ------------------------------------------------------------------ writing trials

    @abstractmethod
    def add_trials(self, trials: Iterable[Trial]) -> None:
        """Insert new trials (and their params) in one transaction."""

    @abstractmethod
    def update(self, trial_id: str, *, event: str | None = None, **fields: Any) -> None:
        """Set non-status columns of a trial (only those named)."""

    @abstractmethod
    def merge_extra(self, trial_id: str, values: dict[str, Any]) -> None:
        """Merge keys into a trial's ``extra`` atomically (other keys stay as they are)."""

    @abstractmethod
    def tag(self, trial_ids: Sequence[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Remove, then add tags of trials, in one transaction (each tag once, in the order added).

        An unknown trial id raises NotFoundError and changes nothing.
        """

    @abstractmethod
    def transition(self, trial_id: str, status: str, *, expected: Iterable[str] | None = None,
                   event: str | None = None, **fields: Any) -> bool:
        """Move a trial to ``status`` if its current status may go there (and is in ``expected``).

        Returns whether it did. An illegal target raises ValueError.
        """

    @abstractmethod
    def finalize(self, trial_id: str, status: str, *, metrics: Iterable[MetricPoint] = (),
                 replace_metrics: bool = False, artifacts: Iterable[tuple[str, int, str]] | None = None,
                 extra: dict[str, Any] | None = None, **fields: Any) -> bool:
        """End a running trial in one transaction: status, last metrics, artifacts, fields."""

    @abstractmethod
    def request_stop(self, trial_id: str, reason: str) -> bool:
        """Record that a running trial should stop (its owner acts on it); False if not running."""

    @abstractmethod
    def heartbeat(self, trial_ids: Sequence[str], *, at: float | None = None) -> int:
        """Renew the heartbeat of the caller's queued/running trials; return how many."""

    @abstractmethod
    def expire(self, *, at: float | None = None) -> tuple[list[str], list[str]]:
        """Running trials past their lease become lost, queued ones cancelled; return both id lists.

        A lost queue trial with attempts left goes back to its queue in the same transaction.
        """

    @abstractmethod
    def append_metrics(self, trial_id: str, points: Iterable[MetricPoint], *, replace: bool = False) -> None:
        """Store metric points (live, while the trial runs) and refresh its last values and step."""

    @abstractmethod
    def add_event(self, trial_id: str, kind: str, message: str) -> None:
        """Log something that happened to a trial."""

    @abstractmethod
    def delete(self, trial_ids: Sequence[str]) -> int:
        """Delete trials (with their params, metrics, artifacts and events)."""

    @abstractmethod
    def import_trial(self, trial: Trial, metrics: Iterable[MetricPoint],
                     artifacts: Iterable[tuple[str, int, str]] = ()) -> None:
        """Insert a trial record brought back from elsewhere (a restore), replacing any copy."""

    # ------------------------------------------------------------------ the queue (trials with a ``queue``)

    @abstractmethod
    def claim(self, queue: str, owner: dict[str, Any], *, lease: float, limit: int = 1,
              at: float | None = None) -> list[Trial]:
        """Take up to ``limit`` of the oldest queued trials of ``queue``, atomically: each becomes ``running``
        with ``owner``, heartbeat ``at`` (default now), ``lease`` and one more attempt. Two callers
        (threads, processes, machines) never get the same trial."""

    @abstractmethod
    def requeue(self, trial_id: str, *, expected: Iterable[str] = ("lost", "cancelled")) -> bool:
        """Put an ended queue trial (status in ``expected``) back in its queue when it has attempts left:
        queued, with who ran it, its metrics and its outputs' record cleared (its errors stay). False if not."""

    @abstractmethod
    def register_worker(self, worker: Worker) -> None:
        """Record a worker that starts pulling from its queue."""

    @abstractmethod
    def worker_beat(self, worker_id: str, *, running: Sequence[str], done: int, at: float | None = None) -> None:
        """Renew a worker's heartbeat, with the trials it runs now and how many it ended."""

    @abstractmethod
    def end_worker(self, worker_id: str, status: str = "stopped") -> None:
        """Record that a worker exited."""

    @abstractmethod
    def workers(self, *, queue: str | None = None, at: float | None = None) -> list[Worker]:
        """Workers (of ``queue``), oldest first; a running one whose heartbeat is older than its lease
        at ``at`` (default now) is returned ``lost``."""

    @abstractmethod
    def queue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{queue: {experiment: {status: count}}} over every trial that has a queue."""

    @abstractmethod
    def put_blob(self, data: bytes) -> str:
        """Keep ``data`` by its sha256 (hex, returned); storing the same bytes again is a no-op."""

    @abstractmethod
    def blob(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, or None."""

    @abstractmethod
    def record_test_use(self, use: TestUse) -> None:
        """Remember that the test set was used (kept when trials are deleted)."""

    @abstractmethod
    def test_uses(self, key: str) -> list[TestUse]:
        """The recorded test uses of configuration-and-code ``key``, oldest first."""

    # ------------------------------------------------------------------ reading (never writes)

    def get(self, ref: str) -> Trial:
        """A trial by id or unique id prefix (case aside); NotFoundError or an ambiguous prefix's UsageError."""
        if not ref.strip():
            raise UsageError("empty trial id")
        exact = self.list_trials(ids=[ref.strip()])
        return exact[0] if exact else _by_prefix(self.list_trials(), ref, "trial", "tracker trials list")

    @abstractmethod
    def list_trials(self, *, limit: int | None = None, newest_first: bool = False,
                    **filters: Any) -> list[Trial]:
        """Trials matching every filter (experiment, status, params, tags, run_id, ids, fingerprints, queue,
        owned: only those with a heartbeat), oldest first.

        ``tags``: trials that have every one of them. ``fingerprints`` matches
        ``extra["fingerprint"]`` (see :func:`tracker.runs.fingerprint`).
        """

    def summaries_json(self, *, limit: int | None = None, **filters: Any) -> str:
        """The ``trials list --json`` array (each :meth:`Trial.summary`, oldest first)."""
        return json.dumps([t.summary() for t in self.list_trials(limit=limit, **filters)])

    def key_names(self, *, limit: int | None = None, **filters: Any) -> tuple[list[str], list[str]]:
        """Every param name and every metric name among the filtered trials, in the order first met."""
        trials = self.list_trials(limit=limit, **filters)
        return (list(dict.fromkeys(k for t in trials for k in t.params)),
                list(dict.fromkeys(k for t in trials for k in t.metrics)))

    def table(self, param_names: Sequence[str], metric_names: Sequence[str], *,
              limit: int | None = None, **filters: Any) -> list[tuple[Any, ...]]:
        """Flat rows for tables and CSV: id, experiment, status, seed, step, commit, dirty (1/0), host, started,
        finished, duration, exit_code, tags (comma-separated), phase, then each param and each metric (None where a
        trial lacks it; booleans as 1/0, objects and lists as compact JSON)."""
        return [(t.id, t.experiment, t.status, t.seed, t.step, t.commit, int(t.dirty), t.host, t.started,
                 t.finished, t.duration, t.exit_code, ",".join(t.tags), t.phase,
                 *(_as_sql(t.params.get(n)) for n in param_names), *(_as_sql(t.metrics.get(n)) for n in metric_names))
                for t in self.list_trials(limit=limit, **filters)]

    def metric_rows(self, metric: str, *, experiments: Sequence[str], phase: str = "train", goal: str = "max",
                    also: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """One lean row per completed trial of ``experiments`` in ``phase``, oldest first, for comparisons:
        (id, experiment, seed, params as JSON text, the last value of ``metric``, its best value along the
        trial's curve (the largest for goal "max", else the smallest), the first step it was reached at, then the
        last value of each metric in ``also``); None where a trial lacks one.
        """
        if goal not in ("min", "max"):
            raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
        rows = []
        for t in self.list_trials(experiment=list(experiments), status="completed"):
            if t.phase != phase:
                continue
            curve = self.metrics(t.id, metric)
            best = (max if goal == "max" else min)((p.value for p in curve), default=None)
            steps = [p.step for p in curve if p.value == best]
            first = None if not steps or None in steps else min(s for s in steps if s is not None)
            rows.append((t.id, t.experiment, t.seed, json.dumps(t.params), _as_sql(t.metrics.get(metric)), best,
                         first, *(_as_sql(t.metrics.get(name)) for name in also)))
        return rows

    def count(self, **filters: Any) -> int:
        """How many trials match the filters."""
        return len(self.list_trials(**filters))

    def count_by_status(self, **filters: Any) -> dict[str, dict[str, int]]:
        """{experiment: {status: count}} over the trials matching the filters (those of :meth:`count`)."""
        out: dict[str, dict[str, int]] = {}
        for t in self.list_trials(**filters):
            out.setdefault(t.experiment, {})[t.status] = out.get(t.experiment, {}).get(t.status, 0) + 1
        return out

    @abstractmethod
    def metrics(self, trial_id: str, name: str | None = None) -> list[MetricPoint]:
        """Every logged point of a trial's metrics, in logging order."""

    @abstractmethod
    def artifacts(self, trial_id: str) -> list[tuple[str, int, str]]:
        """A trial's recorded output files as (path, size, sha256)."""

    @abstractmethod
    def events(self, trial_id: str) -> list[Event]:
        """A trial's history."""

    # ------------------------------------------------------------------ optimizations (search state)

    @abstractmethod
    def add_optimization(self, optimization: Optimization) -> None:
        """Record a new optimization."""

    @abstractmethod
    def update_optimization(self, optimization_id: str, **fields: Any) -> None:
        """Set fields (status, finished, error, owner, settings) of an optimization."""

    @abstractmethod
    def claim_optimization(self, optimization_id: str, owner: dict[str, Any], *, unless: dict[str, Any]) -> bool:
        """Make ``owner`` the optimization's owner and its status ``running``, only if its owner is
        still ``unless`` (compare-and-set: of two resumes, one wins)."""

    def get_optimization(self, ref: str) -> Optimization:
        """An optimization by id or unique id prefix (case aside)."""
        every = self.list_optimizations()
        exact = [o for o in every if o.id == ref.strip()]
        return exact[0] if exact else _by_prefix(every, ref, "optimization", "tracker optimize list")

    @abstractmethod
    def list_optimizations(self, *, experiment: str | None = None) -> list[Optimization]:
        """Every optimization (of ``experiment``), oldest first."""

    @abstractmethod
    def save_configuration(self, configuration: Configuration) -> None:
        """Insert or replace one configuration of an optimization."""

    @abstractmethod
    def add_configuration(self, configuration: Configuration) -> bool:
        """Insert a configuration unless its number is taken (False then): of two searchers making
        configuration N of the same optimization at once, one wins and the other asks again."""

    @abstractmethod
    def configurations(self, optimization_id: str) -> list[Configuration]:
        """The configurations of an optimization, by number."""

    # ------------------------------------------------------------------ optional: copying, SQL for users

    def read_sql(self, text: str, *, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only SQL statement (``tracker sql``): its column names and rows (the first ``limit``).

        Refused or failing SQL raises UsageError; a store without SQL refuses every query.
        """
        raise UsageError(f"tracker sql needs a SQL store, not {type(self).__name__}")

    def table_rows(self, table: str, columns: str, *, trial_ids: Sequence[str] | None = None,
                   order: str | None = None) -> list[tuple[Any, ...]]:
        """Raw rows of ``columns`` (comma-separated) of one of the store's tables, for ``tracker store migrate``:
        only the rows of ``trial_ids`` (the ``trial_id`` column, ``id`` for trials) when given; ``order``
        names a column, ``"insertion"`` (the order rows were written) or ``"created"`` (then insertion)."""
        raise UsageError(f"tracker store migrate copies between SQL stores, not {type(self).__name__}")

    def insert_rows(self, inserts: Iterable[tuple[str, str, Sequence[Sequence[Any]]]]) -> None:
        """Insert raw rows, each ``(table, columns, rows)`` as :meth:`table_rows` gives them, in one transaction."""
        raise UsageError(f"tracker store migrate copies between SQL stores, not {type(self).__name__}")
