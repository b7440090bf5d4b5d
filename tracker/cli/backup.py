"""``tracker backup`` (+ ``list`` / ``verify``) and ``tracker restore``."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from tracker.cli._common import JSON_OPTION, emit_json, emit_table, info, is_tty, project


class _BackupGroup(TyperGroup):
    """``tracker backup --to NAME [TRIAL...]`` runs the hidden ``run`` command; ``list``/``verify`` are subcommands."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_BackupGroup, no_args_is_help=True, help=(
    "Back up trials to a storage target: tracker backup --to NAME [TRIAL...] [--experiment E] [--all] "
    "[--include GLOB] [--dry-run] [--json]. Also: tracker backup list --from NAME, tracker backup verify --from NAME."))


@contextmanager
def _progress(total: int, label: str):
    """A bytes/rate progress bar on a terminal; nothing when piped."""
    if not is_tty() or total <= 0:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from tracker.cli._common import console

    with Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                  console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@app.command("run", hidden=True)
def run(
    trials: list[str] = typer.Argument(None, help="Trial ids (or unique prefixes)."),
    to: str = typer.Option(..., "--to", help="Storage target name (tracker storage list)."),
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Every finished trial of this experiment."),
    all_: bool = typer.Option(False, "--all", help="Every finished trial."),
    include: list[str] = typer.Option(None, "--include", help="Only files matching this glob (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be uploaded; upload nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Back up trials: outputs, logs, metrics and the trial record, content-addressed."""
    from tracker.storage.backup import backup, planned_bytes

    proj = project()
    selection: dict[str, Any] = {"experiment": experiment, "all_": all_, "include": include}
    total = planned_bytes(proj, trials or [], **selection) if is_tty() and not as_json else 0
    with _progress(total, f"backup to {to}") as advance:
        result = backup(proj, to, trials or [], dry_run=dry_run, progress=advance, **selection)
    if as_json:
        emit_json(result.as_dict())
        return
    verb = "would upload" if dry_run else "uploaded"
    rate = result.bytes_uploaded / result.seconds / 2**20 if result.seconds else 0
    info(f"{len(result.trials)} trial(s), {result.files} files: {verb} {result.uploaded} objects "
         f"({result.bytes_uploaded:,} bytes, {rate:.1f} MiB/s), {result.bytes_skipped:,} bytes already stored, "
         f"in {result.seconds:.1f}s")
    if result.skipped_trials:
        info(f"skipped {len(result.skipped_trials)} trial(s) still queued or running: "
             + ", ".join(result.skipped_trials))


@app.command("list")
def list_(source: str = typer.Option(..., "--from", help="Storage target name."), as_json: bool = JSON_OPTION) -> None:
    """List the trials stored in a target."""
    from tracker.storage.backup import list_backups

    rows = list_backups(project(), source)
    if as_json:
        emit_json(rows)
        return
    emit_table([(r["id"], r["experiment"], r["status"], r["seed"], r["files"], f"{r['bytes']:,}",
                 (r["finished"] or "")[:19].replace("T", " ")) for r in rows],
               ["trial", "experiment", "status", "seed", "files", "bytes", "finished"],
               keep={"trial", "experiment", "status", "seed", "files", "bytes", "finished"})


@app.command("verify")
def verify(
    trials: list[str] = typer.Argument(None, help="Trial ids (default: every stored trial)."),
    source: str = typer.Option(..., "--from", help="Storage target name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-hash every stored object; report missing or corrupt ones (exit 1 if any)."""
    from tracker.storage.backup import verify as run_verify

    result = run_verify(project(), source, trials or [])
    if as_json:
        emit_json(result.as_dict())
    else:
        for trial_id, path in result.missing:
            info(f"MISSING  {trial_id} {path}")
        for trial_id, path in result.corrupt:
            info(f"CORRUPT  {trial_id} {path}")
        info(f"checked {result.trials} trial(s), {result.objects} objects: "
             + ("all intact" if result.ok else f"{len(result.missing)} missing, {len(result.corrupt)} corrupt"))
    if not result.ok:
        raise typer.Exit(1)


def restore(
    trial: str = typer.Argument(..., help="Trial id (or a unique prefix) in the backup."),
    source: str = typer.Option(..., "--from", help="Storage target name."),
    to: Path = typer.Option(None, "--to", help="Directory to restore into (default: the trial's directory)."),
    force: bool = typer.Option(False, "--force", help="Overwrite local files that differ from the backup."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Restore a trial from a backup, all or nothing: every file is downloaded and verified by sha256
    before any is moved into place, and its record is added if the store lacks it. Local files that
    differ from the backup are kept unless --force; identical ones are not downloaded again.

    Example: tracker restore 3f2a9c --from s3
    """
    from tracker.storage.backup import restore as run_restore

    result = run_restore(project(), trial, source, to, force=force)
    if as_json:
        emit_json(result.as_dict())
        return
    info(f"restored trial {result.trial_id}: {result.files} files ({result.bytes:,} bytes downloaded, "
         f"{result.unchanged} already there) to {result.directory}"
         + (f"; overwrote {len(result.overwritten)} local file(s) that differed" if result.overwritten else "")
         + ("; its record was added to the store" if result.imported else ""))
