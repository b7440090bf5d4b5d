"""``tracker store``: what the store is and holds (``info``), and moving it to another store (``migrate``)."""

from __future__ import annotations

import typer

from tracker.cli._common import JSON_OPTION, emit_json, emit_table, info, project

app = typer.Typer(no_args_is_help=True, help="The trial store: where it is, what it holds, moving it "
                  "(tracker store info, tracker store migrate --to URL).")


@app.command("info")
def info_(as_json: bool = JSON_OPTION) -> None:
    """Show the store's URL (password masked), backend, schema migrations and trial counts.

    Example:

        tracker --store postgresql://me@db.lab/tracker store info
    """
    from tracker.store.copy import store_info

    proj = project()
    about = {**store_info(proj.store), "source": proj.store_url()[1]}
    if as_json:
        emit_json(about)
        return
    rows = [("url", about["url"]), ("from", about["source"]), ("backend", about["backend"]),
            ("migrations", ", ".join(about["migrations"])), ("trials", about["trials"])]
    rows += [(f"  {status}", n) for status, n in sorted(about["by_status"].items())]
    emit_table(rows, ["field", "value"])


@app.command("migrate")
def migrate(
    to: str = typer.Option(..., "--to", metavar="URL", help="The store to copy into, e.g. "
                           "postgresql://me@db.lab/tracker (password: PGPASSWORD or ~/.pgpass)."),
    batch: int = typer.Option(500, "--batch", min=1, help="Trials per transaction."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy this project's store (every trial with its params, tags, metrics, artifacts and events,
    experiments, environments, optimizations, blobs) into another store.

    Runs again safely: what the target already has is skipped and counted. Refused while
    trials are queued or running. Then point the project at the new store (tracker.yaml
    store:, TRACKER_STORE or --store). Example:

        tracker store migrate --to postgresql://me@db.lab/tracker
    """
    from tracker.store import open_store
    from tracker.store.copy import copy_store

    source = project().store
    target = open_store(to)
    try:
        result = copy_store(source, target, batch=batch)
    finally:
        target.close()
    if as_json:
        emit_json(result.as_dict())
        return
    for kind, n in result.copied.items():
        info(f"{kind}: {n} copied, {result.skipped[kind]} already there")
    info(f"copied into {result.target}")
