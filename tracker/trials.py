"""Reading and managing stored trials: list, show, logs, delete, reset, status, checkout."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import gitinfo
from tracker.config import check_tags
from tracker.errors import UsageError
from tracker.execution import lifecycle, outputs
from tracker.project import Project
from tracker.store import FINISHED, FORGOTTEN_ON_REQUEUE, RESETTABLE, STATUSES, Event, MetricPoint, Trial


@dataclass(frozen=True)
class TrialDetail:
    """A trial with everything ``trials show`` prints."""

    trial: Trial
    metrics: list[MetricPoint]
    environment: dict[str, Any] | None
    artifacts: list[tuple[str, int, str]]
    directory: Path
    events: list[Event]
    backend: str | None = None  # the launcher whose job runs it (``slurm``), if one does
    job: str | None = None  # that job, as the launcher names it (``task 12_3``); None while it waits
    job_state: str | None = None  # that job's state, in the launcher's words

    def as_dict(self) -> dict[str, Any]:
        series: dict[str, list[dict[str, Any]]] = {}
        for p in self.metrics:
            series.setdefault(p.name, []).append({"step": p.step, "value": p.value, "phase": p.phase})
        return {
            **self.trial.summary(), **self.trial.as_dict(),
            "directory": str(self.directory),
            "metric_series": series,
            "environment": self.environment,
            "artifacts": [{"path": a, "size": s, "sha256": h} for a, s, h in self.artifacts],
            "events": [{"ts": e.ts, "kind": e.kind, "message": e.message} for e in self.events],
            "backend": self.backend, "job": self.job, "job_state": self.job_state,
            **({f"{self.backend}_state": self.job_state} if self.backend else {}),
        }


def _statuses(status: list[str] | None) -> list[str] | None:
    for s in status or []:
        if s not in STATUSES:
            raise UsageError(f"unknown status {s!r}", hint=f"one of: {', '.join(STATUSES)}")
    return status or None


def list_trials(project: Project, *, experiment: list[str] | None = None,
                status: list[str] | None = None, params: dict[str, Any] | None = None,
                tags: list[str] | None = None, limit: int | None = None,
                optimization: str | None = None) -> list[Trial]:
    """Trials matching the filters (``tags``: having every one), oldest first (``limit`` keeps the newest N)."""
    trials = project.store.list_trials(**_filters(project, experiment, status, params, tags, optimization),
                                       limit=limit,
                                       newest_first=limit is not None)
    return trials[::-1] if limit is not None else trials


BASE_COLUMNS = ["id", "experiment", "status", "seed", "step", "commit", "dirty", "host", "started",
                "finished", "duration", "exit_code", "tags", "phase"]


def _filters(project: Project, experiment: list[str] | None, status: list[str] | None,
             params: dict[str, Any] | None, tags: list[str] | None, optimization: str | None) -> dict[str, Any]:
    found = project.store.get_optimization(optimization).id if optimization else None
    return {"experiment": experiment or None, "status": _statuses(status), "params": params,
            "tags": check_tags(tags or [], "--tag") or None, "optimization": found}


def list_json(project: Project, *, experiment: list[str] | None = None,
              status: list[str] | None = None, params: dict[str, Any] | None = None,
              tags: list[str] | None = None, limit: int | None = None, optimization: str | None = None) -> str:
    """``trials list --json``: a JSON array of trial summaries (the documented contract)."""
    return project.store.summaries_json(limit=limit,
                                        **_filters(project, experiment, status, params, tags, optimization))


def list_rows(project: Project, *, experiment: list[str] | None = None,
              status: list[str] | None = None, params: dict[str, Any] | None = None,
              tags: list[str] | None = None, limit: int | None = None,
              optimization: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Flat rows for tables and CSV: base columns (tags comma-separated), then ``params.X`` and ``metrics.Y``."""
    filters = _filters(project, experiment, status, params, tags, optimization)
    param_names, metric_names = project.store.key_names(limit=limit, **filters)
    rows = project.store.table(param_names, metric_names, limit=limit, **filters)
    columns = BASE_COLUMNS + [f"params.{n}" for n in param_names] + [f"metrics.{n}" for n in metric_names]
    return columns, rows


FIELDS = ["id", "experiment", "status", "phase", "seed", "params", "metrics", "step", "commit", "dirty", "host",
          "started", "finished", "duration", "exit_code", "tags", "note"]  # a trial's fields in `trials list --json`


@dataclass(frozen=True)
class Column:
    """A column of ``trials list --columns``: a trial field, one param or one metric."""

    name: str  # the header, as the user wrote it
    kind: str  # "field", "param" or "metric"
    key: str

    def value(self, trial: Trial) -> Any:
        """This column's value for ``trial`` (None when the trial lacks the param or metric)."""
        if self.kind == "param":
            return trial.params.get(self.key)
        if self.kind == "metric":
            return trial.metrics.get(self.key)
        return getattr(trial, self.key)


def resolve_columns(project: Project, names: list[str]) -> list[Column]:
    """Columns by name: a field of :data:`FIELDS`, else a param or metric any trial has.

    A name that is both a param and a metric is written ``params.NAME`` or
    ``metrics.NAME``. Example: ``resolve_columns(project, ["id", "lr", "val/acc"])``.
    """
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise UsageError("no columns given", hint="e.g. --columns id,status,val/acc")
    param_names, metric_names = project.store.key_names() if set(names) - set(FIELDS) else ([], [])
    columns = []
    for name in names:
        kind, _, rest = name.partition(".")
        if name in FIELDS:
            columns.append(Column(name, "field", name))
        elif kind == "params" and rest in param_names:
            columns.append(Column(name, "param", rest))
        elif kind == "metrics" and rest in metric_names:
            columns.append(Column(name, "metric", rest))
        elif name in param_names and name in metric_names:
            raise UsageError(f"column {name!r} is both a param and a metric",
                             hint=f"write params.{name} or metrics.{name}")
        elif name in param_names or name in metric_names:
            columns.append(Column(name, "param" if name in param_names else "metric", name))
        else:
            known = [*FIELDS, *param_names, *metric_names]
            raise UsageError(f"unknown column {name!r}", hint="one of: " + ", ".join(known))
    return columns


def params_varying_first(trials: Sequence[Trial]) -> list[str]:
    """Every param name of ``trials``: those whose value differs between them (or that some
    lack) first, then those all share, each group in the order first met.

    Example: ``[lr=0.1 epochs=3, lr=0.5 epochs=3]`` gives ``["lr", "epochs"]``.
    """
    import json

    names = list(dict.fromkeys(k for t in trials for k in t.params))
    seen = {k: {json.dumps(t.params.get(k, ...), sort_keys=True, default=str) for t in trials} for k in names}
    return sorted(names, key=lambda k: len(seen[k]) == 1)


def count(project: Project, *, experiment: list[str] | None = None, status: list[str] | None = None,
          params: dict[str, Any] | None = None, tags: list[str] | None = None,
          optimization: str | None = None) -> int:
    """How many trials match the filters."""
    return project.store.count(**_filters(project, experiment, status, params, tags, optimization))


def tag(project: Project, ref: str, tags: list[str], *, remove: bool = False) -> Trial:
    """Add ``tags`` to a trial (or remove them); return the trial as it is now.

    Example::

        tag(project, "3f2a", ["best", "paper-fig2"])
        tag(project, "3f2a", ["best"], remove=True)
    """
    names = check_tags(tags, "tracker trials tag")
    if not names:
        raise UsageError("no tags given", hint="e.g. tracker trials tag 3f2a best")
    trial = project.store.get(ref)
    project.store.tag([trial.id], **{"remove" if remove else "add": names})
    return project.store.get(trial.id)


def note(project: Project, ref: str, text: str) -> Trial:
    """Set a trial's note (an empty text removes it); return the trial as it is now."""
    trial = project.store.get(ref)
    text = text.strip()
    project.store.update(trial.id, note=text or None, event="note set" if text else "note removed")
    return project.store.get(trial.id)


def show(project: Project, ref: str) -> TrialDetail:
    """One trial in detail (with the state of its job when a launcher's job runs it, e.g. a SLURM task)."""
    from tracker.execution.targets import backend_of

    store = project.store
    trial = store.get(ref)
    backend = backend_of(project, trial)
    return TrialDetail(trial, store.metrics(trial.id),
                       store.environment(trial.env_id) if trial.env_id else None,
                       store.artifacts(trial.id), project.paths.trial_dir(trial.id), store.events(trial.id),
                       *((backend.name, backend.job(trial), backend.state(trial)) if backend else ()))


def log_path(project: Project, ref: str, stream: str = "stdout") -> tuple[Trial, Path]:
    """The trial and the path of its stdout or stderr log."""
    if stream not in ("stdout", "stderr"):
        raise UsageError(f"unknown stream {stream!r}", hint="stdout or stderr")
    trial = project.store.get(ref)
    return trial, project.paths.trial_dir(trial.id) / (outputs.STDOUT if stream == "stdout" else outputs.STDERR)


def logs_command(project: Project, trial: Trial) -> str:
    """The command that shows where a trial's error is: its stderr when it wrote any, else its stdout."""
    _, path = log_path(project, trial.id, "stderr")
    has_stderr = path.is_file() and path.stat().st_size > 0
    return f"tracker trials logs {trial.id}{' --stderr' if has_stderr else ''}"


def follow(project: Project, ref: str, stream: str = "stdout", poll: float = 0.5) -> Iterator[str]:
    """Yield a trial's log lines, waiting for new ones until the trial is final."""
    trial, path = log_path(project, ref, stream)
    position = 0
    pending = ""
    while True:
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(position)
                chunk = fh.read()
                position = fh.tell()
            pending += chunk
            *lines, pending = pending.split("\n")
            yield from lines
        if project.store.get(trial.id).status in FINISHED:
            if pending:
                yield pending
            return
        time.sleep(poll)


def delete(project: Project, refs: list[str], *, force: bool = False) -> list[Trial]:
    """Delete trials: records, metrics, directories and snapshot refs."""
    store = project.store
    trials = [store.get(r) for r in refs]
    running = [t.id for t in trials if t.status == "running"]
    if running and not force:
        raise UsageError(f"trial {running[0]} is running", hint="stop it first or pass --force")
    store.delete([t.id for t in trials])
    for t in trials:
        shutil.rmtree(project.paths.trial_dir(t.id), ignore_errors=True)
        if t.snapshot:
            gitinfo.unpin(project.root, t.id)
    return trials


KEPT_ON_RESET = {lifecycle.PATCH_FILE, lifecycle.RECORD_FILE, "params.json", "params.yaml"}


def waiting(trial: Trial) -> bool:
    """Whether ``trial`` is queued with nobody to run it: reset, not in a queue, no run owns it.

    Such a trial runs with ``tracker trials reset --run`` and is cancelled by ``tracker trials stop``;
    a queued trial of a queue is a worker's to run.
    """
    return trial.status == "queued" and not trial.queue and not trial.owner


def reset(project: Project, refs: list[str] | None = None, *, experiment: list[str] | None = None,
          status: list[str] | None = None) -> list[Trial]:
    """Put failed, lost or cancelled trials (pruned ones when named) back to ``queued``, outputs cleared.

    Whoever ran them before is forgotten (executor handle, owner, host), so a re-run is
    recorded where it actually runs. A queue trial goes back in its queue (its workers take
    it); any other is :func:`waiting` and is returned again, with the newly reset ones, until
    it runs or is stopped, so ``reset --run`` after a plain ``reset`` runs it.
    """
    store = project.store
    allowed = RESETTABLE | {"pruned"}
    wanted = set(status or RESETTABLE)
    bad = wanted - allowed
    if bad:
        raise UsageError(f"cannot reset {sorted(bad)[0]} trials", hint="only failed, lost, cancelled or pruned")
    if refs:
        trials = [store.get(r) for r in refs]
        not_resettable = [t for t in trials if t.status not in allowed and not waiting(t)]
        if not_resettable:
            t = not_resettable[0]
            raise UsageError(f"trial {t.id} is {t.status}",
                             hint="only failed, lost, cancelled or pruned trials reset")
    else:
        trials = store.list_trials(experiment=experiment or None, status=sorted(wanted))
        if not status:
            trials += [t for t in store.list_trials(experiment=experiment or None, status=["queued"]) if waiting(t)]
    done = []
    for t in trials:
        if waiting(t):
            done.append(t)
            continue
        if store.transition(t.id, "queued", expected=allowed, **FORGOTTEN_ON_REQUEUE):
            store.append_metrics(t.id, [], replace=True)
            clear_outputs(project.paths.trial_dir(t.id))
            done.append(store.get(t.id))
    return done


def clear_outputs(directory: Path) -> None:
    """Remove what a run left in a trial directory (logs, models...): a re-run must not find it."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name in KEPT_ON_RESET:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def stop(project: Project, ref: str, *, wait: float | None = None) -> Trial:
    """Stop a running trial, wherever it runs, and wait until it has ended (``wait`` s at most).

    The stop request is recorded in the store; the process that drives the trial (this
    machine's or another's) stops it: SIGTERM to everything it started, SIGKILL after the
    grace period. A trial on an SSH host whose client is gone is stopped over SSH from here.
    A launcher's job that runs only this trial (a SLURM task) is ended too. A queued trial (in a
    queue, reset, or not yet started by its run) ends ``cancelled`` at once: nothing starts it any more.
    """
    from tracker.execution.driver import adopt_and_stop
    from tracker.execution.targets import backend_of

    store = project.store
    trial = store.get(ref)
    if trial.status == "queued":
        return _stop_queued(project, trial)
    if trial.status != "running":
        raise UsageError(f"trial {trial.id} is {trial.status}, not running")
    store.request_stop(trial.id, "cancelled by the user")
    backend = backend_of(project, trial)
    if backend is not None:
        backend.stop(trial)
    grace = project.config.defaults.grace
    deadline = time.monotonic() + (wait if wait is not None else grace + 15)
    while time.monotonic() < deadline:
        current = store.get(trial.id)
        if current.status != "running":
            return current
        if not lifecycle.owner_alive(current):
            return adopt_and_stop(project, current)
        time.sleep(0.2)
    return store.get(trial.id)


def _stop_queued(project: Project, trial: Trial) -> Trial:
    """A queued trial ends cancelled; its launcher drops the jobs no waiting trial needs."""
    from tracker.execution.targets import backend_of

    if not lifecycle.cancel_unstarted(project.store, [trial.id], "cancelled by the user"):
        return stop(project, trial.id)  # a worker claimed it meanwhile: stop it where it runs
    backend = backend_of(project, trial)
    if backend is not None:
        backend.cancelled(trial)
    return project.store.get(trial.id)


@dataclass(frozen=True)
class Status:
    """The one-screen overview of a project."""

    project: str
    root: Path
    counts: dict[str, dict[str, int]]
    running: list[Trial]
    recent: list[Trial]
    seeds: int
    remotes: list[str]
    storage: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project, "root": str(self.root), "counts": self.counts,
                "running": [t.summary() for t in self.running],
                "recent": [t.summary() for t in self.recent], "preset_seeds": self.seeds,
                "remotes": self.remotes, "storage": self.storage}


def status(project: Project, recent: int = 5) -> Status:
    """Counts per experiment and status, running trials, the latest trials."""
    store = project.store
    return Status(project.name, project.root, store.count_by_status(),
                  store.list_trials(status="running"),
                  store.list_trials(limit=recent, newest_first=True),
                  len(project.config.seeds), sorted(project.config.remotes),
                  sorted(project.config.storage))


def checkout(project: Project, ref: str, dest: Path) -> tuple[Trial, str]:
    """Write the exact code ``ref`` ran (commit + dirty changes) into ``dest``."""
    trial = project.store.get(ref)
    how = gitinfo.checkout(project.root, dest, trial.commit, trial.snapshot,
                           project.paths.trial_dir(trial.id) / lifecycle.PATCH_FILE)
    return trial, how
