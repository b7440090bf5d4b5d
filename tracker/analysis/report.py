"""``tracker report``: one self-contained HTML page about experiments, to open offline or send to a colleague.

Sections, in order: a summary (experiments, trials by status, when, on which commits); the
comparison of configurations over seeds (``tracker.analysis.compare``: the table and the pair
sentences); learning curves (each configuration's mean per step with a band from the lowest
to the highest seed, for the compared metric, other metrics on a selector); comparison plots
(every seed's value per configuration with the mean and its 95% interval, and each param that
varies against the metric); every trial with its code version (commit, branch, dirty); and,
apart and clearly labelled, the TEST results (trials of ``tracker test``).

The validation sections read training trials only and never a ``test/`` metric; test
metrics appear only in the test section, with a warning when an experiment's test set was
used more than once. Every user-provided string is escaped.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.analysis.html import (
    COLORS,
    escape,
    fmt,
    key_values,
    label,
    note,
    page,
    params_text,
    per_step,
    plotly_js,
    section,
    table,
)
from tracker.analysis.html import figure as figure_html
from tracker.errors import NotFoundError, UsageError
from tracker.project import Project
from tracker.yamlio import write_output

if TYPE_CHECKING:
    from tracker.analysis.compare import Comparison, Row
    from tracker.store import MetricPoint, Trial

TEST_PREFIX = "test/"
MAX_PARAM_PLOTS = 8  # params plotted against the metric, at most (the first that vary, by name)
LEGEND = {"orientation": "h", "x": 0, "y": -0.15, "yanchor": "top"}  # below the plot: labels can be long


def write_report(project: Project, experiments: Sequence[str], out: Path, **compare_options: Any) -> Path:
    """Write the HTML report of ``experiments`` (empty: every experiment with trials) to ``out``; return ``out``.

    ``compare_options`` (``metric``, ``by``, ``where``, ``stat``, ``goal``, ``tags``, ``min_seeds``) go
    to :func:`tracker.analysis.compare.compare` for the validation sections, which compare
    training trials only; with ``tags`` the report holds only trials with every one of them. A
    ``test/`` metric there (as ``metric`` or in ``where``) is refused:
    test results have their own section and must not steer the comparison. Raises
    NotFoundError for an unknown experiment, MissingDependencyError without the ``analysis``
    extra, TrackerError when ``out`` cannot be written.

    Example::

        write_report(Project.find(), ["baseline", "wide"], Path("report.html"), metric="val/acc", by=["lr"])
    """
    from tracker.analysis.compare import compare

    _refuse_test_metrics(compare_options.get("metric"), compare_options.get("where"))
    js = plotly_js("analysis")
    store = project.store
    names = _experiments(project, experiments)
    comparison = compare(project, names, phase="train", **compare_options)
    trials = store.list_trials(experiment=names, **({"tags": comparison.tags} if comparison.tags else {}))
    train = [t for t in trials if t.phase != "test"]
    tests = [t for t in trials if t.phase == "test"]
    points = {tid: store.metrics(tid) for row in comparison.rows for tid in row.trial_ids}
    labels = _row_labels(comparison.rows)
    body = [
        section("summary", "Summary", _summary(project, names, train, tests, comparison)),
        section("compare", f"Comparison: {comparison.metric}", _compare_table(comparison, labels)),
        section("curves", "Learning curves", _curves(comparison, labels, points)),
        section("plots", "Comparison plots", _comparison_plots(comparison, labels)),
        section("trials", "Trials and their code", _trial_table(train, comparison.metric)),
    ]
    if tests:
        body.append(section("test", "TEST results (held-out test set)", _test_section(names, tests)))
    title = f"Report: {', '.join(names)}"
    write_output(out, page(title, body, plotly=js, style=STYLE))
    return out


def _refuse_test_metrics(metric: str | None, where: str | None) -> None:
    """The validation sections may not compare or filter on a test metric."""
    from tracker.config import is_test_metric

    if metric and is_test_metric(metric):
        raise UsageError(f"the report compares validation metrics, not {metric!r}",
                         hint="test results have their own section; name a validation metric, e.g. "
                              f"--metric val/{metric.rsplit('/', 1)[-1].removeprefix('test_')}")
    if where:
        from tracker.analysis.where import parse

        used = [n for n in parse(where).names  # a name without "/" may be a param ("no-test")
                if n.startswith(TEST_PREFIX) or ("/" in n and is_test_metric(n))]
        if used:
            raise UsageError(f"--where uses the test metric {used[0]!r}: choosing trials by their test "
                             "results would leak the test set into the comparison",
                             hint="filter on params or validation metrics")


def _experiments(project: Project, experiments: Sequence[str]) -> list[str]:
    """The named experiments (compare checks they exist), else every experiment with trials, by name."""
    if experiments:
        return list(dict.fromkeys(experiments))
    with_trials = project.store.count_by_status()
    if not with_trials:
        raise NotFoundError("no experiment has trials yet, so there is nothing to report",
                            hint="run one first: tracker run EXPERIMENT")
    return sorted(with_trials)


def _row_labels(rows: list[Row]) -> list[str]:
    """``#1 exp: lr=0.1`` for each row (the experiment only when the rows span several)."""
    several = len({r.experiment for r in rows}) > 1
    out = []
    for i, r in enumerate(rows):
        parts = [r.experiment] if several else []
        if r.params:
            parts.append(params_text(r.params))
        out.append(f"#{i + 1} " + (": ".join(parts) if parts else r.experiment))
    return out


# ---------------------------------------------------------------------------------------------- summary


def _when(trials: list[Trial]) -> str:
    started = [t.started or t.created for t in trials]
    finished = [t.finished for t in trials if t.finished]
    if not started:
        return ""
    return f"{min(started)} to {max(finished)}" if finished else f"from {min(started)} (still running)"


def _commits(trials: list[Trial]) -> str:
    """``abc1234 on main (6 trials, 2 dirty), ...``, most used first."""
    counts = Counter((t.commit, t.branch) for t in trials)
    dirty = Counter((t.commit, t.branch) for t in trials if t.dirty)
    parts = []
    for (commit, branch), n in counts.most_common():
        where = (commit or "no commit")[:12] + (f" on {branch}" if branch else "")
        parts.append(f"{where} ({n} trial{'s' if n != 1 else ''}" + (f", {dirty[commit, branch]} dirty)"
                                                                     if dirty[commit, branch] else ")"))
    return ", ".join(parts)


def _summary(project: Project, names: list[str], train: list[Trial], tests: list[Trial],
             comparison: Comparison) -> str:
    rows: list[tuple[str, Any]] = [("project", project.name), ("experiments", ", ".join(names))]
    for name in names:
        mine = [t for t in train if t.experiment == name]
        counts = Counter(t.status for t in mine)
        rows.append((f"{name}: trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
        rows.append((f"{name}: when", _when(mine)))
        rows.append((f"{name}: code", _commits(mine)))
    c = comparison
    rows.append(("compared", f"{c.stat} of {c.metric} over seeds ({c.goal} is better, goal from {c.goal_source}); "
                             f"{len(c.rows)} configuration(s) from {c.trials} completed trial(s)"
                 + (f", {c.missing} without {c.metric}" if c.missing else "")
                 + (f"; where {c.where}" if c.where else "") + (f"; by {', '.join(c.by)}" if c.by else "")))
    rows.append(("test results", f"{len(tests)} test trial(s), in the TEST section at the end" if tests
                 else "none (tracker test EXPERIMENT --best METRIC makes them)"))
    rows.append(("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")))
    return key_values(rows)


# ---------------------------------------------------------------------------------------------- compare


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def _compare_table(c: Comparison, labels: list[str]) -> str:
    if not c.rows:
        return note(f"No completed training trial has {c.metric}, so there is nothing to compare.")
    headers = ["#", "experiment", "params", "n", f"{c.stat} of {c.metric}", "95% CI", "std", "min", "max",
               "best along the curve", "at step", "seeds"]
    rows = [[i + 1, r.experiment, params_text(r.params), r.n, r.value, _interval(r.ci_low, r.ci_high), r.std,
             r.min, r.max, r.best_step_value, r.best_step,
             ", ".join(f"{s}: {fmt(v)}" for s, v in zip(r.seeds, r.values, strict=True))]
            for i, r in enumerate(c.rows)]
    attrs = [f' id="row-{i + 1}"' for i in range(len(rows))]
    text = table(headers, rows, cls="compare", row_attrs=attrs, numeric=(0, 3, 4, 6, 7, 8, 9, 10))
    bound = "lower" if c.goal == "max" else "upper"
    text += note(f"Ranked by the {bound} bound of each configuration's 95% CI of the {c.stat}"
                 + (f"; those on fewer than {c.min_seeds} seeds (#{sum(r.ranked for r in c.rows) + 1} on) "
                    "are listed after them, unranked." if not all(r.ranked for r in c.rows) else "."))
    if c.pairs:
        items = "\n".join(f'<li class="{"significant" if p.significant else "not-significant"}">'
                          f"{escape(p.sentence)}</li>" for p in c.pairs)
        text += f'\n<h3>Against the best ({escape(labels[0])})</h3>\n<ul class="pairs">\n{items}\n</ul>'
    return text


# ---------------------------------------------------------------------------------------------- figures


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _curves(c: Comparison, labels: list[str], points: dict[str, list[MetricPoint]]) -> str:
    """One figure: per configuration the mean over seeds per step and a min..max band; a selector
    switches between metrics (the compared one first). Test metrics never appear."""
    by_name: dict[str, dict[str, list[MetricPoint]]] = defaultdict(lambda: defaultdict(list))
    for tid, pts in points.items():
        for p in pts:
            if p.step is not None and not p.name.startswith(TEST_PREFIX):
                by_name[p.name][tid].append(p)
    # a metric is a curve when some trial logged it at two steps or more (a final value printed after
    # a bare 'step: N' line carries that step, but one point is no curve)
    metrics = sorted((m for m, series in by_name.items() if any(len({p.step for p in pts}) > 1
                                                                for pts in series.values())),
                     key=lambda m: (m != c.metric, m))
    if not metrics:
        return note(f"No compared trial logged a metric with a step, so there are no learning curves to show "
                    f"(log it per step, e.g. print(f'step: {{step}} {c.metric}: {{value}}')).")
    traces: list[dict[str, Any]] = []
    owner: list[int] = []  # the metric index of every trace
    for mi, m in enumerate(metrics):
        for ri, row in enumerate(c.rows):
            steps = per_step(by_name[m][tid] for tid in row.trial_ids)
            if not steps:
                continue
            color = COLORS[ri % len(COLORS)]
            xs = list(steps)
            common = {"x": xs, "type": "scatter", "mode": "lines", "legendgroup": f"row{ri}", "visible": mi == 0}
            name = label(labels[ri])
            traces += [
                {**common, "y": [min(v) for v in steps.values()], "line": {"width": 0, "color": color},
                 "showlegend": False, "hoverinfo": "skip"},
                {**common, "y": [max(v) for v in steps.values()], "line": {"width": 0, "color": color},
                 "fill": "tonexty", "fillcolor": _rgba(color, 0.18), "showlegend": False, "hoverinfo": "skip"},
                {**common, "y": [statistics.fmean(v) for v in steps.values()], "name": name,
                 "line": {"width": 2, "color": color}, "customdata": [len(v) for v in steps.values()],
                 "hovertemplate": f"{name}<br>step %{{x}}<br>mean %{{y:.6g}} over %{{customdata}} seed(s)"
                                  "<extra></extra>"},
            ]
            owner += [mi, mi, mi]
    layout: dict[str, Any] = {
        "title": {"text": "mean over seeds per step; the band spans the lowest to the highest seed"},
        "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": label(metrics[0])}},
        "template": "plotly_white", "legend": LEGEND}
    if len(metrics) > 1:
        layout["updatemenus"] = [{
            "type": "dropdown", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom", "active": 0,
            "buttons": [{"label": label(m), "method": "update",
                         "args": [{"visible": [o == mi for o in owner]}, {"yaxis.title.text": label(m)}]}
                        for mi, m in enumerate(metrics)]}]
    shown = note(f"{metrics[0]} is shown; pick another metric with the selector above the plot.") \
        if len(metrics) > 1 else ""
    if metrics[0] != c.metric:
        shown = note(f"{c.metric} was not logged per step; the selector shows the metrics that were.")
    return shown + figure_html({"data": traces, "layout": layout}, height="560px")


def _error_bars(rows: list[Row]) -> dict[str, Any]:
    """Plotly error bars from each row's value to its interval ends (none where n < 2)."""
    plus = [None if r.ci_high is None else r.ci_high - r.value for r in rows]
    minus = [None if r.ci_low is None else r.value - r.ci_low for r in rows]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "color": "#222",
            "thickness": 2, "width": 8}


def _seed_points(c: Comparison, labels: list[str]) -> dict[str, Any]:
    xs: list[float] = []
    ys: list[float] = []
    colors: list[str] = []
    texts: list[str] = []
    for i, r in enumerate(c.rows):
        for j, (seed, value) in enumerate(zip(r.seeds, r.values, strict=True)):
            xs.append(i + ((j % 7) - 3) * 0.05)  # a small fixed jitter keeps equal values apart
            ys.append(value)
            colors.append(COLORS[i % len(COLORS)])
            texts.append(f"{label(labels[i])}<br>seed {seed}")
    seeds = {"x": xs, "y": ys, "type": "scatter", "mode": "markers", "name": "one seed",
             "marker": {"color": colors, "size": 8, "opacity": 0.7}, "text": texts,
             "hovertemplate": "%{text}<br>%{y:.6g}<extra></extra>"}
    means = {"x": list(range(len(c.rows))), "y": [r.value for r in c.rows], "type": "scatter", "mode": "markers",
             "name": f"{c.stat} and 95% CI", "marker": {"symbol": "line-ew-open", "size": 24, "color": "#222",
                                                      "line": {"width": 3}},
             "error_y": _error_bars(c.rows), "text": [label(s) for s in labels],
             "hovertemplate": f"%{{text}}<br>{c.stat} %{{y:.6g}}<extra></extra>"}
    layout = {"title": {"text": f"{label(c.metric)}: every seed, and the {c.stat} with its 95% interval"},
              "xaxis": {"tickmode": "array", "tickvals": list(range(len(c.rows))),
                        "ticktext": [f"#{i + 1}" for i in range(len(c.rows))],
                        "title": {"text": "configuration (as numbered in the table above)"}},
              "yaxis": {"title": {"text": label(c.metric)}}, "template": "plotly_white", "legend": LEGEND}
    return {"data": [seeds, means], "layout": layout}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _varying(rows: list[Row]) -> list[str]:
    """Params whose value differs between rows, by name."""
    names = sorted({k for r in rows for k in r.params})
    return [n for n in names if len({repr(r.params.get(n)) for r in rows}) > 1]


def _param_plot(c: Comparison, param: str, varying: list[str]) -> dict[str, Any]:
    """``param`` on x, the metric on y: a line per combination of the other varying params (and
    experiment), each seed as a dot, the statistic with its interval."""
    several = len({r.experiment for r in c.rows}) > 1
    others = [p for p in varying if p != param]
    groups: dict[str, list[Row]] = {}
    for r in c.rows:
        if param not in r.params:
            continue
        parts = ([r.experiment] if several else []) + [f"{p}={fmt(r.params[p])}" for p in others if p in r.params]
        groups.setdefault(", ".join(parts) or c.metric, []).append(r)
    numeric = all(_is_number(r.params[param]) for rs in groups.values() for r in rs)
    data: list[dict[str, Any]] = []
    for gi, (name, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda r: r.params[param] if numeric else fmt(r.params[param]))
        color = COLORS[gi % len(COLORS)]

        def x(r: Row) -> Any:
            return r.params[param] if numeric else label(fmt(r.params[param]))

        data.append({"x": [x(r) for r in rows for _ in r.values], "y": [v for r in rows for v in r.values],
                     "type": "scatter", "mode": "markers", "legendgroup": f"g{gi}", "showlegend": False,
                     "marker": {"color": color, "size": 6, "opacity": 0.5}, "hoverinfo": "x+y"})
        data.append({"x": [x(r) for r in rows], "y": [r.value for r in rows], "type": "scatter",
                     "mode": "lines+markers", "name": label(name), "legendgroup": f"g{gi}",
                     "line": {"color": color}, "marker": {"size": 9}, "error_y": _error_bars(rows)})
    xaxis: dict[str, Any] = {"title": {"text": label(param)}}
    if not numeric:
        xaxis["type"] = "category"
    return {"data": data, "layout": {"title": {"text": f"{label(c.metric)} against {label(param)} "
                                                        f"({c.stat} and 95% interval; dots are seeds)"},
                                     "xaxis": xaxis, "yaxis": {"title": {"text": label(c.metric)}},
                                     "template": "plotly_white", "legend": LEGEND}}


def _comparison_plots(c: Comparison, labels: list[str]) -> str:
    if not c.rows:
        return note(f"No configuration has {c.metric}, so there is nothing to plot.")
    parts = [f'<div class="plot" id="plot-seeds">{figure_html(_seed_points(c, labels), height="480px")}</div>']
    varying = _varying(c.rows)
    for param in varying[:MAX_PARAM_PLOTS]:
        parts.append(f'<div class="plot param-plot">{figure_html(_param_plot(c, param, varying), height="440px")}'
                     "</div>")
    if len(varying) > MAX_PARAM_PLOTS:
        parts.append(note(f"{len(varying)} params vary; the first {MAX_PARAM_PLOTS} by name are plotted."))
    elif not varying:
        parts.append(note("No param varies between the configurations, so there is no param plot."))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- trials


def _trial_table(trials: list[Trial], metric: str) -> str:
    if not trials:
        return note("No training trials.")
    headers = ["trial", "experiment", "status", "seed", "params", metric, "commit", "branch", "dirty", "host",
               "started"]
    rows = [[t.id, t.experiment, t.status, t.seed, params_text(t.params), t.metrics.get(metric), (t.commit or "")[:12],
             t.branch, "dirty" if t.dirty else "clean", t.host, t.started] for t in trials]
    return table(headers, rows, cls="trials", row_attrs=[f' id="trial-{t.id}"' for t in trials], numeric=(3, 5))


def _test_section(names: list[str], tests: list[Trial]) -> str:
    """Per experiment and ``tracker test`` run: the configuration chosen on validation and its test metrics."""
    from tracker.analysis import stats

    parts = ['<p class="lead">These trials ran on the held-out test set (tracker test). Nothing above uses them: '
             "the configurations were compared on validation metrics only.</p>"]
    for name in names:
        mine = [t for t in tests if t.experiment == name]
        if not mine:
            continue
        runs: dict[int, list[Trial]] = defaultdict(list)
        for t in mine:
            runs[int(t.extra.get("test", {}).get("run") or 1)].append(t)
        used = max(runs)
        parts.append(f"<h3>{escape(name)}</h3>")
        if used > 1:
            parts.append(f'<p class="warning">Warning: the test set of {escape(name)} was used {used} times '
                         "(tracker test ran more than once). Only the first result is an unbiased estimate; "
                         "later choices may have been made knowing it.</p>")
        for run, trials in sorted(runs.items()):
            trials.sort(key=lambda t: (t.seed is None, t.seed or 0, t.id))
            info = trials[0].extra.get("test", {})
            completed = [t for t in trials if t.status == "completed"]
            metric_names = sorted({m for t in completed for m in t.metrics})  # test trials log test metrics
            results = []
            for m in metric_names:
                values = [t.metrics[m] for t in completed if m in t.metrics and math.isfinite(t.metrics[m])]
                if not values:
                    continue
                mean = statistics.fmean(values)
                low, high = stats.bootstrap_ci([values], "mean") if len(values) > 1 else (math.nan, math.nan)
                interval = "" if math.isnan(low) else f" (95% CI {_interval(float(low), float(high))})"
                results.append((m, f"{fmt(mean)}{interval}, mean over {len(values)} trial(s)"))
            rows: list[tuple[str, Any]] = [
                ("run", f"{run} of {used}"),
                ("selected configuration", params_text(trials[0].params)),
                ("selected by", f"{info.get('goal', '?')} {info.get('metric', '?')} on validation"
                                f" (validation mean {fmt(info.get('value'))})"),
                ("configurations tried", info.get("configurations")),
                ("test trials", f"{len(trials)} ({len(completed)} completed)"),
                *results,
            ]
            headers = ["trial", "status", "seed", "test seeds", *metric_names, "source", "commit", "branch", "dirty"]
            table_rows = [[t.id, t.status, t.seed, ", ".join(map(str, t.extra.get("eval_seeds", {}).get("test", []))),
                           *[t.metrics.get(m) for m in metric_names], t.extra.get("test", {}).get("source"),
                           (t.commit or "")[:12], t.branch, "dirty" if t.dirty else "clean"] for t in trials]
            parts.append(f'<div class="test-run" id="test-{escape(name)}-{run}">'
                         f"<h4>{escape(name)}: test run {run}</h4>\n{key_values(rows)}\n"
                         f"{table(headers, table_rows, cls='test-trials')}</div>")
    return "\n".join(parts)


STYLE = """
section#test { border: 3px solid #d62728; padding: 0 1em 1em; margin-top: 3em; }
section#test h2 { color: #d62728; }
div.test-run { margin: 1em 0 2em; } div.test-run table { margin-bottom: 0.8em; }
ul.pairs li.significant { font-weight: bold; }
tr#row-1 td { font-weight: bold; }
"""
"""What this page adds to the shared styles (tracker.analysis.html.STYLE)."""
