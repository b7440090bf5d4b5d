"""Regression tests for the trial lifecycle: leftover children, full disks, store selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import IN_CI, git
from tracker.errors import UsageError
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment


def _experiment(root: Path, name: str, script: str, extra: str = "") -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(script))
    (root / "experiments" / f"{name}.yaml").write_text(
        f"command: [{sys.executable!r}, {name}.py]\nseeds: [1]\n{extra}")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_run_returns_when_the_script_exits_even_if_a_child_holds_its_stdout(project_dir: Path) -> None:
    # on the old code tracker waited for the child (60 s) because it read the pipe to its end
    _experiment(project_dir, "leaves_child", """
        import os, subprocess, sys
        child = subprocess.Popen(["sleep", "60"])          # inherits stdout and stderr
        grandchild = subprocess.Popen(["setsid", "sleep", "60"], start_new_session=True)
        open(os.path.join(os.environ["TRACKER_TRIAL_DIR"], "pids"), "w").write(f"{child.pid} {grandchild.pid}")
        print("val/acc: 0.5", flush=True)
    """)
    started = time.monotonic()
    trial = run_experiment(Project.find(), "leaves_child", RunOptions()).trials[0]
    assert time.monotonic() - started < 15
    assert trial.status == "completed" and trial.metrics == {"val/acc": 0.5}
    pids = [int(p) for p in (project_dir / ".tracker/trials" / trial.id / "pids").read_text().split()]
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids), "the script's leftover children outlived the trial"


@pytest.fixture
def full_disk(project_dir: Path) -> Path:
    """The project's trial directories on a 2 MiB tmpfs (a real full disk, not a simulation)."""
    mount = project_dir.parent / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs under CI: {result.stderr.decode().strip()}")
        pytest.skip("mounting a small tmpfs needs root")
    state = project_dir / ".tracker"
    state.mkdir(exist_ok=True)
    (state / "trials").symlink_to(mount)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_the_trial_and_never_hangs(project_dir: Path, full_disk: Path) -> None:
    # on the old code the log-copy thread died with a traceback and the run hung with the trial running
    _experiment(project_dir, "chatty", """
        import sys
        line = "x" * 200
        while True:
            print("step: 1 loss: 0.5", line)
    """)
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "chatty")
    proc = subprocess.run([sys.executable, "-m", "tracker", "run", "chatty", "-q"], cwd=project_dir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    trial = Project.find().store.list_trials()[0]
    assert trial.status == "failed"
    assert trial.error == f"disk full while writing {project_dir / '.tracker/trials' / trial.id / 'stdout.log'}"
    assert Project.find().store.list_trials(status=["running", "queued"]) == []
    from tracker.trials import reset

    assert [t.status for t in reset(Project.find(), [trial.id])] == ["queued"]  # re-runnable


def test_store_comes_from_the_option_then_environment_then_tracker_yaml(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project_dir / "tracker.yaml").write_text((project_dir / "tracker.yaml").read_text()
                                              + "store: sqlite:///${STORE_DIR}/trials.db\n")
    monkeypatch.setenv("STORE_DIR", "shared")
    project = Project.find()
    assert project.store_url() == (f"sqlite:///{project_dir / 'shared/trials.db'}", "tracker.yaml")
    run_experiment(project, "base", RunOptions(seeds=[1], params={"lr": 0.1}))
    assert (project_dir / "shared/trials.db").exists() and not (project_dir / ".tracker/tracker.db").exists()
    monkeypatch.setenv("TRACKER_STORE", f"sqlite:///{project_dir / 'env.db'}")
    project = Project.find()
    assert project.store_url() == (f"sqlite:///{project_dir / 'env.db'}", "TRACKER_STORE")
    assert project.store.list_trials() == []
    from typer.testing import CliRunner

    from tracker.cli import app

    listed = CliRunner().invoke(app, ["--store", "sqlite:///shared/trials.db", "trials", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [t["seed"] for t in json.loads(listed.stdout)] == [1]  # the option wins over TRACKER_STORE
    assert len(json.loads(CliRunner().invoke(app, ["trials", "list", "--json"]).stdout)) == 0


def test_an_unset_variable_in_the_store_url_is_a_clear_error(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text((project_dir / "tracker.yaml").read_text()
                                              + "store: postgresql://me:${NO_SUCH_PW}@db/tracker\n")
    from tracker.errors import ConfigError

    with pytest.raises(ConfigError, match=r"refers to \$\{NO_SUCH_PW\}, which is not set"):
        Project.find().store_url()


def test_store_option_must_be_a_url(project_dir: Path) -> None:
    from typer.testing import CliRunner

    from tracker.cli import app

    result = CliRunner().invoke(app, ["--store", "trials.db", "trials", "list"])
    assert result.exit_code == 2 and "store URL like sqlite:///" in result.stderr


@pytest.mark.parametrize("url, message", [
    ("mysql://db.example/tracker", "no store for mysql:// URLs"),
    ("nonsense://x", "no store for nonsense:// URLs"),
])
def test_unknown_store_scheme_is_a_clear_error(project_dir: Path, url: str, message: str) -> None:
    (project_dir / "tracker.yaml").write_text((project_dir / "tracker.yaml").read_text() + f"store: {url}\n")
    with pytest.raises(UsageError, match=message):
        Project.find().store  # noqa: B018
    from typer.testing import CliRunner

    from tracker.cli import app

    result = CliRunner().invoke(app, ["trials", "list"])
    assert result.exit_code == 2 and "known schemes: postgres, postgresql, sqlite" in result.stderr


def test_store_must_be_a_url(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text((project_dir / "tracker.yaml").read_text() + "store: trials.db\n")
    from tracker.errors import ConfigError

    with pytest.raises(ConfigError, match="store must be a URL"):
        Project.find()


def test_read_commands_do_not_write_when_nothing_expires(project_dir: Path) -> None:
    import gc

    run_experiment(Project.find(), "base", RunOptions(seeds=[1], params={"lr": 0.1}))
    gc.collect()  # the run's connection closes (SQLite checkpoints its WAL then): not a read's write
    db = project_dir / ".tracker/tracker.db"
    before = (db.stat().st_mtime_ns, os.path.getsize(str(db) + "-wal") if Path(str(db) + "-wal").exists() else 0)
    from tracker import trials

    trials.list_trials(Project.find())
    trials.list_json(Project.find())
    trials.status(Project.find())
    after = (db.stat().st_mtime_ns, os.path.getsize(str(db) + "-wal") if Path(str(db) + "-wal").exists() else 0)
    assert before == after


def test_two_venvs_on_one_base_python_keep_their_own_packages(tmp_path: Path) -> None:
    # on the old code the probe cache was keyed by the resolved interpreter, shared by every venv
    from tracker import environment

    cache = tmp_path / "environments.json"
    found = {}
    for name in ("a", "b"):
        venv = tmp_path / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        dist = site / f"only_in_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: only-in-{name}\nVersion: 1.0\n")
        found[name] = environment.capture([str(venv / "bin" / "python"), "train.py"], cache)["packages"]
    assert "only-in-a" in found["a"] and "only-in-a" not in found["b"]
    assert "only-in-b" in found["b"]


def _dead_running_trial(project: Project) -> str:
    """A completed trial turned back into "running", owned by a process of this machine that is gone."""
    from tracker.execution import lifecycle
    from tracker.store import open_store

    run_experiment(project, "base", RunOptions(seeds=[1], params={"lr": 0.1}))
    proc = subprocess.Popen(["sleep", "30"])
    dead = {**lifecycle.owner(), "pid": proc.pid, "start": lifecycle.proc_start(proc.pid)}
    proc.kill()
    proc.wait()
    store = open_store(project.store_url()[0])  # a bare store: opening it expires nothing
    trial = store.list_trials()[0]
    store.delete([trial.id])
    store.add_trials([replace(trial, status="running", owner=dead, heartbeat=time.time(), lease=3600,
                              finished=None, exit_code=None)])
    assert store.get(trial.id).status == "running"
    return trial.id


@pytest.mark.parametrize("command", [["trials", "show", "{id}", "--json"], ["trials", "logs", "{id}"],
                                     ["trials", "tag", "{id}", "x"], ["trials", "note", "{id}", "n"],
                                     ["compare", "base"], ["export", "base", "--to", "out.csv"],
                                     ["sql", "SELECT 1"]])
def test_every_command_that_opens_the_store_sees_a_dead_running_trial_as_lost(
        project_dir: Path, command: list[str]) -> None:
    # on the old code only some commands expired trials: these left it "running" for good
    from tests.conftest import cli
    from tracker.store import open_store

    tid = _dead_running_trial(Project.find())
    cli(*[part.format(id=tid) for part in command])
    trial = open_store(Project.find().store_url()[0]).get(tid)
    assert trial.status == "lost" and "died" in (trial.error or "")


def test_trials_delete_removes_a_dead_running_trial_without_force(project_dir: Path) -> None:
    # on the old code: "trial ... is running (stop it first or pass --force)"
    from tests.conftest import cli

    tid = _dead_running_trial(Project.find())
    code, _, err = cli("trials", "delete", tid, "--yes")
    assert code == 0, err
    assert cli("trials", "show", tid)[0] == 2


def test_show_and_export_report_a_dead_running_trial_as_lost(project_dir: Path) -> None:
    from tests.conftest import cli

    tid = _dead_running_trial(Project.find())
    assert json.loads(cli("trials", "show", tid, "--json")[1])["status"] == "lost"
    assert cli("export", "base", "--to", "out.csv")[0] == 0
    assert ",lost," in (project_dir / "out.csv").read_text()


def test_cancelling_what_never_started_leaves_a_claimed_trial_running(project_dir: Path) -> None:
    from tracker.execution import lifecycle
    from tracker.store import Trial, now

    store = Project.find().store
    store.add_trials([Trial(id=i, experiment="base", status="queued", seed=1, params={}, created=now())
                      for i in ("waiting", "claimed")])
    store.transition("claimed", "running", expected=["queued"])
    assert lifecycle.cancel_unstarted(store, ["waiting", "claimed"], "not started: no host") == ["waiting"]
    assert store.get("waiting").status == "cancelled" and store.get("waiting").error == "not started: no host"
    assert store.get("claimed").status == "running"
