"""Self-contained HTML pages with Plotly figures, shared by ``tracker report`` and ``tracker optimize report``.

A page opens offline: plotly.js is inlined once in its head (only when the page has a figure),
styles are inline, and nothing links to another file or site. Every string a user wrote (names,
params, messages) goes through :func:`escape` for the page and :func:`label` for a figure, since
Plotly reads tags in its labels; figure JSON is written by Plotly, which escapes ``<``, ``>`` and
``/`` inside scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tracker.errors import MissingDependencyError

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from tracker.store import MetricPoint

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
"""Colours of configurations in figures (red is kept for pruned ones and warnings)."""
RED = "#d62728"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}  # no link to plotly.com in the mode bar

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
table.summary th { background: #f5f5f5; }
thead th { background: #f5f5f5; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-style: italic; }
p.warning { color: #d62728; font-weight: bold; }
"""


def plotly_js(extra: str) -> str:
    """plotly.js, to inline once per page; MissingDependencyError naming ``extra`` without plotly."""
    try:
        import plotly.offline
    except ImportError as exc:
        raise MissingDependencyError("plotly", extra) from exc
    return plotly.offline.get_plotlyjs()


def escape(value: Any) -> str:
    """Any value as page text, escaped (floats in 6 significant digits)."""
    return html.escape(fmt(value))


def label(value: Any) -> Any:
    """A string escaped for a Plotly label (Plotly reads tags in labels and shows entities as characters)."""
    return html.escape(value, quote=False) if isinstance(value, str) else value


def fmt(value: Any) -> str:
    """A value as text: floats in 6 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def params_text(params: dict[str, Any]) -> str:
    """``k=v, k=v`` (unescaped)."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def per_step(trials_points: Iterable[Iterable[MetricPoint]], last: int | None = None) -> dict[int, list[float]]:
    """step -> one value per trial that logged that step (its last value there), finite values only,
    steps up to ``last`` when given; steps in order."""
    by_step: dict[int, list[float]] = {}
    for points in trials_points:
        seen: dict[int, float] = {}
        for p in points:
            if p.step is not None and math.isfinite(p.value) and (last is None or p.step <= last):
                seen[p.step] = p.value  # a step logged twice counts once, its last value
        for step, value in seen.items():
            by_step.setdefault(step, []).append(value)
    return dict(sorted(by_step.items()))


def figure(fig: Figure | dict[str, Any], height: str = "520px") -> str:
    """A figure as a ``<div>`` and its script (plotly.js itself comes from :func:`page`).

    A dict is written as it is, without Plotly's validation (much faster for many traces); a
    template it names (``"plotly_white"``) is looked up, as validation would.
    """
    import plotly.io

    if isinstance(fig, dict) and isinstance(fig.get("layout", {}).get("template"), str):
        template = plotly.io.templates[fig["layout"]["template"]].to_plotly_json()
        fig = {**fig, "layout": {**fig["layout"], "template": template}}
    return plotly.io.to_html(fig, full_html=False, include_plotlyjs=False, config=PLOT_CONFIG,
                             default_width="100%", default_height=height, validate=not isinstance(fig, dict))


def note(text: str) -> str:
    """A paragraph explaining why something is not shown."""
    return f'<p class="note">{html.escape(text)}</p>'


def section(anchor: str, title: str, body: str) -> str:
    """``<section id=anchor>`` with a heading (``title`` is escaped)."""
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "",
          row_attrs: Sequence[str] | None = None, numeric: Sequence[int] = ()) -> str:
    """An HTML table; every header and cell is escaped. ``row_attrs``: raw attributes per row."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        attrs = row_attrs[i] if row_attrs else ""
        cells = "".join(f'<td class="num">{escape(c)}</td>' if j in numeric else f"<td>{escape(c)}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr{attrs}>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def key_values(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column summary table (name, value), escaped."""
    cells = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary">\n{cells}\n</table>'


def page(title: str, body: Sequence[str], *, plotly: str = "", style: str = "") -> str:
    """The whole document: ``title`` (escaped), inline styles, plotly.js when given, then ``body``."""
    script = ""
    if plotly:
        script = (f"<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>\n"
                  f"<script>{plotly}</script>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}{style}</style>\n{script}\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
