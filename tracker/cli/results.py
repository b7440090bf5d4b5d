"""``tracker export``, ``tracker sql`` and ``tracker diff``: results out of the store."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from tracker.cli._common import (
    JSON_OPTION,
    emit_json,
    emit_table,
    fmt_duration,
    fmt_params,
    fmt_value,
    info,
    is_tty,
    project,
)


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


def _diff_lines(result: Any, *, color: bool) -> list[str]:
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
    if len(out) == 2:
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


def _mapping_rows(d: Any) -> list[str]:
    return ([f"  changed  {k}: {_show(k, va)} -> {_show(k, vb)}" for k, (va, vb) in d.changed.items()]
            + [f"  added    {k}: {_show(k, v)}" for k, v in d.added.items()]
            + [f"  removed  {k}: {_show(k, v)}" for k, v in d.removed.items()])


def _environment_rows(env: Any) -> list[str]:
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
