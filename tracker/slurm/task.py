"""What a ``tracker worker`` running inside a SLURM job does besides running trials.

The worker calls these only when ``SLURM_JOB_ID`` is set: :func:`describe` for the record
of each trial it claims (``trial.handle["slurm"]``), :func:`collect_log` when a trial ends
(the task's SLURM output so far, as ``slurm.out`` in the trial directory), and
:func:`after_requeue` when SLURM stopped it (time limit, preemption) and it put its trials
back in their queue.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from tracker.project import Project
from tracker.slurm import cluster
from tracker.slurm.submit import JOBS, SCRIPT, jobs, run_dir

LOG = "slurm.out"
REQUEUED_BY_SLURM = frozenset({"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED"})


def describe() -> dict[str, str]:
    """This task's SLURM ids from the environment: ``job_id``, ``array_job_id``, ``array_task_id``
    (the last two only inside a job array)."""
    keys = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID"}
    return {k: os.environ[v] for k, v in keys.items() if os.environ.get(v)}


def output_path(project: Project, queue: str | None) -> Path | None:
    """This task's SLURM output file: ``.tracker/slurm/<key>/<array job>_<task>.out`` for the tasks
    ``tracker run --slurm`` submits, else whatever sbatch's ``--output`` made of it (scontrol)."""
    me = describe()
    if queue and "array_task_id" in me:
        path = run_dir(project, queue) / f"{me['array_job_id']}_{me['array_task_id']}.out"
        if path.is_file():
            return path
    stdout = cluster.job_fields(cluster.task_name(me)).get("StdOut") if "job_id" in me else None
    return Path(stdout) if stdout and Path(stdout).is_file() else None


def collect_log(project: Project, trial_id: str) -> None:
    """Copy this task's SLURM output so far into the trial's directory as ``slurm.out``."""
    trial = project.store.get(trial_id)
    source = output_path(project, trial.queue)
    if source is not None:
        target = project.paths.trial_dir(trial.id)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / LOG)


def after_requeue(project: Project, trial_ids: Sequence[str]) -> list[str]:
    """SLURM stopped this worker and it requeued ``trial_ids``: make sure workers will run them.

    Unless SLURM requeues this very job (preemption with requeue), one replacement array
    (enough tasks for the trials) of the run's batch script is submitted; it is recorded in
    ``jobs.json``. Returns the job ids submitted.
    """
    me = describe()
    if not trial_ids or "job_id" not in me:
        return []
    name = cluster.task_name(me)
    fields = cluster.job_fields(name)
    if fields.get("JobState") in REQUEUED_BY_SLURM and fields.get("Requeue") == "1":
        return []
    submitted = []
    by_queue: dict[str, int] = {}
    for trial_id in trial_ids:
        queue = project.store.get(trial_id).queue
        if queue:
            by_queue[queue] = by_queue.get(queue, 0) + 1
    for queue, count in by_queue.items():
        script = run_dir(project, queue) / SCRIPT
        with project.locked():  # other tasks of the run may write jobs.json at the same time
            record = jobs(project, queue)
            if record is None or not script.is_file():
                continue  # not submitted by tracker run --slurm: the user's own job script brings its workers
            tasks = math.ceil(count / record.get("trials_per_task", 1))
            job_id = cluster.sbatch(script, [f"--array=0-{tasks - 1}"])
            record["arrays"].append({"job_id": job_id, "tasks": tasks, "replaces": name})
            (run_dir(project, queue) / JOBS).write_text(json.dumps(record, indent=1) + "\n")
        submitted.append(job_id)
    return submitted
