"""tracker run end to end: expansion, params, metrics, status, git linkage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import git
from tracker.errors import ProjectError, UsageError
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment


def run(name: str = "base", **kw: object):
    return run_experiment(Project.find(), name, RunOptions(**kw))


def test_grid_times_seeds_all_complete_with_metrics_and_outputs(project_dir: Path) -> None:
    result = run()
    assert len(result.trials) == 4
    assert {t.status for t in result.trials} == {"completed"}
    assert sorted((t.params["lr"], t.seed) for t in result.trials) == [
        (0.1, 11), (0.1, 22), (0.5, 11), (0.5, 22)]
    for t in result.trials:
        assert t.params["epochs"] == 3
        assert 0 < t.metrics["val/acc"] < 1
        model = json.loads((project_dir / ".tracker/trials" / t.id / "model.json").read_text())
        assert model == {"lr": t.params["lr"], "seed": t.seed, "note": ""}  # flags reached the script
        assert t.exit_code == 0 and t.duration is not None and t.started and t.finished


def test_metric_series_keep_steps_and_phases(project_dir: Path) -> None:
    trial = run(seeds=[5], params={"lr": 0.2}).trials[0]
    points = Project.find().store.metrics(trial.id, "train/loss")
    assert [p.step for p in points] == [0, 1, 2]
    assert {p.phase for p in points} == {"train"}
    assert Project.find().store.metrics(trial.id, "val/acc")[0].phase == "validate"


def test_same_seeds_in_every_experiment_for_paired_comparison(project_dir: Path) -> None:
    (project_dir / "experiments/other.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nparams: {{lr: 0.3}}\n")
    a = run("base", seed_count=3)
    b = run("other", seed_count=3)
    assert sorted({t.seed for t in a.trials}) == sorted(t.seed for t in b.trials) == [11, 22, 33]


def test_explicit_seed_and_param_override(project_dir: Path) -> None:
    result = run(seeds=[7], params={"lr": 0.25})
    assert [(t.seed, t.params["lr"]) for t in result.trials] == [(7, 0.25)]


def test_seeds_generated_on_first_need_and_reproducible(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text("name: demo\n")
    result = run(seed_count=2)
    config = Project.find().config
    assert len(config.seeds) == 10 and config.master_seed is not None
    assert sorted(t.seed for t in result.trials if t.params["lr"] == 0.1) == sorted(config.seeds[:2])
    from tracker.seeds import generate

    assert generate(10, config.master_seed)[1] == config.seeds


def test_env_vars_and_helper_api_metrics_and_autolog(project_dir: Path) -> None:
    (project_dir / "api_train.py").write_text(textwrap.dedent("""
        import json, os, tracker
        p = tracker.params(defaults={"lr": 1.0})
        assert os.environ["TRACKER_SEED"] == str(tracker.seed())
        assert os.environ["TRACKER_PARAM_LR"] == str(p["lr"])
        for i in range(3):
            tracker.log(step=i, **{"train/loss": 1.0 / (i + 1)})
        from sklearn.linear_model import LogisticRegression
        tracker.autolog(LogisticRegression(C=0.5))
        out = tracker.trial_dir()
        (out / "env.json").write_text(json.dumps({k: v for k, v in os.environ.items()
                                                  if k.startswith("TRACKER_")}))
    """))
    (project_dir / "experiments/api.yaml").write_text(
        f"command: [{sys.executable!r}, api_train.py]\nparams_as: env\nparams: {{lr: 0.5}}\nseeds: [3]\n")
    trial = run("api").trials[0]
    assert trial.status == "completed", trial.error
    env = json.loads((project_dir / ".tracker/trials" / trial.id / "env.json").read_text())
    assert env["TRACKER_TRIAL_ID"] == trial.id
    assert json.loads(env["TRACKER_PARAMS"]) == {"lr": 0.5}
    assert env["TRACKER_PHASE"] == "train" and env["TRACKER_SEED"] == "3"
    points = Project.find().store.metrics(trial.id, "train/loss")
    assert [(p.step, round(p.value, 3)) for p in points] == [(0, 1.0), (1, 0.5), (2, 0.333)]
    assert trial.extra["autolog"]["LogisticRegression"]["params"]["C"] == 0.5


def test_params_file_mode(project_dir: Path) -> None:
    (project_dir / "cfg_train.py").write_text(textwrap.dedent("""
        import json, sys, pathlib
        path = sys.argv[1].split("=", 1)[1]
        print("got:", 1 if json.loads(pathlib.Path(path).read_text())["lr"] == 0.5 else 0)
    """))
    (project_dir / "experiments/cfg.yaml").write_text(
        f"command: [{sys.executable!r}, cfg_train.py]\nparams_as: json\nparams: {{lr: 0.5}}\nseeds: [1]\n")
    trial = run("cfg").trials[0]
    assert trial.metrics == {"got": 1.0}


def test_crash_gives_failed_trial_with_error_tail(project_dir: Path) -> None:
    result = run(seeds=[1], params={"fail": 1, "lr": 0.1})
    trial = result.trials[0]
    assert trial.status == "failed" and trial.exit_code == 3
    assert "exit code 3" in trial.error and "Traceback: something broke" in trial.error
    assert trial.metrics["val/acc"] > 0  # metrics printed before the crash are kept


def test_missing_deliverable_fails_the_trial(project_dir: Path) -> None:
    (project_dir / "experiments/deliv.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nseeds: [1]\n"
        "deliverables: [{path: weights.bin, check: exists}]\n")
    trial = run("deliv").trials[0]
    assert trial.status == "failed" and "weights.bin is missing" in trial.error


def test_timeout_stops_the_trial(project_dir: Path) -> None:
    (project_dir / "experiments/slow.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nparams: {{sleep: 30}}\nseeds: [1]\ntimeout: 0.5\n")
    trial = run("slow").trials[0]
    assert trial.status == "failed" and trial.duration < 10
    assert "timeout" in (project_dir / ".tracker/trials" / trial.id / "stderr.log").read_text()


def test_parallel_runs_trials_at_the_same_time(project_dir: Path) -> None:
    result = run(params={"sleep": 1.0}, parallel=4)
    starts = sorted(t.started for t in result.trials)
    finishes = sorted(t.finished for t in result.trials)
    assert all(t.status == "completed" for t in result.trials)
    assert starts[-1] < finishes[0]  # all four were running together


def test_dry_run_writes_nothing(project_dir: Path) -> None:
    result = run(dry_run=True, grid={"lr": [0.1, 0.2, 0.3]})
    assert result.dry_run and len(result.specs) == 6 and result.trials == []
    assert Project.find().store.list_trials() == []


def test_clean_tree_records_commit_and_branch(project_dir: Path) -> None:
    head = git(project_dir, "rev-parse", "HEAD").strip()
    trial = run(seeds=[1], params={"lr": 0.1}).trials[0]
    assert (trial.commit, trial.branch, trial.dirty, trial.snapshot) == (head, "main", False, None)


def test_dirty_tree_snapshot_and_checkout_restore_exact_code(project_dir: Path, tmp_path: Path) -> None:
    head = git(project_dir, "rev-parse", "HEAD").strip()
    (project_dir / "train.py").write_text((project_dir / "train.py").read_text() + "\n# tweak\n")
    (project_dir / "helper.py").write_text("X = 1\n")  # untracked source file
    status_before = git(project_dir, "status", "--porcelain")
    trial = run(seeds=[1], params={"lr": 0.1}).trials[0]
    assert trial.dirty and trial.commit == head and trial.snapshot
    # the user's branch, index and work tree are untouched
    assert git(project_dir, "rev-parse", "HEAD").strip() == head
    assert git(project_dir, "status", "--porcelain") == status_before
    assert git(project_dir, "rev-parse", f"refs/tracker/trials/{trial.id}").strip() == trial.snapshot
    patch = (project_dir / ".tracker/trials" / trial.id / "code.patch").read_text()
    assert "# tweak" in patch and "helper.py" in patch
    # later edits do not change what checkout restores
    (project_dir / "helper.py").write_text("X = 2\n")
    from tracker.trials import checkout

    dest = tmp_path / "exact"
    checkout(Project.find(), trial.id, dest)
    assert (dest / "helper.py").read_text() == "X = 1\n"
    assert (dest / "train.py").read_text().endswith("# tweak\n")
    assert not (dest / ".tracker").exists()
    # without the ref (e.g. another clone), commit + saved patch rebuild the same code
    git(project_dir, "update-ref", "-d", f"refs/tracker/trials/{trial.id}")
    git(project_dir, "reflog", "expire", "--expire=now", "--all")
    git(project_dir, "gc", "-q", "--prune=now")
    dest2 = tmp_path / "from-patch"
    _, how = checkout(Project.find(), trial.id, dest2)
    assert "patch" in how
    assert (dest2 / "helper.py").read_text() == "X = 1\n"
    assert (dest2 / "train.py").read_text() == (dest / "train.py").read_text()


def test_outside_git_repo_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "nogit"
    (root / "experiments").mkdir(parents=True)
    (root / "tracker.yaml").write_text("seeds: [1]\n")
    (root / "experiments/e.yaml").write_text("command: python -c pass\nseeds: [1]\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(root)
    with pytest.raises(ProjectError, match="not inside a git repository"):
        run("e")


def test_unknown_param_name_and_bad_seed_override(project_dir: Path) -> None:
    with pytest.raises(UsageError):
        run(params={"seed": 3})
    with pytest.raises(UsageError):
        run(grid={"lr": []})


def _tracker(*args: str, cwd: Path, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_running(root: Path, n: int = 1, timeout: float = 20) -> list:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = Project.load(root).store
        running = store.list_trials(status="running")
        if len(running) >= n and all(
                (root / ".tracker/trials" / t.id / "stdout.log").exists() and
                "sleeping" in (root / ".tracker/trials" / t.id / "stdout.log").read_text()
                for t in running):
            return running
        time.sleep(0.1)
    raise AssertionError("trials did not start")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_cancels_and_leaves_store_consistent(project_dir: Path, sig: str) -> None:
    import signal

    proc = _tracker("run", "base", "-p", "sleep=30", "-j", "2", cwd=project_dir)
    _wait_running(project_dir, 2)
    proc.send_signal(getattr(signal, sig))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    statuses = sorted(t.status for t in Project.load(project_dir).store.list_trials())
    assert statuses == ["cancelled"] * 4
    # re-runnable: reset and run again quickly
    from tracker.trials import reset

    assert len(reset(Project.load(project_dir))) == 4


def test_kill_9_of_tracker_leaves_lost_trial_that_can_be_reset(project_dir: Path) -> None:
    proc = _tracker("run", "base", "--seed", "1", "-p", "lr=0.1", "-p", "sleep=30", cwd=project_dir,
                    start_new_session=False)
    running = _wait_running(project_dir, 1)
    proc.kill()
    proc.communicate()
    from tracker.trials import list_trials, reset

    trials = list_trials(Project.load(project_dir))
    assert [t.status for t in trials] == ["lost"]
    assert trials[0].id == running[0].id
    child = running[0].pid
    import time

    for _ in range(50):  # the orphaned script is stopped too
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("orphaned trial process still running")
    assert [t.status for t in reset(Project.load(project_dir))] == ["queued"]
    assert os.path.exists(project_dir / ".tracker/tracker.db")


ECHO_SCRIPT = textwrap.dedent("""
    import json, os, sys
    out = os.path.join(os.environ["TRACKER_TRIAL_DIR"], "seen.json")
    with open(out, "w") as fh:
        json.dump({"argv": sys.argv[1:], "env": os.environ["TRACKER_PARAM_NOTE"],
                   "params": json.loads(os.environ["TRACKER_PARAMS"])}, fh)
""")


def test_param_with_newline_and_hash_arrives_intact(project_dir: Path) -> None:
    from typer.testing import CliRunner

    from tracker.cli import app

    (project_dir / "echo.py").write_text(ECHO_SCRIPT)
    (project_dir / "experiments/echo.yaml").write_text(
        f"command: [{sys.executable!r}, echo.py]\nseeds: [1]\nseed_flag: null\n")
    note = "first line\nsecond line # not a comment"
    result = CliRunner().invoke(app, ["run", "echo", "-p", f"note={note}", "-q"])
    assert result.exit_code == 0, result.stderr
    [trial] = Project.find().store.list_trials()
    assert trial.params == {"note": note}
    seen = json.loads((project_dir / ".tracker/trials" / trial.id / "seen.json").read_text())
    assert seen == {"argv": [f"--note={note}"], "env": note, "params": {"note": note}}


def test_concurrent_first_runs_share_one_generated_seed_list(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text("name: demo\n")
    (project_dir / "experiments/quick.yaml").write_text(
        f"command: [{sys.executable!r}, -c, pass]\nseeds: 2\nseed_flag: null\n")
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "no preset seeds yet")
    go = project_dir.parent / "go"
    ready = project_dir.parent / "ready"
    ready.mkdir()
    # 8 real `tracker run` processes, imported and waiting, then released at the same moment
    start = ("import os, sys, time\nimport tracker.runs\nfrom tracker.cli import app\n"
             f"open(os.path.join({str(ready)!r}, str(os.getpid())), 'w').close()\n"
             f"while not os.path.exists({str(go)!r}): time.sleep(0.002)\n"
             "app(['run', 'quick', '-q'], prog_name='tracker')\n")
    procs = [subprocess.Popen([sys.executable, "-c", start], cwd=project_dir, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(8)]
    import time

    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    project = Project.load(project_dir)
    assert len(project.config.seeds) == 10
    trials = project.store.list_trials()
    assert len(trials) == 16 and {t.status for t in trials} == {"completed"}
    assert sorted({t.seed for t in trials}) == sorted(project.config.seeds[:2])  # 2 seeds, not 16


def test_a_diverged_metric_does_not_end_the_trial(project_dir: Path) -> None:
    """A script printing `loss: nan` (a diverged run) completes; the NaN is noted, not stored."""
    (project_dir / "nan.py").write_text("print('step: 1 loss: 0.5')\nprint('step: 2 loss: nan')\nprint('acc: 0.1')\n")
    (project_dir / "experiments" / "nan.yaml").write_text(f"command: [{sys.executable!r}, nan.py]\nseeds: 1\n")
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "nan")
    project = Project.find()
    [trial] = run_experiment(project, "nan", RunOptions()).trials
    assert trial.status == "completed", trial.error
    assert trial.metrics == {"loss": 0.5, "acc": 0.1}
    assert "metric loss reported NaN at step 2 (not stored)" in [e.message for e in project.store.events(trial.id)]
