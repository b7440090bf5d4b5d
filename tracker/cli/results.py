"""``tracker export``, ``tracker sql``, ``tracker compare`` and ``tracker diff``: results out of the store."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tracker.cli._common import (
    JSON_OPTION,
    MIN_SEEDS_OPTION,
    TAG_FILTER_OPTION,
    claim,
    emit_json,
    emit_table,
    escape_control,
    fmt_duration,
    fmt_params,
    fmt_value,
    info,
    is_tty,
    placed,
    project,
)

if TYPE_CHECKING:
    from tracker.analysis.compare import Comparison
    from tracker.analysis.diff import EnvironmentDiff, ExperimentDiff, MappingDiff, TrialDiff


def export(
    experiments: list[str] = typer.Argument(None, help="Experiments to export (default: every one)."),
    to: Path = typer.Option(None, "--to", "-o", help="The file to write: .csv, .json or .parquet "
                            "(default: .tracker/exports/EXPERIMENTS.csv, outside the code)."),
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

    proj = project()
    to = placed(proj, to, "exports", "-".join(experiments or ["all"]) + ".csv")
    n = write(proj, list(experiments or []), to, status=status, tags=tag, optimization=optimization)
    claim(proj, to)
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


def diff(
    a: str = typer.Argument(..., metavar="A", help="A trial (id or unique prefix) or an experiment name."),
    b: str = typer.Argument(..., metavar="B", help="Another trial, or another experiment."),
    stat: bool = typer.Option(False, "--stat", help="Trials: list the files the code differs in, with "
                              "added/removed line counts, instead of the whole diff."),
    no_code: bool = typer.Option(False, "--no-code", help="Trials: leave out the code difference."),
    metric: str = typer.Option(None, "--metric", "-m", help="Experiments: the metric whose mean over "
                               "completed trials is compared (default: the objective)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show what differs between two trials or two experiments; only differences are printed.

    Trials: params, seeds, final metrics (B - A), status, phase, duration, environment
    (python, packages, host, OS, GPUs) and the code, as a unified diff between the exact
    trees they ran (commit plus uncommitted changes). Experiments: configs, seeds, trial
    counts by status, the objective's mean, commits, and the environments of their latest
    completed trials.

    Examples:

        tracker diff 3f2a 9bc1
        tracker diff 3f2a 9bc1 --stat
        tracker diff baseline wide --metric val/acc
    """
    from tracker.analysis.diff import diff as compute

    result = compute(project(), a, b, code=not no_code, stat=stat, metric=metric)
    if as_json:
        emit_json(result.as_dict())
        return
    sys.stdout.writelines(line + "\n" for line in _diff_lines(result, color=is_tty() and "NO_COLOR" not in os.environ))


def _diff_lines(result: TrialDiff | ExperimentDiff, *, color: bool) -> list[str]:
    """``tracker diff`` as text: one section per kind of difference, headings bold and diff lines coloured."""
    from tracker.analysis.diff import TrialDiff

    def style(text: str, **how: Any) -> str:
        return typer.style(text, **how) if color else text

    out: list[str] = []

    def section(title: str, rows: list[str]) -> None:
        if rows:
            out.extend(["", style(title, bold=True), *rows])

    if isinstance(result, TrialDiff):
        ta, tb = result.a, result.b
        out.append(f"A  trial {ta.id}  {ta.experiment}  seed {ta.seed}  {fmt_params(ta.params)}")
        out.append(f"B  trial {tb.id}  {tb.experiment}  seed {tb.seed}  {fmt_params(tb.params)}")
        section("trial", [f"  {k:<10} {_show(k, va)} -> {_show(k, vb)}" for k, (va, vb) in result.fields.items()])
        section("params", _mapping_rows(result.params))
        section("seeds", [f"  {k:<10} {_show(k, va)} -> {_show(k, vb)}" for k, (va, vb) in result.seeds.items()])
        section("metrics", _columns(["", "A", "B", "B - A"],
                                    [[m.name, _show("", m.a), _show("", m.b), _signed(m.difference)]
                                     for m in result.metrics]))
        section("environment", _environment_rows(result.environment))
        code = result.code
        if code is not None:
            heading = style(f"code  A {code.a}  B {code.b}", bold=True)
            if code.unavailable:
                out.extend(["", heading, f"  cannot compare the code: {code.unavailable}"])
            elif code.same:
                out.extend(["", f"{heading}: same code"])
            elif code.stat:
                out.extend(["", heading, *_columns(["", "+", "-"], [[p, _show("", n), _show("", d)]
                                                                    for p, n, d in code.stat])])
            else:
                out.extend(["", heading, *(_colour_patch_line(line, style) for line in code.patch.splitlines())])
    else:
        (src_a, src_b) = result.config_source
        out.append(f"A  experiment {result.a}  (config: {src_a})")
        out.append(f"B  experiment {result.b}  (config: {src_b})")
        section("config", _mapping_rows(result.config))
        only_a, only_b = result.seeds
        section("seeds", [f"  only {side}  {', '.join(map(str, seeds))}"
                          for side, seeds in (("A", only_a), ("B", only_b)) if seeds])
        section("trials", [f"  {k:<10} {va} -> {vb}" for k, (va, vb) in result.counts.items()])
        obj = result.objective
        if obj is not None and (obj.a_mean != obj.b_mean or obj.a_n != obj.b_n):
            section(f"{obj.metric}: mean over completed trials",
                    _columns(["", "A", "B", "B - A"], [["mean", _show("", obj.a_mean), _show("", obj.b_mean),
                                                        _signed(obj.difference)],
                                                       ["trials", str(obj.a_n), str(obj.b_n), ""]]))
        commits_a, commits_b = result.commits
        section("commits", [f"  {side}  " + ", ".join(f"{c} ({n} trial{'s' * (n != 1)})" for c, n in commits.items())
                            for side, commits in (("A", commits_a), ("B", commits_b)) if commits])
        if result.environment is not None:
            section("environment of the latest completed trials", _environment_rows(result.environment))
    if len(out) == 2:  # the two heading lines, no section
        out.extend(["", "no differences"])
    return out


def _show(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "duration":
        return fmt_duration(value)
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, default=str)
    return fmt_value(value)


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows as aligned columns (the first left-aligned, the others right), under ``header``."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]


def _mapping_rows(d: MappingDiff) -> list[str]:
    return ([f"  changed  {k}: {_show(k, va)} -> {_show(k, vb)}" for k, (va, vb) in d.changed.items()]
            + [f"  added    {k}: {_show(k, v)}" for k, v in d.added.items()]
            + [f"  removed  {k}: {_show(k, v)}" for k, v in d.removed.items()])


def _environment_rows(env: EnvironmentDiff) -> list[str]:
    if env.missing:
        return [f"  {env.missing}"]
    rows = [f"  {k:<12} {_show(k, va)} -> {_show(k, vb)}" for k, (va, vb) in env.fields.items()]
    packages = env.packages
    rows += [f"  package      {k} {va} -> {vb}" for k, (va, vb) in packages.changed.items()]
    rows += [f"  package      + {k} {v}" for k, v in packages.added.items()]
    rows += [f"  package      - {k} {v}" for k, v in packages.removed.items()]
    return rows


def _colour_patch_line(line: str, style: Any) -> str:
    if line.startswith(("+++", "---", "diff --git", "index ")):
        return style(line, bold=True)
    if line.startswith("@@"):
        return style(line, fg="cyan")
    if line.startswith("+"):
        return style(line, fg="green")
    if line.startswith("-"):
        return style(line, fg="red")
    return line


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
    tag: list[str] = TAG_FILTER_OPTION,
    min_seeds: int = MIN_SEEDS_OPTION,
    as_json: bool = JSON_OPTION,
    csv: bool = typer.Option(False, "--csv", help="Print the rows as CSV."),
) -> None:
    """Compare configurations over seeds: mean, std, median, IQM and a 95% CI per row, best first,
    then every row against the best (paired t-test on shared seeds, else Welch; Holm-corrected).

    Rows are ranked by the worse end of their 95% CI (its lower bound when higher is better), so
    a configuration run on few seeds does not win by luck; those under --min-seeds come last,
    unranked. See docs/compare.md for how to read it. Examples:

        tracker compare baseline
        tracker compare baseline --by lr --where "layers>=2" --stat iqm
        tracker compare small large --metric val/loss --goal min --json
        tracker compare baseline --tag study1 --min-seeds 5
    """
    from tracker.analysis.compare import compare as run_compare

    result = run_compare(project(), experiments, metric=metric, by=by, where=where, stat=stat, goal=goal,
                         phase=phase, tags=tag or [], min_seeds=min_seeds)
    if result.phase == "test" and result.repeated:
        info(f"note: {result.repeated} configuration seed(s) have more than one test trial (the test ran more "
             "than once); their values are averaged. Compare one test run with --tag, or delete the extra trials")
    if as_json:
        emit_json(result.as_dict())
    elif csv:
        emit_table(*csv_rows(result), csv=True)
    else:
        import shutil

        sys.stdout.write(render(result, shutil.get_terminal_size().columns))


def report(
    experiments: list[str] = typer.Argument(None, metavar="EXP",
                                            help="Experiments to report on (default: every one with trials)."),
    out: Path = typer.Option(None, "--out", "-o", help="The HTML file to write "
                             "(default: .tracker/reports/EXPERIMENTS.html, outside the code)."),
    metric: str = typer.Option(None, "--metric", "-m", help="The metric to compare (default: the objective)."),
    by: list[str] = typer.Option(None, "--by", "-b", metavar="PARAMS",
                                 help="One configuration per value of these params (as for tracker compare)."),
    where: str = typer.Option(None, "--where", "-w", metavar="EXPR", help="Only trials where EXPR holds."),
    stat: str = typer.Option("mean", "--stat", "-s", help="Rank configurations by: mean, median or iqm."),
    goal: str = typer.Option(None, "--goal", help="min or max (default: the objective's goal, else max)."),
    tag: list[str] = TAG_FILTER_OPTION,
    min_seeds: int = MIN_SEEDS_OPTION,
) -> None:
    """One self-contained HTML page (opens offline, safe to send): summary, the comparison over seeds,
    learning curves, comparison plots, every trial's code version, and the test results apart.

    Examples:

        tracker report --out report.html
        tracker report baseline wide --metric val/acc --by lr --out report.html
    """
    from tracker.analysis.report import write_report

    proj = project()
    out = placed(proj, out, "reports", "-".join(experiments or ["all"]) + ".html")
    existed = out.exists()
    path = write_report(proj, list(experiments or []), out, metric=metric, by=by, where=where, stat=stat,
                        goal=goal, tags=tag or [], min_seeds=min_seeds)
    claim(proj, path)
    info(f"wrote {path}" + (" (it replaced the file that was there)" if existed else ""))


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
    """compare's rows for --csv: rank (empty for an unranked row), experiment, params.NAME..., n, the
    chosen stat's name and value with its CI, then every statistic."""
    names = list(dict.fromkeys(k for row in result.rows for k in row.params))
    columns = ["rank", "experiment", *(f"params.{k}" for k in names), "n", "stat", "value", "ci_low", "ci_high",
               *_STAT_COLUMNS, "best_step_value", "best_step"]
    rows = [[i if r.ranked else None, r.experiment, *(r.params.get(k) for k in names), r.n, result.stat, r.value,
             r.ci_low, r.ci_high,
             *(getattr(r, k) for k in _STAT_COLUMNS), r.best_step_value, r.best_step]
            for i, r in enumerate(result.rows, start=1)]
    return rows, columns


def render(result: Comparison, width: int) -> str:
    """compare's table fitted to ``width`` columns, then one sentence per pair.

    Too wide, it drops columns (best@step, min/max, the statistics not ranked by, std), then
    abbreviates experiment and param names and values, then drops the interval; a row is never
    wrapped (cut as a last resort).
    Params that are the same in every row are named once above the table.
    """
    better, bound = ("higher", "lower") if result.goal == "max" else ("lower", "upper")
    unranked = sum(not r.ranked for r in result.rows)
    lines = [_cut(f"{result.metric}: {better} is better ({result.goal_source}); {result.stat} over seeds, "
                  f"ranked by its 95% CI's {bound} bound", width),
             _cut(f"{len(result.rows)} configuration(s) from {result.trials} completed {result.phase} trial(s)"
                  + (f" tagged {', '.join(result.tags)}" if result.tags else "")
                  + (f" where {result.where}" if result.where else "")
                  + (f"; {unranked} on fewer than {result.min_seeds} seeds listed last, unranked" if unranked
                     else ""), width)]
    if result.missing:
        lines.append(_cut(f"({result.missing} trial(s) without a finite {result.metric} left out)", width))
    if not result.rows:
        lines.append(f"no trial left to compare{' where ' + result.where if result.where else ''}")
        return "\n".join(lines) + "\n"
    rows = result.rows
    names = list(dict.fromkeys(k for row in rows for k in row.params))
    fixed = {k: rows[0].params[k] for k in names
             if len(rows) > 1 and all(k in r.params and r.params[k] == rows[0].params[k] for r in rows)}
    if fixed:
        lines.append(_cut("same in every row: " + " ".join(f"{k}={_param(v)}" for k, v in fixed.items()), width))
    # key -> (header, cells); params get keys of their own, so a param called "n" or "mean" is no clash
    columns: dict[str, tuple[str, list[str]]] = {"#": ("#", [str(i) for i in range(1, len(rows) + 1)])}
    if len({r.experiment for r in rows}) > 1:
        columns["experiment"] = ("experiment", [r.experiment for r in rows])
    for k in names:
        if k not in fixed:
            columns[f"params.{k}"] = (k, [_param(r.params[k]) if k in r.params else "-" for r in rows])
    columns["n"] = ("n", [str(r.n) for r in rows])
    columns["value"] = (result.stat, [_num(r.value) for r in rows])
    columns["ci"] = ("95% CI", ["-" if r.ci_low is None else f"{_num(r.ci_low)}..{_num(r.ci_high)}" for r in rows])
    for k in _STAT_COLUMNS:
        if k != result.stat:
            columns[k] = (k, [_num(getattr(r, k)) for r in rows])
    columns["best"] = ("best@step", [_num(r.best_step_value) + ("" if r.best_step is None else f"@{_num(r.best_step)}")
                                     for r in rows])
    numeric = {"#", "n", "value", *_STAT_COLUMNS}

    def layout(cap: int) -> list[tuple[str, list[str]]]:
        """Headers and cells, experiment and param columns cut to ``cap`` characters."""
        return [(_cut(head, cap), [_cut(c, cap) for c in cells])
                if cap and (key == "experiment" or key.startswith("params.")) else (head, cells)
                for key, (head, cells) in columns.items()]

    def wide(cols: list[tuple[str, list[str]]]) -> int:
        return sum(max(map(len, [head, *cells])) for head, cells in cols) + 2 * (len(cols) - 1)

    for drop in (("best",), ("min", "max"), ("median",), ("iqm",), ("mean",), ("std",)):
        if wide(layout(0)) <= width:
            break
        for key in drop:
            columns.pop(key, None)
    cap = next((c for c in (0, 16, 12, 8, 5) if wide(layout(c)) <= width), -1)  # 0: as they are
    if cap < 0:  # still too wide: the interval goes, and names and values shrink to 3 characters
        columns.pop("ci")
        cap = 5 if wide(layout(5)) <= width else 3
    shown = layout(cap)
    widths = [max(map(len, [head, *cells])) for head, cells in shown]
    aligns = [str.rjust if key in numeric else str.ljust for key in columns]
    for cells in [[head for head, _ in shown], *zip(*(cells for _, cells in shown), strict=True)]:
        text = "  ".join(align(c, w) for c, w, align in zip(cells, widths, aligns, strict=True)).rstrip()
        lines.append(_cut(text, width))  # the last resort: a row is cut, never wrapped
    if result.pairs:
        lines.append("")
        lines += [f"#{p.b + 1} vs #{p.a + 1}: {p.sentence}" for p in result.pairs]
    return "\n".join(lines) + "\n"
