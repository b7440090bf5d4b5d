"""Targets: named places trials run in tracker.yaml, one option to choose them, and third-party types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tests.core.test_plugins import _plugin
from tracker.config import ProjectConfig, parse_model
from tracker.errors import ConfigError, UsageError
from tracker.execution import targets
from tracker.project import Project


def _config(text: str) -> ProjectConfig:
    return parse_model(textwrap.dedent(text), ProjectConfig, "tracker.yaml")


def test_targets_have_a_type_and_its_own_options() -> None:
    config = _config("""\
        remotes:
          gpu1: {host: 10.0.0.1, slots: 2}
        targets:
          cluster: {type: slurm, partition: gpu, time: '2:00:00', gpus: 1}
          box: {host: 10.0.0.2}
        """)
    found = config.all_targets()
    assert {n: t.type for n, t in found.items()} == {"gpu1": "ssh", "cluster": "slurm", "box": "ssh"}
    assert found["cluster"].options.model_dump(exclude_unset=True) == {"partition": "gpu", "time": "2:00:00",
                                                                      "gpus": "1"}
    assert sorted(config.hosts()) == ["box", "gpu1"]  # SSH targets are hosts wherever a remote is named


@pytest.mark.parametrize(("text", "message"), [
    ("targets:\n  cluster:\n    type: slurm\n    partion: gpu\n",
     "tracker.yaml:4: unknown key 'partion' (valid keys here: type, partition, time, gpus, cpus, mem, "
     "array_parallel)"),
    ("targets:\n  box:\n    hots: a\n", "tracker.yaml:3: unknown key 'hots' (valid keys here: type, host,"),
    ("targets:\n  cluster:\n    type: slurm\n    time: 1:00:00\n",
     "tracker.yaml:4: targets.cluster.time: write the time limit in quotes"),
    ("targets:\n  cluster:\n    type: kube\n",
     "tracker.yaml:2: targets.cluster: unknown target type 'kube' (one of: local, slurm, ssh)"),
    ("remotes:\n  a: {host: x}\ntargets:\n  a: {type: slurm}\n", "'a' is both a remote and a target"),
])
def test_a_bad_target_is_one_line_at_its_place(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(text)
    assert message in str(info.value)


def test_resolve_names_an_entry_a_type_or_ssh_hosts(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text("name: demo\nseeds: [11, 22]\nremotes:\n  gpu1: {host: a}\n"
                                              "targets:\n  cluster: {type: slurm, time: '1:00'}\n")
    project = Project.find()
    assert (targets.resolve(project).type, targets.resolve(project).kind) == ("local", "executor")
    cluster = targets.resolve(project, "cluster", {"time": "2:00"})
    assert (cluster.kind, cluster.options.model_dump(exclude_unset=True)) == ("launcher", {"time": "2:00"})
    assert targets.resolve(project, "gpu1,other").entries == ("gpu1", "other")
    with pytest.raises(UsageError, match="only SSH hosts can be named together"):
        targets.resolve(project, "gpu1,cluster")
    with pytest.raises(UsageError, match="unknown target 'nope'") as info:
        targets.resolve(project, "nope")
    assert "cluster, gpu1" in (info.value.hint or "")
    with pytest.raises(UsageError, match="takes no option 'time'"):
        targets.resolve(project, "local", {"time": "1:00"})


def test_target_option_on_run(project_dir: Path) -> None:
    code, _, err = cli("run", "base", "--target", "local", "--seeds", "1", "--dry-run")
    assert code == 0 and "would run on" not in err, err
    code, _, err = cli("run", "base", "--remote", "gpu1,gpu2", "--seeds", "1", "--dry-run")
    assert code == 0 and "they would run on gpu1,gpu2 (ssh)" in err, err
    code, _, err = cli("run", "base", "--target", "nope")
    assert code == 2 and "error: unknown target 'nope'" in err
    code, _, err = cli("run", "base", "--target", "local", "--remote", "gpu1")
    assert code == 2 and "--target and --remote both say where the trials run" in err
    code, _, err = cli("run", "base", "--target", "local", "--time", "1:00")
    assert code == 2 and "--time applies to SLURM runs" in err
    from tracker.runs import RunOptions, make_executor

    with pytest.raises(UsageError, match="starts workers for a queue; this command drives its trials itself"):
        make_executor(Project.find(), RunOptions(target="slurm"))  # what optimize and test refuse


EXECUTOR = """
    import os
    from tracker.execution.local import LocalExecutor
    from tracker.execution.targets import TargetOptions

    class Options(TargetOptions):
        greeting: str = "hello"

    class Plugin(LocalExecutor):
        '''A third-party executor: local trials with a variable of its own.'''
        name = "greeter"
        options = Options

        def __init__(self, project, greeting="hello", **options):
            super().__init__(project, **options)
            os.environ["GREETING"] = greeting
"""

LAUNCHER = """
    import os, subprocess, sys, uuid
    from tracker.execution.targets import BaseLauncher, Launched, TargetOptions
    from tracker.queue.submit import submit

    class Options(TargetOptions):
        workers: int = 1

    class Plugin(BaseLauncher):
        '''A third-party launcher: worker processes on this machine, each a "job".'''
        name = "procs"
        options = Options

        def launch(self, names, run, *, max_attempts=None, reporter=None):
            queue = "procs-" + uuid.uuid4().hex[:8]
            result = submit(self.project, names, run, queue=queue, max_attempts=max_attempts,
                            reporter=reporter, executor=self.name)
            shape = f"{self.settings.workers} worker process(es)"
            if run.dry_run or not result.trials:
                return Launched(None, queue, [], result.skipped, result.specs,
                                plan={"workers": self.settings.workers}, summary=shape)
            jobs = []
            for i in range(self.settings.workers):
                proc = subprocess.Popen([sys.executable, "-m", "tracker", "worker", "--queue", queue,
                                         "--idle-exit", "0"], env={**os.environ, "PROCS_JOB": str(i)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                jobs.append((str(proc.pid), 1))
            return Launched(result.run_id, queue, result.trials, result.skipped, result.specs, jobs,
                            summary=shape)

        def job(self, trial):
            return f"process {trial.handle['procs']['job']}" if "procs" in trial.handle else None

        def state(self, trial):
            return "waiting for a worker" if trial.status == "queued" else "done"

        @classmethod
        def current_job(cls):
            return {"job": os.environ["PROCS_JOB"]} if "PROCS_JOB" in os.environ else None
"""


def _tracker(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "tracker", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_third_party_target_types_run_trials_from_the_cli(project_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.execution import registry
    from tracker.plugins import Registry

    site = tmp_path / "site"
    _plugin(site, "tracker.executors", "greeter", "tracker_greeter", EXECUTOR)
    _plugin(site, "tracker.launchers", "procs", "tracker_procs", LAUNCHER)
    monkeypatch.syspath_prepend(str(site))  # this process reads the project too
    monkeypatch.setattr(registry, "executors", Registry("executor", registry.BaseExecutor,
                                                        registry.ENTRY_POINT_GROUP, registry.BUILTIN))
    monkeypatch.setattr(targets, "launchers", Registry("launcher", targets.BaseLauncher, targets.LAUNCHER_GROUP,
                                                       targets.BUILTIN_LAUNCHERS))
    (project_dir / "tracker.yaml").write_text(textwrap.dedent("""\
        name: demo
        seeds: [11, 22, 33]
        targets:
          hi: {type: greeter, greeting: bonjour}
          pool: {type: procs, workers: 2}
        """))
    (project_dir / "train.py").write_text(textwrap.dedent("""\
        import json, os, pathlib
        print("val/acc:", len(os.environ.get("GREETING", "worker")))
        pathlib.Path(os.environ["TRACKER_TRIAL_DIR"], "model.json").write_text(json.dumps({"lr": 0, "seed": 0}))
        """))
    git(project_dir, "commit", "-qam", "plugins")

    done = _tracker(site, "run", "base", "--target", "hi", "--seeds", "1", "-p", "lr=0.1", "--json")
    assert done.returncode == 0, done.stderr
    [trial] = json.loads(done.stdout)
    assert (trial["status"], trial["metrics"]["val/acc"]) == ("completed", len("bonjour"))

    plan = _tracker(site, "run", "base", "--target", "pool", "--seeds", "2", "-p", "lr=0.2", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert {k: len(v) if isinstance(v, list) else v for k, v in json.loads(plan.stdout).items()} == \
        {"trials": 2, "skipped": 0, "workers": 2}
    launched = _tracker(site, "run", "base", "--target", "pool", "--seeds", "2", "-p", "lr=0.2")
    assert launched.returncode == 0, launched.stderr
    assert "as 2 worker process(es)" in launched.stderr and len(launched.stdout.split()) == 2
    project = Project.find()
    deadline = time.monotonic() + 60
    while {t.status for t in project.store.list_trials()} & {"queued", "running"}:
        assert time.monotonic() < deadline, "the worker processes did not run the trials"
        time.sleep(0.3)
    assert {t.status for t in project.store.list_trials()} == {"completed"}
    ran = [t for t in project.store.list_trials() if "procs" in t.handle]  # the job ids, from the worker
    assert len(ran) == 2
    shown = _tracker(site, "trials", "show", ran[0].id)
    assert shown.returncode == 0 and f"procs       process {ran[0].handle['procs']['job']}: done" in shown.stdout

    (project_dir / "tracker.yaml").write_text("name: demo\ntargets:\n  hi:\n    type: greeter\n    greting: x\n")
    bad = _tracker(site, "run", "base", "--target", "hi")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: tracker.yaml:5: unknown key 'greting' (valid keys here: type, greeting")
