"""Records the store returns (frozen dataclasses, rendered at the CLI edge) and the status rules.

The transition table is the one source of truth for how a trial's status may
change; every store enforces it (compare-and-set on the expected status)::

    queued ──▶ running ──▶ completed | failed | cancelled | lost | pruned
      │                                  │          │        │       │
      ├──▶ cancelled  (never started)    └──────────┴────────┴───────┴──▶ queued  (trials reset)
      └──▶ failed     (its executor could not start it)
    lost ──▶ running  (re-attached: the remote process was alive after all)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("queued", "running", "completed", "failed", "lost", "cancelled", "pruned")
FINISHED = frozenset({"completed", "failed", "lost", "cancelled", "pruned"})
ACTIVE = frozenset({"queued", "running"})
# what 'trials reset' takes by default; pruned trials only when asked for by id or --status pruned
RESETTABLE = frozenset({"failed", "lost", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"completed", "failed", "cancelled", "lost", "pruned"}),
    "lost": frozenset({"queued", "running"}),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
    "pruned": frozenset({"queued"}),
    "completed": frozenset(),
}

FORGOTTEN_ON_REQUEUE: dict[str, object] = {
    "owner": {}, "handle": {}, "heartbeat": None, "pid": None, "host": None, "started": None, "finished": None,
    "duration": None, "exit_code": None, "error": None, "stop_requested": None,
}
"""What a trial put back in its queue (a requeue, ``trials reset``) forgets of the attempt that ended, as
:class:`Trial` fields; its metrics go too. Its params, tags, note, attempts and errors stay."""


def sources(status: str) -> frozenset[str]:
    """The statuses a trial may move to ``status`` from."""
    if status not in TRANSITIONS:
        raise ValueError(f"unknown status {status!r}")
    return frozenset(s for s, targets in TRANSITIONS.items() if status in targets)


@dataclass(frozen=True)
class Trial:
    """One run of one experiment with one parameter set and one seed."""

    id: str
    experiment: str
    status: str
    seed: int | None
    params: dict[str, Any]
    created: str
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None  # the latest step a metric was logged at
    command: list[str] = field(default_factory=list)
    phase: str = "train"
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    snapshot: str | None = None
    host: str | None = None
    executor: str = "local"
    handle: dict[str, Any] = field(default_factory=dict)  # where the executor runs it (pid, remote dir...)
    owner: dict[str, Any] = field(default_factory=dict)  # the process that drives it (host, pid, start)
    pid: int | None = None
    env_id: str | None = None
    started: str | None = None
    finished: str | None = None
    heartbeat: float | None = None  # epoch seconds of the owner's last renewal
    lease: float | None = None  # seconds a heartbeat stays valid
    stop_requested: str | None = None  # why a stop was asked for (cancelled, pruned at step N...)
    duration: float | None = None
    exit_code: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)  # labels, in the order they were added
    note: str | None = None  # free text about the trial
    queue: str | None = None  # the queue it waits in for ``tracker worker`` (None: run by the command that made it)
    attempts: int = 0  # how many times a worker claimed it
    max_attempts: int = 1  # a lost attempt is requeued while attempts < max_attempts
    # every attempt's error, oldest first: {attempt, status, error, at, worker}
    errors: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The fields ``tracker trials list --json`` prints (the documented contract)."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "status": self.status,
            "phase": self.phase,
            "seed": self.seed,
            "params": self.params,
            "metrics": self.metrics,
            "step": self.step,
            "commit": self.commit,
            "dirty": self.dirty,
            "host": self.host,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "tags": self.tags,
            "note": self.note,
        }

    def as_dict(self) -> dict[str, Any]:
        """Every field, for ``trials show --json`` and backups."""
        return asdict(self)


OPTIMIZATION_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")
CONFIGURATION_STATES = ("running", "complete", "pruned", "failed")


@dataclass(frozen=True)
class Optimization:
    """One ``tracker optimize``: a search over an experiment's space, its settings and where it stands.

    ``status`` is ``running`` while a process drives it (``interrupted`` when that process is
    found gone), then ``completed`` (budget spent, space covered or ``--timeout`` reached),
    ``stopped`` (too many failures in a row, or configurations left interrupted) or ``failed``
    (an objective metric never reported).
    """

    id: str
    experiment: str
    strategy: str
    settings: dict[str, Any]  # metric, goal, seeds, aggregate, budget, sampler_seed, space, params...
    status: str
    created: str
    finished: str | None = None
    error: str | None = None
    owner: dict[str, Any] = field(default_factory=dict)  # the process driving it (host, pid, start)
    commit: str | None = None  # the code it started on

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Configuration:
    """One point of an optimization's space (an Optuna trial), evaluated over the same seeds.

    ``values`` maps each seed (as text) to the objective its trial reached; ``value`` is their
    aggregate once every seed is done (``complete``). ``pruned`` ones stopped early (at ``step``
    of the learning curve, or after the seeds in ``values`` when worse than the best).
    """

    optimization: str
    number: int
    params: dict[str, Any]
    state: str
    created: str
    value: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    error: str | None = None
    finished: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


WORKER_STATUSES = ("running", "stopped", "lost")


@dataclass(frozen=True)
class Worker:
    """A ``tracker worker`` process: which queue it pulls from, where it runs, and its last heartbeat.

    ``status`` is ``running`` while it renews its heartbeat, ``stopped`` once it exited, and
    ``lost`` (computed when read, never written by a read) when its heartbeat is older than its lease.
    """

    id: str
    queue: str
    host: str
    pid: int
    slots: int
    started: str
    heartbeat: float | None
    lease: float
    status: str = "running"
    running: list[str] = field(default_factory=list)  # the trials it runs now
    done: int = 0  # trials it ended
    info: dict[str, Any] = field(default_factory=dict)  # commit, python, SLURM ids...

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of one metric."""

    name: str
    value: float
    step: int | None = None
    phase: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class TestUse:
    """One ``tracker test`` run: the test set seen for a configuration on some code (``key``).

    Kept apart from the trials, so deleting test trials or copying the experiment file does not
    make a second look at the test set look like the first."""

    __test__ = False  # not a pytest class

    key: str  # sha256 of the configuration (commands, params) and the code (commit, snapshot)
    experiment: str
    params: dict[str, Any]
    commit: str | None
    run_id: str
    at: str


@dataclass(frozen=True)
class Event:
    """Something that happened to a trial (status changes, warnings)."""

    trial_id: str
    ts: str
    kind: str
    message: str
