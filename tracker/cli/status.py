"""``tracker status`` and ``tracker checkout``."""

from __future__ import annotations

from pathlib import Path

import typer

from tracker.cli._common import (
    JSON_OPTION,
    claim,
    emit_json,
    emit_table,
    fmt_duration,
    fmt_metrics,
    fmt_params,
    fmt_time,
    info,
    placed,
    project,
)


def status(as_json: bool = JSON_OPTION) -> None:
    """One-screen overview: trials per experiment and status, what runs, the latest trials."""
    from tracker import trials

    proj = project()
    st = trials.status(proj)
    if as_json:
        emit_json(st.as_dict())
        return
    typer.echo(f"project {st.project} ({st.root})")
    typer.echo(f"preset seeds: {st.seeds}   remotes: {', '.join(st.remotes) or '-'}   "
               f"storage: {', '.join(st.storage) or '-'}")
    from tracker.store import STATUSES

    cols = list(STATUSES)
    emit_table([(exp, *(c.get(s, 0) for s in cols)) for exp, c in sorted(st.counts.items())],
               ["experiment", *cols], title="trials")
    if st.running:
        emit_table([(t.id, t.experiment, t.seed, t.host, fmt_time(t.started)) for t in st.running],
                   ["running", "experiment", "seed", "host", "started"],
                   keep={"running", "experiment", "seed", "started"})
    if st.recent:
        from tracker.experiments import objectives

        goals = objectives(proj)
        emit_table([(t.id, t.experiment, t.status, t.seed, fmt_params(t.params),
                     fmt_metrics(t.metrics, first=goals.get(t.experiment)), fmt_duration(t.duration))
                    for t in st.recent],
                   ["latest", "experiment", "status", "seed", "params", "metrics", "time"],
                   keep={"latest", "experiment", "status", "seed", "time"}, truncate={"params"},
                   optional=["time", "experiment"])


def checkout(
    ref: str = typer.Argument(..., metavar="TRIAL", help="Trial id (or a unique prefix)."),
    to: Path = typer.Option(None, "--to", help="Empty or new directory to write the code into "
                            "(default: .tracker/checkouts/TRIAL, outside the code)."),
) -> None:
    """Write the exact code a trial ran (its commit plus uncommitted changes) into a directory.

    Example: tracker checkout 3f2a9c --to /tmp/exact-code
    """
    from tracker import trials

    proj = project()
    to = placed(proj, to, "checkouts", ref)
    trial, how = trials.checkout(proj, ref, to)
    claim(proj, to)
    info(f"wrote the code of trial {trial.id} ({how}) to {to}")
