"""A trial's life in the store: prepared, started, finalized, or found lost.

These functions are the only place trial statuses change, whichever executor
runs the trial, so every trial record looks the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tracker.config import ExperimentConfig
from tracker.execution import outputs
from tracker.execution.launch import Launch
from tracker.project import Project
from tracker.store import Store, Trial, now

RECORD_FILE = "trial.json"
PATCH_FILE = "code.patch"


def write_record(project: Project, trial: Trial) -> None:
    """Write the trial's record (params, seed, commit, metrics...) into its directory."""
    from tracker.yamlio import atomic_write

    directory = project.paths.trial_dir(trial.id)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / RECORD_FILE, json.dumps(trial.as_dict(), indent=2, sort_keys=True))


def prepare_dir(project: Project, trial: Trial, patch: bytes, launch: Launch) -> Path:
    """Create the trial directory with its record, code patch and params file."""
    directory = project.paths.trial_dir(trial.id)
    directory.mkdir(parents=True, exist_ok=True)
    if patch:
        (directory / PATCH_FILE).write_bytes(patch)
    if launch.params_file:
        name, content = launch.params_file
        (directory / name).write_text(content)
    write_record(project, trial)
    return directory


def proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against reused pids), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def start(store: Store, trial: Trial, *, host: str | None = None, pid: int | None = None,
          extra: dict[str, Any] | None = None) -> bool:
    """Mark a queued trial running; False if it was no longer queued (cancelled, taken)."""
    runner = {"runner_host": socket.gethostname(), "runner_pid": os.getpid(),
              "runner_start": proc_start(os.getpid())}
    return store.transition(
        trial.id, ["queued"], status="running", started=now(), heartbeat=now(),
        host=host or socket.gethostname(), pid=pid, extra={**trial.extra, **runner, **(extra or {})},
    )


def finalize(project: Project, config: ExperimentConfig, trial_id: str, *, exit_code: int | None,
             duration: float | None, cancelled: bool = False, lost: str | None = None) -> Trial:
    """Read the trial's outputs and give it its final status.

    failed: non-zero exit or a missing deliverable; cancelled: stopped by the
    user; lost: the process vanished (``lost`` says why); else completed.
    """
    store = project.store
    trial = store.get(trial_id)
    directory = project.paths.trial_dir(trial_id)
    directory.mkdir(parents=True, exist_ok=True)
    points = outputs.collect_metrics(directory, trial.phase)
    store.add_metrics(trial_id, points, replace=True)
    error = None
    if lost:
        status, error = "lost", lost
    elif cancelled or (exit_code != 0 and trial.extra.get("stop_requested")):
        status, error = "cancelled", "cancelled by the user"
    elif exit_code != 0:
        status = "failed"
        error = outputs.tail(directory / outputs.STDERR) or outputs.tail(directory / outputs.STDOUT)
        error = f"exit code {exit_code}" + (f"\n{error}" if error else "")
    else:
        problems = outputs.check_deliverables(directory, config.deliverables)
        status, error = ("failed", "; ".join(problems)) if problems else ("completed", None)
    extra = dict(trial.extra)
    captured = outputs.autologged(directory)
    if captured:
        extra["autolog"] = captured
    store.transition(trial_id, ["running", "queued"], status=status, finished=now(),
                     duration=duration, exit_code=exit_code, error=error, extra=extra)
    final = store.get(trial_id)
    write_record(project, final)
    store.set_artifacts(trial_id, outputs.scan_artifacts(directory))
    return final


def reconcile(project: Project) -> list[Trial]:
    """Mark local trials whose tracker process died (kill -9, crash) as lost; return them."""
    store = project.store
    me = socket.gethostname()
    lost = []
    for trial in store.list_trials(status="running"):
        if trial.executor != "local" or trial.extra.get("runner_host") != me:
            continue
        pid = trial.extra.get("runner_pid")
        if pid and proc_start(pid) == trial.extra.get("runner_start"):
            continue  # its tracker process is alive (this one or another)
        child_start = trial.extra.get("pid_start")
        if trial.pid and child_start is not None and proc_start(trial.pid) == child_start:
            with contextlib.suppress(OSError):
                os.killpg(trial.pid, 15)
        if store.transition(trial.id, ["running"], status="lost", finished=now(),
                            error="the tracker process running this trial died; "
                                  "reset it with 'tracker trials reset'"):
            lost.append(store.get(trial.id))
    return lost


def elapsed(start: float) -> float:
    """Seconds since ``start`` (a time.monotonic() reading), rounded to ms."""
    return round(time.monotonic() - start, 3)
