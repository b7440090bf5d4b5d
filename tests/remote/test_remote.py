"""Remote trials against real sshd hosts gpu1 (127.0.0.2) and gpu2 (127.0.0.3)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import git
from tests.remote.conftest import restart_hosts, sshd_pids
from tracker.cli import app
from tracker.errors import HostKeyError, RemoteError
from tracker.execution.base import Job, Reporter
from tracker.project import Project
from tracker.remote import connection, control, hosts, sync
from tracker.remote.executor import workspace
from tracker.runs import RunOptions, run_experiment

pytestmark = pytest.mark.ssh
runner = CliRunner()


def run(project: Project, remotes: str, reporter: Reporter | None = None, **kw: object):
    return run_experiment(project, kw.pop("name", "base"), RunOptions(remote=remotes.split(","), **kw), reporter)


class _Messages(Reporter):
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def message(self, text: str) -> None:
        self.into.append(text)


def test_fan_out_over_two_hosts(remote_project: Project) -> None:
    result = run(remote_project, "gpu1,gpu2")
    assert [t.status for t in result.trials] == ["completed"] * 4, [t.error for t in result.trials]
    assert {t.host for t in result.trials} == {"gpu1", "gpu2"}
    for t in result.trials:
        assert t.executor == "ssh" and 0 < t.metrics["val/acc"] < 1
        assert json.loads((remote_project.paths.trial_dir(t.id) / "model.json").read_text())["seed"] == t.seed
        assert [p.step for p in remote_project.store.metrics(t.id, "train/loss")] == [0, 1, 2]
        assert "val/acc" in (remote_project.paths.trial_dir(t.id) / "stdout.log").read_text()


def test_slots_get_their_own_gpu(remote_project: Project) -> None:
    data = remote_project.raw()
    data["remotes"]["gpu1"].update(slots=2, gpus=[3, 5])
    remote_project.save_raw(data)
    (remote_project.root / "experiments/gpus.yaml").write_text(
        "command: [sh, -c, 'echo \"cuda: $CUDA_VISIBLE_DEVICES\"; exec python3 train.py \"$@\"', sh]\n"
        "params: {epochs: 1, sleep: 0.5}\ngrid: {lr: [0.1, 0.2, 0.3, 0.4]}\nseeds: 1\n")
    git(remote_project.root, "add", "-A")
    git(remote_project.root, "commit", "-qm", "gpus")
    trials = run(Project.find(), "gpu1", name="gpus").trials
    assert [t.status for t in trials] == ["completed"] * 4, [t.error for t in trials]
    assert {t.metrics["cuda"] for t in trials} == {3, 5}  # both slots ran, each with its own GPU
    assert all(t.metrics["cuda"] == t.handle["gpu"] for t in trials)


def test_dirty_tree_runs_as_it_is(remote_project: Project) -> None:
    root = remote_project.root
    with (root / "train.py").open("a") as fh:
        fh.write("print('dirty: 1')\n")
    (root / "helper.py").write_text("X = 1\n")  # untracked, not ignored: goes along
    trial = run(remote_project, "gpu1", seeds=[1], params={"lr": 0.1}).trials[0]
    assert trial.status == "completed" and trial.dirty and trial.metrics["dirty"] == 1
    code_dir = Path(trial.handle["code_dir"])
    assert code_dir.name == git(root, "rev-parse", f"{trial.snapshot}^{{tree}}")[:12]
    assert (code_dir / "helper.py").read_text() == "X = 1\n"
    # a re-run from the same dirty tree has a new snapshot commit but the same files: nothing to sync
    messages: list[str] = []
    again = run(remote_project, "gpu1", seeds=[2], params={"lr": 0.1}, reporter=_Messages(messages)).trials[0]
    assert again.status == "completed" and again.snapshot != trial.snapshot
    assert again.handle["code_dir"] == str(code_dir)
    assert any("already there" in m for m in messages), messages


def test_parameter_with_shell_metacharacters_arrives_intact(remote_project: Project, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    note = f"'; touch {canary}; echo $(touch {canary}) `touch {canary}` \" && rm -rf ~ #"
    trial = run(remote_project, "gpu1", seeds=[1], params={"lr": 0.1, "note": note}).trials[0]
    assert trial.status == "completed", trial.error
    assert json.loads((remote_project.paths.trial_dir(trial.id) / "model.json").read_text())["note"] == note
    assert not canary.exists()


def test_param_with_newline_arrives_intact_over_ssh(remote_project: Project) -> None:
    from tests.core.test_run import ECHO_SCRIPT

    root = remote_project.root
    (root / "echo.py").write_text(ECHO_SCRIPT)
    (root / "experiments/echo.yaml").write_text("command: [python3, echo.py]\nseeds: [1]\nseed_flag: null\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "echo")
    note = "first line\nsecond line # not a comment"
    result = runner.invoke(app, ["run", "echo", "--remote", "gpu1", "-p", f"note={note}", "-q"])
    assert result.exit_code == 0, result.stderr
    [trial] = Project.find().store.list_trials()
    seen = json.loads((remote_project.paths.trial_dir(trial.id) / "seen.json").read_text())
    assert seen == {"argv": [f"--note={note}"], "env": note, "params": {"note": note}}


def test_unchanged_resync_moves_nothing_and_delta_moves_only_changes(remote_project: Project) -> None:
    root = remote_project.root
    for i in range(50):
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / f"f{i}.txt").write_text(f"file {i}\n" * 200)
    (root / "notes.ipynb").write_text("{}")
    (root / ".trackerignore").write_text("*.ipynb\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data")
    head = git(root, "rev-parse", "HEAD").strip()[:12]
    ws = workspace(remote_project, hosts.resolve(remote_project, "gpu1"))
    first = sync.sync_code(ws, root, head)
    assert first.method == "rsync" and first.files == 55 and first.bytes_sent > 50 * 1000
    assert not Path(first.path, "notes.ipynb").exists() and not Path(first.path, ".git").exists()
    again = sync.sync_code(ws, root, head)
    assert (again.method, again.bytes_sent) == ("unchanged", 0)
    # the same files into a new code directory: rsync --link-dest and the SFTP manifest send no file data
    same = sync.sync_code(ws, root, "same-rsync")
    assert (same.method, same.files, same.bytes_sent) == ("rsync", 55, 0)
    same = sync.sync_code(ws, root, "same-sftp", use_rsync=False)
    assert (same.method, same.files, same.bytes_sent) == ("sftp", 55, 0)
    assert Path(same.path, "data/f1.txt").stat().st_ino == Path(first.path, "data/f1.txt").stat().st_ino
    # a new commit changing one file: rsync --link-dest sends only that file's data
    (root / "data" / "f0.txt").write_text("changed\n")
    git(root, "commit", "-qam", "one change")
    second = sync.sync_code(ws, root, git(root, "rev-parse", "HEAD").strip()[:12])
    assert second.bytes_sent == len("changed\n")
    assert Path(second.path, "data/f0.txt").read_text() == "changed\n"
    assert Path(second.path, "data/f1.txt").stat().st_ino == Path(first.path, "data/f1.txt").stat().st_ino
    # the SFTP fallback (no rsync on one end) also sends only what changed
    (root / "data" / "f2.txt").write_text("sftp change\n")
    git(root, "commit", "-qam", "another")
    third = sync.sync_code(ws, root, git(root, "rev-parse", "HEAD").strip()[:12], use_rsync=False)
    assert third.method == "sftp" and third.bytes_sent == len("sftp change\n")
    assert Path(third.path, "data/f2.txt").read_text() == "sftp change\n"
    assert Path(third.path, "train.py").read_text() == (root / "train.py").read_text()


def test_environment_is_built_once_and_reused(remote_project: Project) -> None:
    data = remote_project.raw()
    data["remotes"]["gpu1"]["setup"] = ['echo built >> "$VIRTUAL_ENV/builds.txt"']
    remote_project.save_raw(data)
    (remote_project.root / "requirements.txt").write_text("# no packages needed\n")
    git(remote_project.root, "add", "-A")
    git(remote_project.root, "commit", "-qm", "env")
    host = hosts.resolve(remote_project, "gpu1")
    ws = workspace(remote_project, host)
    code = sync.sync_code(ws, remote_project.root, "envtest")
    first = ws.ensure_env(remote_project.root, code.path)
    second = ws.ensure_env(remote_project.root, code.path)
    assert first.built and not second.built and first.path == second.path
    assert Path(first.path, "builds.txt").read_text() == "built\n"
    trial = run(remote_project, "gpu1", seeds=[3], params={"lr": 0.1}).trials[0]
    assert trial.status == "completed"
    assert Path(first.path, "builds.txt").read_text() == "built\n"  # the run reused it
    # a changed requirements file means a new environment
    (remote_project.root / "requirements.txt").write_text("# still nothing, but different\n")
    third = ws.ensure_env(remote_project.root, code.path)
    assert third.built and third.key != first.key


def test_failing_setup_shows_the_remote_output(remote_project: Project) -> None:
    data = remote_project.raw()
    data["remotes"]["gpu1"]["setup"] = ["echo 'no such package: torchh' >&2; exit 3"]
    remote_project.save_raw(data)
    git(remote_project.root, "commit", "-qam", "bad setup")
    result = runner.invoke(app, ["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1"])
    assert result.exit_code == 1
    assert "setting up the environment on gpu1 failed" in result.stderr and "no such package: torchh" in result.stderr
    [trial] = Project.find().store.list_trials()
    assert trial.status == "cancelled" and trial.started is None  # nothing was started
    assert trial.error.startswith("not started: setting up the environment on gpu1 failed")


def test_unknown_and_changed_host_keys_are_refused_then_trusted(remote_project: Project, tmp_path: Path,
                                                               ssh_hosts: dict[str, str]) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    data = remote_project.raw()
    data["remotes"]["gpu1"]["known_hosts"] = str(empty)
    remote_project.save_raw(data)
    connection._pool.clear()
    result = runner.invoke(app, ["remote", "check", "gpu1"])
    assert result.exit_code == 1 and "is not known" in result.stdout and "tracker remote trust gpu1" in result.stdout
    result = runner.invoke(app, ["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1"])
    assert result.exit_code == 1 and "tracker remote trust gpu1" in result.stderr
    assert "Traceback" not in result.stderr
    [trial] = Project.find().store.list_trials()  # refused before anything started: cancelled, with the reason
    assert (trial.status, trial.started, trial.host) == ("cancelled", None, None)
    assert trial.error.startswith("not started: the host key of gpu1 (127.0.0.2:") and "is not known" in trial.error
    # trusting needs a terminal or --yes; then the key is recorded and checks pass
    assert runner.invoke(app, ["remote", "trust", "gpu1"]).exit_code == 2
    result = runner.invoke(app, ["remote", "trust", "gpu1", "--yes"])
    assert result.exit_code == 0 and "SHA256:" in result.stderr
    assert "[127.0.0.2]:" in empty.read_text()
    assert runner.invoke(app, ["remote", "check", "gpu1"]).exit_code == 0
    # gpu2's key presented for gpu1's address: a changed key, refused loudly
    gpu2_key = next(line for line in Path(ssh_hosts["SSH_KNOWN_HOSTS"]).read_text().splitlines() if "127.0.0.3" in line)
    empty.write_text(gpu2_key.replace("[127.0.0.3]", "[127.0.0.2]") + "\n")
    connection._pool.clear()
    with pytest.raises(HostKeyError, match="CHANGED"):
        connection.connect(hosts.resolve(Project.find(), "gpu1"))
    result = runner.invoke(app, ["run", "base", "--remote", "gpu1", "--seed", "2", "-p", "lr=0.1"])
    assert result.exit_code == 1 and "has CHANGED" in result.stderr
    changed = Project.find().store.list_trials(status="cancelled")[-1]
    assert changed.seed == 2 and changed.error.startswith("not started: the host key of gpu1")
    result = runner.invoke(app, ["remote", "trust", "gpu1", "--yes"])
    assert result.exit_code == 1 and "DIFFERENT key" in result.stderr


def test_ssh_config_alias_is_honoured(remote_project: Project, ssh_hosts: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_SSH_CONFIG", ssh_hosts["SSH_CONFIG"])
    data = remote_project.raw()
    del data["remotes"]["gpu2"]
    remote_project.save_raw(data)
    host = hosts.resolve(Project.find(), "gpu2")  # not in tracker.yaml: found as a Host alias
    assert (host.hostname, host.port, host.user) == ("127.0.0.3", int(ssh_hosts["SSH_PORT"]), ssh_hosts["SSH_USER"])
    assert host.key_files == (ssh_hosts["SSH_KEY"],)
    assert ssh_hosts["SSH_KNOWN_HOSTS"] in host.known_hosts
    result = runner.invoke(app, ["remote", "check", "gpu2", "--json"])
    assert result.exit_code == 0 and all(c["ok"] for c in json.loads(result.stdout))


def _tracker(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=cwd, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_detached_trial_survives_killing_the_client_and_is_reattached(remote_project: Project) -> None:
    root = remote_project.root
    proc = _tracker(["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1", "-p", "sleep=3"], root)
    store = Project.load(root).store
    _wait(lambda: [t.status for t in store.list_trials()] == ["running"]
          and (root / ".tracker/trials" / store.list_trials()[0].id / "stdout.log").exists())
    proc.kill()
    proc.communicate()
    trial = store.list_trials()[0]
    assert trial.status == "running"  # the client is gone, the trial is not
    states = control.status(Project.load(root))
    assert [(s.trial.id, s.state) for s in states] == [(trial.id, "running")]
    result = runner.invoke(app, ["remote", "attach"])
    assert result.exit_code == 0, result.stderr
    final = Project.load(root).store.get(trial.id)
    assert final.status == "completed" and final.metrics["val/acc"] > 0
    assert (root / ".tracker/trials" / trial.id / "model.json").exists()
    assert "1 trial(s) finished" in result.stderr


def test_dead_remote_process_is_marked_lost_by_sync(remote_project: Project,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tracker.remote.executor.STALE_SECONDS", 0.5)
    root = remote_project.root
    proc = _tracker(["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1", "-p", "sleep=30"], root)
    store = Project.load(root).store
    _wait(lambda: [t.status for t in store.list_trials()] == ["running"] and store.list_trials()[0].pid)
    proc.kill()
    proc.communicate()
    trial = store.list_trials()[0]
    pids = json.loads(Path(trial.handle["dir"], "pid.json").read_text())
    os.kill(pids["monitor"], signal.SIGKILL)  # the host "rebooted": monitor and command are gone
    os.killpg(pids["pid"], signal.SIGKILL)
    _wait(lambda: [s.state for s in control.status(Project.load(root))] == ["dead"])
    time.sleep(0.6)  # the heartbeat goes stale
    result = runner.invoke(app, ["remote", "sync"])
    assert result.exit_code == 1, result.stderr
    final = Project.load(root).store.get(trial.id)
    assert final.status == "lost" and "died without an exit code" in final.error


def test_logs_follow_and_stop_a_remote_trial(remote_project: Project) -> None:
    root = remote_project.root
    proc = _tracker(["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1", "-p", "sleep=30"], root)
    store = Project.load(root).store
    _wait(lambda: store.list_trials() and store.list_trials()[0].status == "running"
          and "sleeping" in (root / ".tracker/trials" / store.list_trials()[0].id / "stdout.log").read_text()
          if (store.list_trials() and (root / ".tracker/trials" / store.list_trials()[0].id / "stdout.log").exists())
          else False)
    trial = store.list_trials()[0]
    follower = subprocess.Popen([sys.executable, "-m", "tracker", "trials", "logs", trial.id, "--follow"],
                                cwd=root, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result = runner.invoke(app, ["trials", "stop", trial.id])
    assert result.exit_code == 0, result.stderr
    out, _ = follower.communicate(timeout=30)
    assert "sleeping" in out  # --follow printed the remote output and ended with the trial
    proc.communicate(timeout=30)
    assert Project.load(root).store.get(trial.id).status == "cancelled"


def test_host_going_down_mid_run(remote_project: Project, ssh_hosts: dict[str, str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tracker.remote.executor.RECONNECT_SECONDS", 2.0)
    project = remote_project
    killed = threading.Event()

    def kill_gpu2_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = [t for t in project.store.list_trials(status="running") if t.host == "gpu2" and t.pid]
            if running:
                for pid in sshd_pids(ssh_hosts, "gpu2"):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_gpu2_when_running)
    killer.start()
    try:
        result = run(project, "gpu1,gpu2", params={"sleep": 1.5}, grid={"lr": [0.1, 0.2, 0.3]})
    finally:
        killer.join()
        time.sleep(2.5)  # zombie reaping, see tests/infra/README.md
        restart_hosts(ssh_hosts)
    assert killed.is_set()
    by_host: dict[str, list[str]] = {}
    for t in result.trials:
        by_host.setdefault(t.host or "none", []).append(t.status)
    assert set(by_host["gpu1"]) == {"completed"} and len(by_host["gpu1"]) >= 4
    assert by_host["gpu2"] and set(by_host["gpu2"]) <= {"lost", "failed"}
    lost = [t for t in result.trials if t.status == "lost"]
    assert lost and "lost contact with gpu2" in lost[0].error
    # the host is back: attach collects what finished there; the rest can be reset and re-run
    connection._pool.clear()
    recovered = control.attach(Project.find())
    assert {t.id for t in recovered} == {t.id for t in lost}
    assert all(t.status == "completed" for t in recovered)


def test_remote_cli_add_list_remove(remote_project: Project) -> None:
    result = runner.invoke(app, ["remote", "add", "gpu9", "--host", "10.9.9.9", "--slots", "2", "--gpus", "0,1",
                                 "--env", "OMP_NUM_THREADS=1"])
    assert result.exit_code == 0, result.stderr
    remotes = json.loads(runner.invoke(app, ["remote", "list", "--json"]).stdout)
    assert remotes["gpu9"]["gpus"] == [0, 1] and remotes["gpu9"]["env"] == {"OMP_NUM_THREADS": "1"}
    assert runner.invoke(app, ["remote", "add", "gpu9", "--host", "x"]).exit_code == 2
    bad = runner.invoke(app, ["remote", "add", "gpu8", "--host", "x", "--slots", "3", "--gpus", "0"])
    assert bad.exit_code == 2 and "3 slots need at least 3 gpus" in bad.stderr
    assert runner.invoke(app, ["remote", "remove", "gpu9"]).exit_code == 0
    assert "gpu9" not in json.loads(runner.invoke(app, ["remote", "list", "--json"]).stdout)
    unknown = runner.invoke(app, ["run", "base", "--remote", "nope"])
    assert unknown.exit_code == 2 and "no remote named 'nope'" in unknown.stderr


def test_unreachable_host_is_a_clear_error(remote_project: Project) -> None:
    data = remote_project.raw()
    data["remotes"]["gpu1"]["port"] = 1  # nothing listens there
    remote_project.save_raw(data)
    connection._pool.clear()
    result = runner.invoke(app, ["run", "base", "--remote", "gpu1", "--seed", "1", "-p", "lr=0.1"])
    assert result.exit_code == 1 and "cannot connect to gpu1 (127.0.0.2:1)" in result.stderr
    [trial] = Project.find().store.list_trials()
    assert (trial.status, trial.started) == ("cancelled", None)
    assert trial.error.startswith("not started: cannot connect to gpu1 (127.0.0.2:1)")


def test_a_host_dying_before_a_trial_starts_gives_a_clean_message(remote_project: Project,
                                                                   ssh_hosts: dict[str, str]) -> None:
    from tracker.execution.driver import Driver
    from tracker.remote.executor import SSHExecutor
    from tracker.runs import create_trials, plan

    planned = plan(remote_project, ["base"], RunOptions(seeds=[1], params={"lr": 0.1}))
    _, made = create_trials(remote_project, planned.specs, planned.configs, planned.code, {"base": None}, "ssh")
    messages: list[str] = []
    driver = Driver(remote_project, SSHExecutor(remote_project, remotes=["gpu1"]), _Messages(messages))
    driver.executor.prepare([Job(t, driver.config(t), 1.0) for t in made], driver.reporter)  # synced, env ready
    pooled = connection.connect(hosts.resolve(remote_project, "gpu1"))
    try:
        for pid in sshd_pids(ssh_hosts, "gpu1"):  # the host goes down before the trial is submitted
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _wait(lambda: not pooled.alive, 10)
        with pytest.raises(RemoteError, match=r"^lost the connection to gpu1 \(127\.0\.0\.2:"):
            pooled.sftp()  # what a dropped connection says, instead of paramiko's internals
        connection.drop(pooled.host)
        with pytest.raises(RemoteError, match=r"^lost the connection to gpu1 "):
            pooled.run("true")
        driver.run(made)
    finally:
        time.sleep(2.5)  # zombie reaping, see tests/infra/README.md
        restart_hosts(ssh_hosts)
    [trial] = remote_project.store.list_trials()
    assert trial.status == "failed" and trial.started is None
    assert "cannot connect to gpu1 (127.0.0.2:" in trial.error, trial.error
    assert any(m.startswith("gpu1: dropped from this run: cannot connect to gpu1") for m in messages), messages
    assert not any("NoneType" in m or "session not active" in m for m in [*messages, trial.error])


def test_large_sync_reports_progress(remote_project: Project) -> None:
    root = remote_project.root
    (root / "many").mkdir()
    for i in range(600):
        (root / "many" / f"m{i}.py").write_text(f"X = {i}\n" * 50)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "many files")
    calls: list[tuple[int, int]] = []
    ws = workspace(remote_project, hosts.resolve(remote_project, "gpu1"))
    result = sync.sync_code(ws, root, git(root, "rev-parse", "HEAD").strip()[:12],
                            progress=lambda done, total: calls.append((done, total)))
    total = sum((root / f).stat().st_size for f in sync.file_list(root))
    assert result.method == "rsync" and calls and calls[-1] == (total, total)
    assert all(0 <= d <= t == total for d, t in calls)
    calls.clear()
    sync.sync_code(ws, root, "sftp-copy", use_rsync=False, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) >= 2 and calls[-1] == (total, total)  # linked bytes count as done


def test_a_new_commit_synced_from_the_spare_drops_deleted_files_and_keeps_the_old_directory(
        remote_project: Project) -> None:
    root = remote_project.root
    (root / "pkg").mkdir()
    for name in ("keep.py", "edit.py", "gone.py"):
        (root / "pkg" / name).write_text(f"# {name}\n")
    (root / "olddir").mkdir()
    (root / "olddir" / "only.py").write_text("x = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "three files")
    ws = workspace(remote_project, hosts.resolve(remote_project, "gpu1"))
    first = sync.sync_code(ws, root, git(root, "rev-parse", "HEAD").strip()[:12])
    spare = Path(first.path).parent / sync.SPARE
    deadline = time.monotonic() + 30
    while not spare.is_dir() and time.monotonic() < deadline:  # made in the background after a sync
        time.sleep(0.05)
    spare_inode = spare.stat().st_ino
    (root / "pkg" / "edit.py").write_text("# edited\n")
    git(root, "rm", "-rq", "pkg/gone.py", "olddir")
    git(root, "commit", "-qam", "edit one, delete two")
    second = sync.sync_code(ws, root, git(root, "rev-parse", "HEAD").strip()[:12])
    assert Path(second.path).stat().st_ino == spare_inode  # the spare became the new code directory
    assert second.bytes_sent == len("# edited\n")
    new, old = Path(second.path), Path(first.path)
    assert (new / "pkg/edit.py").read_text() == "# edited\n" and (old / "pkg/edit.py").read_text() == "# edit.py\n"
    assert not (new / "pkg/gone.py").exists() and not (new / "olddir").exists()
    assert (old / "pkg/gone.py").exists() and (old / "olddir/only.py").exists()
    assert (new / "pkg/keep.py").stat().st_ino == (old / "pkg/keep.py").stat().st_ino  # a hard link, no copy
    assert sorted(p.name for p in new.parent.iterdir() if ".tmp" in p.name) == []
    assert not (new / sync.LISTING).exists() and (new / sync.SYNCED).exists()
def test_trust_of_a_port_that_is_not_ssh_is_one_line(project_dir: Path) -> None:
    """paramiko logs a failed handshake with its traceback; the user sees one line and a hint."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    assert runner.invoke(app, ["remote", "add", "web", "--host", "127.0.0.1", "--port", str(port)]).exit_code == 0
    done = subprocess.run([sys.executable, "-m", "tracker", "remote", "trust", "web", "--yes"], cwd=project_dir,
                          capture_output=True, text=True, timeout=60)
    server.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr and "paramiko" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: cannot read the host key of web (127.0.0.1:{port})")
    assert "is an SSH server listening" in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_removing_the_last_remote_leaves_no_empty_section(project_dir: Path) -> None:
    before = (project_dir / "tracker.yaml").read_text()
    assert runner.invoke(app, ["remote", "add", "gpu9", "--host", "10.9.9.9"]).exit_code == 0
    assert runner.invoke(app, ["remote", "remove", "gpu9"]).exit_code == 0
    after = (project_dir / "tracker.yaml").read_text()
    assert "\nremotes:" not in after and yaml.safe_load(after) == yaml.safe_load(before)
