"""The store interface: what every trial store (SQLite, later PostgreSQL) provides.

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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from tracker.store.models import Configuration, Event, MetricPoint, Optimization, TestUse, Trial, Worker


class BaseStore(ABC):
    """Trials, metrics, experiments and environments, behind one URL (``sqlite:///...``)."""

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

    @abstractmethod
    def get(self, ref: str) -> Trial:
        """A trial by id or unique id prefix."""

    @abstractmethod
    def list_trials(self, *, limit: int | None = None, newest_first: bool = False,
                    **filters: Any) -> list[Trial]:
        """Trials matching every filter (experiment, status, params, tags, run_id, ids, fingerprints, queue,
        owned: only those with a heartbeat), oldest first.

        ``tags``: trials that have every one of them. ``fingerprints`` matches
        ``extra["fingerprint"]`` (see :func:`tracker.runs.fingerprint`).
        """

    @abstractmethod
    def summaries_json(self, *, limit: int | None = None, **filters: Any) -> str:
        """The ``trials list --json`` array."""

    @abstractmethod
    def key_names(self, *, limit: int | None = None, **filters: Any) -> tuple[list[str], list[str]]:
        """Every param name and every metric name among the filtered trials."""

    @abstractmethod
    def table(self, param_names: Sequence[str], metric_names: Sequence[str], *,
              limit: int | None = None, **filters: Any) -> list[tuple[Any, ...]]:
        """Flat rows for tables and CSV."""

    @abstractmethod
    def metric_rows(self, metric: str, *, experiments: Sequence[str], phase: str = "train", goal: str = "max",
                    also: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """One lean row per completed trial of ``experiments`` in ``phase``, oldest first, for comparisons:
        (id, experiment, seed, params as JSON text, the last value of ``metric``, its best value along the
        trial's curve (the largest for goal "max", else the smallest), the first step it was reached at, then the
        last value of each metric in ``also``); None where a trial lacks one. One query.
        """

    @abstractmethod
    def count(self, **filters: Any) -> int:
        """How many trials match the filters."""

    @abstractmethod
    def count_by_status(self, **filters: Any) -> dict[str, dict[str, int]]:
        """{experiment: {status: count}} over the trials matching the filters (those of :meth:`count`)."""

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

    @abstractmethod
    def get_optimization(self, ref: str) -> Optimization:
        """An optimization by id or unique id prefix."""

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

