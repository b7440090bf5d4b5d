"""What a run decides before and while it runs: skipping done trials, several experiments,
stopping after identical failures, GPUs per slot, a run refused at the start, the progress bar."""

from __future__ import annotations

import io
import itertools
import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import git
from tracker.cli import app
from tracker.errors import NotFoundError, ProjectError
from tracker.execution.registry import open_executor
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment, run_experiments

runner = CliRunner()

FAIL_SCRIPT = textwrap.dedent("""
    import argparse, sys
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int)
    p.add_argument("--mode", default="same")
    a = p.parse_args()
    if a.mode == "ok-first" and a.seed == 11:
        sys.exit(0)
    words = {11: "alpha", 22: "beta", 33: "gamma", 44: "delta", 55: "epsilon"}
    line = f"ValueError: bad value {a.seed}" if a.mode != "differ" else f"ValueError: {words[a.seed]}"
    print("working: 1")
    print(line, file=sys.stderr)
    sys.exit(1)
""")

GPU_SCRIPT = textwrap.dedent("""
    import os, time
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    print(f"visible: {len(visible.split(',')) if visible else 0}")
    if visible:
        print(f"cuda: {visible.split(',')[0]}")
    time.sleep(0.5)
""")


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def add(root: Path, name: str, text: str, script: tuple[str, str] | None = None) -> None:
    if script:
        (root / script[0]).write_text(script[1])
    (root / "experiments" / f"{name}.yaml").write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", name)


# ---------------------------------------------------------------------------- skipping what is done


def test_a_rerun_skips_trials_completed_with_the_same_params_seed_code_and_settings(project_dir: Path) -> None:
    first = run_experiment(Project.find(), "base", RunOptions())
    assert [t.status for t in first.trials] == ["completed"] * 4 and first.skipped == []
    again = run_experiment(Project.find(), "base", RunOptions())
    assert again.trials == [] and {t.id for t in again.skipped} == {t.id for t in first.trials}
    assert len(Project.find().store.list_trials()) == 4
    # a new seed runs only the new trials; --rerun runs everything again
    more = run_experiment(Project.find(), "base", RunOptions(seed_count=3))
    assert sorted(t.seed for t in more.trials) == [33, 33] and len(more.skipped) == 4
    forced = run_experiment(Project.find(), "base", RunOptions(rerun=True))
    assert len(forced.trials) == 4 and forced.skipped == []


def test_other_code_or_settings_are_not_skipped(project_dir: Path) -> None:
    run_experiment(Project.find(), "base", RunOptions(seeds=[1]))
    (project_dir / "train.py").write_text((project_dir / "train.py").read_text() + "\n# change A\n")
    dirty_a = run_experiment(Project.find(), "base", RunOptions(seeds=[1]))
    assert len(dirty_a.trials) == 2 and dirty_a.skipped == []  # uncommitted changes are other code
    assert run_experiment(Project.find(), "base", RunOptions(seeds=[1])).trials == []  # the same dirty tree
    (project_dir / "train.py").write_text((project_dir / "train.py").read_text() + "# change B\n")
    assert len(run_experiment(Project.find(), "base", RunOptions(seeds=[1])).trials) == 2  # another patch
    git(project_dir, "commit", "-qam", "B")
    committed = run_experiment(Project.find(), "base", RunOptions(seeds=[1]))
    assert len(committed.trials) == 2  # a commit is other code too
    assert run_experiment(Project.find(), "base", RunOptions(seeds=[1])).trials == []
    exp = project_dir / "experiments/base.yaml"
    exp.write_text(exp.read_text() + "timeout: 100\n")
    assert len(run_experiment(Project.find(), "base", RunOptions(seeds=[1])).trials) == 2  # other settings


def test_failed_trials_are_run_again_and_the_cli_says_what_it_skipped(project_dir: Path) -> None:
    code, _, err = cli("run", "base", "--seed", "1", "-p", "fail=1", "-q")
    assert code == 1
    code, _, err = cli("run", "base", "--seed", "1", "-p", "fail=1", "-q")
    assert code == 1 and "skipped" not in err
    assert cli("run", "base", "--seed", "1", "-q")[0] == 0
    code, _, err = cli("run", "base", "--seed", "1", "--seed", "2", "-q")
    assert code == 0 and "skipped 2 trial(s) already completed" in err
    code, _, err = cli("run", "base", "--seed", "1", "-q")
    assert code == 0 and "nothing to run: all 2 trial(s) of base already completed" in err
    assert err.count("already completed") == 1  # said once
    code, out, _ = cli("run", "base", "--seed", "1", "--seed", "3", "--dry-run", "--json")
    plan = json.loads(out)
    assert sorted((r["seed"], r["skip"]) for r in plan) == [(1, True), (1, True), (3, False), (3, False)]
    code, out, _ = cli("run", "base", "--seed", "1", "--dry-run", "--rerun", "--json")
    assert [r["skip"] for r in json.loads(out)] == [False, False]


# ---------------------------------------------------------------------------- several experiments


def test_several_experiments_run_as_one_run_sharing_the_slots(project_dir: Path) -> None:
    add(project_dir, "other", f"command: [{sys.executable!r}, train.py]\nparams: {{lr: 0.3, sleep: 1}}\n")
    code, _, err = cli("run", "base", "other", "--seed", "1", "-p", "sleep=1", "-j", "4", "-q")
    assert code == 0, err
    trials = Project.find().store.list_trials()
    assert sorted(t.experiment for t in trials) == ["base", "base", "other"]
    assert len({t.run_id for t in trials}) == 1
    assert max(t.started for t in trials) < min(t.finished for t in trials)  # all three ran at once
    assert "--param sleep is not among the params, grid or search keys of experiment 'base'" in err
    assert "experiment 'other'" not in err  # 'other' has a param sleep: no warning for it


def test_an_unknown_experiment_among_several_fails_before_anything_starts(project_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="no experiment 'nope'"):
        run_experiments(Project.find(), ["base", "nope"], RunOptions())
    assert not (project_dir / ".tracker").exists()
    code, _, err = cli("run", "base", "nope")
    assert code == 2 and "no experiment 'nope'" in err


# ---------------------------------------------------------------------------- a run refused at the start


def test_a_first_run_outside_git_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "nogit"
    (root / "experiments").mkdir(parents=True)
    (root / "tracker.yaml").write_text("name: nogit\n")  # no preset seeds yet
    (root / "experiments/e.yaml").write_text("command: python -c pass\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(root)
    code, _, err = cli("run", "e")
    assert code == 2 and "not inside a git repository" in err
    with pytest.raises(ProjectError):
        run_experiment(Project.find(), "e", RunOptions(seed_count=2))
    assert sorted(p.name for p in root.iterdir()) == ["experiments", "tracker.yaml"]  # no .tracker/
    assert (root / "tracker.yaml").read_text() == "name: nogit\n"  # no seeds written either
    code, out, _ = cli("run", "e", "--dry-run", "--json")  # a dry run still lists the trials
    assert code == 0 and len(json.loads(out)) == 3


# ---------------------------------------------------------------------------- identical failures


def test_a_param_typo_stops_the_run_after_identical_failures(project_dir: Path) -> None:
    code, _, err = cli("run", "base", "-p", "lr=0.1", "-p", "lrr=0.5", "--seeds", "5", "-j", "1")
    assert code == 1
    assert "warning: --param lrr is not among the params, grid or search keys of experiment 'base'" in err
    assert "--param lr " not in err
    trials = Project.find().store.list_trials()
    assert [t.status for t in trials] == ["failed"] * 3 + ["cancelled"] * 2
    assert all("unrecognized arguments: --lrr=0.5" in t.error for t in trials[:3])
    for t in trials[3:]:
        assert t.error.startswith("not started: 3 trials failed the same way (exit code 2: ")
        assert t.started is None
    assert "stopped early: 3 trials failed the same way" in err and "--max-failures 0" in err
    assert "unrecognized arguments: --lrr=0.5" in err.split("stopped early:")[1]
    # the hint points at the log that holds the error
    assert f"see 'tracker trials logs {trials[0].id} --stderr'" in err


def test_max_failures_counts_only_identical_failures_before_any_success(project_dir: Path) -> None:
    add(project_dir, "fails", f"command: [{sys.executable!r}, fail.py]\nseeds: 5\n", ("fail.py", FAIL_SCRIPT))

    def statuses(**options: object) -> list[str]:
        result = run_experiment(Project.find(), "fails", RunOptions(parallel=1, rerun=True, **options))
        return [t.status for t in result.trials]

    # the same line but for a number (the seed): identical
    assert statuses(params={"mode": "same"}) == ["failed"] * 3 + ["cancelled"] * 2
    assert statuses(params={"mode": "same"}, max_failures=2) == ["failed"] * 2 + ["cancelled"] * 3
    assert statuses(params={"mode": "same"}, max_failures=0) == ["failed"] * 5
    assert statuses(params={"mode": "differ"}) == ["failed"] * 5  # five different errors
    assert statuses(params={"mode": "ok-first"}) == ["completed"] + ["failed"] * 4  # it can work


def test_reset_run_honours_max_failures(project_dir: Path) -> None:
    add(project_dir, "fails", f"command: [{sys.executable!r}, fail.py]\nseeds: 5\n", ("fail.py", FAIL_SCRIPT))
    assert cli("run", "fails", "--max-failures", "0", "-q")[0] == 1
    code, _, err = cli("trials", "reset", "--run", "-j", "1", "--max-failures", "2")
    assert code == 1 and "stopped early: 2 trials failed the same way" in err
    assert sorted(t.status for t in Project.find().store.list_trials()) == ["cancelled"] * 3 + ["failed"] * 2
    code, _, err = cli("trials", "reset", "--max-failures", "2")
    assert code == 2 and "only apply with --run" in err


def test_logs_of_a_trial_that_printed_only_to_stderr(project_dir: Path) -> None:
    (project_dir / "quiet_fail.py").write_text("import sys\nsys.exit('broken: config missing')\n")
    add(project_dir, "qf", f"command: [{sys.executable!r}, quiet_fail.py]\nseeds: [1]\nseed_flag: null\n")
    code, _, err = cli("run", "qf", "-q")
    [trial] = Project.find().store.list_trials()
    assert code == 1 and f"see 'tracker trials logs {trial.id} --stderr'" in err
    code, out, err = cli("trials", "logs", trial.id)
    assert code == 0 and out == ""
    assert f"it wrote to stderr: see 'tracker trials logs {trial.id} --stderr'" in err
    assert cli("trials", "logs", trial.id, "--stderr")[1] == "broken: config missing\n"


# ---------------------------------------------------------------------------- GPUs per local slot


@pytest.fixture
def gpu_project(project_dir: Path) -> Project:
    add(project_dir, "gpu", f"command: [{sys.executable!r}, gpu.py]\nseeds: 4\nseed_flag: null\n",
        ("gpu.py", GPU_SCRIPT))
    return Project.find()


def test_local_slots_get_one_gpu_each_from_cuda_visible_devices(gpu_project: Project,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    trials = run_experiment(gpu_project, "gpu", RunOptions(parallel=2)).trials
    assert [t.status for t in trials] == ["completed"] * 4
    assert all(t.metrics["visible"] == 1 and t.metrics["cuda"] == int(t.handle["gpu"]) for t in trials)
    assert {t.metrics["cuda"] for t in trials} == {3, 5}
    by_gpu = {gpu: [t for t in trials if t.handle["gpu"] == gpu] for gpu in ("3", "5")}
    for same in by_gpu.values():  # one GPU, one trial at a time
        spans = sorted((t.started, t.finished) for t in same)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # one slot: the trial sees every GPU, as it would without tracker
    [single] = run_experiment(gpu_project, "gpu", RunOptions(parallel=1, seeds=[9])).trials
    assert single.metrics["visible"] == 2 and single.handle["gpu"] is None
    # no GPU at all: nothing is set
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    trials = run_experiment(gpu_project, "gpu", RunOptions(parallel=2, seeds=[7, 8])).trials
    assert all(t.metrics == {"visible": 0} and t.handle["gpu"] is None for t in trials)


def test_fewer_gpus_than_slots_are_shared_round_robin(gpu_project: Project) -> None:
    executor = open_executor(gpu_project, "local", parallel=3, gpus=["4", "6"])
    trials = run_experiment(gpu_project, "gpu", RunOptions(seed_count=3), executor=executor).trials
    assert sorted(t.handle["gpu"] for t in trials) == ["4", "4", "6"]  # slots 0, 1, 2 -> 4, 6, 4
    assert all(t.metrics["cuda"] == int(t.handle["gpu"]) for t in trials)
    # the experiment's own CUDA_VISIBLE_DEVICES wins
    exp = gpu_project.root / "experiments/gpu.yaml"
    exp.write_text(exp.read_text() + "env: {CUDA_VISIBLE_DEVICES: '2'}\n")
    executor = open_executor(gpu_project, "local", parallel=2, gpus=["4", "6"])
    trials = run_experiment(gpu_project, "gpu", RunOptions(seed_count=2), executor=executor).trials
    assert {t.metrics["cuda"] for t in trials} == {2}


# ---------------------------------------------------------------------------- the progress bar


def test_progress_bar_shows_done_of_total(project_dir: Path) -> None:
    from rich.console import Console

    from tracker.cli.run import ConsoleReporter

    screen = io.StringIO()
    reporter = ConsoleReporter(console=Console(file=screen, force_terminal=True, width=100))
    try:
        run_experiment(Project.find(), "base", RunOptions(), reporter)
    finally:
        reporter.close()
    shown = screen.getvalue()
    assert "0/4" in shown and "4/4" in shown
