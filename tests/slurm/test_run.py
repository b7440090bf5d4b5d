"""tracker run --slurm against a real single-node SLURM: arrays of workers run the trials, stops
scancel tasks, a task SLURM stops (time limit, preemption) requeues its trial."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.slurm.conftest import MAX_ARRAY_SIZE
from tracker.project import Project
from tracker.runs import RunOptions
from tracker.slurm import cluster
from tracker.slurm.submit import SlurmOptions, SlurmRun, submit_run
from tracker.store import FINISHED, Trial

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def wait(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def ended(project: Project, run: SlurmRun) -> list[Trial]:
    trials = [project.store.get(t.id) for t in run.trials]
    return trials if all(t.status in FINISHED for t in trials) else []


def test_arrays_of_workers_run_every_trial(slurm: dict[str, str], project_dir: Path) -> None:
    project = Project.find()
    run = submit_run(project, ["base"], RunOptions(seed_count=3), SlurmOptions(time="5:00"))
    assert len(run.trials) == 6  # 2 lr x 3 seeds: more than MaxArraySize, so two arrays
    assert [n for _, n in run.arrays] == [MAX_ARRAY_SIZE, 6 - MAX_ARRAY_SIZE] and run.plan.trials_per_task == 1
    record = json.loads((run.directory / "jobs.json").read_text())
    assert [a["job_id"] for a in record["arrays"]] == [j for j, _ in run.arrays]
    final = wait("the trials to end", lambda: ended(project, run), timeout=120)
    assert [t.status for t in final] == ["completed"] * 6, [t.error for t in final]
    tasks = set()
    for t in final:
        task = t.handle["slurm"]
        assert task["array_job_id"] in {j for j, _ in run.arrays}
        tasks.add((task["array_job_id"], task["array_task_id"]))
        log = project.paths.trial_dir(t.id) / "slurm.out"
        assert log.is_file() and t.id in log.read_text()  # the task's output is the trial's
    assert len(tasks) == 6  # one task per trial
    assert cluster.task_state(cluster.task_name(final[0].handle["slurm"])) in {"COMPLETED", cluster.GONE}


def test_stop_queued_and_running_trials(slurm: dict[str, str], project_dir: Path) -> None:
    from tracker import trials

    project = Project.find()
    run = submit_run(project, ["base"], RunOptions(seeds=[11, 22, 33], params={"lr": 0.1, "sleep": 60}),
                     SlurmOptions(array_parallel=1), max_attempts=3)
    job = run.arrays[0][0]

    def running() -> Trial | None:
        return next((t for t in (project.store.get(x.id) for x in run.trials)
                     if t.status == "running" and t.handle.get("slurm")), None)

    first = wait("a trial to run", running)
    assert first.handle["slurm"]["array_task_id"] == "0"
    assert cluster.states([job]) == {f"{job}_0": "RUNNING", f"{job}_1": "PENDING", f"{job}_2": "PENDING"}
    waiting = [t for t in run.trials if t.id != first.id]
    assert "2 pending" in trials.show(project, waiting[0].id).job_state

    stopped = trials.stop(project, waiting[0].id)  # waiting in the queue: cancelled, one task no longer needed
    assert stopped.status == "cancelled" and stopped.error == "cancelled by the user"
    wait("the unneeded pending task to go", lambda: f"{job}_2" not in cluster.states([job]))

    assert trials.show(project, first.id).job_state == "RUNNING"
    stopped = trials.stop(project, first.id, wait=60)  # running: the stop request, and scancel of its task only
    assert stopped.status == "cancelled" and stopped.attempts == 1  # the user's stop is never requeued
    assert wait("its task to end", lambda: (state := trials.show(project, first.id).job_state) != "COMPLETING"
                and state) == "CANCELLED"  # scancelled, not ended by its worker
    last = wait("the task still needed to run the last trial", running)  # task 1 was not cancelled with task 0
    assert (last.id, last.handle["slurm"]["array_task_id"]) == (waiting[1].id, "1")
    assert trials.stop(project, last.id, wait=60).status == "cancelled"
    wait("the array to end", lambda: not cluster.states([job]))


def test_task_stopped_by_slurm_requeues_its_trial(slurm: dict[str, str], project_dir: Path) -> None:
    project = Project.find()
    run = submit_run(project, ["base"], RunOptions(seeds=[11], params={"lr": 0.1, "sleep": 4}), SlurmOptions(),
                     max_attempts=2)
    [trial] = run.trials
    first = wait("the trial to run", lambda: (t := project.store.get(trial.id)).status == "running"
                 and t.handle.get("slurm") and t)
    cluster.scancel([cluster.task_name(first.handle["slurm"])], signal="TERM", full=True)  # as a time limit does
    final = wait("the trial to run again and end",
                 lambda: (t := project.store.get(trial.id)).status in FINISHED and t, timeout=120)
    assert final.status == "completed", final.error
    assert final.attempts == 2 and (final.params, final.seed) == (trial.params, trial.seed)
    assert [e["attempt"] for e in final.errors] == [1]
    assert final.handle["slurm"]["job_id"] != first.handle["slurm"]["job_id"]  # a replacement task ran it
    record = json.loads((run.directory / "jobs.json").read_text())
    assert record["arrays"][-1]["replaces"] == cluster.task_name(first.handle["slurm"])
