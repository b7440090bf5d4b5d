"""The work queue end to end: trials queued by one command, claimed and run by worker processes,
with real processes, signals and git checkouts (two checkouts of one repository stand for two machines)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import cli, git, make_project
from tracker.errors import UsageError
from tracker.project import Project
from tracker.queue.status import queue_status
from tracker.queue.submit import submit
from tracker.queue.worker import WorkerOptions, run_worker
from tracker.runs import RunOptions, run_experiment

LOGGED = textwrap.dedent("""\
    command: [sh, -c, 'echo "$TRACKER_TRIAL_ID" >> "$TRACKER_PROJECT_DIR/../ids.log"; echo "acc: 0.5"']
    params: {i: 0}
    seeds: 1
    """)


def worker_proc(root: Path, *args: str, store: str | None = None) -> subprocess.Popen[str]:
    """A ``tracker worker`` process in checkout ``root`` (as on another machine)."""
    env = {**os.environ, **({"TRACKER_STORE": store} if store else {})}
    return subprocess.Popen([sys.executable, "-m", "tracker", "worker", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_queued_trials_wait_owned_by_nobody_and_a_worker_runs_them(project_dir: Path) -> None:
    proj = Project.find()
    result = submit(proj, ["base"], RunOptions())
    assert len(result.trials) == 4 and result.queue == "default"
    for t in proj.store.list_trials():
        assert (t.status, t.queue, t.owner, t.heartbeat, t.max_attempts, t.attempts) == ("queued", "default", {},
                                                                                         None, 3, 0)
        assert proj.store.blob(t.extra["config_sha256"]) is not None
        # its directory is made by the worker that claims it (a directory made here after the trial became
        # claimable raced a worker clearing it: a distributed search's ask crashed renaming trial.json)
        assert not proj.paths.trial_dir(t.id).exists()
    assert proj.store.expire(at=time.time() + 10**6) == ([], [])  # nobody owns a waiting trial: it never expires
    done = run_worker(proj, WorkerOptions(idle_exit=0))
    assert sorted(done.trials) == sorted(t.id for t in result.trials)
    for t in proj.store.list_trials():
        assert t.status == "completed" and t.attempts == 1 and t.metrics["val/acc"] > 0
        assert t.handle["worker"] == done.worker_id and t.handle["queue"] == "default"
        assert t.owner["worker"] == done.worker_id
        assert (proj.paths.trial_dir(t.id) / "model.json").is_file()
    st = queue_status(proj, everyone=True).as_dict()
    assert st["queues"] == {"default": {"base": {"completed": 4}}}
    [w] = st["workers"]
    assert (w["id"], w["status"], w["done"], w["slots"]) == (done.worker_id, "stopped", 4, 1)


def test_queue_follows_the_seed_and_skip_rules_of_a_run(project_dir: Path) -> None:
    proj = Project.find()
    run_experiment(proj, "base", RunOptions(seeds=[11]))  # lr 0.1 and 0.5 on seed 11: completed here
    first = submit(proj, ["base"], RunOptions())  # seeds 11, 22 x two lrs: only seed 22 is new
    assert sorted((t.seed, t.params["lr"]) for t in first.trials) == [(22, 0.1), (22, 0.5)]
    assert len(first.skipped) == 2
    again = submit(proj, ["base"], RunOptions())  # waiting in the queue already: not queued twice
    assert again.trials == [] and {t.id for t in again.skipped} >= {t.id for t in first.trials}
    forced = submit(proj, ["base"], RunOptions(rerun=True), queue="other", max_attempts=1)
    assert len(forced.trials) == 4 and {(t.queue, t.max_attempts) for t in forced.trials} == {("other", 1)}
    dry = submit(proj, ["base"], RunOptions(seed_count=3, dry_run=True))
    assert dry.trials == [] and [s.seed for s in dry.specs] == [33, 33]  # nothing written
    assert proj.store.count(status="queued") == 6
    with pytest.raises(UsageError, match="--parallel does not apply"):
        submit(proj, ["base"], RunOptions(parallel=2))
    with pytest.raises(UsageError, match="invalid queue name"):
        submit(proj, ["base"], RunOptions(), queue="no such")


def test_run_queue_and_queue_status_on_the_command_line(project_dir: Path) -> None:
    code, out, err = cli("run", "base", "--queue", "--seeds", "1", "--max-attempts", "2", "--json")
    assert code == 0, err
    queued = json.loads(out)
    assert len(queued["queued"]) == 2 and queued["queue"] == "default"
    code, out, err = cli("queue", "status", "--json")
    assert code == 0 and json.loads(out)["queues"] == {"default": {"base": {"queued": 2}}}
    code, out, err = cli("queue", "submit", "base", "--seeds", "2", "-Q", "gpu")  # seed 11 waits in 'default'
    assert code == 0 and "queued 2 trial(s) in 'gpu'" in err and "skipped 2" in err
    code, out, err = cli("run", "base", "--queue-name", "gpu")
    assert code == 2 and "--queue-name applies to queued trials" in err
    code, out, err = cli("worker", "--queue", "gpu", "--idle-exit", "0", "--slots", "2")
    assert code == 0, err
    assert "ran 2 trial(s)" in err
    code, out, err = cli("queue", "status")
    assert code == 0 and "default" in out and "gpu" in out
    code, out, err = cli("worker", "--slots", "0")
    assert code == 2 and "--slots must be at least 1" in err


def test_eight_workers_drain_500_trials_each_exactly_once(tmp_path: Path, backend: str | None) -> None:
    root = make_project(tmp_path / "proj", experiment=LOGGED)
    proj = Project.load(root)
    submit(proj, ["base"], RunOptions(grid={"i": list(range(500))}))
    assert proj.store.count(status="queued") == 500
    workers = [worker_proc(root, "--idle-exit", "0", "--poll", "0.2") for _ in range(8)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    ids = (tmp_path / "ids.log").read_text().split()
    trials = proj.store.list_trials()
    assert len(ids) == 500 and sorted(ids) == sorted(t.id for t in trials)  # zero duplicates, zero lost
    assert {t.status for t in trials} == {"completed"} and {t.attempts for t in trials} == {1}
    owners = {t.owner["worker"] for t in trials}
    assert len(owners) > 1  # they shared the work
    assert (root / ".tracker" / "tracker.db").exists() == (backend is None)  # all in PostgreSQL when it is used


SLOW_FIRST = textwrap.dedent("""\
    command: [sh, -c, 'if [ -e "$TRACKER_PROJECT_DIR/../ran" ]; then echo "acc: 1";
              else touch "$TRACKER_PROJECT_DIR/../ran"; echo started; sleep 60; fi']
    seeds: 1
    """)


def test_a_worker_killed_mid_trial_loses_it_and_it_is_requeued_and_completed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str | None) -> None:
    root = make_project(tmp_path / "proj", experiment=SLOW_FIRST)
    (root / "tracker.yaml").write_text("name: demo\nseeds: [11]\nmaster_seed: 1\ndefaults: {lease: 3}\n")
    git(root, "commit", "-qam", "lease")
    proj = Project.load(root)
    [trial] = submit(proj, ["base"], RunOptions()).trials
    first = worker_proc(root)
    wait_for(lambda: (tmp_path / "ran").exists(), what="the first attempt to start")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    second = worker_proc(root, "--idle-exit", "1", "--poll", "0.2")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    t = proj.store.get(trial.id)
    assert (t.status, t.attempts, t.metrics) == ("completed", 2, {"acc": 1.0})
    [error] = t.errors
    assert error["status"] == "lost" and error["attempt"] == 1 and "died" in error["error"]
    messages = [e.message for e in proj.store.events(t.id)]
    assert any(m.startswith("queued: requeued (attempt 1 of 3") for m in messages)
    monkeypatch.chdir(root)
    code, out, _ = cli("trials", "show", t.id)
    assert code == 0 and "attempt 2 of 3" in out and "attempt 1 lost" in out


def test_a_lost_trial_out_of_attempts_stays_lost(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj", experiment=SLOW_FIRST.replace("if [ -e", "if [ -e /nonexistent ] && [ -e"))
    (root / "tracker.yaml").write_text("name: demo\nseeds: [11]\nmaster_seed: 1\ndefaults: {lease: 3}\n")
    git(root, "commit", "-qam", "lease")
    proj = Project.load(root)
    [trial] = submit(proj, ["base"], RunOptions(), max_attempts=1).trials
    first = worker_proc(root)
    wait_for(lambda: proj.store.get(trial.id).status == "running" and (tmp_path / "ran").exists(),
             what="the trial to start")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    wait_for(lambda: proj.store.expire()[0] == [trial.id] or proj.store.get(trial.id).status == "lost",
             timeout=30, what="the lease to run out")
    t = proj.store.get(trial.id)
    assert (t.status, t.attempts, len(t.errors)) == ("lost", 1, 1)
    assert "no heartbeat" in t.error


def test_a_stopped_worker_puts_its_trials_back_but_a_user_stop_cancels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "proj", experiment=SLOW_FIRST.replace("if [ -e", "if [ -e /nonexistent ] && [ -e"))
    proj = Project.load(root)
    trials = submit(proj, ["base"], RunOptions(seeds=[11, 22])).trials
    worker = worker_proc(root, "--slots", "2")
    wait_for(lambda: proj.store.count(status="running") == 2, what="two trials to run")
    monkeypatch.chdir(root)
    code, _, err = cli("trials", "stop", trials[0].id)
    assert code == 0, err
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "1 stopped and put back in the queue" in err
    stopped, back = proj.store.get(trials[0].id), proj.store.get(trials[1].id)
    assert (stopped.status, stopped.stop_requested) == ("cancelled", "cancelled by the user")
    assert (back.status, back.owner, back.attempts) == ("queued", {}, 1)
    assert back.errors[0]["status"] == "cancelled" and "worker running it stopped" in back.errors[0]["error"]


VERSIONED = textwrap.dedent("""\
    command: [python3, version.py]
    seeds: 1
    """)


def test_a_worker_runs_a_trial_of_other_code_in_its_own_work_tree(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj", experiment=VERSIONED)
    (root / "version.py").write_text("print('acc:', 1)\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    (root / "version.py").write_text("print('acc:', 2)\n")  # uncommitted: saved as the trial's patch
    proj = Project.load(root)
    [trial] = submit(proj, ["base"], RunOptions()).trials
    git(root, "checkout", "-q", "version.py")
    (root / "version.py").write_text("print('acc:', 3)\n")
    git(root, "commit", "-qam", "v3")  # the checkout moved on
    store = f"sqlite:///{proj.paths.db}"
    done = worker_proc(root, "--idle-exit", "0", store=store)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    t = proj.store.get(trial.id)
    assert t.status == "completed" and t.metrics == {"acc": 2.0}  # v1 + its patch, not the checkout's v3
    tree = proj.paths.state / "worktrees"
    [made] = list(tree.iterdir())
    assert made.name.startswith(trial.commit[:12]) and (made / "version.py").read_text() == "print('acc:', 2)\n"
    # another machine: a clone that lacks the commit refuses, and the trial goes back for a worker that has it
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(root), str(other)], check=True)
    git(root, "commit", "-q", "--allow-empty", "-m", "not in the clone")
    (root / "version.py").write_text("print('acc:', 4)\n")
    [late] = submit(Project.load(root), ["base"], RunOptions(rerun=True)).trials
    refused = worker_proc(other, "--idle-exit", "0", store=store)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 1
    assert "cannot run trial" in err and "git fetch" in err and "Traceback" not in err
    back = proj.store.get(late.id)
    assert back.status == "queued" and back.errors[0]["status"] == "failed" and back.attempts == 1


def test_a_worker_backs_up_what_it_completed_and_run_only_options_are_refused(project_dir: Path) -> None:
    code, _, err = cli("storage", "add", "disk", "--type", "local", "--path", str(project_dir.parent / "bk"))
    assert code == 0, err
    git(project_dir, "commit", "-qam", "storage")
    proj = Project.find()
    [trial] = submit(proj, ["base"], RunOptions(seeds=[11], params={"lr": 0.1}, grid={}, backup_to="disk")).trials[:1]
    done = run_worker(Project.find(), WorkerOptions(idle_exit=0))
    assert trial.id in done.trials
    assert (project_dir.parent / "bk").is_dir() and any((project_dir.parent / "bk").rglob(f"*{trial.id}*"))
    code, _, err = cli("run", "base", "--queue", "--max-failures", "2")
    assert code == 2 and "--max-failures" in err and "workers" in err
