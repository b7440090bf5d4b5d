"""Train / validate / test phases, evaluation seed pools, per-phase deliverables and tracker test."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tracker import experiments
from tracker.errors import ConfigError, UsageError
from tracker.heldout import run_test, select
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment

TRAIN = textwrap.dedent('''
    import argparse, json, os, pathlib
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    a, _ = p.parse_known_args()
    out = pathlib.Path(os.environ["TRACKER_TRIAL_DIR"])
    for step in range(3):
        print(f"step: {step} loss: {1 - a.lr * step / 10:.4f} val/acc: {a.lr * step:.4f}")
    (out / "model.json").write_text(json.dumps({"lr": a.lr, "seed": a.seed, "phase": os.environ["TRACKER_PHASE"]}))
''')

# validation prefers a high lr, the test set a low one: selection must look at validation only
EVALUATE = textwrap.dedent('''
    import argparse, json, os, pathlib, sys
    p = argparse.ArgumentParser()
    p.add_argument("--eval_seeds")
    p.add_argument("--seed", type=int)
    a, _ = p.parse_known_args()
    phase = os.environ["TRACKER_PHASE"]
    out = pathlib.Path(os.environ["TRACKER_TRIAL_DIR"])
    source = pathlib.Path(os.environ.get("TRACKER_TRAIN_DIR") or out)
    model = json.loads((source / "model.json").read_text())
    seeds = [int(s) for s in a.eval_seeds.split(",")]
    assert os.environ["TRACKER_EVAL_SEEDS"] == a.eval_seeds and model["seed"] == a.seed
    if os.environ.get("TRACKER_PARAM_BREAK") and phase == "validate":
        sys.exit("evaluation broke")
    acc = model["lr"] if phase == "validate" else 1 - model["lr"]
    print(f"acc: {acc:.4f}")
    (out / f"{phase}.json").write_text(json.dumps({"seeds": seeds, "model": model}))
''')

PHASED = textwrap.dedent(f"""\
    command: [{sys.executable!r}, train.py]
    grid: {{lr: [0.1, 0.5]}}
    seeds: 2
    objective: {{metric: val/acc, goal: max}}
    phases:
      train: [{sys.executable!r}, ptrain.py]
      validate: {{command: [{sys.executable!r}, evaluate.py], seeds: 3,
                  deliverables: [{{path: validate.json, check: contains_keys, keys: [seeds]}}]}}
      test: {{command: [{sys.executable!r}, evaluate.py], seeds: 2}}
    deliverables:
      - {{path: model.json, check: min_size, size: 10}}
    """)


def _commit(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "phases")


@pytest.fixture
def phased(project_dir: Path) -> Project:
    _commit(project_dir, {"ptrain.py": TRAIN, "evaluate.py": EVALUATE, "experiments/phased.yaml": PHASED})
    return Project.find()


def test_validate_runs_after_train_in_the_same_trial(phased: Project) -> None:
    result = run_experiment(phased, "phased", RunOptions())
    assert [t.status for t in result.trials] == ["completed"] * 4, [t.error for t in result.trials]
    presets = set(phased.config.seeds)
    pools = set()
    for t in result.trials:
        directory = phased.paths.trial_dir(t.id)
        validated = json.loads((directory / "validate.json").read_text())
        # validate read the checkpoint its train phase wrote, in the same trial directory
        assert validated["model"] == {"lr": t.params["lr"], "seed": t.seed, "phase": "train"}
        seeds = t.extra["eval_seeds"]["validate"]
        assert validated["seeds"] == seeds and len(seeds) == 3
        assert not set(seeds) & presets and t.seed in presets  # disjoint pools, both recorded
        pools.add(tuple(seeds))
        # namespaced by phase: loss from train, acc from validate; val/acc printed while training stays val/
        assert t.metrics["train/loss"] == pytest.approx(1 - t.params["lr"] * 2 / 10)
        assert t.metrics["val/acc"] == pytest.approx(t.params["lr"])
        assert "loss" not in t.metrics and "acc" not in t.metrics
        phases = {p.name: p.phase for p in phased.store.metrics(t.id)}
        assert phases == {"train/loss": "train", "val/acc": "validate"}
        assert not (directory / "test.json").exists()  # tracker run never runs the test phase
    assert len(pools) == 1  # every trial is validated on the same seeds: comparisons stay paired


def test_one_command_told_its_phase_by_tracker_phase(project_dir: Path) -> None:
    script = textwrap.dedent('''
        import os, tracker
        phase = os.environ["TRACKER_PHASE"]
        if phase == "train":
            tracker.log(step=1, loss=0.5)
            print("acc: 0.25")  # a training accuracy: train/acc
        else:
            tracker.log(acc=0.75)
    ''')
    _commit(project_dir, {"one.py": script, "experiments/one.yaml": f"command: [{sys.executable!r}, one.py]\n"
                          "seeds: 1\nphases: [train, validate]\n"})
    project = Project.find()
    [trial] = run_experiment(project, "one", RunOptions()).trials
    assert trial.status == "completed", trial.error
    assert trial.metrics == {"train/loss": 0.5, "train/acc": 0.25, "val/acc": 0.75}


def test_a_failing_phase_fails_the_trial_and_names_itself(phased: Project) -> None:
    [trial] = run_experiment(phased, "phased", RunOptions(params={"lr": 0.1, "break": 1}, seed_count=1)).trials
    assert trial.status == "failed" and trial.exit_code == 1
    assert "the validate phase exited with code 1" in trial.error and "evaluation broke" in trial.error
    assert trial.metrics == {"train/loss": 0.98, "val/acc": 0.2}  # what training reported, and no more


def test_deliverables_per_phase_min_size_and_yaml_keys(project_dir: Path) -> None:
    script = textwrap.dedent('''
        import os, pathlib
        out = pathlib.Path(os.environ["TRACKER_TRIAL_DIR"])
        (out / "model.bin").write_bytes(b"x" * 100)
        if os.environ["TRACKER_PHASE"] == "validate":
            (out / "report.yaml").write_text("acc: 0.5\\n")
    ''')
    experiment = textwrap.dedent(f"""\
        command: [{sys.executable!r}, d.py]
        seeds: 1
        phases:
          train: {{deliverables: [{{path: model.bin, check: min_size, size: {{size}}}}]}}
          validate: {{deliverables: [{{path: report.yaml, check: contains_keys, keys: [acc, {{key}}]}}]}}
        """)
    _commit(project_dir, {"d.py": script, "experiments/ok.yaml": experiment.replace("{size}", "100B")
                          .replace("{key}", "acc"),
                          "experiments/small.yaml": experiment.replace("{size}", "1kB").replace("{key}", "acc"),
                          "experiments/keys.yaml": experiment.replace("{size}", "10").replace("{key}", "loss")})
    project = Project.find()
    assert run_experiment(project, "ok", RunOptions()).trials[0].status == "completed"
    [small] = run_experiment(project, "small", RunOptions()).trials
    assert small.status == "failed" and small.exit_code == 0
    assert small.error == "deliverable model.bin (train phase) has 100 bytes, less than its min_size 1kB"
    [keys] = run_experiment(project, "keys", RunOptions()).trials
    assert keys.status == "failed" and keys.error == "deliverable report.yaml (validate phase) lacks keys loss"


@pytest.mark.parametrize(("snippet", "message"), [
    ("phases: {validate: {seeds: [11]}}", "the validate seeds must be disjoint from the training seeds"),
    ("phases: {validate: {seeds: [7]}, test: {seeds: [7]}}", "disjoint from the training seeds and the other"),
    ("deliverables: [{path: m, check: min_size}]", "check 'min_size' needs a 'size'"),
    ("deliverables: [{path: m, check: min_size, size: lots}]", "invalid size 'lots'"),
    ("deliverables: [{path: m, keys: [a]}]", "'keys' applies to check 'contains_keys'"),
    ("phases: {deploy: {}}", "phases"),
    ("phases: {train: {seeds: 2}}", "training seeds are set twice"),
    ("phases: {train: {seed_flag: s}}", "the train phase has none"),
    ("objective: {metric: acc}\nphases: [train, validate]", "name the objective 'val/acc'"),
])
def test_bad_phase_settings_are_one_line_errors(project_dir: Path, snippet: str, message: str) -> None:
    _commit(project_dir, {"experiments/bad.yaml": f"command: [{sys.executable!r}, train.py]\nseeds: 2\n{snippet}\n"})
    code, _, err = cli("run", "bad")
    assert code == 2 and message in err and "experiments/bad.yaml" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert Project.find().store.count() == 0


def test_validation_and_test_pools_are_disjoint_and_stable(phased: Project) -> None:
    config = experiments.load(phased, "phased")
    validate = experiments.evaluation_seeds(phased, "phased", config, "validate", [11, 22])
    test = experiments.evaluation_seeds(phased, "phased", config, "test", [11, 22])
    assert len(validate) == 3 and len(test) == 2
    assert not set(validate) & set(test) and not set(validate + test) & set(phased.config.seeds)
    assert experiments.evaluation_seeds(phased, "phased", config, "validate", [33]) == validate


def test_tracker_test_selects_by_validation_runs_once_and_warns_the_second_time(phased: Project) -> None:
    assert run_experiment(phased, "phased", RunOptions()).failed == []
    chosen = select(phased, "phased", "val/acc")
    assert chosen.params == {"lr": 0.5} and chosen.value == pytest.approx(0.5) and chosen.configurations == 2

    code, out, err = cli("test", "phased", "--best", "val/acc", "--json", "-q")
    assert code == 0, err
    first = json.loads(out)
    assert first["params"] == {"lr": 0.5} and first["configurations"] == 2 and first["run"] == 1
    assert first["seen_before"] is False and "already seen" not in err
    assert first["metrics"] == {"test/acc": pytest.approx(0.5)}
    tests = [t for t in phased.store.list_trials() if t.phase == "test"]
    assert len(tests) == 2 and {t.seed for t in tests} == set(phased.config.seeds[:2])
    training = {t.id: t for t in phased.store.list_trials() if t.phase == "train"}
    test_seeds = tests[0].extra["eval_seeds"]["test"]
    for t in tests:
        source = training[t.extra["test"]["source"]]
        assert source.params == t.params == {"lr": 0.5} and source.seed == t.seed
        assert t.extra["test"] | {"source": None} == {"metric": "val/acc", "goal": "max", "value": 0.5,
                                                       "configurations": 2, "run": 1, "source": None}
        assert t.extra["eval_seeds"]["test"] == test_seeds and "test" in t.tags
        # the test read its training trial's checkpoint, on test seeds of its own
        tested = json.loads((phased.paths.trial_dir(t.id) / "test.json").read_text())
        assert tested["model"]["seed"] == t.seed and tested["seeds"] == test_seeds
        assert not set(test_seeds) & (set(source.extra["eval_seeds"]["validate"]) | set(phased.config.seeds))
        assert set(t.metrics) == {"test/acc"}

    code, out, _ = cli("trials", "show", tests[0].id)
    assert f"test        of trial {tests[0].extra['test']['source']}, chosen by val/acc (max: 0.5) among 2 " \
           "configuration(s); test run 1" in out
    assert f"test seeds {', '.join(map(str, test_seeds))}" in out
    code, out, _ = cli("trials", "show", tests[0].extra["test"]["source"])
    assert "validate seeds " in out and "test        of" not in out

    code, out, err = cli("test", "phased", "--best", "val/acc", "-q")
    assert code == 0 and "warning: test results of 'phased' were already seen (1 earlier test run(s)" in err
    assert "test run 2" in err
    assert len([t for t in phased.store.list_trials() if t.phase == "test"]) == 4
    # a later training run does not count test trials as configurations, nor re-run them
    assert run_experiment(phased, "phased", RunOptions()).trials == []


def test_tracker_test_refusals(phased: Project, project_dir: Path) -> None:
    code, _, err = cli("test", "phased", "--best", "val/acc")
    assert code == 2 and "has no completed training trials" in err and "tracker run phased" in err
    run_experiment(phased, "phased", RunOptions(seed_count=1))
    code, _, err = cli("test", "phased", "--best", "test/acc")
    assert code == 2 and "test metric" in err
    code, _, err = cli("test", "phased", "--best", "val/nope")
    assert code == 2 and "no completed trial of 'phased' reported val/nope" in err and "val/acc" in err
    code, _, err = cli("test", "phased", "--best", "train/loss")
    assert code == 2 and "--goal" in err
    code, _, err = cli("test", "base", "--best", "val/acc")
    assert code == 2 and "has no test phase" in err
    with pytest.raises(UsageError, match="--goal must be min or max"):
        run_test(phased, "phased", "val/acc", goal="up")
    assert not [t for t in phased.store.list_trials() if t.phase == "test"]


def test_explicit_eval_seeds_meeting_run_seeds_are_refused(phased: Project, project_dir: Path) -> None:
    text = PHASED.replace("seeds: 3,", "seeds: [5, 6, 7],")
    _commit(project_dir, {"experiments/phased.yaml": text})
    with pytest.raises(ConfigError, match="validate seeds must be disjoint"):
        run_experiment(Project.find(), "phased", RunOptions(seeds=[6]))


def test_params_files_per_phase(project_dir: Path) -> None:
    script = textwrap.dedent('''
        import json, os, sys
        params = json.load(open(sys.argv[1].split("=", 1)[1]))
        phase = os.environ["TRACKER_PHASE"]
        print(f"seen: {len(params.get('eval_seeds', []))}")
        assert params["lr"] == 0.1 and ("episodes" in params) == (phase == "validate")
    ''')
    _commit(project_dir, {"j.py": script, "experiments/j.yaml": f"command: [{sys.executable!r}, j.py]\n"
                          "params: {lr: 0.1}\nseeds: 1\nparams_as: json\n"
                          "phases: {validate: {seeds: 4, params: {episodes: 5}}}\n"})
    project = Project.find()
    [trial] = run_experiment(project, "j", RunOptions()).trials
    assert trial.status == "completed", trial.error
    assert trial.metrics == {"train/seen": 0, "val/seen": 4}
    directory = project.paths.trial_dir(trial.id)
    validate = json.loads((directory / "params.validate.json").read_text())
    assert validate["eval_seeds"] == trial.extra["eval_seeds"]["validate"] and validate["seed"] == trial.seed
    assert "eval_seeds" not in json.loads((directory / "params.json").read_text())


def test_export_and_trials_list_have_a_phase_column(phased: Project, tmp_path: Path) -> None:
    # on the old code neither said which rows were test runs
    import csv

    assert cli("run", "phased", "-q")[0] == 0
    assert cli("test", "phased", "--best", "val/acc", "-q")[0] == 0
    assert cli("export", "phased", "--to", str(tmp_path / "all.csv"))[0] == 0
    with (tmp_path / "all.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["phase"] for r in rows}) == ["test", "train"] and len(rows) == 6
    header, *lines = [line.split("\t") for line in cli("trials", "list")[1].splitlines()]
    phase = header.index("phase")
    assert sorted(line[phase] for line in lines) == ["test"] * 2 + ["train"] * 4
    assert {t["phase"] for t in json.loads(cli("trials", "list", "--json")[1])} == {"train", "test"}
    assert cli("trials", "list", "--columns", "id,phase")[1].splitlines()[0] == "id\tphase"
    from tests.core.test_cli_output import run_tty

    code, out, err = run_tty("trials", "list", cwd=phased.root, columns=250)
    assert code == 0 and out.splitlines()[0].split()[:5] == ["id", "experiment", "status", "phase", "seed"], err
def test_the_test_set_is_counted_in_the_store_by_configuration_and_code(phased: Project,
                                                                        project_dir: Path) -> None:
    """Deleting the test trials or copying the experiment file does not make a second test look like the first."""
    assert run_experiment(phased, "phased", RunOptions(seed_count=1)).failed == []
    assert cli("test", "phased", "--best", "val/acc", "-q")[0] == 0
    tests = [t.id for t in phased.store.list_trials() if t.phase == "test"]
    assert cli("trials", "delete", *tests, "--yes")[0] == 0
    code, out, err = cli("test", "phased", "--best", "val/acc", "-q", "--json")
    assert code == 0 and "already seen (1 earlier test run(s)" in err and json.loads(out)["run"] == 2
    # the same file under another name: its own trials, the same configuration on the same code
    _commit(project_dir, {"experiments/copy.yaml": PHASED})
    assert run_experiment(phased, "copy", RunOptions(seed_count=1)).failed == []
    code, out, err = cli("test", "copy", "--best", "val/acc", "-q", "--json")
    assert code == 0 and "already seen (2 earlier test run(s)" in err and "as experiment 'phased'" in err
    assert json.loads(out)["run"] == 3
    # other code is another count
    _commit(project_dir, {"evaluate.py": EVALUATE + "\n# changed\n", "experiments/other.yaml": PHASED})
    assert run_experiment(phased, "other", RunOptions(seed_count=1)).failed == []
    code, out, err = cli("test", "other", "--best", "val/acc", "-q", "--json")
    assert code == 0 and json.loads(out)["run"] == 1 and "already seen" not in err


@pytest.mark.parametrize("metric", ["train/test/acc", "test_acc", "val/test-loss", "TEST.acc"])
def test_no_test_metric_drives_selection_under_any_name(phased: Project, metric: str) -> None:
    run_experiment(phased, "phased", RunOptions(seed_count=1))
    code, _, err = cli("test", "phased", "--best", metric)
    assert code == 2 and "test metric" in err
    with pytest.raises(ConfigError, match="test metric"):
        experiments.load(_with(phased, f"objective: {{metric: {metric}, goal: max}}\n"), "sel")
    code, _, err = cli("compare", "phased", "--metric", metric)
    assert code == 2 and "is a test metric: ranking train trials by it would choose" in err


def _with(project: Project, extra: str) -> Project:
    (project.root / "experiments/sel.yaml").write_text(PHASED.split("objective:")[0] + extra)
    return project
