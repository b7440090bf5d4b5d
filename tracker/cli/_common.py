"""Shared CLI helpers: opening the project, rendering tables and JSON.

Rich tables on a terminal, tab-separated text when piped; ``--json`` always.
A value never breaks a table's lines: newlines, tabs and other control
characters in it are shown escaped (``\\n``, ``\\t``, ``\\x1b``); CSV quotes them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
TAG_FILTER_OPTION = typer.Option(None, "--tag", "-t", help="Only trials with this tag (repeatable: all of them).")
MIN_SEEDS_OPTION = typer.Option(2, "--min-seeds", metavar="N", help="Rank only configurations run on at least N seeds; "
                                "the others are listed after them, unranked.")
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape_control(text: str) -> str:
    """``text`` on one line: newline, tab and other control characters as ``\\n``, ``\\t``, ``\\x1b``."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or f"\\x{ord(m[0]):02x}", text)


def tsv_field(value: Any) -> str:
    """A TSV field: backslashes doubled, control characters escaped, so every row is one line."""
    return "" if value is None else escape_control(str(value).replace("\\", "\\\\"))


def emit_table(rows: Sequence[Sequence[Any]], columns: Sequence[str], *, title: str | None = None,
               csv: bool = False, keep: Collection[str] = (), truncate: Collection[str] = (),
               optional: Sequence[str] = ()) -> list[str]:
    """A table: rich on a terminal, TSV (or CSV) when piped; returns the columns left out.

    On a terminal, ``keep`` columns are shown whole on one line (ids, times),
    ``truncate`` columns are cut to one line with an ellipsis, the others wrap;
    ``optional`` columns are left out, in that order, while the table is wider
    than the terminal.
    """
    columns = list(columns)
    if csv:
        import csv as csvlib

        writer = csvlib.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)  # None becomes an empty field; newlines and commas are quoted
        return []
    if not is_tty():
        sys.stdout.writelines("\t".join(map(tsv_field, row)) + "\n" for row in [columns, *rows])
        return []
    from rich.table import Table
    from rich.text import Text

    out = console()
    cells = [[escape_control("" if v is None else str(v)) for v in row] for row in rows]
    shown, widths = _layout(columns, cells, out.width, keep, truncate, optional)
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in shown:
        table.add_column(col, no_wrap=col in keep, overflow="fold", width=widths.get(col))
    picks = [columns.index(col) for col in shown]
    for row in cells:  # Text, not markup: a value like "[red]" is shown as it is
        table.add_row(*(Text(row[i], no_wrap=True, overflow="ellipsis") if columns[i] in truncate
                        else Text(row[i], overflow="fold") for i in picks))
    out.print(table)
    return [col for col in columns if col not in shown]


def _layout(columns: list[str], cells: list[list[str]], width: int, keep: Collection[str],
            truncate: Collection[str], optional: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """The columns that fit ``width`` and the widths of those that wrap or are truncated.

    ``optional`` columns are dropped, in order, until the others fit comfortably:
    a ``keep`` column its widest value, one that wraps 40 cells, one that is
    truncated 24. The room left is shared by the wrapping and truncated columns
    in proportion to what more they could show, each getting at least its
    longest word (up to 30 cells; 12 when truncated).
    """
    from rich.cells import cell_len

    def values(col: str) -> list[str]:
        return [col, *(row[columns.index(col)] for row in cells)]

    natural = {col: max(map(cell_len, values(col))) for col in columns}
    floor = {col: natural[col] if col in keep else
             min(max((cell_len(w) for v in values(col) for w in v.split()), default=0), 12 if col in truncate else 30)
             for col in columns}
    comfort = {col: natural[col] if col in keep else min(natural[col], 24 if col in truncate else 40)
               for col in columns}
    shown = list(columns)
    for col in optional:
        if sum(comfort[c] for c in shown) + 2 * (len(shown) - 1) <= width:
            break
        if col in shown:
            shown.remove(col)
    flex = [col for col in shown if col not in keep]
    room = width - sum(natural[c] for c in shown if c in keep) - 2 * (len(shown) - 1)
    if sum(natural[c] for c in flex) <= room:
        return shown, {}
    spare = max(room - sum(floor[c] for c in flex), 0)
    wants = {c: natural[c] - floor[c] for c in flex}
    total = sum(wants.values()) or 1
    return shown, {c: floor[c] + spare * wants[c] // total for c in flex}


def info(text: str) -> None:
    """A message for the user on stderr (keeps stdout clean for data)."""
    typer.echo(text, err=True)


def placed(proj: Any, given: Path | None, kind: str, name: str) -> Path:
    """Where an output of tracker goes: ``given``, else ``.tracker/KIND/NAME`` (never part of the code)."""
    from tracker import codeset

    return given if given is not None else codeset.default_output(proj.paths.state, kind, name)


def claim(proj: Any, written: Path) -> None:
    """After tracker wrote ``written``: inside the project it is recorded as tracker's output, so it
    never makes trials dirty, and the user is told (see :func:`tracker.codeset.claim_output`)."""
    from tracker import codeset

    note = codeset.claim_output(proj.root, proj.paths.state, written)
    if note:
        info(note)


def parse_assignments(values: list[str] | None, where: str) -> dict[str, Any]:
    """``--param k=v`` options as a dict."""
    from tracker.config import parse_assignment

    out: dict[str, Any] = {}
    for text in values or []:
        key, value = parse_assignment(text, where=where)
        out[key] = value
    return out


def fmt_value(value: Any) -> str:
    """A value for people: floats to 4 significant digits, control characters escaped."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape_control(str(value))


def fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in params.items())


def fmt_metrics(metrics: dict[str, float], first: str | None = None, limit: int | None = None) -> str:
    """``name=value`` pairs in logging order, the objective metric ``first``."""
    keys = sorted(metrics, key=lambda k: k != first)[:limit]
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


def emit_plan(specs: Sequence[Any], skipped: Sequence[Any], action: str, title: str, as_json: bool,
              reasons: Sequence[str | None] = ()) -> None:
    """What a ``--dry-run`` would do: each trial spec (``action``: run, queue, with the reason when it was
    done before: ``reasons``) and each trial it skips."""
    why = list(reasons) + [None] * (len(specs) - len(reasons))
    rows = [(s.experiment, s.seed, s.params, f"{action}: {r}" if r else action)
            for s, r in zip(specs, why, strict=True)]
    rows += [(t.experiment, t.seed, t.params, f"skip: {t.status} as {t.id}") for t in skipped]
    if as_json:
        emit_json([{"experiment": e, "seed": seed, "params": p, "skip": i >= len(specs),
                    **({"reason": why[i]} if i < len(specs) and why[i] else {})}
                   for i, (e, seed, p, _) in enumerate(rows)])
    else:
        emit_table([(i + 1, e, seed, fmt_params(p), what) for i, (e, seed, p, what) in enumerate(rows)],
                   ["#", "experiment", "seed", "params", "plan"], title=title)
