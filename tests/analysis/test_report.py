"""``tracker report``: the page of real runs, opened in headless Chromium (tests/conftest.py: browser)."""

from __future__ import annotations

import re
import statistics
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, git
from tracker.analysis import stats
from tracker.analysis.compare import compare
from tracker.analysis.report import write_report
from tracker.heldout import run_test
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment

HOSTILE = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
STEPS = 6
LRS = [0.2, 0.5, 0.9]

CURVE = textwrap.dedent('''
    """Accuracy that rises with the step, faster for a larger lr, shifted a little by the seed.

    train: the loss and the validation accuracy per step (val/acc during training); validate: the
    final accuracy (val/acc); test: the final accuracy a little lower, per evaluation seed (test/acc).
    """
    import argparse, math, os, random

    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--note", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval_seeds", default="")
    a = p.parse_args()
    shift = random.Random(a.seed).uniform(-0.01, 0.01)
    acc = [0.9 * (1 - math.exp(-a.lr * (step + 1))) + shift for step in range(a.steps)]
    phase = os.environ["TRACKER_PHASE"]
    if phase == "train":
        for step, value in enumerate(acc):
            print(f"step: {step} loss: {1 - value:.6f} val/acc: {value:.6f}")
    elif phase == "validate":
        print(f"acc: {acc[-1]:.6f}")
    else:
        eval_seed = int(a.eval_seeds.split(",")[0])
        print(f"acc: {acc[-1] - 0.05 + random.Random(eval_seed + a.seed).uniform(-0.01, 0.01):.6f}")
    ''')


def experiment(body: str) -> str:
    return (f"command: [{sys.executable!r}, curve.py]\nobjective: {{metric: val/acc, goal: max}}\n"
            "phases: [train, validate, test]\n" + textwrap.dedent(body))


EXPERIMENTS = {
    "base": experiment(f"""\
        params: {{steps: {STEPS}}}
        grid: {{lr: {LRS}}}
        seeds: 3
        """),
    "hostile": experiment(f"""\
        params: {{steps: {STEPS}, lr: 0.5}}
        grid:
          note: [plain, {HOSTILE!r}]
        seeds: 2
        """),
}


@dataclass
class Reported:
    project: Project
    page: Any  # playwright Page of the report of base and hostile
    html: str
    errors: list[str]
    failed: list[str]
    urls: list[str]
    out: Path


def make_report_project(root: Path) -> Project:
    """A committed project whose experiments run curve.py (see :data:`EXPERIMENTS`)."""
    (root / "experiments").mkdir(parents=True)
    (root / "curve.py").write_text(CURVE)
    (root / "tracker.yaml").write_text("name: report-demo\nseeds: [11, 22, 33]\nmaster_seed: 1\n")
    (root / ".gitignore").write_text(".tracker/\n")
    for name, text in EXPERIMENTS.items():
        (root / "experiments" / f"{name}.yaml").write_text(text)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return Project.load(root)


def open_page(browser: Any, path: Path) -> tuple[Any, list[str], list[str], list[str]]:
    """The page at ``path`` loaded in a new tab, with its console errors, failed and all requests."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    failed: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("request", lambda r: urls.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
    return page, errors, failed, urls


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Reported]:
    """base (lr 0.2, 0.5, 0.9 over 3 seeds) and hostile (a note with markup, 2 seeds) run for real; base
    tested twice; the report of both opened in Chromium."""
    root = tmp_path_factory.mktemp("report") / "proj"
    with pytest.MonkeyPatch.context() as mp:
        cfg = tmp_path_factory.mktemp("git") / ".gitconfig"
        cfg.write_text("[user]\n\tname = Test User\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n")
        mp.setenv("GIT_CONFIG_GLOBAL", str(cfg))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.chdir(tmp_path_factory.getbasetemp())
        project = make_report_project(root)
        for name in EXPERIMENTS:
            result = run_experiment(project, name, RunOptions())
            assert {t.status for t in result.trials} == {"completed"}
        for _ in range(2):  # the second test of base is flagged: its test set was seen before
            tested = run_test(project, "base", "val/acc")
            assert {t.status for t in tested.trials} == {"completed"}
        out = write_report(project, [], root / "out" / "report.html")
        page, errors, failed, urls = open_page(browser, out)
        yield Reported(project, page, out.read_text(), errors, failed, urls, out)
        page.close()


def sections(text: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([\w-]+)">(.*?)</section>', text, flags=re.S))


def test_the_page_loads_offline_without_errors(reported: Reported, tmp_path: Path) -> None:
    reported.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert reported.errors == []
    assert reported.failed == []
    assert reported.urls == [reported.out.as_uri()]  # nothing else was fetched: everything is inline
    assert reported.page.title() == "Report: base, hostile"


def test_the_compare_table_ranks_configurations_best_first(reported: Reported) -> None:
    rows = reported.page.locator("section#compare table.compare tbody tr")
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    # base: lr 0.9 > 0.5 > 0.2; hostile (lr 0.5) ties base lr 0.5 per seed, up to the seeds' shifts
    assert [c[0] for c in cells] == [str(i) for i in range(1, 6)]
    order = [(c[1], c[2]) for c in cells]
    assert order[0] == ("base", f"steps={STEPS}, lr=0.9")
    assert order[-1] == ("base", f"steps={STEPS}, lr=0.2")
    assert set(order[1:4]) == {("base", f"steps={STEPS}, lr=0.5"), ("hostile", f"steps={STEPS}, lr=0.5, note=plain"),
                               ("hostile", f"steps={STEPS}, lr=0.5, note={HOSTILE}")}
    c = compare(reported.project, ["base", "hostile"])
    for cell, row in zip(cells, c.rows, strict=True):
        assert (cell[1], cell[3]) == (row.experiment, str(row.n))
        assert float(cell[4]) == pytest.approx(row.value, rel=1e-5)
        assert cell[5] == f"[{row.ci_low:.6g}, {row.ci_high:.6g}]"
    sentences = reported.page.locator("section#compare ul.pairs li").all_inner_texts()
    assert sentences == [p.sentence for p in c.pairs]


def test_learning_curves_show_the_mean_and_the_seed_band_per_step(reported: Reported) -> None:
    store = reported.project.store
    data = reported.page.evaluate("Array.from(document.querySelectorAll('#curves .plotly-graph-div'))"
                                  ".map(d => d.data.map(t => ({name: t.name, x: t.x, y: t.y, visible: t.visible})))")
    assert len(data) == 1
    traces = data[0]
    shown = [t for t in traces if t["visible"] is True]
    assert len(shown) == 3 * 5  # low, high, mean for each of the 5 configurations: val/acc first
    best = next(t for t in shown if t["name"] == f"#1 base: steps={STEPS}, lr=0.9")
    i = traces.index(best)
    low, high = traces[i - 2], traces[i - 1]
    ids = [t.id for t in store.list_trials(experiment="base", params={"lr": 0.9}) if t.phase == "train"]
    curves = [[p.value for p in store.metrics(tid, "val/acc") if p.step is not None] for tid in ids]
    assert best["x"] == list(range(STEPS))
    assert best["y"] == pytest.approx([statistics.fmean(v) for v in zip(*curves, strict=True)])
    assert low["y"] == pytest.approx([min(v) for v in zip(*curves, strict=True)])
    assert high["y"] == pytest.approx([max(v) for v in zip(*curves, strict=True)])
    # the other metric is one choice away, and no test metric is among the choices
    options = reported.page.locator("#curves .updatemenu-button text").all_text_contents() or \
        reported.page.evaluate("document.querySelector('#curves .plotly-graph-div').layout.updatemenus[0]"
                               ".buttons.map(b => b.label)")
    assert set(options) <= {"val/acc", "train/loss"} and "val/acc" in options
    assert reported.page.locator("#curves .plotly-graph-div .scatterlayer .trace").count() >= 5


def test_every_plot_is_drawn(reported: Reported) -> None:
    divs = reported.page.locator(".plotly-graph-div")
    # curves, every seed per configuration, then lr and note against val/acc
    assert divs.count() == 4
    for i in range(divs.count()):
        div = divs.nth(i)
        assert div.locator(".main-svg").count() >= 1
        assert div.locator(".scatterlayer .trace").count() >= 1
    points = reported.page.evaluate("document.querySelector('#plot-seeds .plotly-graph-div').data[0].y.length")
    assert points == 3 * 3 + 2 * 2  # one dot per seed of every configuration
    titles = reported.page.locator("section#plots .gtitle").all_text_contents()
    assert any("against lr" in t for t in titles) and any("against note" in t for t in titles)


def test_each_trial_shows_its_code_version(reported: Reported) -> None:
    head = git(reported.project.root, "rev-parse", "HEAD").strip()
    rows = reported.page.locator("section#trials table.trials tbody tr")
    train = [t for t in reported.project.store.list_trials() if t.phase != "test"]
    assert rows.count() == len(train) == 13
    for t in train:
        cells = reported.page.locator(f"#trial-{t.id} td").all_inner_texts()
        assert cells[0] == t.id and cells[6:9] == [head[:12], "main", "clean"]
    summary = reported.page.locator("section#summary").inner_text()
    assert f"{head[:12]} on main (9 trials)" in summary and "9 completed" in summary


def test_the_test_results_are_apart_and_warn_when_the_test_set_was_reused(reported: Reported) -> None:
    found = sections(reported.html)
    assert list(found) == ["summary", "compare", "curves", "plots", "trials", "test"]
    for name, text in found.items():
        if name != "test":
            assert "test/acc" not in text, f"a test metric in the {name} section"
    test = reported.page.locator("section#test")
    assert test.locator("h2").inner_text() == "TEST results (held-out test set)"
    text = test.inner_text()
    assert "the test set of base was used 2 times" in text
    runs = test.locator("div.test-run")
    assert runs.count() == 2
    store = reported.project.store
    for run in (1, 2):
        text = runs.nth(run - 1).inner_text()
        tested = [t for t in store.list_trials(experiment="base") if t.phase == "test"
                  and t.extra["test"]["run"] == run]
        assert len(tested) == 3 and {t.params["lr"] for t in tested} == {0.9}
        values = [t.metrics["test/acc"] for t in tested]
        low, high = stats.bootstrap_ci([values], "mean")
        assert f"base: test run {run}" in text and f"run\t{run} of 2" in text
        assert f"selected configuration\tsteps={STEPS}, lr=0.9" in text
        assert "selected by\tmax val/acc on validation" in text and "configurations tried\t3" in text
        assert (f"test/acc\t{statistics.fmean(values):.6g} (95% CI [{float(low):.6g}, {float(high):.6g}]), "
                "mean over 3 trial(s)") in text
        for t in tested:
            assert t.id in text and t.extra["test"]["source"] in text


def test_a_hostile_param_is_text_not_markup(reported: Reported) -> None:
    assert reported.page.evaluate("window.pwned") is None
    assert HOSTILE not in reported.html
    cell = reported.page.locator("section#compare table.compare td", has_text="note=</script>")
    assert cell.count() == 1 and cell.inner_text().endswith(f"note={HOSTILE}")
    # the figures show it as text too (Plotly would otherwise read the tags in its labels)
    ticks = reported.page.locator("section#plots .xtick text").all_text_contents()
    assert HOSTILE in ticks


def test_without_test_trials_there_is_no_test_section(reported: Reported, browser: Any, tmp_path: Path) -> None:
    out = write_report(reported.project, ["hostile"], tmp_path / "hostile.html", by=["note"])
    page, errors, failed, _ = open_page(browser, out)
    try:
        assert errors == [] and failed == []
        assert page.locator("section#test").count() == 0
        assert "none (tracker test" in page.locator("section#summary").inner_text()
        rows = page.locator("section#compare table.compare tbody tr td:nth-child(3)").all_inner_texts()
        assert sorted(rows) == sorted(["note=plain", f"note={HOSTILE}"])
    finally:
        page.close()


def test_cli_writes_the_page_and_refuses_bad_input(reported: Reported, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(reported.project.root)
    code, _, err = cli("report", "base", "--metric", "train/loss", "--goal", "min", "--out", str(tmp_path / "r.html"))
    assert code == 0 and err == f"wrote {tmp_path / 'r.html'}\n"
    assert "Comparison: train/loss" in (tmp_path / "r.html").read_text()
    code, _, err = cli("report", "base", "--metric", "test/acc", "--out", str(tmp_path / "t.html"))
    assert code == 2 and "the report compares validation metrics, not 'test/acc'" in err
    assert "--metric val/acc" in err and not (tmp_path / "t.html").exists()
    code, _, err = cli("report", "base", "--where", "lr > 0.1 and test/acc > 0.5", "--out", str(tmp_path / "t.html"))
    assert code == 2 and "--where uses the test metric 'test/acc'" in err and not (tmp_path / "t.html").exists()
    code, _, err = cli("report", "nope", "--out", str(tmp_path / "n.html"))
    assert code == 2 and "no experiment 'nope'" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = cli("report", "--out", str(blocker / "report.html"))
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot write {blocker / 'report.html'}: ") and err.count("\n") == 1


def test_the_metric_switch_shows_the_other_metric(reported: Reported) -> None:
    page = reported.page
    div = "document.querySelector('#curves .plotly-graph-div')"
    page.locator("#curves .updatemenu-header-group").click()
    page.locator("#curves .updatemenu-dropdown-button", has_text="train/loss").click()
    page.wait_for_function(f"{div}.layout.yaxis.title.text === 'train/loss'")
    shown = page.evaluate(f"{div}.data.filter(t => t.visible === true).map(t => t.y[t.y.length - 1])")
    assert len(shown) == 15 and all(0 < y < 0.4 for y in shown)  # losses: 1 - accuracy
    page.locator("#curves .updatemenu-header-group").click()
    page.locator("#curves .updatemenu-dropdown-button", has_text="val/acc").click()
    page.wait_for_function(f"{div}.layout.yaxis.title.text === 'val/acc'")


def test_a_metric_logged_only_at_the_end_is_compared_without_a_curve(project_dir: Path, tmp_path: Path) -> None:
    project = Project.find()
    code, _, err = cli("report", "--out", str(tmp_path / "r.html"))
    assert (code, err) == (2, "error: no experiment has trials yet, so there is nothing to report "
                              "(run one first: tracker run EXPERIMENT)\n")
    run_experiment(project, "base", RunOptions())  # train.py logs train/loss per step, val/acc once
    text = write_report(project, ["base"], tmp_path / "r.html", metric="val/acc").read_text()
    found = sections(text)
    assert "val/acc was not logged per step; the selector shows the metrics that were." in found["curves"]
    from tests.search.test_report import figure

    curves = figure(found["curves"])
    assert curves["layout"]["yaxis"]["title"]["text"] == "train/loss" and "updatemenus" not in curves["layout"]
    assert [t["name"] for t in curves["data"] if "name" in t] == ["#1 epochs=3, lr=0.5", "#2 epochs=3, lr=0.1"]
    assert "test" not in found


def test_without_plotly_the_report_names_the_extra(reported: Reported, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # what 'import plotly' meets where it is not installed
    monkeypatch.chdir(reported.project.root)
    code, _, err = cli("report", "--out", str(tmp_path / "r.html"))
    assert (code, err) == (1, "error: plotly is not installed (install it with: pip install 'seedtracker[analysis]')\n")
    assert not (tmp_path / "r.html").exists()
