"""``tracker optimize report``: one self-contained HTML page about a real search of tests/search/objective.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, make_project
from tracker.project import Project
from tracker.search.optimizer import OptimizationError, OptimizeOptions, optimize
from tracker.search.report import write_report

OBJECTIVE = Path(__file__).with_name("objective.py")
HOSTILE = "</script><b onmouseover=alert(1)>x"

EXPERIMENTS = {
    # Hyperband needs time between steps to prune configurations while they run
    "quad": """\
        params: {steps: 20, sleep: 0.05}
        search:
          x: {type: uniform, low: -1.0, high: 1.0}
          n: {type: int, low: 1, high: 6}
          act: {type: choice, values: [relu, tanh]}
        seeds: 2
        """,
    "quick": """\
        params: {steps: 3}
        search:
          x: {type: uniform, low: -1.0, high: 1.0}
          act: {type: choice, values: [relu, tanh]}
        """,
    "hostile": f"""\
        params: {{steps: 3}}
        search:
          act: {{type: choice, values: [tanh, {json.dumps(HOSTILE)}]}}
        """,
    "mute": """\
        params: {steps: 3, quiet_metric: 1}
        search:
          x: {type: uniform, low: -1.0, high: 1.0}
        """,
    "slow": """\
        params: {steps: 40, sleep: 0.15}
        search:
          x: {type: uniform, low: -1.0, high: 1.0}
        """,
}


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project whose experiments run objective.py, minimising val/loss; the current directory is its root."""
    root = tmp_path / "proj"
    (root / "experiments").mkdir(parents=True)
    shutil.copy(OBJECTIVE, root / "objective.py")
    for name, body in EXPERIMENTS.items():
        (root / "experiments" / f"{name}.yaml").write_text(
            f"command: [{sys.executable!r}, objective.py]\nobjective: {{metric: val/loss, goal: min}}\n"
            + textwrap.dedent(body))
    make_project(root)
    monkeypatch.chdir(root)
    return Project.load(root)


class _Page(HTMLParser):
    """What a browser would fetch or run: every src/href and <link>, and the scripts' sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.scripts: list[int] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]
        if tag == "link":
            self.refs.append((tag, "link", str(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            if tag == "script":
                self.scripts.append(0)

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += len(data)
        elif self._in == "style":
            self.styles.append(data)


def assert_offline(text: str, *, figures: bool = True) -> None:
    """No resource from the network: no src/href/link at all; plotly.js inlined once (not at all without figures)."""
    page = _Page()
    page.feed(text)
    assert page.refs == []
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", outside_scripts, re.I)
    assert not any("url(" in s or "@import" in s for s in page.styles)
    assert len([n for n in page.scripts if n > 1_000_000]) == (1 if figures else 0)


def sections(text: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([\w-]+)">(.*?)</section>', text, flags=re.S))


def figure(section: str) -> dict[str, Any]:
    """The data and layout of the Plotly figure drawn in a section."""
    start = section.index("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    rest = section[start + len("Plotly.newPlot("):].lstrip()
    _, end = decoder.raw_decode(rest)  # the div id
    rest = rest[end:].lstrip(" ,\n")
    data, end = decoder.raw_decode(rest)
    layout, _ = decoder.raw_decode(rest[end:].lstrip(" ,\n"))
    return {"data": data, "layout": layout}


def test_report_of_a_hyperband_search_shows_every_figure_and_marks_pruned_configurations(proj: Project) -> None:
    result = optimize(proj, "quad", OptimizeOptions(strategy="hyperband", trials=10, parallel=2))
    oid = result.optimization.id
    confs = {c.number: c for c in proj.store.configurations(oid)}
    pruned = [c for c in confs.values() if c.state == "pruned"]
    complete = [c for c in confs.values() if c.state == "complete"]
    assert pruned and len(complete) >= 2, "Hyperband pruned nothing: the test needs a pruned configuration"

    out = write_report(proj, oid[:6], proj.root / "reports" / "report.html")
    text = out.read_text()
    assert_offline(text)
    found = sections(text)
    assert {"summary", "history", "importances", "parallel", "intermediate", "configurations"} <= set(found)
    assert oid in found["summary"] and "hyperband" in found["summary"] and "min val/loss (mean over seeds 11, 22)" \
        in found["summary"]
    assert f"{len(pruned)} pruned" in found["summary"]

    # history: the best value so far over the complete configurations, in configuration order
    history = figure(found["history"])["data"]
    best_line = next(t for t in history if t["name"] == "Best Value")
    first = min(c.number for c in complete)
    assert best_line["x"] == [n for n in sorted(confs) if n >= first]
    assert best_line["y"] == pytest.approx([min(c.value for c in complete if c.number <= n) for n in best_line["x"]])
    assert next(t for t in history if t["name"] == "val/loss")["x"] == sorted(c.number for c in complete)
    assert {b["y"][0] for b in figure(found["importances"])["data"]} <= {"x", "n", "act"}
    assert set(figure(found["parallel"])["layout"]["xaxis"]["ticktext"]) == {"val/loss", "x", "n", "act"}

    # learning curves: the seeds' mean per step; pruned ones red, dashed, named with their step
    curves = {t["name"]: t for t in figure(found["intermediate"])["data"]}
    for c in pruned:
        trace = curves[f"configuration {c.number} (pruned at step {c.step})"]
        assert trace["line"]["dash"] == "dash" and trace["line"]["color"] == "#d62728"
        assert max(trace["x"]) == c.step
        assert f'<tr id="configuration-{c.number}" class="pruned"><td>{c.number}</td><td>pruned at step {c.step}' \
            in found["configurations"]
    for c in complete:
        trace = next(t for name, t in curves.items() if re.fullmatch(rf"configuration {c.number}( \(best\))?", name))
        assert "dash" not in trace["line"] and trace["line"]["color"] != "#d62728"
        assert trace["x"][-1] == 19 and trace["y"][-1] == pytest.approx(c.value)  # final step = mean over seeds

    rows = re.findall(r'<tr id="configuration-(\d+)"', found["configurations"])
    assert sorted(map(int, rows)) == sorted(confs) == list(range(10))
    for t in result.trials:
        assert t.id in found["configurations"]

    code, _, err = cli("optimize", "report", oid[:8], "--out", "again.html")
    assert code == 0 and "again.html" in err
    assert sections((proj.root / "again.html").read_text())["configurations"] == found["configurations"]


def test_one_configuration_explains_what_cannot_be_shown(proj: Project) -> None:
    oid = optimize(proj, "quick", OptimizeOptions(strategy="random", trials=1)).optimization.id
    code, _, err = cli("optimize", "report", oid, "-o", "one.html")
    assert code == 0, err
    text = (proj.root / "one.html").read_text()
    assert_offline(text)
    found = sections(text)
    assert "Plotly.newPlot" not in found["importances"]
    assert "need at least 2 complete configurations; 1 so far" in found["importances"]
    assert "Plotly.newPlot" in found["history"] and "Plotly.newPlot" in found["intermediate"]
    assert '<tr id="configuration-0" class="complete best">' in found["configurations"]


def test_user_strings_are_escaped(proj: Project) -> None:
    oid = optimize(proj, "hostile", OptimizeOptions(strategy="grid")).optimization.id
    text = write_report(proj, oid, proj.root / "r.html").read_text()
    assert HOSTILE not in text and "<b onmouseover" not in text
    assert "act=&lt;/script&gt;&lt;b onmouseover=alert(1)&gt;x" in sections(text)["configurations"]
    # one searched param: importances are explained, not drawn
    assert "at least 2 searched parameters that vary among the complete configurations; 1 does here (act)" \
        in sections(text)["importances"]
    # Plotly shows entities as characters, so the figures say what the table says
    labels = [a["text"] for a in figure(sections(text)["parallel"])["layout"]["annotations"]]
    assert "&lt;/script&gt;&lt;b onmouseover=alert(1)&gt;x" in labels


def test_a_search_without_results_is_reported_in_words(proj: Project) -> None:
    with pytest.raises(OptimizationError, match="never reported"):
        optimize(proj, "mute", OptimizeOptions(strategy="random", trials=3))
    oid = proj.store.list_optimizations(experiment="mute")[0].id
    text = write_report(proj, oid, proj.root / "r.html").read_text()
    assert_offline(text, figures=False)
    found = sections(text)
    assert "No configuration is complete yet" in found["history"] and "0 so far" in found["importances"]
    assert "No configuration logged val/loss with a step" in found["intermediate"]
    assert '<tr id="configuration-0" class="failed">' in found["configurations"]
    assert "the objective metric &#x27;val/loss&#x27; was never reported" in found["configurations"]
    assert "failed" in found["summary"]


def test_without_plotly_the_report_names_the_extra(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    oid = optimize(proj, "quick", OptimizeOptions(strategy="random", trials=1)).optimization.id
    monkeypatch.setitem(sys.modules, "plotly", None)  # what 'import plotly' meets where it is not installed
    code, _, err = cli("optimize", "report", oid, "-o", "r.html")
    assert (code, err) == (1, "error: plotly is not installed (install it with: pip install 'seedtracker[search]')\n")
    assert not (proj.root / "r.html").exists()


def test_a_running_optimization_is_reported_as_far_as_it_got(proj: Project) -> None:
    search = subprocess.Popen([sys.executable, "-m", "tracker", "optimize", "slow", "--strategy", "random",
                               "--trials", "1", "-q"], cwd=proj.root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = proj.store.list_optimizations(experiment="slow")
            trials = proj.store.list_trials(optimization=found[0].id) if found else []
            if trials and len(proj.store.metrics(trials[0].id, "val/loss")) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the search logged no value within 60 s")
        text = write_report(proj, found[0].id, proj.root / "live.html").read_text()
    finally:
        _, err = search.communicate(timeout=60)
    assert search.returncode == 0, err
    found_sections = sections(text)
    assert "running (the report shows what exists so far)" in found_sections["summary"]
    assert "No configuration is complete yet" in found_sections["history"]
    assert [t["name"] for t in figure(found_sections["intermediate"])["data"]] == ["configuration 0 (running)"]
    assert '<tr id="configuration-0" class="running">' in found_sections["configurations"]


def test_unknown_optimization_is_one_line_exit_2(proj: Project) -> None:
    code, out, err = cli("optimize", "report", "ffffffffffff", "--out", "r.html")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "no optimization 'ffffffffffff'" in err
    assert not (proj.root / "r.html").exists()


def test_an_unwritable_report_path_is_one_line(tmp_path: Path) -> None:
    from tracker.errors import TrackerError
    from tracker.yamlio import write_output

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(TrackerError, match=r"^cannot write .*report\.html: "):
        write_output(blocker / "report.html", "<html></html>")
