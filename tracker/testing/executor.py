"""The executor contract: one suite every executor passes, built in (local, ssh) or a plug-in's.

Each case runs real trials (real runner processes; for SSH, real sshd hosts) and checks
what a user sees: the trial's status, error, metrics, logs, and the processes left behind
(the hosts under test must run on this machine, so their processes are visible here).
A plug-in executor runs the same suite by subclassing :class:`ExecutorContract` in its own
tests (pytest), naming the target it is reached by and giving a ``project`` fixture::

    from tracker.testing.executor import ExecutorContract, new_project

    class TestMyExecutor(ExecutorContract):
        target = "mybox"            # --target of the executor under test (None: local)
        executor_name = "mine"      # the name trials record

        @pytest.fixture
        def project(self, tmp_path):
            return new_project(tmp_path / "proj", "python3",
                               "targets:\n  mybox: {type: mine, slots: 2}\n")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from tracker import environment, trials
from tracker.execution.base import BaseExecutor
from tracker.execution.driver import drive
from tracker.project import Project
from tracker.runs import RunOptions, create_trials, make_executor, plan, run_experiment
from tracker.store import MetricPoint, Trial

T = TypeVar("T")

GRACE = 1.0  # defaults.grace in every project here
LEASE = 10.0  # defaults.lease, except where a test shortens it

TRAIN = """
    import argparse, json, os, pathlib, random, sys

    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail", type=int, default=0)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--note", type=str, default="")
    a = p.parse_args()
    rng = random.Random(a.seed)
    out = pathlib.Path(os.environ.get("TRACKER_TRIAL_DIR", "outputs"))
    out.mkdir(parents=True, exist_ok=True)
    if a.sleep:
        import time
        print("sleeping", flush=True)
        time.sleep(a.sleep)
    loss = 1.0
    for step in range(a.epochs):
        loss *= 1 - a.lr * rng.random()
        print(f"step: {step} train/loss: {loss:.6f}")
    print(f"val/acc: {1 - loss:.6f}")
    if a.fail:
        print("Traceback: something broke", file=sys.stderr)
        sys.exit(3)
    (out / "model.json").write_text(json.dumps({"lr": a.lr, "seed": a.seed, "note": a.note}))
"""
"""The training script of the ``base`` experiment: metrics, ``--fail``, ``--sleep``, a model file."""

SCRIPTS = {
    "train.py": TRAIN,
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
    """The contract's experiment files, their command run with ``python``."""
    return {
        "base": f"command: [{python}, train.py]\nparams: {{epochs: 3}}\ngrid: {{lr: [0.1, 0.5]}}\nseeds: 2\n"
                "deliverables:\n  - {path: model.json, check: contains_keys, keys: [lr, seed]}\n",
        "slow": f"command: [{python}, train.py]\nparams: {{sleep: 30}}\nseeds: [1]\ntimeout: 1\n",
        "deliv": f"command: [{python}, train.py]\nseeds: [1]\ndeliverables: [{{path: weights.bin, check: exists}}]\n",
        "cfg": f"command: [{python}, cfg.py]\nparams_as: json\nparams: {{lr: 0.5, name: 'x y'}}\nseeds: [3]\n",
        "live": f"command: [{python}, live.py]\nseeds: [1]\n",
        "stubborn": f"command: [{python}, stubborn.py]\nseeds: [1]\n",
        "spawner": f"command: [{python}, spawner.py]\nseeds: [1]\n",
    }


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; its output."""
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def new_project(root: Path, python: str, config: str = "") -> Project:
    """A new committed tracker project in ``root`` (tracker.yaml: ``config``, e.g. a ``targets:`` entry),
    ready for the contract (:func:`prepare`)."""
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    (root / "tracker.yaml").write_text(f"name: contract\nseeds: [11, 22, 33, 44, 55]\nmaster_seed: 1\n{config}")
    (root / ".gitignore").write_text(".tracker/\noutputs/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return prepare(root, python)


def set_defaults(root: Path, **values: float) -> None:
    """Write ``defaults:`` into tracker.yaml and commit it."""
    project = Project.load(root)
    data = project.raw()
    data["defaults"] = {**(data.get("defaults") or {}), **values}
    project.save_raw(data)
    git(root, "commit", "-qam", f"defaults {values}")


def prepare(root: Path, python: str) -> Project:
    """The contract's scripts and experiments written into the project at ``root`` (a committed git
    work tree), short lease and grace, all committed."""
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
    """Subclasses provide ``project`` (from :func:`prepare` or :func:`new_project`) and say where trials
    run: ``target``, the ``--target`` of the executor under test (None: local), and ``executor_name``."""

    target: ClassVar[str | None] = None
    executor_name: ClassVar[str] = "local"

    @pytest.fixture
    def project(self) -> Project:
        raise NotImplementedError

    def run(self, project: Project, name: str = "base", **options: Any) -> list[Trial]:
        options.setdefault("seeds", [1])
        result = run_experiment(project, name, RunOptions(target=self.target, **options))
        return result.trials

    def cli_run(self, root: Path, *args: str) -> subprocess.Popen[str]:
        return tracker_cli(root, "run", *args, *(["--target", self.target] if self.target else []))

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
        executor = make_executor(project, RunOptions(target=self.target))
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
