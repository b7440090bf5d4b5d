"""What ``trials show`` and ``trials stop`` do for trials that SLURM tasks run."""

from __future__ import annotations

import contextlib
import math

from tracker.errors import ExecutionError
from tracker.project import Project
from tracker.slurm import cluster
from tracker.slurm.submit import jobs
from tracker.store import Trial


def state(project: Project, trial: Trial) -> str | None:
    """The SLURM state of the task that ran the trial (PENDING, RUNNING, COMPLETED, ... or
    ``unknown (no longer in squeue)``); for a queued trial, how many of its run's tasks wait.
    Where SLURM cannot be asked (no client commands here), ``unknown (why)``."""
    try:
        return _state(project, trial)
    except ExecutionError as exc:
        return f"unknown ({exc.message})"


def _state(project: Project, trial: Trial) -> str | None:
    task = trial.handle.get("slurm") or {}
    if task.get("job_id"):
        return cluster.task_state(cluster.task_name(task))
    record = jobs(project, trial.queue) if trial.queue and trial.status == "queued" else None
    if record is None:
        return None
    found = cluster.states([a["job_id"] for a in record["arrays"]])
    waiting = sum(1 for s in found.values() if s == "PENDING")
    running = sum(1 for s in found.values() if s == "RUNNING")
    return f"waiting for a task: {waiting} pending, {running} running"


def stop_task(project: Project, trial: Trial) -> bool:
    """scancel the array task running ``trial`` when that task runs this trial only; True if it did."""
    task = trial.handle.get("slurm") or {}
    record = jobs(project, trial.queue) if trial.queue else None
    if not task.get("job_id") or record is None or record.get("trials_per_task") != 1:
        return False
    try:
        cluster.scancel([cluster.task_name(task)])
    except ExecutionError:  # the task ended meanwhile; the worker acts on the stop request anyway
        return False
    return True


def trim(project: Project, queue: str) -> list[str]:
    """scancel the pending tasks of ``queue``'s arrays that no queued trial needs any more
    (after a queued trial was stopped); return the tasks cancelled, highest indices first."""
    record = jobs(project, queue)
    if record is None:
        return []
    waiting = project.store.count(queue=queue, status=["queued"])
    needed = math.ceil(waiting / record.get("trials_per_task", 1))
    found = cluster.states([a["job_id"] for a in record["arrays"]])
    pending = sorted((t for t, s in found.items() if s == "PENDING"), key=_order, reverse=True)
    extra = pending[:max(len(pending) - needed, 0)]
    with contextlib.suppress(ExecutionError):  # one started meanwhile: its worker finds nothing and exits
        cluster.scancel(extra)
    return extra


def _order(task: str) -> tuple[int, int]:
    """Sort key of ``123_4`` (and of a plain ``123``)."""
    job, _, index = task.partition("_")
    return int(job), int(index) if index.isdigit() else -1
