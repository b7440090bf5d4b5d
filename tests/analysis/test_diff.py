"""tracker diff A B: two real trials or experiments, run on real commits, dirty trees and environments."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tracker.analysis.diff import ExperimentDiff, TrialDiff, diff
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment
from tracker.store import Trial


def run_one(project: Project, seed: int, lr: float, experiment: str = "base") -> Trial:
    result = run_experiment(project, experiment, RunOptions(seeds=[seed], params={"lr": lr}))
    [trial] = result.trials
    assert trial.status == "completed", trial.error
    return trial


def changed_lines(patch: str) -> list[str]:
    """The +/- lines of a unified diff, without its file headers."""
    return [line for line in patch.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))]


@pytest.fixture
def two_commits(project_dir: Path) -> tuple[Project, Trial, Trial]:
    """Trial A on the first commit; trial B on a second commit plus uncommitted edits and a new file."""
    project = Project.find()
    a = run_one(project, 11, 0.1)
    script = project_dir / "train.py"
    script.write_text(script.read_text().replace("loss = 1.0\n", "loss = 2.0\n"))
    git(project_dir, "commit", "-qam", "start the loss at 2")
    script.write_text(script.read_text() + "# tuned by hand\n")
    (project_dir / "notes.txt").write_text("try a smaller lr\n")
    b = run_one(project, 22, 0.5)
    assert not a.dirty and b.dirty and a.commit != b.commit
    return project, a, b


EXPECTED = ["+try a smaller lr", "-loss = 1.0", "+loss = 2.0", "+# tuned by hand"]


def test_code_diff_is_exactly_the_changed_lines_of_commit_and_dirty_patch(
        two_commits: tuple[Project, Trial, Trial], project_dir: Path) -> None:
    project, a, b = two_commits
    result = diff(project, a.id[:6], b.id[:6])
    assert isinstance(result, TrialDiff) and result.code is not None
    assert not result.code.same and result.code.unavailable is None
    assert changed_lines(result.code.patch) == EXPECTED
    assert result.code.a == a.commit[:8] and result.code.b == f"{b.commit[:8]} + uncommitted changes"
    # the reverse direction swaps the signs
    back = diff(project, b.id, a.id)
    assert changed_lines(back.code.patch) == ["-try a smaller lr", "-loss = 2.0", "+loss = 1.0", "-# tuned by hand"]

    code, out, err = cli("diff", a.id, b.id)
    assert code == 0, err
    assert "\x1b[" not in out  # no colour when stdout is no terminal
    assert changed_lines(out.split(f"code  A {a.commit[:8]}", 1)[1]) == EXPECTED

    code, out, _ = cli("diff", a.id, b.id, "--stat")
    assert code == 0
    stat = out.split("code  A", 1)[1].splitlines()[1:]
    assert [line.split() for line in stat] == [["+", "-"], ["notes.txt", "1", "0"], ["train.py", "2", "1"]]
    assert diff(project, a.id, b.id, stat=True).code.stat == [("notes.txt", 1, 0), ("train.py", 2, 1)]

    code, out, _ = cli("diff", a.id, b.id, "--no-code")
    assert code == 0 and "code" not in out and diff(project, a.id, b.id, code=False).code is None

    # in a clone without B's snapshot, the code is rebuilt from B's commit and its saved patch
    git(project_dir, "update-ref", "-d", f"refs/tracker/trials/{b.id}")
    git(project_dir, "gc", "-q", "--prune=now")
    assert subprocess.run(["git", "cat-file", "-e", b.snapshot], cwd=project_dir).returncode != 0
    assert changed_lines(diff(project, a.id, b.id).code.patch) == EXPECTED


def test_same_code_is_one_line_and_params_seeds_metrics_show_side_by_side(project_dir: Path) -> None:
    project = Project.find()
    a, b = run_one(project, 11, 0.1), run_one(project, 22, 0.5)
    result = diff(project, a.id, b.id)
    assert result.code is not None and result.code.same and result.code.patch == ""
    assert result.params.changed == {"lr": (0.1, 0.5)} and not result.params.added and not result.params.removed
    assert result.seeds == {"train": (11, 22)}
    by_name = {m.name: m for m in result.metrics}
    assert set(by_name) == {"train/loss", "val/acc"}
    acc = by_name["val/acc"]
    assert (acc.a, acc.b) == (a.metrics["val/acc"], b.metrics["val/acc"])
    assert acc.difference == pytest.approx(b.metrics["val/acc"] - a.metrics["val/acc"])
    assert result.environment.same  # one run environment, recorded once

    code, out, err = cli("diff", a.id, b.id)
    assert code == 0, err
    assert f"code  A {a.commit[:8]}  B {b.commit[:8]}: same code" in out.splitlines()
    assert "  changed  lr: 0.1 -> 0.5" in out and "  train      11 -> 22" in out
    [acc_line] = [line for line in out.splitlines() if line.strip().startswith("val/acc")]
    assert acc_line.split() == ["val/acc", f"{acc.a:.4g}", f"{acc.b:.4g}", f"{acc.difference:+.4g}"]
    assert "environment" not in out and "epochs" not in out.split("params", 1)[1]  # only differences


    data = json.loads(cli("diff", a.id, b.id, "--json")[1])
    assert data["kind"] == "trials" and data["a"]["id"] == a.id and data["b"]["id"] == b.id
    assert data["params"]["changed"] == {"lr": {"a": 0.1, "b": 0.5}}
    assert data["seeds"] == {"train": {"a": 11, "b": 22}}
    assert data["code"]["same"] is True and data["environment"]["same"] is True


VALIDATE = f"""\
phases:
  validate:
    command: [{sys.executable!r}, -c, "print('acc: 0.5')"]
    seed_flag: null
    seeds: SEEDS
"""


def test_evaluation_seeds_of_a_validate_phase(project_dir: Path) -> None:
    experiment = project_dir / "experiments" / "base.yaml"
    base = experiment.read_text()
    experiment.write_text(base + VALIDATE.replace("SEEDS", "2"))
    git(project_dir, "commit", "-qam", "validate over 2 seeds")
    project = Project.find()
    a = run_one(project, 11, 0.1)
    experiment.write_text(base + VALIDATE.replace("SEEDS", "3"))
    git(project_dir, "commit", "-qam", "validate over 3 seeds")
    b = run_one(project, 11, 0.1)
    first, second = a.extra["eval_seeds"]["validate"], b.extra["eval_seeds"]["validate"]
    assert len(first) == 2 and second[:2] == first and len(second) == 3
    result = diff(project, a.id, b.id)
    assert result.seeds == {"validate": (first, second)}  # the same training seed
    assert a.metrics["val/acc"] == b.metrics["val/acc"] == 0.5 and result.metrics == []  # same seed, same code
    code, out, _ = cli("diff", a.id, b.id)
    assert code == 0 and f"  validate   {json.dumps(first)} -> {json.dumps(second)}" in out
    assert "\nmetrics\n" not in out and "\nparams\n" not in out


def fake_package(site: Path, name: str, version: str) -> None:
    """Install a distribution the way pip leaves one: its .dist-info metadata in site-packages."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_environment_difference_after_packages_changed(project_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    fake_package(site, "demo-model", "1.0")
    fake_package(site, "old-helper", "0.3")
    experiment = project_dir / "experiments" / "base.yaml"
    experiment.write_text(experiment.read_text().replace(repr(sys.executable), repr(str(python))))
    git(project_dir, "commit", "-qam", "run in the test venv")
    project = Project.find()
    a = run_one(project, 11, 0.1)
    for path in site.glob("demo_model-*.dist-info"):  # upgrade demo-model, remove old-helper, add new-helper
        subprocess.run(["rm", "-r", str(path)], check=True)
    subprocess.run(["rm", "-r", str(next(site.glob("old_helper-*.dist-info")))], check=True)
    fake_package(site, "demo-model", "2.0")
    fake_package(site, "new-helper", "1.1")
    b = run_one(project, 22, 0.1)
    assert a.env_id != b.env_id

    env = diff(project, a.id, b.id).environment
    assert not env.same and env.fields == {}  # same python, host, OS: only the packages changed
    assert env.packages.changed == {"demo-model": ("1.0", "2.0")}
    assert env.packages.added == {"new-helper": "1.1"} and env.packages.removed == {"old-helper": "0.3"}
    code, out, _ = cli("diff", a.id, b.id)
    assert code == 0
    section = out.split("\nenvironment\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section == ["  package      demo-model 1.0 -> 2.0", "  package      + new-helper 1.1",
                       "  package      - old-helper 0.3"]

    # a trial of another interpreter: the python executable and the whole package set differ
    experiment.write_text(experiment.read_text().replace(repr(str(python)), repr(sys.executable)))
    git(project_dir, "commit", "-qam", "back to the project python")
    d = run_one(project, 33, 0.1)
    other = diff(project, b.id, d.id).environment
    assert other.fields["executable"] == (str(python), sys.executable)
    assert "demo-model" in other.packages.removed and "typer" in other.packages.added


WIDE = textwrap.dedent(f"""\
    command: [{sys.executable!r}, train.py]
    params: {{epochs: 4}}
    grid: {{lr: [0.2, 0.5]}}
    seeds: 3
    objective: {{metric: val/acc, goal: max}}
    """)


def test_experiments_diff_configs_seeds_counts_objective_commits(project_dir: Path) -> None:
    project = Project.find()
    base = run_experiment(project, "base", RunOptions()).trials  # lr 0.1, 0.5 x seeds 11, 22
    (project_dir / "experiments" / "wide.yaml").write_text(WIDE)
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "a wider experiment")
    wide = run_experiment(project, "wide", RunOptions()).trials  # lr 0.2, 0.5 x seeds 11, 22, 33
    assert {t.status for t in base + wide} == {"completed"}

    result = diff(project, "base", "wide")
    assert isinstance(result, ExperimentDiff) and result.config_source == ("stored", "stored")
    assert result.config.changed["params.epochs"] == (3, 4)
    assert result.config.changed["grid.lr"] == ([0.1, 0.5], [0.2, 0.5])
    assert result.config.changed["seeds"] == (2, 3)
    assert result.config.added["objective.metric"] == "val/acc"
    assert "command" not in result.config.changed  # the same command
    assert result.seeds == ([], [33])
    assert result.counts == {"completed": (4, 6)}
    objective = result.objective
    assert objective is not None and objective.metric == "val/acc"  # wide's objective, base has none
    assert (objective.a_n, objective.b_n) == (4, 6)
    assert objective.a_mean == pytest.approx(sum(t.metrics["val/acc"] for t in base) / 4)
    assert objective.b_mean == pytest.approx(sum(t.metrics["val/acc"] for t in wide) / 6)
    assert result.commits == ({base[0].commit[:8]: 4}, {wide[0].commit[:8]: 6})
    assert result.environment is not None and result.environment.same

    code, out, err = cli("diff", "base", "wide")
    assert code == 0, err
    assert "  changed  grid.lr: [0.1, 0.5] -> [0.2, 0.5]" in out and "  only B  33" in out
    assert "  completed  4 -> 6" in out
    assert f"  A  {base[0].commit[:8]} (4 trials)" in out and f"  B  {wide[0].commit[:8]} (6 trials)" in out
    [mean] = [line.split() for line in out.splitlines() if line.strip().startswith("mean")]
    assert mean == ["mean", f"{objective.a_mean:.4g}", f"{objective.b_mean:.4g}", f"{objective.difference:+.4g}"]
    # an experiment that never ran is compared on its file; the metric can be chosen
    (project_dir / "experiments" / "fresh.yaml").write_text(WIDE.replace("seeds: 3", "seeds: 5"))
    fresh = diff(project, "wide", "fresh", metric="train/loss")
    assert fresh.config_source == ("stored", "file") and fresh.config.changed == {"seeds": (3, 5)}
    assert fresh.counts == {"completed": (6, 0)} and fresh.objective.metric == "train/loss"
    assert fresh.objective.b_n == 0 and fresh.objective.b_mean is None and fresh.environment is None
    data = json.loads(cli("diff", "base", "wide", "--json")[1])
    assert data["kind"] == "experiments" and data["counts"] == {"completed": {"a": 4, "b": 6}}
    assert data["seeds"] == {"only_a": [], "only_b": [33]}


def test_credentials_in_a_dirty_tracker_yaml_are_masked_whatever_the_git_config(project_dir: Path) -> None:
    project = Project.find()
    a = run_one(project, 11, 0.1)
    secret = "K3yOfTheB2Account"
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write(f"storage:\n  keyed: {{type: b2, bucket: models, application_key: {secret}}}\n")
    b = run_one(project, 11, 0.5)
    git(project_dir, "config", "diff.noprefix", "true")  # the user's git config changes no path in the diff
    code, out, _ = cli("diff", a.id, b.id)
    assert code == 0 and secret not in out and "diff --git a/tracker.yaml b/tracker.yaml" in out
    assert "+  keyed: {type: b2, bucket: models, application_key: ***}" in out


def test_errors_are_one_line(project_dir: Path) -> None:
    project = Project.find()
    a, b = run_one(project, 11, 0.1), run_one(project, 22, 0.1)
    for args, message in [
        ((a.id, "base"), f"error: cannot diff trial {a.id!r} against experiment 'base'"),
        (("base", a.id[:5]), f"error: cannot diff experiment 'base' against trial {a.id[:5]!r}"),
        ((a.id, "nope"), "error: no trial or experiment 'nope'"),
        (("nope", "base"), "error: no trial or experiment 'nope'"),
        ((a.id, b.id, "--metric", "val/acc"), "error: --metric applies to experiments, not trials"),
        (("base", "base", "--stat"), "error: --stat and --no-code apply to trials, not experiments"),
        ((a.id, b.id, "--stat", "--no-code"), "error: --stat and --no-code contradict each other"),
    ]:
        code, out, err = cli("diff", *args)
        assert code == 2 and out == "", args
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    # a trial whose code is in no commit here: the rest is still compared, the code section says why
    git(project_dir, "update-ref", "-d", "HEAD")  # nothing points at the commit any more
    git(project_dir, "reflog", "expire", "--expire=now", "--all")
    git(project_dir, "gc", "-q", "--prune=now")
    code, out, _ = cli("diff", a.id, b.id)
    assert code == 0 and re.search(rf"cannot compare the code: commit {a.commit[:12]} of trial {a.id} is not "
                                   r"in this repository \(fetch the branch", out)
