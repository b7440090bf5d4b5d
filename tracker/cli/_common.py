"""Shared CLI helpers: opening the project, rendering tables and JSON.

Rich tables on a terminal, tab-separated text when piped; ``--json`` always.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
COMMIT_OPTION = typer.Option(False, "--commit", help="Commit the file tracker writes, and only it "
                             "(changes you have staged stay staged).")


def is_tty() -> bool:
    return sys.stdout.isatty()


def project():
    """The project around the current directory (raises ProjectError outside one)."""
    from tracker.project import Project

    return Project.find()


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout: indented on a terminal, compact (fast) when piped."""
    sys.stdout.write(json.dumps(data, indent=2 if is_tty() else None, default=str) + "\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=not stderr)


def emit_table(rows: Sequence[Sequence[Any]], columns: Sequence[str], *, title: str | None = None,
               csv: bool = False) -> None:
    """A table: rich on a terminal, TSV (or CSV) when piped."""
    if csv or not is_tty():
        import csv as csvlib

        writer = csvlib.writer(sys.stdout, delimiter="," if csv else "\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)  # the csv module writes None as an empty field
        return
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console().print(table)


def info(text: str) -> None:
    """A message for the user on stderr (keeps stdout clean for data)."""
    typer.echo(text, err=True)


def parse_assignments(values: list[str] | None, where: str) -> dict[str, Any]:
    """``--param k=v`` options as a dict."""
    from tracker.config import parse_assignment

    out: dict[str, Any] = {}
    for text in values or []:
        key, value = parse_assignment(text, where=where)
        out[key] = value
    return out


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in params.items())


def fmt_metrics(metrics: dict[str, float], names: Sequence[str] | None = None, limit: int = 3) -> str:
    keys = [n for n in (names or []) if n in metrics] or list(metrics)[:limit]
    return " ".join(f"{k}={fmt_value(metrics[k])}" for k in keys)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def fmt_commit(commit: str | None, dirty: bool) -> str:
    return f"{(commit or '-')[:8]}{'*' if dirty else ''}"


def fmt_time(ts: str | None) -> str:
    return (ts or "").replace("T", " ")[:19]


@contextmanager
def tracked_edit(proj: Any, message: str, *, commit: bool) -> Iterator[list[Path]]:
    """Around a command that writes project files (it appends their paths to the yielded list):
    afterwards commit exactly those files (``--commit``), or say that the work tree now
    differs from the last commit, so that trials run now are marked dirty.
    """
    from tracker import gitinfo
    from tracker.yamlio import display_path

    if commit:
        gitinfo.require_repo(proj.root)  # before anything is written
    written: list[Path] = []
    yield written
    outcome = gitinfo.after_edit(proj.root, written, message, commit=commit)
    shown = ", ".join(display_path(p) for p in outcome.changed)
    if outcome.commit:
        info(f"committed {shown} ({outcome.commit[:8]} {message})")
    elif outcome.changed:
        info(f"note: {shown} now differs from the last commit; trials run before you commit it are marked "
             "dirty (commit it, or pass --commit to let tracker commit just this file)")
