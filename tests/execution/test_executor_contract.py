"""One contract every executor passes, run against the local executor and the SSH executor.

Each case runs real trials (real runner processes, real sshd hosts for SSH) and checks
what a user sees: the trial's status, error, metrics, logs, and the processes left
behind. The SSH hosts run on this machine, so their processes are visible here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from tests.conftest import git
from tracker import environment, trials
from tracker.execution.base import BaseExecutor
from tracker.execution.driver import Driver, drive
from tracker.project import Project
from tracker.remote import connection
from tracker.runs import RunOptions, create_trials, make_executor, plan, rerun_queued, run_experiment
from tracker.store import MetricPoint, Trial

T = TypeVar("T")

GRACE = 1.0  # defaults.grace in every project here
LEASE = 10.0  # defaults.lease, except where a test shortens it

SCRIPTS = {
    # steps printed with their own clock reading, so a reader can tell how late it saw them
    "live.py": """
        import argparse, time
        p = argparse.ArgumentParser()
        p.add_argument("--steps", type=int, default=4)
        p.add_argument("--pause", type=float, default=1.0)
        p.add_argument("--tail", type=float, default=2.5)
        a, _ = p.parse_known_args()
        for i in range(a.steps):
            print(f"step: {i} val/acc: {i / 10} printed_at: {time.time():.3f}", flush=True)
            time.sleep(a.pause)
        time.sleep(a.tail)
    """,
    "stubborn.py": """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring TERM", flush=True)
        time.sleep(60)
    """,
    # a grandchild in a session of its own (double fork), which the script never waits for
    "spawner.py": """
        import argparse, os, time
        p = argparse.ArgumentParser()
        p.add_argument("--stay", type=float, default=0.0)
        a, _ = p.parse_known_args()
        pidfile = os.path.join(os.environ["TRACKER_TRIAL_DIR"], "grandchild.pid")
        child = os.fork()
        if child == 0:
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                os.execvp("sleep", ["sleep", "300"])
            with open(pidfile, "w") as fh:
                fh.write(str(grandchild))
            os._exit(0)
        os.waitpid(child, 0)
        gc = int(open(pidfile).read())
        time.sleep(0.2)
        print(f"grandchild: {gc} alive: {int(os.path.exists(f'/proc/{gc}'))}", flush=True)
        time.sleep(a.stay)
    """,
    "cfg.py": """
        import json, os, pathlib, sys
        path = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--params-file="))
        params = json.loads(pathlib.Path(path).read_text())
        seen = {"params": params, "argv": sys.argv[1:], "path": path}
        pathlib.Path(os.environ["TRACKER_TRIAL_DIR"], "seen.json").write_text(json.dumps(seen))
        print(f"lr: {params['lr']}")
    """,
}


def experiments(python: str) -> dict[str, str]:
    return {
        "slow": f"command: [{python}, train.py]\nparams: {{sleep: 30}}\nseeds: [1]\ntimeout: 1\n",
        "deliv": f"command: [{python}, train.py]\nseeds: [1]\ndeliverables: [{{path: weights.bin, check: exists}}]\n",
        "cfg": f"command: [{python}, cfg.py]\nparams_as: json\nparams: {{lr: 0.5, name: 'x y'}}\nseeds: [3]\n",
        "live": f"command: [{python}, live.py]\nseeds: [1]\n",
        "stubborn": f"command: [{python}, stubborn.py]\nseeds: [1]\n",
        "spawner": f"command: [{python}, spawner.py]\nseeds: [1]\n",
    }


def set_defaults(root: Path, **values: float) -> None:
    """Write ``defaults:`` into tracker.yaml and commit it."""
    project = Project.load(root)
    data = project.raw()
    data["defaults"] = {**(data.get("defaults") or {}), **values}
    project.save_raw(data)
    git(root, "commit", "-qam", f"defaults {values}")


def prepare(root: Path, python: str) -> Project:
    """The contract's scripts and experiments, short lease and grace, all committed."""
    for name, text in SCRIPTS.items():
        (root / name).write_text(textwrap.dedent(text))
    for name, text in experiments(python).items():
        (root / "experiments" / f"{name}.yaml").write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "executor contract")
    set_defaults(root, lease=LEASE, grace=GRACE)
    return Project.load(root)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Background(threading.Thread):
    """A call in a thread of its own; ``value()`` joins and returns (or raises) its result."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True)
        self.func, self.args = func, args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.func(*self.args)
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc

    def value(self, timeout: float) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"the run did not end within {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def log(project: Project, trial_id: str, name: str = "stdout.log") -> str:
    path = project.paths.trial_dir(trial_id) / name
    return path.read_text(errors="replace") if path.exists() else ""


def running_and_printed(project: Project, text: str, timeout: float = 60) -> Trial:
    """The running trial whose (local copy of) stdout shows ``text``."""
    def find() -> Trial | None:
        for t in project.store.list_trials(status="running"):
            if text in log(project, t.id):
                return t
        return None

    return wait_for(find, timeout, f"a running trial printing {text!r}")


def alive(pid: int, name: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``name``, still runs that program."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and (name is None or name.encode() in cmdline)


def end_leftover(pid: int | None, name: str) -> None:
    """Clean up after a failed test: kill ``pid`` if it is still the process we started."""
    if pid and alive(pid, name):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def new_trials(project: Project, executor: BaseExecutor, name: str, options: RunOptions) -> list[Trial]:
    """Queued trials made as ``tracker run`` makes them (for driving them directly)."""
    planned = plan(project, [name], options)
    config = planned.configs[name]
    env = environment.capture(config.command_argv(), project.paths.state / "environments.json")
    env_id = environment.env_id(env)
    project.store.save_environment(env_id, env)
    _, made = create_trials(project, planned.specs, planned.configs, planned.code, {name: env_id}, executor.name)
    return made


def tracker_cli(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=root, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class ExecutorContract:
    """Subclasses provide ``project`` (from :func:`prepare`) and say where trials run."""

    remote: ClassVar[list[str]] = []
    executor_name: ClassVar[str] = "local"

    @pytest.fixture
    def project(self) -> Project:
        raise NotImplementedError

    def run(self, project: Project, name: str = "base", **options: Any) -> list[Trial]:
        options.setdefault("seeds", [1])
        result = run_experiment(project, name, RunOptions(remote=self.remote, **options))
        return result.trials

    def cli_run(self, root: Path, *args: str) -> subprocess.Popen[str]:
        remote = ["--remote", ",".join(self.remote)] if self.remote else []
        return tracker_cli(root, "run", *args, *remote)

    # ------------------------------------------------------------------ 1-3, 5, 6: how a trial ends

    def test_completed_trial_with_metrics_and_deliverables(self, project: Project) -> None:
        [trial] = self.run(project, params={"lr": 0.1})
        assert trial.status == "completed", trial.error
        assert (trial.executor, trial.exit_code, trial.error) == (self.executor_name, 0, None)
        assert 0 < trial.metrics["val/acc"] < 1 and trial.step == 2
        assert [p.step for p in project.store.metrics(trial.id, "train/loss")] == [0, 1, 2]
        model = json.loads((project.paths.trial_dir(trial.id) / "model.json").read_text())
        assert model == {"lr": 0.1, "seed": 1, "note": ""}
        assert "model.json" in [path for path, _, _ in project.store.artifacts(trial.id)]
        assert "val/acc" in log(project, trial.id)
        assert trial.started and trial.finished and trial.duration is not None and trial.heartbeat is None

    def test_failed_trial_keeps_the_stderr_tail(self, project: Project) -> None:
        [trial] = self.run(project, params={"lr": 0.1, "fail": 1})
        assert (trial.status, trial.exit_code) == ("failed", 3)
        assert trial.error.startswith("exit code 3") and "Traceback: something broke" in trial.error
        assert trial.metrics["val/acc"] > 0  # what it printed before failing is kept

    def test_timeout_fails_the_trial_early(self, project: Project) -> None:
        started = time.monotonic()
        [trial] = self.run(project, "slow")
        assert trial.status == "failed" and trial.error == "timed out after 1 s"
        assert trial.duration is not None and trial.duration < 10
        assert time.monotonic() - started < 25
        assert "timeout of 1 s" in log(project, trial.id, "stderr.log")

    def test_missing_deliverable_fails_naming_it(self, project: Project) -> None:
        [trial] = self.run(project, "deliv")
        assert trial.status == "failed" and trial.exit_code == 0
        assert trial.error == "deliverable weights.bin is missing"

    def test_params_as_json_file(self, project: Project) -> None:
        [trial] = self.run(project, "cfg", seeds=[3])
        assert trial.status == "completed", trial.error
        seen = json.loads((project.paths.trial_dir(trial.id) / "seen.json").read_text())
        assert seen["params"] == {"lr": 0.5, "name": "x y", "seed": 3}
        assert seen["argv"] == [f"--params-file={seen['path']}"]  # the file, and no flags
        assert json.loads((project.paths.trial_dir(trial.id) / "params.json").read_text()) == seen["params"]
        assert trial.metrics == {"lr": 0.5}

    # ------------------------------------------------------------------ 4: stop from elsewhere

    @pytest.mark.parametrize("script", ["obeys_term", "ignores_term"])
    def test_stop_from_another_thread(self, project: Project, script: str) -> None:
        if script == "obeys_term":
            name, options, marker = "base", {"params": {"lr": 0.1, "sleep": 30}}, "sleeping"
        else:
            name, options, marker = "stubborn", {}, "ignoring TERM"
        run = Background(lambda: self.run(Project.load(project.root), name, **options))
        run.start()
        running = running_and_printed(project, marker)
        pid = wait_for(lambda: project.store.get(running.id).pid, 15, "the script's pid")
        try:
            asked = time.monotonic()
            stopped = trials.stop(Project.load(project.root), running.id)
            took = time.monotonic() - asked
            assert stopped.status == "cancelled" and stopped.error == "cancelled by the user"
            assert took < GRACE + 5, f"the stop took {took:.1f} s"
            [final] = run.value(30)
            assert final.status == "cancelled" and final.executor == self.executor_name
            wait_for(lambda: not alive(pid), 5, "the script to be gone")
        finally:
            end_leftover(pid, name)

    # ------------------------------------------------------------------ 7: live metrics

    def test_metrics_are_visible_while_the_trial_runs(self, project: Project) -> None:
        run = Background(self.run, Project.load(project.root), "live")
        run.start()
        store = project.store
        seen: dict[int, tuple[float, str]] = {}  # step -> (how late it was seen, trial status then)
        listed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while run.is_alive() and time.monotonic() < deadline:
            current = [t for t in store.list_trials() if t.experiment == "live"]
            if current:
                trial = current[0]
                if trial.step is not None:  # the last values and the step always agree
                    assert trial.metrics["val/acc"] == pytest.approx(trial.step / 10)
                for point in store.metrics(trial.id, "printed_at"):
                    if point.step not in seen:
                        seen[point.step] = (time.time() - point.value, store.get(trial.id).status)
                if trial.step == 1 and not listed and trial.status == "running":
                    out = subprocess.run([sys.executable, "-m", "tracker", "trials", "list", "--json"],
                                         cwd=project.root, capture_output=True, text=True, timeout=60)
                    listed = [r for r in json.loads(out.stdout) if r["id"] == trial.id]
            time.sleep(0.05)
        [final] = run.value(30)
        assert final.status == "completed", final.error
        assert sorted(seen) == [0, 1, 2, 3]
        for step, (late, status) in seen.items():
            assert status == "running", f"step {step} appeared only once the trial had ended"
            assert late < 3, f"step {step} appeared {late:.1f} s after it was printed"
        assert listed and listed[0]["status"] == "running" and listed[0]["step"] >= 1  # the CLI sees it too
        history = store.metrics(final.id, "val/acc")
        assert [(p.step, p.value) for p in history] == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]
        assert final.step == 3 and final.metrics["val/acc"] == 0.3

    # ------------------------------------------------------------------ 8: heartbeat expiry

    @pytest.mark.parametrize("then", ["continued", "killed"])
    def test_a_suspended_run_is_lost_after_its_lease(self, project: Project, then: str) -> None:
        root = project.root
        set_defaults(root, lease=2)
        proc = self.cli_run(root, "base", "--seed", "1", "-p", "lr=0.1", "-p", "sleep=8")
        try:
            running = running_and_printed(project, "sleeping")
            os.kill(proc.pid, signal.SIGSTOP)  # alive, but no longer renewing its heartbeats
            suspended = time.monotonic()
            time.sleep(2.5)
            lost = wait_for(lambda: [t for t in trials.list_trials(Project.load(root)) if t.status == "lost"],
                            5, "a read command to expire the trial", every=0.2)
            assert time.monotonic() - suspended < 7  # and well before the script itself ended
            assert [t.id for t in lost] == [running.id]
            assert "no heartbeat for over 2 s" in lost[0].error and lost[0].heartbeat is None
            if then == "continued":
                os.kill(proc.pid, signal.SIGCONT)
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                final = Project.load(root).store.get(running.id)  # its owner had the real result
                assert final.status == "completed" and final.error is None and final.exit_code == 0
                messages = [e.message for e in project.store.events(running.id)]
                assert messages[-3:] == ["lost", "running: its owner was alive after all", "completed"]
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
                assert [t.status for t in trials.list_trials(Project.load(root))] == ["lost"]
                [again] = trials.reset(Project.load(root), [running.id])
                assert (again.status, again.handle, again.owner, again.heartbeat, again.error) == (
                    "queued", {}, {}, None, None)
                assert [t.status for t in trials.list_trials(Project.load(root))] == ["queued"]
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()

    # ------------------------------------------------------------------ 9: detached descendants

    @pytest.mark.parametrize("how", ["exits", "stopped"])
    def test_a_detached_grandchild_ends_with_the_trial(self, project: Project, how: str) -> None:
        grandchild: int | None = None
        try:
            if how == "exits":
                [trial] = self.run(project, "spawner")
                assert trial.status == "completed", trial.error
            else:
                run = Background(lambda: self.run(Project.load(project.root), "spawner", params={"stay": 30}))
                run.start()
                running = running_and_printed(project, "grandchild:")
                assert trials.stop(Project.load(project.root), running.id).status == "cancelled"
                [trial] = run.value(30)
                assert trial.status == "cancelled"
            grandchild = int(trial.metrics["grandchild"])
            assert trial.metrics["alive"] == 1  # it did run, detached, while the script ran
            wait_for(lambda: not alive(grandchild, "sleep"), 5, "the detached grandchild to be ended")
        finally:
            end_leftover(grandchild, "sleep")

    # ------------------------------------------------------------------ 10: pruning

    def test_a_pruner_stops_the_trial_at_its_step(self, project: Project) -> None:
        executor = make_executor(project, RunOptions(remote=self.remote))
        made = new_trials(project, executor, "live", RunOptions(seeds=[1], params={"steps": 20, "pause": 0.3,
                                                                                   "tail": 0}))
        offered: list[tuple[str, str, int | None]] = []

        def pruner(trial: Trial, point: MetricPoint) -> bool:
            offered.append((trial.id, point.name, point.step))
            return point.name == "val/acc" and point.step == 2

        [final] = drive(project, executor, made, pruner=pruner)
        assert final.status == "pruned" and final.error == "pruned at step 2"
        assert final.extra["pruned_step"] == 2 and final.stop_requested == "pruned at step 2"
        assert (made[0].id, "val/acc", 2) in offered
        assert all(tid == made[0].id and step is not None for tid, _, step in offered)
        steps = [p.step for p in project.store.metrics(final.id, "val/acc")]
        assert steps[:3] == [0, 1, 2] and max(steps) < 19  # it did not run to its end
        assert final.duration is not None and final.duration < 20 * 0.3


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def project(self, project_dir: Path) -> Project:
        return prepare(project_dir, repr(sys.executable))


@pytest.mark.ssh
class TestSSHExecutor(ExecutorContract):
    remote: ClassVar[list[str]] = ["gpu1"]
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
        # the store alone never changes a record; the next read command does
        assert sorted(t.status for t in Project.load(project_dir).store.list_trials()) == ["queued"] * 3 + [
            "running"]
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
