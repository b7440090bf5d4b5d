"""Reading optimizations: where one stands, its best configuration, the list, the best as an experiment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import experiments
from tracker.errors import UsageError
from tracker.execution import lifecycle
from tracker.project import Project
from tracker.store import Configuration, Optimization, Trial


def state(project: Project, record: Optimization) -> str:
    """The optimization's status, with ``running`` checked: a search whose process is gone is ``interrupted``."""
    if record.status != "running" or record.settings.get("queue"):  # a distributed search: no one process runs it
        return record.status
    if lifecycle.owner_dead(record.owner):
        return "interrupted"
    active = project.store.list_trials(optimization=record.id, status=["queued", "running"])
    if active:
        return "running" if any(lifecycle.owner_alive(t) for t in active) else "interrupted"
    # between two configurations, or preparing: the owner is alive unless it is provably gone elsewhere
    return "running" if record.owner.get("host") == _host() else "interrupted"


def _host() -> str:
    import socket

    return socket.gethostname()


def best(record: Optimization, configurations: list[Configuration]) -> Configuration | None:
    """The complete configuration with the best value (the earliest on a tie), or None."""
    done = [c for c in configurations if c.state == "complete" and c.value is not None]
    if not done:
        return None
    sign = -1 if record.settings.get("goal", "max") == "max" else 1
    return min(done, key=lambda c: (sign * (c.value or 0.0), c.number))


@dataclass(frozen=True)
class Status:
    """``tracker optimize status``: counts, the best so far, the budget."""

    optimization: Optimization
    state: str
    configurations: dict[str, int]  # state -> count
    trials: dict[str, int]  # trial status -> count
    best: Configuration | None
    budget: int | None
    made: int

    def as_dict(self) -> dict[str, Any]:
        o = self.optimization
        return {
            "id": o.id, "experiment": o.experiment, "strategy": o.strategy, "status": self.state,
            "metric": o.settings.get("metric"), "goal": o.settings.get("goal"), "seeds": o.settings.get("seeds"),
            "aggregate": o.settings.get("aggregate"), "sampler_seed": o.settings.get("sampler_seed"),
            "budget": self.budget, "configurations": self.made, "by_state": self.configurations,
            "trials": self.trials, "created": o.created, "finished": o.finished, "error": o.error,
            "best": None if self.best is None else {
                "configuration": self.best.number, "value": self.best.value,
                "params": {**o.settings.get("params", {}), **self.best.params}, "values": self.best.values},
        }


def status(project: Project, ref: str) -> Status:
    """Where optimization ``ref`` stands (after expiring what nobody runs any more)."""
    return _status(project, project.store.get_optimization(ref))


def _status(project: Project, record: Optimization) -> Status:
    store = project.store
    confs = store.configurations(record.id)
    by_state: dict[str, int] = {}
    for c in confs:
        by_state[c.state] = by_state.get(c.state, 0) + 1
    trials: dict[str, int] = {}
    for t in store.list_trials(optimization=record.id):
        trials[t.status] = trials.get(t.status, 0) + 1
    return Status(record, state(project, record), by_state, trials, best(record, confs),
                  record.settings.get("budget"), len(confs))


def list_optimizations(project: Project, experiment: str | None = None) -> list[Status]:
    """Every optimization (of ``experiment``) with where it stands, oldest first."""
    return [_status(project, o) for o in project.store.list_optimizations(experiment=experiment)]


@dataclass(frozen=True)
class Best:
    """The best configuration: its full params, value, per-seed values and trials."""

    optimization: Optimization
    configuration: Configuration
    params: dict[str, Any]  # fixed params and the searched ones
    trials: list[Trial]

    def as_dict(self) -> dict[str, Any]:
        s = self.optimization.settings
        return {"optimization": self.optimization.id, "experiment": self.optimization.experiment,
                "configuration": self.configuration.number, "metric": s.get("metric"), "goal": s.get("goal"),
                "value": self.configuration.value, "aggregate": s.get("aggregate"),
                "values": self.configuration.values, "params": self.params,
                "trials": [t.id for t in self.trials]}


def best_of(project: Project, ref: str) -> Best:
    """The best configuration of optimization ``ref``; refused while none is complete."""
    store = project.store
    record = store.get_optimization(ref)
    found = best(record, store.configurations(record.id))
    if found is None:
        raise UsageError(f"optimization {record.id} has no complete configuration yet",
                         hint=f"see 'tracker optimize status {record.id[:8]}'")
    trials = [t for t in store.list_trials(optimization=record.id)
              if t.extra.get("configuration") == found.number and t.status == "completed"]
    return Best(record, found, {**record.settings.get("params", {}), **found.params}, trials)


def save_best(project: Project, ref: str, name: str, *, force: bool = False) -> Path:
    """Write the best configuration as experiment ``name``: the original file with the found params
    fixed, no search ranges, the optimization's seeds; return its path."""
    from tracker.yamlio import load_yaml

    found = best_of(project, ref)
    record = found.optimization
    source = project.paths.experiment_file(record.experiment)
    data: dict[str, Any] = {}
    if source.is_file():
        loaded, _ = load_yaml(source)
        data = dict(loaded or {})
    for key in ("search", "grid"):
        data.pop(key, None)
    data["params"] = found.params
    data["seeds"] = list(record.settings.get("seeds", [])) or data.get("seeds")
    data["description"] = (f"Best configuration ({found.configuration.number}) of optimization {record.id} of "
                           f"{record.experiment!r}: {record.settings.get('metric')} = {found.configuration.value:.6g}")
    data.setdefault("objective", {"metric": record.settings.get("metric"), "goal": record.settings.get("goal")})
    path = project.paths.experiment_file(experiments.check_name(name))
    if path.exists() and not force:
        raise UsageError(f"experiments/{name}.yaml already exists", hint="pick another name or pass --force")
    from tracker.config import ExperimentConfig, parse_model
    from tracker.yamlio import atomic_write

    text = experiments.render(name, data)
    parse_model(text, ExperimentConfig, f"experiments/{name}.yaml")
    atomic_write(path, text)
    return path
