"""tracker compare on trials of real runs: rows, sorting, --by, --where, --stat, pairing, Holm, output, errors.

The project's score.py prints a val/acc curve whose last value is a known function of the params
plus a noise that depends only on the seed (so configurations run on the same seeds are paired),
peaking 0.02 above its last value at step 2 of 4.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from tests.conftest import cli, git
from tracker.analysis import stats
from tracker.analysis.compare import Comparison, compare
from tracker.errors import UsageError
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment

SCORE = textwrap.dedent(
    """\
    import argparse, random, sys
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--act", default="relu")
    p.add_argument("--offset", type=float, default=0.0)
    p.add_argument("--fail", type=int, default=0)
    p.add_argument("--diverge", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.fail:
        sys.exit(3)
    if a.diverge:
        print("step: 0 val/acc: 0.5")
        print("step: 1 val/acc: inf")
        sys.exit(0)
    final = 0.9 - abs(a.lr - 0.1) - 0.02 * (a.layers - 1) + (0.01 if a.act == "relu" else 0) + a.offset
    final += random.Random(a.seed).uniform(-0.01, 0.01)  # the seed's luck, shared by every configuration
    final += random.Random(f"{a.seed} {a.lr} {a.layers} {a.act} {a.offset}").gauss(0, 0.004)  # and its own
    for step, value in enumerate([final - 0.08, final - 0.03, final + 0.02, final]):
        print(f"step: {step} val/acc: {value:.6f} train/loss: {1 - value:.6f}")
    """
)
GRID_SEEDS = [11, 22, 33, 44]


def _experiment(params: str, extra: str = "objective: {metric: val/acc, goal: max}\n") -> str:
    return f"command: [{sys.executable!r}, score.py]\nparams: {params}\n{extra}"


EXPERIMENTS = {
    # 3 lr x 2 layers, 4 seeds: 24 trials; the best is lr=0.1 layers=1
    "grid": _experiment("{act: relu}", "grid: {lr: [0.1, 0.01, 0.5], layers: [1, 2]}\n"
                        "objective: {metric: val/acc, goal: max}\n"),
    # the best config a little worse, on seeds 33, 44, 55: shares 2 seeds with grid
    "shifted": _experiment("{lr: 0.1, layers: 1, offset: -0.01}"),
    # on seeds 55, 66, 77: shares none
    "disjoint": _experiment("{lr: 0.1, layers: 1, offset: -0.05}"),
    "lossy": _experiment("{}", "objective: {metric: train/loss, goal: min}\n"),
    "plain": _experiment("{}", ""),
}


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, run once for the module: grid (24 trials), shifted (3), disjoint (3, 1 failed, 1 whose
    val/acc ends infinite)."""
    root = tmp_path_factory.mktemp("compare") / "proj"
    (root / "experiments").mkdir(parents=True)
    (root / "score.py").write_text(SCORE)
    (root / "tracker.yaml").write_text(f"name: cmp\nseeds: {[*GRID_SEEDS, 55, 66, 77]}\nmaster_seed: 1\n")
    (root / ".gitignore").write_text(".tracker/\n")
    for name, text in EXPERIMENTS.items():
        (root / "experiments" / f"{name}.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        cfg = root.parent / ".gitconfig"
        cfg.write_text("[user]\n\tname = Test User\n\temail = test@example.invalid\n[commit]\n\tgpgsign = false\n")
        mp.setenv("GIT_CONFIG_GLOBAL", str(cfg))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "init")
        project = Project.load(root)
        for name, seeds, params in (("grid", GRID_SEEDS, {}), ("shifted", [33, 44, 55], {}),
                                    ("disjoint", [55, 66, 77], {}), ("disjoint", [88], {"fail": 1}),
                                    ("disjoint", [99], {"diverge": 1})):
            result = run_experiment(project, name, RunOptions(seeds=seeds, params=params, parallel=2,
                                                              max_failures=0))
            assert {t.status for t in result.trials} == {"failed" if "fail" in params else "completed"}
    return root


@pytest.fixture
def project(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(project_root)
    return Project.load(project_root)


def expected_final(lr: float, layers: int, seed: int, offset: float = 0.0) -> float:
    import random

    return (0.9 - abs(lr - 0.1) - 0.02 * (layers - 1) + 0.01 + offset + random.Random(seed).uniform(-0.01, 0.01)
            + random.Random(f"{seed} {float(lr)} {layers} relu {offset}").gauss(0, 0.004))


def test_rows_are_configurations_over_seeds_best_first(project: Project) -> None:
    result = compare(project, ["grid"])
    assert (result.metric, result.goal, result.stat, result.goal_source) == ("val/acc", "max", "mean",
                                                                           "objective of grid")
    assert result.trials == 24 and len(result.rows) == 6
    assert [(r.params["lr"], r.params["layers"]) for r in result.rows] == [
        (0.1, 1), (0.1, 2), (0.01, 1), (0.01, 2), (0.5, 1), (0.5, 2)]
    stored = {t.id: t for t in project.store.list_trials(experiment="grid")}
    for row in result.rows:
        assert row.experiment == "grid" and row.n == 4 and row.seeds == GRID_SEEDS
        assert row.params == {"act": "relu", "lr": row.params["lr"], "layers": row.params["layers"]}
        assert row.values == pytest.approx([expected_final(row.params["lr"], row.params["layers"], s)
                                            for s in GRID_SEEDS], abs=1e-6)
        assert sorted(stored[i].seed for i in row.trial_ids) == GRID_SEEDS
        assert row.mean == pytest.approx(np.mean(row.values)) and row.value == row.mean
        assert row.std == pytest.approx(np.std(row.values, ddof=1))
        assert row.median == pytest.approx(np.median(row.values))
        assert row.iqm == pytest.approx(sps.trim_mean(row.values, 0.25))
        assert (row.min, row.max) == (min(row.values), max(row.values))
        assert row.ci_low is not None and row.ci_low <= row.mean <= row.ci_high
        # the best along each curve is 0.02 above the last value, at step 2
        assert row.best_step_value == pytest.approx(row.mean + 0.02, abs=1e-5) and row.best_step == 2
    assert compare(project, ["grid"]).as_dict() == result.as_dict()  # bootstrap seeded: reproducible


def test_paired_on_shared_seeds_holm_and_the_sentence(project: Project) -> None:
    result = compare(project, ["grid"])
    assert len(result.pairs) == 5 and all(p.a == 0 and p.paired and p.n == 4 for p in result.pairs)
    best = result.rows[0]
    for pair in result.pairs:
        other = result.rows[pair.b]
        assert pair.difference == pytest.approx(other.mean - best.mean)
        assert pair.p_value == pytest.approx(sps.ttest_rel(other.values, best.values).pvalue)
        assert pair.p_rank == pytest.approx(sps.wilcoxon(np.subtract(other.values, best.values)).pvalue)
        d = np.subtract(other.values, best.values)
        assert pair.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
        assert pair.prob_improvement == pytest.approx(
            sps.mannwhitneyu(best.values, other.values).statistic / 16)
    holm = multipletests([p.p_value for p in result.pairs], method="holm")[1]
    assert [p.p_adjusted for p in result.pairs] == pytest.approx(list(holm))
    assert any(p.p_adjusted > p.p_value for p in result.pairs)
    layers = next(p for p in result.pairs if result.rows[p.b].params == {"act": "relu", "lr": 0.1, "layers": 2})
    assert layers.sentence.startswith(f"layers=1 is better than layers=2 by {-layers.difference:.3g} (95% CI ")


def test_partly_shared_seeds_are_paired_disjoint_ones_are_not(project: Project) -> None:
    result = compare(project, ["grid", "shifted", "disjoint"], by=["lr", "layers"])
    by_exp = {r.experiment: r for r in result.rows}
    assert by_exp["grid,shifted,disjoint"].n == 7  # lr=0.1 layers=1 of all three: seeds 11..77
    result = compare(project, ["grid", "shifted", "disjoint"])
    rows = {(r.experiment, r.params.get("lr"), r.params.get("layers")): i for i, r in enumerate(result.rows)}
    assert result.rows[0].experiment == "grid" and result.rows[0].params["lr"] == 0.1
    pairs = {p.b: p for p in result.pairs}
    shifted = pairs[rows[("shifted", 0.1, 1)]]
    assert shifted.paired and shifted.n == 2 and shifted.test == "paired t-test"
    best, other = result.rows[0], result.rows[shifted.b]
    assert other.seeds == [33, 44, 55] and other.n == 3
    assert shifted.difference == pytest.approx(np.mean(other.values[:2]) - np.mean(best.values[2:]))
    assert "over 2 shared seeds" in shifted.sentence
    disjoint = pairs[rows[("disjoint", 0.1, 1)]]
    assert not disjoint.paired and disjoint.test == "Welch's t-test" and (disjoint.n_a, disjoint.n_b) == (4, 3)
    other = result.rows[disjoint.b]
    assert disjoint.p_value == pytest.approx(sps.ttest_ind(other.values, best.values, equal_var=False).pvalue)
    assert disjoint.p_rank == pytest.approx(sps.mannwhitneyu(other.values, best.values).pvalue)
    assert "over 4 and 3 seeds (no shared seeds)" in disjoint.sentence
    assert disjoint.sentence.startswith(
        f"grid act=relu is better than disjoint offset=-0.05 by {-disjoint.difference:.3g} (95% CI ")
    # the failed trial of 'disjoint' (seed 88) is not compared, nor the one whose val/acc is infinite (99)
    assert other.seeds == [55, 66, 77]
    failed = project.store.list_trials(experiment="disjoint", status="failed")
    assert failed and failed[0].id not in other.trial_ids
    assert result.missing == 1 and result.trials == 24 + 3 + 4


def test_significance_and_needed_seeds_in_the_sentence(project: Project) -> None:
    result = compare(project, ["grid"])
    sentences = {(result.rows[p.b].params["lr"], result.rows[p.b].params["layers"]): p for p in result.pairs}
    far = sentences[(0.5, 2)]
    assert re.fullmatch(r"lr=0\.1 layers=1 is better than lr=0\.5 layers=2 by 0\.4\d+ \(95% CI [\d.]+\.\.[\d.]+\), "
                        r"p[<=][\d.]+ after Holm, paired t-test over 4 shared seeds: (not )?significant.*",
                        far.sentence), far.sentence
    result = compare(project, ["grid", "shifted", "disjoint"])
    shifted = next(p for p in result.pairs if result.rows[p.b].experiment == "shifted")
    assert shifted.paired and shifted.n == 2 and not shifted.significant and shifted.needed_seeds >= 3
    assert shifted.sentence.endswith(f"over 2 shared seeds: not significant (about {shifted.needed_seeds} seeds "
                                     "per configuration would detect a difference this large 80% of the time)")
    assert shifted.needed_seeds == stats.needed_seeds(shifted.effect_size, paired=True)
    for pair in result.pairs:
        if pair.p_adjusted is not None:
            assert pair.significant == (pair.p_adjusted < 0.05)
            assert (pair.needed_seeds is None) == pair.significant
            if not pair.significant:
                assert f"about {pair.needed_seeds} seeds per configuration" in pair.sentence


def test_by_aggregates_the_other_params_per_seed(project: Project) -> None:
    result = compare(project, ["grid"], by=["lr"])
    assert [r.params for r in result.rows] == [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.5}]
    for row in result.rows:
        lr = row.params["lr"]
        assert row.n == 4 and len(row.trial_ids) == 8
        assert row.values == pytest.approx([(expected_final(lr, 1, s) + expected_final(lr, 2, s)) / 2
                                            for s in GRID_SEEDS], abs=1e-6)
    assert compare(project, ["grid"], by=["lr,layers"]).rows[0].params == {"lr": 0.1, "layers": 1}
    experiments = compare(project, ["grid", "shifted"], by=["experiment"])
    assert [r.experiment for r in experiments.rows] == ["shifted", "grid"]  # grid averages in worse configs
    assert experiments.rows[0].params == {}


def test_where_filters_trials_by_params_and_metrics(project: Project) -> None:
    rows = compare(project, ["grid"], where="lr<0.1").rows
    assert {r.params["lr"] for r in rows} == {0.01}
    rows = compare(project, ["grid"], where="layers>=2 and act==relu").rows
    assert len(rows) == 3 and {r.params["layers"] for r in rows} == {2}
    rows = compare(project, ["grid"], where="not (lr == 0.5 or layers = 2)").rows
    assert {(r.params["lr"], r.params["layers"]) for r in rows} == {(0.1, 1), (0.01, 1)}
    rows = compare(project, ["grid"], where="val/acc > 0.88").rows  # per trial: some seeds of lr=0.1 layers=2 pass
    assert rows[0].params["lr"] == 0.1 and all(v > 0.88 for r in rows for v in r.values)
    assert compare(project, ["grid"], where="act == 'tanh'").rows == []
    code, out, _ = cli("compare", "grid", "--where", "act == 'tanh'")
    assert code == 0 and out.splitlines()[-1] == "no trial left to compare where act == 'tanh'"
    assert compare(project, ["grid"], where="seed <= 22").rows[0].seeds == [11, 22]


@pytest.mark.parametrize("text, message", [
    ("lr<<0.1", "expected a value (a number, a word or a quoted text) at column 4 ('<0.1')"),
    ("lr<0.1 and", "expected a comparison such as lr<0.1 at the end"),
    ("(lr<0.1", "expected ')' at the end"),
    ("lr 0.1", "expected an operator (< <= > >= == !=) after 'lr' at column 4 ('0.1')"),
    ("lr<0.1 layers>1", "expected 'and', 'or' or the end at column 8 ('layers>1')"),
    ("lr<0.1 ; import os", "unexpected ';' at column 8"),
    ("", "empty expression at the end"),
])
def test_a_bad_where_says_where_it_failed(project: Project, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        compare(project, ["grid"], where=text)


def test_stat_median_and_iqm_rank_by_that_statistic(project: Project) -> None:
    for stat in ("median", "iqm"):
        result = compare(project, ["grid", "shifted", "disjoint"], stat=stat)
        assert result.stat == stat
        values = [r.value for r in result.rows]
        assert values == sorted(values, reverse=True)
        for row in result.rows:
            expected = np.median(row.values) if stat == "median" else sps.trim_mean(row.values, 0.25)
            assert row.value == pytest.approx(expected)
        pair = next(p for p in result.pairs if result.rows[p.b].experiment == "disjoint")  # unpaired: all values
        fn = np.median if stat == "median" else (lambda v: sps.trim_mean(v, 0.25))
        assert pair.difference == pytest.approx(fn(result.rows[pair.b].values) - fn(result.rows[0].values))


def test_metric_and_goal_choices(project: Project) -> None:
    loss = compare(project, ["grid"], metric="train/loss")
    assert (loss.goal, loss.goal_source) == ("max", "default")  # not the objective's metric: default, said so
    loss = compare(project, ["grid"], metric="train/loss", goal="min")
    assert loss.goal_source == "--goal" and loss.rows[0].params["lr"] == 0.1
    assert loss.rows[0].best_step_value == pytest.approx(loss.rows[0].mean - 0.02, abs=1e-5)  # the lowest loss
    assert compare(project, ["grid", "shifted"]).metric == "val/acc"  # the objectives agree
    with pytest.raises(UsageError, match=r"objectives differ \(grid: val/acc, lossy: train/loss\).*--metric"):
        compare(project, ["grid", "lossy"])
    with pytest.raises(UsageError, match=r"plain names no objective.*give --metric"):
        compare(project, ["plain"])


def test_errors_are_one_line_with_exit_2(project: Project) -> None:
    for args, message in (
        (["nope"], "no experiment 'nope'"),
        (["grid", "--metric", "val/f1"], "has the metric 'val/f1' (metrics that exist: train/loss, val/acc)"),
        (["grid", "--stat", "mode"], "--stat must be one of mean, median, iqm, not 'mode'"),
        (["grid", "--goal", "up"], "--goal must be min or max"),
        (["grid", "--phase", "validate"], "--phase must be one of train, test"),
        (["grid", "--phase", "test"], "no completed test trials of grid"),
        (["grid", "--by", "depth"], "--by names 'depth', which no selected trial has as a param"),
        (["grid", "--where", "depth>2"], "--where names 'depth', which no selected trial has"),
        (["grid", "--where", "lr<"], "bad --where 'lr<'"),
        (["grid", "lossy"], "objectives differ"),
    ):
        code, _, err = cli("compare", *args)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_table_fits_the_terminal_then_the_sentences(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    result = compare(project, ["grid", "shifted", "disjoint"])
    for width in (120, 70, 40):
        monkeypatch.setenv("COLUMNS", str(width))
        code, out, err = cli("compare", "grid", "shifted", "disjoint")
        assert code == 0, err
        lines = out.splitlines()
        head = "val/acc: higher is better (objective of grid); mean over seeds, ranked by its 95% CI's lower bound"
        assert lines[0] == (head if len(head) <= width else head[:width - 1] + "…")
        assert lines[2] == "(1 trial(s) without a finite val/acc left out)"[:width - 1] + ("…" if width < 47 else "")
        blank = lines.index("")
        table = lines[3:blank]
        assert all(len(line) <= width for line in table)
        assert len(table) == 1 + len(result.rows) + ("same in every row" in out)
        assert lines[blank + 1:] == [f"#{p.b + 1} vs #1: {p.sentence}" for p in result.pairs]
    monkeypatch.setenv("COLUMNS", "200")
    _, wide, _ = cli("compare", "grid", "shifted", "disjoint")
    header = wide.splitlines()[3].split()
    assert header[:6] == ["#", "experiment", "act", "lr", "layers", "offset"]
    assert header[6:] == ["n", "mean", "95%", "CI", "std", "median", "iqm", "min", "max", "best@step"]
    first = wide.splitlines()[4].split()
    assert first[:8] == ["1", "grid", "relu", "0.1", "1", "-", "4", f"{result.rows[0].mean:.4g}"]
    monkeypatch.setenv("COLUMNS", "70")
    _, narrow, _ = cli("compare", "grid", "shifted", "disjoint")
    header = narrow.splitlines()[3].split()
    assert header[-5:] == ["offset", "n", "mean", "95%", "CI"]  # the other statistics went first
    monkeypatch.setenv("COLUMNS", "40")
    _, tiny, _ = cli("compare", "grid", "shifted", "disjoint")
    assert tiny.splitlines()[3].split() == ["#", "ex…", "act", "lr", "la…", "of…", "n", "mean"]  # no CI either
    assert tiny.splitlines()[5].split() == ["2", "sh…", "-", "0.1", "1", "-0…", "3", f"{result.rows[1].mean:.4g}"]


def test_cli_json_and_csv(project: Project) -> None:
    code, out, err = cli("compare", "grid", "--json")
    assert code == 0, err
    data = json.loads(out)
    expected = compare(project, ["grid"]).as_dict()
    assert data == json.loads(json.dumps(expected))
    assert set(data) >= {"metric", "goal", "stat", "rows", "pairs", "experiments", "phase", "by", "where"}
    assert set(data["rows"][0]) >= {"experiment", "params", "n", "seeds", "values", "trial_ids", "mean", "std",
                                    "median", "iqm", "value", "min", "max", "ci_low", "ci_high",
                                    "best_step_value", "best_step"}
    assert set(data["pairs"][0]) >= {"a", "b", "paired", "n", "test", "difference", "ci_low", "ci_high", "p_value",
                                     "p_adjusted", "effect_size", "effect", "significant", "needed_seeds",
                                     "sentence", "rank_test", "p_rank", "prob_improvement"}
    code, out, err = cli("compare", "grid", "--by", "lr", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert [float(r["params.lr"]) for r in rows] == [0.1, 0.01, 0.5]
    assert rows[0]["stat"] == "mean" and float(rows[0]["value"]) == pytest.approx(float(rows[0]["mean"]))
    assert int(rows[0]["n"]) == 4 and float(rows[0]["ci_low"]) < float(rows[0]["value"])


def test_one_seed_has_no_interval_and_no_test(project: Project) -> None:
    result = compare(project, ["grid"], where="seed == 11")
    assert all(r.n == 1 and r.std is None and r.ci_low is None and r.ci_high is None for r in result.rows)
    assert all(p.p_value is None and not p.significant for p in result.pairs)
    assert result.pairs[0].sentence.endswith("over 1 shared seed: too few seeds for a test")  # was "1 seed each"
    assert result.pairs[0].shared == 1 and not any(r.ranked for r in result.rows)
    data = Comparison.as_dict(result)
    assert all(math.isfinite(v) for r in data["rows"] for v in r["values"])


def test_test_phase_trials_of_tracker_test(project_dir: Path) -> None:
    from tests.core.test_phases import EVALUATE, PHASED, TRAIN
    from tracker.heldout import run_test

    for name, text in {"ptrain.py": TRAIN, "evaluate.py": EVALUATE, "experiments/phased.yaml": PHASED}.items():
        (project_dir / name).write_text(text)
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "phases")
    project = Project.find()
    assert run_experiment(project, "phased", RunOptions()).failed == []
    training = compare(project, ["phased"])
    assert training.metric == "val/acc" and [r.params for r in training.rows] == [{"lr": 0.5}, {"lr": 0.1}]
    run_test(project, "phased", "val/acc")
    tested = compare(project, ["phased"], phase="test")  # the objective's twin: test/acc, goal max
    assert (tested.metric, tested.goal, tested.goal_source) == ("test/acc", "max", "objective of phased")
    assert len(tested.rows) == 1 and tested.rows[0].params == {"lr": 0.5} and tested.rows[0].n == 2
    assert tested.rows[0].mean == pytest.approx(0.5) and tested.pairs == []
    test_ids = {t.id for t in project.store.list_trials(experiment="phased") if t.phase == "test"}
    assert set(tested.rows[0].trial_ids) == test_ids
    assert not set(training.rows[0].trial_ids) & test_ids
