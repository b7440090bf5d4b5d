"""``tracker export`` and ``tracker sql``: results out of the store."""

from __future__ import annotations

from pathlib import Path

import typer

from tracker.cli._common import JSON_OPTION, emit_json, emit_table, info, project


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
