"""tracker run --slurm from the command line: what it prints, what it refuses, what a refusal leaves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import cli
from tracker.project import Project
from tracker.slurm import cluster

pytestmark = pytest.mark.slurm


def test_run_slurm_prints_the_array_and_runs_the_trials(slurm: dict[str, str], project_dir: Path) -> None:
    code, out, err = cli("run", "base", "--slurm", "--time", "5:00", "--array-parallel", "2", "--max-attempts", "2")
    assert code == 0, err
    [job] = out.split()
    assert f"as SLURM array job(s) {job} (4 tasks)" in err
    project = Project.find()
    trials = project.store.list_trials()
    assert len(trials) == 4 and {t.max_attempts for t in trials} == {2}
    script = next((project.paths.state / "slurm").glob("*/job.sh")).read_text()
    assert "#SBATCH --time=5:00" in script and "TRACKER_STORE" not in script  # workers find the default store
    assert f"worker --queue {trials[0].queue} --idle-exit 0 --max-trials 1" in script
    deadline = time.monotonic() + 90
    while cluster.states([job]) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert {t.status for t in project.store.list_trials()} == {"completed"}
    code, out, err = cli("trials", "show", trials[0].id)
    assert code == 0 and f"slurm       task {job}_" in out


def test_refused_options_leave_nothing_behind(slurm: dict[str, str], project_dir: Path) -> None:
    code, _, err = cli("run", "base", "--slurm", "--partition", "nope")
    assert code == 1
    assert err.strip() == ("error: sbatch failed: sbatch: error: invalid partition specified: nope "
                           "allocation failure: Invalid partition name specified")
    project = Project.find()
    assert project.store.list_trials() == [] and not list((project.paths.state / "slurm").iterdir())
    code, _, err = cli("run", "nope", "--slurm")
    assert code == 2 and "nope" in err
    assert project.store.list_trials() == [] and not list((project.paths.state / "slurm").iterdir())
    code, _, err = cli("run", "base", "--time", "5:00")
    assert code == 2 and "--time applies to SLURM runs (add --slurm, or --target NAME of a slurm target)" in err
    code, _, err = cli("run", "base", "--slurm", "--queue")
    assert code == 2 and "--slurm runs its trials in a queue of its own" in err


def test_sqlite_store_on_a_partition_of_other_hosts_warns(slurm: dict[str, str], project_dir: Path) -> None:
    code, out, err = cli("run", "base", "--slurm", "--partition", "wide", "--seed", "11", "-p", "lr=0.1")
    try:
        assert code == 0, err
        assert ("warning: SQLite over a network filesystem is unsafe; use --store postgresql://... "
                "(partition nodes other than this host: ghost)") in err
    finally:
        cluster.scancel(out.split())
    code, out, err = cli("run", "base", "--slurm", "--seed", "11", "-p", "lr=0.5")  # only this host: no warning
    cluster.scancel(out.split())
    assert code == 0 and "warning" not in err


def test_a_store_given_by_tracker_store_reaches_the_workers(slurm: dict[str, str], project_dir: Path,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("TRACKER_STORE", url)
    code, out, err = cli("run", "base", "--slurm", "--seed", "11", "-p", "lr=0.1")
    assert code == 0, err
    project = Project.find()
    [trial] = project.store.list_trials()
    assert project.store.url.endswith("elsewhere.db")
    deadline = time.monotonic() + 60
    while project.store.get(trial.id).status == "queued" or cluster.states(out.split()):
        assert time.monotonic() < deadline, "the task did not run"
        time.sleep(0.3)
    assert project.store.get(trial.id).status == "completed"
    assert not (project.paths.db).exists()  # nothing went to the default store
