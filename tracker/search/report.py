"""``tracker optimize report``: one self-contained HTML page about an optimization.

The page opens offline: plotly.js is inlined once in its head, there are no links to other
files or sites, and the styles are inline. It shows the settings and the best configuration,
Optuna's history (with the best so far), parameter importances and parallel coordinates, the
learning curves of every configuration (its objective per step, aggregated over its seeds,
pruned ones dashed and red) and a table of every configuration and its trials.

The Optuna study behind the figures is rebuilt in memory from the store, one study trial per
configuration in number order, so a study trial's number is its configuration's number. A
running optimization is reported as far as it got.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.analysis.html import (
    COLORS,
    RED,
    fmt,
    key_values,
    label,
    note,
    page,
    params_text,
    per_step,
    plotly_js,
    section,
)
from tracker.analysis.html import figure as figure_html
from tracker.project import Project
from tracker.search import results
from tracker.search import space as spacelib
from tracker.search.rules import AGGREGATES
from tracker.search.strategies import load_optuna
from tracker.store import Configuration, Optimization, Trial
from tracker.yamlio import write_output

if TYPE_CHECKING:
    from optuna import Study
    from plotly.graph_objects import Figure

    from tracker.store.base import BaseStore


def write_report(project: Project, ref: str, out: Path) -> Path:
    """Write the HTML report of optimization ``ref`` (an id or unique prefix) to ``out``; return ``out``.

    Works on a running optimization too (what exists so far). Raises NotFoundError for an
    unknown id and MissingDependencyError without plotly or optuna (the ``search`` extra).

    Example::

        write_report(Project.find(), "3f2a", Path("report.html"))
    """
    plotlyjs = plotly_js("search")
    load_optuna()  # the same error without optuna; keeps its logging quiet
    st = results.status(project, ref)
    record = st.optimization
    store = project.store
    confs = store.configurations(record.id)
    trials: dict[int, list[Trial]] = {}
    for t in store.list_trials(optimization=record.id):
        trials.setdefault(t.extra.get("configuration", -1), []).append(t)
    metric = record.settings.get("metric", "")
    aggregate = AGGREGATES[record.settings.get("aggregate", "mean")]
    curves = {c.number: _curve(store, trials.get(c.number, []), metric, aggregate,
                               c.step if c.state == "pruned" else None) for c in confs}
    study = _study(record, confs)
    best = st.best.number if st.best else None
    sections = [
        ("history", "Optimisation history", _history(study, confs, metric)),
        ("importances", "Parameter importances", _importances(study, confs, metric)),
        ("parallel", "Parallel coordinates", _parallel(study, confs, metric)),
        ("intermediate", "Intermediate values", _intermediate(record, confs, curves, best)),
    ]
    body = [_header(record, st)]
    body += [section(anchor, title, note(shown) if isinstance(shown, str) else figure_html(shown))
             for anchor, title, shown in sections]
    body.append(_table(record, confs, trials, best))
    drawn = any(not isinstance(shown, str) for _, _, shown in sections)
    text = page(f"Optimization {record.id}: {record.experiment}", body, plotly=plotlyjs if drawn else "",
                style=STYLE)
    write_output(out, text)
    return out


# ---------------------------------------------------------------------------- data


def _curve(store: BaseStore, trials: list[Trial], metric: str, aggregate: Any,
           last: int | None) -> dict[int, float]:
    """step -> the objective at that step, aggregated over the seeds that reached it (up to step ``last``:
    a pruned configuration's seeds log on while they are being stopped, past the step it was pruned at)."""
    by_step = per_step((store.metrics(t.id, metric) for t in trials), last)
    return {step: aggregate(values) for step, values in by_step.items()}


def _study(record: Optimization, confs: list[Configuration]) -> Study:
    """An in-memory Optuna study with one trial per configuration, string values escaped for the figures."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from tracker.config import SearchSpace

    dists = spacelib.distributions({k: SearchSpace(**v) for k, v in record.settings.get("space", {}).items()})
    dists = {name: CategoricalDistribution([label(c) for c in d.choices])
             if isinstance(d, CategoricalDistribution) else d for name, d in dists.items()}
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
              "running": TrialState.RUNNING}
    study = optuna.create_study(study_name=record.id,
                                direction="maximize" if record.settings.get("goal") == "max" else "minimize")
    for c in confs:
        state = states[c.state]
        study.add_trial(create_trial(
            state=state, value=c.value if state == TrialState.COMPLETE else None,
            params={k: label(v) for k, v in c.params.items() if k in dists},
            distributions={k: d for k, d in dists.items() if k in c.params}))
    return study


def _complete(confs: list[Configuration]) -> list[Configuration]:
    return [c for c in confs if c.state == "complete" and c.value is not None]


# ---------------------------------------------------------------------------- figures


def _history(study: Study, confs: list[Configuration], metric: str) -> Figure | str:
    from optuna.visualization import plot_optimization_history

    if not _complete(confs):
        return "No configuration is complete yet, so there is no history to show."
    fig = plot_optimization_history(study, target_name=label(metric))
    fig.update_layout(xaxis_title="configuration")
    return fig


def _importances(study: Study, confs: list[Configuration], metric: str) -> Figure | str:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import plot_param_importances

    done = _complete(confs)
    if len(done) < 2:
        return f"Parameter importances need at least 2 complete configurations; {len(done)} so far."
    names = {name for t in study.trials for name in t.distributions}
    varied = sorted(name for name in names if len({repr(c.params.get(name)) for c in done}) > 1)
    if len(varied) < 2:
        return ("Parameter importances need at least 2 searched parameters that vary among the complete "
                f"configurations; {len(varied)} {'does' if len(varied) == 1 else 'do'} here"
                + (f" ({varied[0]})." if varied else "."))
    if len({c.value for c in done}) < 2:
        return "Every complete configuration has the same value, so no parameter explains a difference."
    return plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), params=varied,
                                  target_name=label(metric))


def _parallel(study: Study, confs: list[Configuration], metric: str) -> Figure | str:
    from optuna.visualization import plot_parallel_coordinate

    if not _complete(confs):
        return "No configuration is complete yet, so there are no coordinates to show."
    return plot_parallel_coordinate(study, target_name=label(metric))


def _end(conf: Configuration) -> str:
    """How a configuration ended (or that it still runs): ``pruned at step 3``, ``complete``..."""
    if conf.state == "pruned":
        if conf.step is not None:
            return f"pruned at step {conf.step}"
        return f"pruned after {len(conf.values)} seed(s)"
    return conf.state


def _label(conf: Configuration) -> str:
    """A configuration's name in the legend: its number and, unless complete, how it ended."""
    return f"configuration {conf.number}" + ("" if conf.state == "complete" else f" ({_end(conf)})")


def _intermediate(record: Optimization, confs: list[Configuration], curves: dict[int, dict[int, float]],
                  best: int | None) -> Figure | str:
    """The objective per step of every configuration; pruned ones red and dashed, ending in a cross."""
    import plotly.graph_objects as go

    metric = record.settings.get("metric", "")
    if not any(curves.values()):
        return (f"No configuration logged {metric} with a step, so there are no learning curves to show "
                "(log it per step, e.g. print(f'step: {step} " + metric + ": {value}')).")
    fig = go.Figure()
    for i, conf in enumerate(c for c in confs if curves[c.number]):
        curve = curves[conf.number]
        pruned = conf.state == "pruned"
        line: dict[str, Any] = {"color": RED if pruned else COLORS[i % len(COLORS)], "width": 1.5}
        if pruned:
            line["dash"] = "dash"
        elif conf.state != "complete":
            line["dash"] = "dot"
        elif conf.number == best:
            line["width"] = 3.5
        name = _label(conf) + (" (best)" if conf.number == best else "")
        steps = list(curve)
        fig.add_trace(go.Scatter(
            x=steps, y=[curve[s] for s in steps], name=name, mode="lines+markers", line=line,
            marker={"size": [4] * (len(steps) - 1) + [10 if pruned else 4],
                    "symbol": ["circle"] * (len(steps) - 1) + ["x" if pruned else "circle"]},
            hovertemplate=f"{name}<br>step %{{x}}<br>{label(metric)} %{{y:.6g}}<extra></extra>"))
    aggregate = record.settings.get("aggregate", "mean")
    fig.update_layout(title=f"{label(metric)} per step ({aggregate} over each configuration's seeds); "
                            "pruned configurations dashed red",
                      xaxis_title="step", yaxis_title=label(metric), template="plotly_white",
                      legend={"title": {"text": "configuration"}})
    return fig


# ---------------------------------------------------------------------------- text


def _header(record: Optimization, st: results.Status) -> str:
    s = record.settings
    seeds = ", ".join(map(str, s.get("seeds", [])))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(st.configurations.items())) or "none yet"
    budget = f" of {st.budget}" if st.budget else ""
    rows = [
        ("optimization", record.id),
        ("experiment", record.experiment),
        ("strategy", record.strategy),
        ("objective", f"{s.get('goal')} {s.get('metric')} ({s.get('aggregate')} over seeds {seeds})"),
        ("status", st.state + (" (the report shows what exists so far)" if st.state == "running" else "")),
        ("configurations", f"{st.made}{budget}: {counts}"),
        ("started", record.created),
    ]
    if record.finished:
        rows.append(("finished", record.finished))
    if record.error:
        rows.append(("note", record.error))
    if st.best is not None:
        rows.append(("best configuration", f"{st.best.number}: {s.get('metric')} = {fmt(st.best.value)}"))
        rows.append(("best params", params_text(st.best.params)))
    else:
        rows.append(("best configuration", "none complete yet"))
    if s.get("params"):
        rows.append(("fixed params", params_text(s["params"])))
    return f'<section id="summary">{key_values(rows)}</section>'


def _seeds(record: Optimization, conf: Configuration) -> list[str]:
    """The seeds a configuration has a value for, in the optimization's order of seeds."""
    order = {str(seed): i for i, seed in enumerate(record.settings.get("seeds", []))}
    return sorted(conf.values, key=lambda seed: (order.get(seed, len(order)), seed))


def _table(record: Optimization, confs: list[Configuration], trials: dict[int, list[Trial]],
           best: int | None) -> str:
    """Every configuration: number, state, value, per-seed values, params and its trials."""
    rows = []
    for c in confs:
        mine = sorted(trials.get(c.number, []), key=lambda t: (t.seed is None, t.seed or 0, t.id))
        cells = [
            str(c.number) + (" (best)" if c.number == best else ""),
            _end(c) + (f": {c.error}" if c.error else ""),
            "" if c.value is None else fmt(c.value),
            ", ".join(f"{seed}: {fmt(c.values[seed])}" for seed in _seeds(record, c)),
            params_text(c.params),
            ", ".join(f"{t.id} (seed {t.seed}, {t.status})" for t in mine),
        ]
        attrs = f' id="configuration-{c.number}" class="{html.escape(c.state)}{" best" if c.number == best else ""}"'
        rows.append(f"<tr{attrs}>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("configuration", "state", html.escape(record.settings.get("metric", "")),
                                               "per seed", "params", "trials"))
    body = "\n".join(rows) or '<tr><td colspan="6">no configuration yet</td></tr>'
    return (f'<section id="configurations"><h2>Configurations</h2>\n<table class="configurations">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></section>")


STYLE = """
tr.pruned td { color: #d62728; } tr.failed td { color: #7f7f7f; } tr.running td { font-style: italic; }
tr.best td { font-weight: bold; }
"""
"""What this page adds to the shared styles (tracker.analysis.html.STYLE)."""
