"""trials show / trials stop of queue and SLURM trials where no SLURM command is needed (or none exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker import trials
from tracker.project import Project
from tracker.queue.submit import submit
from tracker.runs import RunOptions


def test_stop_a_waiting_queue_trial_cancels_it(project_dir: Path) -> None:
    project = Project.find()
    first, second = submit(project, ["base"], RunOptions(seeds=[11], grid={"lr": [0.1, 0.5]})).trials
    stopped = trials.stop(project, first.id)
    assert (stopped.status, stopped.error) == ("cancelled", "cancelled by the user")
    assert project.store.claim("default", {"worker": "w"}, lease=60) == [project.store.get(second.id)]


def test_show_says_why_the_slurm_state_is_unknown(project_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    project = Project.find()
    [trial] = submit(project, ["base"], RunOptions(seeds=[11], params={"lr": 0.1}), queue="slurm-abc").trials
    project.store.update(trial.id, handle={"slurm": {"job_id": "5", "array_job_id": "4", "array_task_id": "1"}})
    monkeypatch.setenv("PATH", str(tmp_path))  # a laptop without SLURM's commands
    detail = trials.show(project, trial.id)
    assert detail.job_state == "unknown (scontrol not found: SLURM's client commands are not installed on this host)"
    assert detail.as_dict()["slurm_state"] == detail.job_state
