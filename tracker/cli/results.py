"""``tracker export``, ``tracker sql`` and ``tracker compare``: results out of the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tracker.cli._common import JSON_OPTION, emit_json, emit_table, escape_control, info, project

if TYPE_CHECKING:
    from tracker.analysis.compare import Comparison


def export(
    experiments: list[str] = typer.Argument(None, help="Experiments to export (default: every one)."),
    to: Path = typer.Option(..., "--to", "-o", help="The file to write: .csv, .json or .parquet."),
    status: list[str] = typer.Option(None, "--status", help="Only this status (repeatable)."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Only trials with this tag (repeatable: all of them)."),
    optimization: str = typer.Option(None, "--optimization", "-O", metavar="ID",
                                     help="Only the trials of this optimization."),
) -> None:
    """Write one row per trial, params and metrics flattened (params.NAME, metrics.NAME), to a file.

    Examples:

        tracker export baseline --to results.csv
        tracker export baseline wide --status completed --to results.parquet
    """
    from tracker.analysis.export import export as write

    n = write(project(), list(experiments or []), to, status=status, tags=tag, optimization=optimization)
    info(f"wrote {n} trial(s) to {to}")


def sql(
    query: str = typer.Argument(..., metavar="QUERY", help="One SELECT statement."),
    limit: int = typer.Option(None, "--limit", "-n", help="At most N rows."),
    as_json: bool = JSON_OPTION,
    csv: bool = typer.Option(False, "--csv", help="Print CSV."),
) -> None:
    """Run a read-only SQL query over the store (tables: trials, params, metrics, tags, ...).

    Writes are refused. Example:

        tracker sql "SELECT experiment, avg(json_extract(metrics, '$.\\"val/acc\\"')) FROM trials GROUP BY 1"
    """
    from tracker.analysis.sql import query as run_query

    result = run_query(project(), query, limit)
    if as_json:
        emit_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
        return
    emit_table(result.rows, result.columns, csv=csv)


def compare(
    experiments: list[str] = typer.Argument(..., metavar="EXP...", help="Experiments to compare."),
    metric: str = typer.Option(None, "--metric", "-m", help="The metric (default: the experiments' objective)."),
    by: list[str] = typer.Option(None, "--by", "-b", metavar="PARAMS",
                                 help="One row per value of these params (comma-separated or repeated; "
                                      "'experiment' too); the others are aggregated over."),
    where: str = typer.Option(None, "--where", "-w", metavar="EXPR",
                              help='Only trials where EXPR holds, e.g. "lr<0.1 and act==relu" or "val/acc>0.8".'),
    stat: str = typer.Option("mean", "--stat", "-s", help="Rank rows by: mean, median or iqm."),
    goal: str = typer.Option(None, "--goal", help="min or max (default: the objective's goal, else max)."),
    phase: str = typer.Option("train", "--phase", help="Trials of this phase: train or test."),
    as_json: bool = JSON_OPTION,
    csv: bool = typer.Option(False, "--csv", help="Print the rows as CSV."),
) -> None:
    """Compare configurations over seeds: mean, std, median, IQM and a 95% CI per row, best first,
    then every row against the best (paired t-test on shared seeds, else Welch; Holm-corrected).

    See docs/compare.md for how to read it. Examples:

        tracker compare baseline
        tracker compare baseline --by lr --where "layers>=2" --stat iqm
        tracker compare small large --metric val/loss --goal min --json
    """
    from tracker.analysis.compare import compare as run_compare

    result = run_compare(project(), experiments, metric=metric, by=by, where=where, stat=stat, goal=goal,
                         phase=phase)
    if as_json:
        emit_json(result.as_dict())
    elif csv:
        emit_table(*csv_rows(result), csv=True)
    else:
        import shutil

        sys.stdout.write(render(result, shutil.get_terminal_size().columns))


# ------------------------------------------------------------------------------------------ compare's table

_STAT_COLUMNS = ("mean", "std", "median", "iqm", "min", "max")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _param(value: Any) -> str:
    import json

    if isinstance(value, float):
        return f"{value:.4g}"
    return escape_control(value if isinstance(value, str) else json.dumps(value))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def csv_rows(result: Comparison) -> tuple[list[list[Any]], list[str]]:
    """compare's rows for --csv: rank, experiment, each param, n, the chosen stat, its CI, the rest."""
    names = list(dict.fromkeys(k for row in result.rows for k in row.params))
    columns = ["rank", "experiment", *names, "n", result.stat, "ci_low", "ci_high", *_STAT_COLUMNS,
               "best_step_value", "best_step"]
    rows = [[i, r.experiment, *(r.params.get(k) for k in names), r.n, r.value, r.ci_low, r.ci_high,
             r.mean, r.std, r.median, r.iqm, r.min, r.max, r.best_step_value, r.best_step]
            for i, r in enumerate(result.rows, start=1)]
    return rows, columns


def render(result: Comparison, width: int) -> str:
    """compare's table, fitted to ``width`` (columns dropped, then params abbreviated; a row never
    wraps), then one sentence per pair."""
    better = "higher" if result.goal == "max" else "lower"
    lines = [_cut(f"{result.metric}: {better} is better (goal {result.goal}: {result.goal_source}); "
                  f"ranked by the {result.stat} over seeds", width),
             _cut(f"{len(result.rows)} configuration(s) from {result.trials} completed {result.phase} trial(s)"
                  + (f" where {result.where}" if result.where else ""), width)]
    if result.missing:
        lines.append(_cut(f"({result.missing} trial(s) without {result.metric} left out)", width))
    if not result.rows:
        lines.append("no completed trials to compare")
        return "\n".join(lines) + "\n"
    names = list(dict.fromkeys(k for row in result.rows for k in row.params))
    fixed = {k: result.rows[0].params.get(k) for k in names
             if len(result.rows) > 1 and all(k in r.params and r.params[k] == result.rows[0].params[k]
                                             for r in result.rows)}
    if fixed:
        lines.append(_cut("same in every row: " + " ".join(f"{k}={_param(v)}" for k, v in fixed.items()), width))
    varying = [k for k in names if k not in fixed]
    several = len({r.experiment for r in result.rows}) > 1
    columns: dict[str, list[str]] = {"#": [str(i) for i in range(1, len(result.rows) + 1)]}
    if several:
        columns["experiment"] = [r.experiment for r in result.rows]
    for k in varying:
        columns[k] = [_param(r.params[k]) if k in r.params else "-" for r in result.rows]
    columns["n"] = [str(r.n) for r in result.rows]
    columns[result.stat] = [_num(r.value) for r in result.rows]
    columns["95% CI"] = ["-" if r.ci_low is None else f"{_num(r.ci_low)}..{_num(r.ci_high)}" for r in result.rows]
    for k in _STAT_COLUMNS:
        if k != result.stat:
            columns[k] = [_num(getattr(r, k)) for r in result.rows]
    columns["best@step"] = ["-" if r.best_step_value is None else
                            f"{_num(r.best_step_value)}@{_num(r.best_step)}" for r in result.rows]
    identity = ["#", "experiment", *varying]

    def total(cols: dict[str, list[str]], cap: int | None = None) -> int:
        return sum(max(len(_cut(c, cap or 10**6)) for c in [name, *cells]) if name in identity and cap else
                   max(len(c) for c in [name, *cells]) for name, cells in cols.items()) + 2 * (len(cols) - 1)

    for drop in (("best@step",), ("min", "max"), ("median",), ("iqm",), ("mean",), ("std",)):
        if total(columns) <= width:
            break
        for name in drop:
            if name != result.stat:
                columns.pop(name, None)
    cap = None
    for limit in (16, 12, 8, 5):  # then abbreviate the params (names and values) and experiments
        if total(columns, cap) <= width:
            break
        cap = limit
    shown = {(_cut(name, cap) if cap and name in identity else name): [_cut(c, cap) if cap and name in identity
                                                                          else c for c in cells]
             for name, cells in columns.items()}
    widths = [max(len(c) for c in [name, *cells]) for name, cells in shown.items()]
    numeric = {"#", "n", result.stat, *_STAT_COLUMNS}
    table = [list(shown), *zip(*shown.values(), strict=True)]
    for cells in table:
        text = "  ".join(c.rjust(w) if name in numeric else c.ljust(w)
                         for c, w, name in zip(cells, widths, columns, strict=True)).rstrip()
        lines.append(_cut(text, width))
    if result.pairs:
        lines.append("")
        lines += [f"#{p.b + 1} vs #{p.a + 1}: {p.sentence}" for p in result.pairs]
    return "\n".join(lines) + "\n"
