"""Records the store returns: frozen dataclasses, rendered at the CLI edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("queued", "running", "completed", "failed", "lost", "cancelled")
FINISHED = frozenset({"completed", "failed", "lost", "cancelled"})
RESETTABLE = frozenset({"failed", "lost", "cancelled"})


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
    command: list[str] = field(default_factory=list)
    phase: str = "train"
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    snapshot: str | None = None
    host: str | None = None
    executor: str = "local"
    pid: int | None = None
    env_id: str | None = None
    started: str | None = None
    finished: str | None = None
    heartbeat: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The fields ``tracker trials list --json`` prints (the documented contract)."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "status": self.status,
            "seed": self.seed,
            "params": self.params,
            "metrics": self.metrics,
            "commit": self.commit,
            "dirty": self.dirty,
            "host": self.host,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "exit_code": self.exit_code,
        }

    def as_dict(self) -> dict[str, Any]:
        """Every field, for ``trials show --json`` and backups."""
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
class Event:
    """Something that happened to a trial (status changes, warnings)."""

    trial_id: str
    ts: str
    kind: str
    message: str
