"""Thin wrappers over SLURM's commands (sbatch, squeue, scancel, scontrol, sacctmgr).

Every call is an argv list run without a shell; a missing command or a refusal becomes one
:class:`~tracker.errors.ExecutionError` line that carries SLURM's own message. The
commands find the cluster the usual way (``SLURM_CONF``, or the node's configuration).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracker.errors import ExecutionError

GONE = "unknown (no longer in squeue)"
"""The state of a job SLURM no longer knows (finished longer ago than its MinJobAge)."""


@dataclass(frozen=True)
class Limits:
    """What the cluster allows one submission: array indices below ``max_array_size``, at most
    ``max_jobs`` jobs (array tasks count one each) from MaxJobCount and MaxSubmitJobs."""

    max_array_size: int
    max_jobs: int
    notes: tuple[str, ...] = ()  # how a limit was found (or why one is unknown)


def run(argv: Sequence[str], *, timeout: float = 60) -> str:
    """Run a SLURM command; its stdout, or an :class:`ExecutionError` with SLURM's message."""
    if shutil.which(argv[0]) is None:
        raise ExecutionError(f"{argv[0]} not found: SLURM's client commands are not installed on this host",
                             hint="run on a SLURM login node, or install slurm-client")
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExecutionError(f"{argv[0]} did not answer within {timeout:g} s (is slurmctld up?)") from exc
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
        raise ExecutionError(f"{argv[0]} failed: {message}")
    return proc.stdout


def config() -> dict[str, str]:
    """``scontrol show config`` as a dict (keys as SLURM spells them)."""
    out = {}
    for line in run(["scontrol", "show", "config"]).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _number(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def limits() -> Limits:
    """The cluster's limits on a submission: MaxArraySize, MaxJobCount and the user's MaxSubmitJobs.

    MaxSubmitJobs comes from the accounting database (``sacctmgr``); without one (no
    sacctmgr, or no slurmdbd) there is no such limit and a note says so.
    """
    conf = config()
    array = _number(conf.get("MaxArraySize")) or 1001
    jobs = _number(conf.get("MaxJobCount")) or 10000
    notes = [f"MaxArraySize={array}", f"MaxJobCount={jobs}"]
    submit, why = _max_submit_jobs()
    if submit is not None:
        jobs = min(jobs, submit)
        notes.append(f"MaxSubmitJobs={submit}")
    else:
        notes.append(f"MaxSubmitJobs: no limit ({why})")
    return Limits(array, jobs, tuple(notes))


def _max_submit_jobs() -> tuple[int | None, str]:
    """The user's MaxSubmitJobs from their associations (the smallest one set), or None and why not."""
    if shutil.which("sacctmgr") is None:
        return None, "sacctmgr is not installed"
    try:
        out = run(["sacctmgr", "--noheader", "--parsable2", "show", "associations",
                   f"user={getpass.getuser()}", "format=MaxSubmitJobs"], timeout=20)
    except ExecutionError:
        return None, "no accounting database"
    values = [v for v in (_number(line) for line in out.splitlines()) if v is not None]
    return (min(values), "") if values else (None, "none set for this user")


def sbatch(script: str | os.PathLike[str], options: Sequence[str] = ()) -> str:
    """Submit a batch script (``options`` before it, e.g. ``--array=0-9%2``); return the job id."""
    out = run(["sbatch", "--parsable", *options, os.fspath(script)])
    return out.strip().split(";")[0]  # "id" or "id;cluster"


def scancel(job_ids: Sequence[str], *, signal: str | None = None, full: bool = False) -> None:
    """Cancel jobs or array tasks (``123``, ``123_4``); with ``signal`` only send it (``full``: to the
    batch shell too, as a time limit or preemption does)."""
    if not job_ids:
        return
    argv = ["scancel"]
    if signal:
        argv.append(f"--signal={signal}")
    if full:
        argv.append("--full")
    run([*argv, *job_ids])


def states(job_ids: Sequence[str]) -> dict[str, str]:
    """The state of every task of the given jobs or arrays that squeue still lists: ``{"12_3": "PENDING"}``
    (one entry per array task, a plain job under its own id)."""
    if not job_ids:
        return {}
    proc_out = _squeue(job_ids)
    found = {}
    for line in proc_out.splitlines():
        task, _, state = line.partition("|")
        if state:
            found[task.strip()] = state.strip()
    return found


def _squeue(job_ids: Sequence[str]) -> str:
    try:
        return run(["squeue", "--noheader", "--array", f"--jobs={','.join(job_ids)}", "--format=%i|%T"])
    except ExecutionError as exc:
        if "Invalid job id" in exc.message:  # every job named has left squeue
            return ""
        raise


def task_name(ids: Mapping[str, str]) -> str:
    """How SLURM's commands name one task (``ids``: ``job_id``, ``array_job_id``, ``array_task_id``):
    ``<array job>_<index>`` in an array, whose first task shares its job id with the whole array
    (so ``scancel`` of that id would cancel every task), else the job id."""
    if ids.get("array_job_id") and ids.get("array_task_id"):
        return f"{ids['array_job_id']}_{ids['array_task_id']}"
    return ids["job_id"]


def task_state(job_id: str) -> str:
    """One job's (or array task's) state: PENDING, RUNNING, COMPLETED... while slurmctld remembers it,
    else :data:`GONE`."""
    return job_fields(job_id).get("JobState", GONE)


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job`` of one job as a dict (empty once SLURM has forgotten it)."""
    try:
        out = run(["scontrol", "--oneliner", "show", "job", job_id])
    except ExecutionError as exc:
        if "Invalid job id" in exc.message:
            return {}
        raise
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def partition_nodes(partition: str | None) -> list[str]:
    """The host names of a partition's nodes (the default partition's when None)."""
    rows = [line.split() for line in run(["sinfo", "--noheader", "--format=%P %N"]).splitlines()]
    wanted = partition or next((p for p, *_ in rows if p.endswith("*")), "")
    hostlist = ",".join(n for p, *nodes in rows if p.rstrip("*") == wanted.rstrip("*") for n in nodes)
    return run(["scontrol", "show", "hostnames", hostlist]).split() if hostlist else []
