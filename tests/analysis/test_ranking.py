"""How compare and report rank configurations: by what a configuration is worth with 95% confidence,
not by its luckiest seed; the shared-seed count; --tag and --min-seeds; repeated test runs; report --out.

The trials are written into a real project's store (as a restore would) with known final values.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import cli, make_project
from tracker.analysis.compare import compare
from tracker.project import Project
from tracker.store import MetricPoint, Trial, now

# configuration (lr) -> its val/acc on each seed
LUCKY = {"lr": 0.9}  # one seed, the highest value of all
STEADY = {"lr": 0.1}  # five seeds, a little lower, tight
NOISY = {"lr": 0.3}  # five seeds, a higher mean than STEADY but spread wide
VALUES = {
    0.9: {11: 0.99},
    0.1: {11: 0.90, 22: 0.91, 33: 0.90, 44: 0.91, 55: 0.90},
    0.3: {11: 0.80, 22: 1.00, 33: 0.82, 44: 0.99, 55: 0.95},
}


def add(project: Project, lr: float, seed: int, value: float, *, phase: str = "train", tags: list[str] | None = None,
        n: int = 0) -> str:
    trial_id = f"t{int(lr * 100):03d}s{seed}{phase[:2]}{n}"
    trial = Trial(id=trial_id, experiment="base", status="completed", seed=seed, params={"lr": lr}, created=now(),
                  commit="0" * 40, host="here", phase=phase, tags=tags or [])
    name = "test/acc" if phase == "test" else "val/acc"
    project.store.import_trial(trial, [MetricPoint(name, value - 0.05, 0), MetricPoint(name, value, 1)])
    return trial_id


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = make_project(tmp_path / "proj", experiment="command: [python, train.py]\n"
                        "objective: {metric: val/acc, goal: max}\n")
    monkeypatch.chdir(root)
    project = Project.load(root)
    for lr, values in VALUES.items():
        for seed, value in values.items():
            add(project, lr, seed, value, tags=["study"] if lr != 0.3 else [])
    return project


def test_one_lucky_seed_does_not_rank_first(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = compare(project, ["base"])
    # by the mean alone: lucky (0.99) > noisy (0.912) > steady (0.904); by the 95% CI's lower bound,
    # steady's tight interval beats noisy's wide one, and one seed has no interval: it is not ranked
    assert [r.params for r in result.rows] == [STEADY, NOISY, LUCKY]
    assert [r.ranked for r in result.rows] == [True, True, False]
    assert result.rows[0].ci_low > result.rows[1].ci_low and result.rows[1].mean > result.rows[0].mean
    code, out, err = cli("compare", "base")
    assert code == 0, err
    assert "ranked by its 95% CI's lower bound" in out.splitlines()[0]
    assert "1 on fewer than 2 seeds listed last, unranked" in out.splitlines()[1]


def test_a_lower_goal_ranks_by_the_upper_bound(project: Project) -> None:
    result = compare(project, ["base"], goal="min")
    assert [r.params for r in result.rows] == [STEADY, NOISY, LUCKY]  # steady's upper bound is the lowest
    assert result.rows[0].ci_high < result.rows[1].ci_high


def test_min_seeds_sets_who_is_ranked(project: Project) -> None:
    result = compare(project, ["base"], min_seeds=6)
    assert not any(r.ranked for r in result.rows)
    assert [r.params for r in result.rows] == [LUCKY, NOISY, STEADY]  # unranked: by their mean
    code, out, _ = cli("compare", "base", "--min-seeds", "1", "--csv")
    assert code == 0
    ranks = [row["rank"] for row in csv.DictReader(io.StringIO(out))]
    assert ranks == ["1", "2", "3"]  # one seed counts now; its interval is unknown, so its value ranks it
    code, out, _ = cli("compare", "base", "--csv")
    assert [row["rank"] for row in csv.DictReader(io.StringIO(out))] == ["1", "2", ""]
    code, _, err = cli("compare", "base", "--min-seeds", "0")
    assert code == 2 and "--min-seeds must be 1 or more" in err


def test_the_shared_seed_count_is_right(project: Project) -> None:
    add(project, 0.5, 11, 0.6)  # one seed, the one every other configuration also ran
    add(project, 0.5, 77, 0.6)
    result = compare(project, ["base"])
    row = next(i for i, r in enumerate(result.rows) if r.params == {"lr": 0.5})
    pair = next(p for p in result.pairs if p.b == row)
    assert pair.shared == 1 and not pair.paired
    assert "over 5 and 2 seeds (1 shared seed, too few to pair)" in pair.sentence  # was "(no shared seeds)"
    lucky = next(p for p in result.pairs if result.rows[p.b].params == LUCKY)
    assert lucky.shared == 1 and "(1 shared seed, too few to pair)" in lucky.sentence
    paired = next(p for p in result.pairs if result.rows[p.b].params == NOISY)
    assert paired.paired and paired.shared == 5 and "over 5 shared seeds" in paired.sentence


def test_tag_compares_only_the_tagged_trials(project: Project) -> None:
    result = compare(project, ["base"], tags=["study"])
    assert [r.params for r in result.rows] == [STEADY, LUCKY] and result.trials == 6
    assert result.tags == ["study"]
    code, out, _ = cli("compare", "base", "--tag", "study", "--json")
    assert code == 0 and [r["params"] for r in json.loads(out)["rows"]] == [STEADY, LUCKY]
    code, _, err = cli("compare", "base", "--tag", "nowhere")
    assert code == 2 and "no completed train trials of base tagged nowhere" in err


def test_report_ranks_and_filters_the_same_way_and_says_it_replaced_a_file(project: Project) -> None:
    out = project.root / "out" / "report.html"
    out.parent.mkdir()
    code, _, err = cli("report", "base", "--tag", "study", "--out", str(out))
    assert code == 0, err
    assert "replaced" not in err
    page = out.read_text()
    assert "Ranked by the lower bound" in page and "listed after them, unranked" in page
    assert "t030s11" not in page  # the untagged configuration is left out
    code, _, err = cli("report", "base", "--min-seeds", "1", "--out", str(out))
    assert code == 0, err
    assert "it replaced the file that was there" in err


def test_a_repeated_test_run_is_not_pooled_silently(project: Project) -> None:
    for n in (0, 1):  # the test ran twice on the same seeds
        add(project, 0.1, 11, 0.88 + n / 100, phase="test", n=n)
        add(project, 0.1, 22, 0.89, phase="test", n=n)
    code, _, err = cli("compare", "base", "--phase", "test")
    assert code == 0, err
    assert "note: 2 configuration seed(s) have more than one test trial" in err
    assert compare(project, ["base"], phase="test").repeated == 2
    _, _, err = cli("compare", "base")
    assert "note:" not in err  # training reruns are averaged as documented
