"""``tracker run --slurm``: queue a run's trials, then SLURM job arrays of workers that run them.

The trials go into a queue of their own (``slurm-<key>``) exactly as ``tracker run --queue``
puts them there; then job arrays whose tasks are ``tracker worker`` processes pulling from
that queue, in this project's checkout, with this Python::

    result = submit_run(project, ["baseline"], RunOptions(seed_count=5), SlurmOptions(time="1:00:00"))
    print(result.arrays)   # [("4711", 10)]: array job 4711 of 10 tasks

By default every task runs one trial (``--time`` is per trial, ``scancel`` of a task stops one
trial, its log is the trial's). Arrays are chunked so that indices stay below the cluster's
MaxArraySize; when the trials outnumber the jobs the cluster accepts (MaxJobCount, the
user's MaxSubmitJobs), each task runs several trials (``--max-trials M``). The batch
script and the tasks' output live in ``.tracker/slurm/<key>/``; ``jobs.json`` there records
the arrays.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import socket
import sys
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from tracker.errors import TrackerError, TrackerWarning, UsageError
from tracker.execution import lifecycle
from tracker.execution.base import Reporter
from tracker.execution.targets import TargetOptions
from tracker.project import Project
from tracker.slurm import cluster
from tracker.store import Trial

if TYPE_CHECKING:
    from tracker.experiments import TrialSpec
    from tracker.runs import RunOptions

QUEUE_PREFIX = "slurm-"
SCRIPT = "job.sh"
JOBS = "jobs.json"
SQLITE_WARNING = "SQLite over a network filesystem is unsafe; use --store postgresql://..."


class SlurmOptions(TargetOptions):
    """How each array task asks SLURM for resources (None: the cluster's default); the options of a
    ``type: slurm`` target in tracker.yaml and of ``--slurm``'s flags."""

    partition: str | None = None
    time: str | None = None  # per task: [days-]hours:minutes:seconds, as sbatch takes it
    gpus: str | None = None  # --gpus: a count or type:count
    cpus: int | None = None  # --cpus-per-task
    mem: str | None = None  # --mem, e.g. 8G
    array_parallel: int | None = None  # at most K tasks of the run at once (%K)

    @field_validator("gpus", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("time", mode="before")
    @classmethod
    def _quoted(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            raise ValueError(f"write the time limit in quotes, as sbatch takes it (e.g. time: '1:00:00'); YAML "
                             f"read it as the number {v}")
        return v

    def sbatch_options(self) -> list[str]:
        """The resource options as sbatch flags."""
        given = {"--partition": self.partition, "--time": self.time, "--gpus": self.gpus,
                 "--cpus-per-task": self.cpus, "--mem": self.mem}
        out = []
        for flag, value in given.items():
            if value is None:
                continue
            text = str(value)
            if not text or any(c.isspace() for c in text):
                raise UsageError(f"{flag} {text!r} is not a valid value", hint="one word, as sbatch takes it")
            out.append(f"{flag}={text}")
        if self.cpus is not None and self.cpus < 1:
            raise UsageError(f"--cpus must be at least 1, got {self.cpus}")
        if self.array_parallel is not None and self.array_parallel < 1:
            raise UsageError(f"--array-parallel must be at least 1, got {self.array_parallel}")
        return out


@dataclass(frozen=True)
class ArrayPlan:
    """How a run's trials become job arrays: the task count of each array, and trials per task."""

    arrays: list[int]
    trials_per_task: int


def plan_arrays(trials: int, limits: cluster.Limits) -> ArrayPlan:
    """One task per trial unless the cluster takes fewer jobs; arrays of at most MaxArraySize tasks
    (indices 0..MaxArraySize-1).

    Example: 2500 trials, MaxArraySize=1001, no job limit -> arrays [1001, 1001, 498], 1 trial per task.
    """
    if trials < 1:
        return ArrayPlan([], 1)
    per = math.ceil(trials / max(limits.max_jobs, 1))
    tasks = math.ceil(trials / per)
    size = max(limits.max_array_size, 1)
    return ArrayPlan([min(size, tasks - start) for start in range(0, tasks, size)], per)


@dataclass(frozen=True)
class SlurmRun:
    """What ``tracker run --slurm`` submitted."""

    run_id: str | None
    queue: str
    trials: list[Trial]
    skipped: list[Trial]
    specs: list[TrialSpec] = field(default_factory=list)  # the trials queued (a dry run: would queue)
    plan: ArrayPlan | None = None
    arrays: list[tuple[str, int]] = field(default_factory=list)  # (array job id, tasks) submitted
    directory: Path | None = None
    notes: tuple[str, ...] = ()  # the cluster limits that shaped the plan


def run_dir(project: Project, queue: str) -> Path:
    """Where the batch script, ``jobs.json`` and the tasks' output of a SLURM queue live."""
    return project.paths.state / "slurm" / queue.removeprefix(QUEUE_PREFIX)


def jobs(project: Project, queue: str) -> dict[str, Any] | None:
    """The record of a SLURM queue's submission (``jobs.json``), or None if it was not made here."""
    path = run_dir(project, queue) / JOBS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def submit_run(project: Project, names: Sequence[str], options: RunOptions, slurm: SlurmOptions, *,
               max_attempts: int | None = None, reporter: Reporter | None = None) -> SlurmRun:
    """Queue the trials of ``names`` as ``options`` say and submit the job arrays of workers that run
    them; see the module docstring.

    The options are checked with ``sbatch --test-only`` before any trial is written. If the
    arrays cannot be submitted after all, the queued trials end ``cancelled`` with sbatch's message.
    """
    from tracker.queue.submit import submit

    reporter = reporter or Reporter()
    flags = slurm.sbatch_options()
    queue = QUEUE_PREFIX + uuid.uuid4().hex[:12]
    directory = run_dir(project, queue)
    limits = cluster.limits()
    store_url = None
    try:
        if not options.dry_run:
            store_url = _store_url(project, slurm.partition)
            directory.mkdir(parents=True, exist_ok=True)
            script = write_script(project, directory, queue, store_url, flags)
            cluster.run(["sbatch", "--test-only", "--array=0", str(script)])  # a bad partition, time... fail here
        result = submit(project, names, options, queue=queue, max_attempts=max_attempts, reporter=reporter,
                        executor="slurm")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    arranged = plan_arrays(len(result.specs), limits)
    if options.dry_run or not result.trials:
        shutil.rmtree(directory, ignore_errors=True)
        return SlurmRun(result.run_id, queue, result.trials, result.skipped, result.specs, arranged,
                        notes=limits.notes)
    script = write_script(project, directory, queue, store_url, flags, arranged.trials_per_task)
    try:
        arrays = submit_arrays(script, arranged, slurm.array_parallel)
    except TrackerError as exc:
        lifecycle.cancel_unstarted(project.store, [t.id for t in result.trials], f"not submitted to SLURM: {exc}")
        raise
    record = {"run_id": result.run_id, "queue": queue, "script": str(script),
              "trials_per_task": arranged.trials_per_task,
              "arrays": [{"job_id": j, "tasks": n} for j, n in arrays]}
    (directory / JOBS).write_text(json.dumps(record, indent=1) + "\n")
    return SlurmRun(result.run_id, queue, result.trials, result.skipped, result.specs, arranged, arrays,
                    directory, limits.notes)


def submit_arrays(script: Path, arranged: ArrayPlan, parallel: int | None) -> list[tuple[str, int]]:
    """sbatch one array per chunk; with a throttle, each chunk waits for the one before it, so no
    more than ``parallel`` tasks of the run ever run at once."""
    out: list[tuple[str, int]] = []
    for tasks in arranged.arrays:
        flags = [f"--array=0-{tasks - 1}" + (f"%{parallel}" if parallel else "")]
        if parallel and out:
            flags.append(f"--dependency=afterany:{out[-1][0]}")
        out.append((cluster.sbatch(script, flags), tasks))
    return out


def write_script(project: Project, directory: Path, queue: str, store_url: str | None, flags: Sequence[str],
                 trials_per_task: int = 1) -> Path:
    """The batch script every task of the run runs: its resources, its output file, then a worker
    that takes at most ``trials_per_task`` trials and exits when the queue is empty (with
    ``TRACKER_STORE=store_url`` when given)."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name=tracker-{queue}",
             f"#SBATCH --output={directory}/%A_%a.out", "#SBATCH --requeue",
             *(f"#SBATCH {f}" for f in flags),
             f"cd {shlex.quote(str(project.root))} || exit 1",
             *([f"export TRACKER_STORE={shlex.quote(store_url)}"] if store_url else []),
             " ".join(["exec", shlex.quote(sys.executable), "-m", "tracker", "worker", "--queue", shlex.quote(queue),
                       "--idle-exit", "0", "--max-trials", str(trials_per_task)])]
    path = directory / SCRIPT
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o700)  # the store URL may carry a password
    return path


def _store_url(project: Project, partition: str | None) -> str | None:
    """The store URL to hand the workers: ``TRACKER_STORE``'s (``tracker --store`` sets it) when it
    came from there; None when tracker.yaml or the default names it, which the workers read in this
    same checkout (so a ``${VAR}`` of tracker.yaml is never written out). A warning when the store
    is SQLite and the partition reaches other hosts."""
    url, source = project.store_url()
    if url.startswith("sqlite:"):
        here = {socket.gethostname(), socket.gethostname().split(".")[0], socket.getfqdn()}
        others = [n for n in cluster.partition_nodes(partition) if n not in here]
        if others:
            warnings.warn(f"{SQLITE_WARNING} (partition nodes other than this host: {', '.join(others[:3])})",
                          TrackerWarning, stacklevel=2)
    return url if source == "TRACKER_STORE" else None
