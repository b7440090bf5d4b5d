"""The executor contract (tracker.testing.executor) run against the local and the SSH executor,
and what only a local run does when its client is killed."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tracker import trials
from tracker.execution.driver import Driver
from tracker.project import Project
from tracker.remote import connection
from tracker.runs import RunOptions, make_executor, rerun_queued
from tracker.store import Trial, open_store
from tracker.testing.executor import (
    GRACE,
    Background,
    ExecutorContract,
    alive,
    end_leftover,
    git,
    log,
    new_trials,
    prepare,
    running_and_printed,
    tracker_cli,
    wait_for,
)


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def project(self, project_dir: Path) -> Project:
        return prepare(project_dir, repr(sys.executable))


@pytest.mark.ssh
class TestSSHExecutor(ExecutorContract):
    target: ClassVar[str | None] = "gpu1"
    executor_name: ClassVar[str] = "ssh"

    @pytest.fixture
    def project(self, remote_project: Project) -> Project:
        return prepare(remote_project.root, "python3")

    def test_a_trial_failed_on_ssh_reruns_locally_and_stops_without_ssh(self, project: Project) -> None:
        root = project.root
        (root / "flaky.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(4)\n")
        (root / "experiments" / "flaky.yaml").write_text("command: [python3, flaky.py]\nseeds: [1]\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "flaky")
        [failed] = self.run(project, "flaky")
        assert (failed.status, failed.executor, failed.host) == ("failed", "ssh", "gpu1")
        remote_dir = failed.handle["dir"]
        assert failed.handle["detached"] and "boom" in failed.error
        # fixed (now it runs long), and no remotes any more: nothing may reach for SSH from here on
        (root / "flaky.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n")
        data = project.raw()
        data.pop("remotes")
        project.save_raw(data)
        git(root, "commit", "-qam", "fixed, remotes gone")
        for name in ("gpu1", "gpu2"):
            conn = connection._pool.pop(name, None)
            if conn is not None:
                conn.close()
        [queued] = trials.reset(Project.load(root), [failed.id])
        assert (queued.status, queued.handle, queued.host) == ("queued", {}, None)
        run = Background(rerun_queued, Project.load(root), [failed.id])
        run.start()
        running = running_and_printed(project, "sleeping")
        assert running.id == failed.id and running.executor == "local"
        assert running.host == socket.gethostname() and not running.handle.get("detached")
        assert running.handle["dir"] == str(project.paths.trial_dir(failed.id)) != remote_dir
        assert running.handle["runner_pid"] and "boom" not in log(project, failed.id, "stderr.log")
        stopped = trials.stop(Project.load(root), failed.id)  # would fail on any SSH attempt: no remotes
        assert stopped.status == "cancelled"
        [final] = run.value(30).trials
        assert (final.status, final.executor) == ("cancelled", "local")
        assert not connection._pool

    def test_a_trial_failed_on_a_host_reruns_cleanly_on_that_host(self, project: Project) -> None:
        root = project.root
        (root / "flaky.py").write_text("import sys\nprint('first: 1')\nprint('boom', file=sys.stderr)\nsys.exit(4)\n")
        (root / "experiments" / "flaky.yaml").write_text("command: [python3, flaky.py]\nseeds: [1]\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "flaky")
        [failed] = self.run(project, "flaky")
        assert failed.status == "failed" and failed.exit_code == 4
        (root / "flaky.py").write_text("import time\ntime.sleep(1)\nprint('second: 1')\n")
        git(root, "commit", "-qam", "fixed")
        trials.reset(Project.load(root), [failed.id])
        [final] = rerun_queued(Project.load(root), [failed.id], remote=["gpu1"]).trials
        assert final.status == "completed" and final.exit_code == 0, final.error
        assert final.metrics == {"second": 1.0}
        assert "first" not in log(project, final.id) and "boom" not in log(project, final.id, "stderr.log")
        assert final.pid == json.loads(Path(final.handle["dir"], "pid.json").read_text())["pid"]


def test_kill_9_of_tracker_run_cancels_the_trials_that_never_started(project_dir: Path) -> None:
    project = prepare(project_dir, repr(sys.executable))
    proc = tracker_cli(project_dir, "run", "base", "-j", "1", "-p", "sleep=30")
    runner_pid: int | None = None
    try:
        running = running_and_printed(project, "sleeping")
        runner_pid = running.handle["runner_pid"]
        script = wait_for(lambda: project.store.get(running.id).pid, 15, "the script's pid")
        proc.kill()
        proc.communicate(timeout=30)
        # the store alone never changes a record; opening it for a command (Project.store) does
        raw = open_store(Project.load(project_dir).store_url()[0])
        assert sorted(t.status for t in raw.list_trials()) == ["queued"] * 3 + ["running"]
        raw.close()
        listed = trials.list_trials(Project.load(project_dir))
        assert len(listed) == 4
        lost = [t for t in listed if t.id == running.id]
        never = [t for t in listed if t.id != running.id]
        assert lost[0].status == "lost" and "died" in lost[0].error
        assert [(t.status, t.error) for t in never] == [("cancelled", "never started: the run was killed")] * 3
        assert all(t.started is None and t.finished for t in never)
        # the orphaned runner stops the script by itself
        wait_for(lambda: not alive(runner_pid) and not alive(script), GRACE + 10, "the orphaned trial to end")
        assert {t.id for t in trials.reset(Project.load(project_dir))} == {t.id for t in listed}
        assert {t.status for t in Project.load(project_dir).store.list_trials()} == {"queued"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        end_leftover(runner_pid, "runner.py")


def test_ctrl_c_as_a_trial_starts_cancels_it(project_dir: Path) -> None:
    # the stop reaches the trial's runner before it has set up its handler (a search's Ctrl-C
    # right after it started a trial): the trial was cancelled, not lost
    project = prepare(project_dir, repr(sys.executable))
    executor = make_executor(project, RunOptions(parallel=2))
    first = new_trials(project, executor, "base", RunOptions(seeds=[1], params={"lr": 0.1}))[0]

    def feed() -> Iterator[Trial]:
        yield first
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Driver(project, executor).run(feed())
    trial = project.store.get(first.id)
    assert (trial.status, trial.error, trial.exit_code) == ("cancelled", "cancelled", None)
