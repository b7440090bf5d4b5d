"""``tracker trials``: list, show, logs, delete and reset trials."""

from __future__ import annotations

import typer

from tracker.cli._common import (
    JSON_OPTION,
    emit_json,
    emit_table,
    fmt_commit,
    fmt_duration,
    fmt_metrics,
    fmt_params,
    fmt_time,
    info,
    is_tty,
    parse_assignments,
    project,
)

app = typer.Typer(help="List, inspect, tag, delete and reset trials.", no_args_is_help=True)


TTY_LIMIT = 100


@app.command("list")
def list_(
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment (repeatable)."),
    status: list[str] = typer.Option(None, "--status", help="Only this status (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Only trials with NAME=VALUE."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Only trials with this tag (repeatable: all of them)."),
    limit: int = typer.Option(None, "--limit", "-n", help="Only the newest N trials."),
    all_: bool = typer.Option(False, "--all", "-a", help="On a terminal, show every trial (not just 100)."),
    as_json: bool = JSON_OPTION,
    csv: bool = typer.Option(False, "--csv", help="Print CSV: one column per param and metric."),
) -> None:
    """List trials, oldest first. Piped output is tab-separated with one column per param/metric.

    Example: tracker trials list -e baseline --status completed -p lr=0.1 --tag best --json
    """
    import sys

    from tracker import trials

    proj = project()
    filters = {"experiment": experiment, "status": status,
               "params": parse_assignments(param, "--param"), "tags": tag}
    if as_json:
        sys.stdout.write(trials.list_json(proj, limit=limit, **filters) + "\n")
        return
    if csv or not is_tty():
        columns, rows = trials.list_rows(proj, limit=limit, **filters)
        emit_table(rows, columns, csv=csv)
        return
    shown = limit if limit is not None or all_ else TTY_LIMIT
    rows = trials.list_trials(proj, limit=shown, **filters)
    tagged = any(t.tags for t in rows)
    emit_table([(t.id, t.experiment, t.status, t.seed, fmt_params(t.params), fmt_metrics(t.metrics),
                 "" if t.step is None else t.step, fmt_commit(t.commit, t.dirty), t.host, fmt_time(t.started),
                 fmt_duration(t.duration), *([", ".join(t.tags)] if tagged else [])) for t in rows],
               ["id", "experiment", "status", "seed", "params", "metrics", "step", "commit", "host",
                "started", "time", *(["tags"] if tagged else [])])
    total = trials.count(proj, **filters)
    if limit is None and not all_ and total > len(rows):
        info(f"showing the newest {len(rows)} of {total} trials (--all or --limit N for more)")


@app.command("show")
def show(ref: str = typer.Argument(..., help="Trial id (or a unique prefix)."),
         as_json: bool = JSON_OPTION) -> None:
    """Show one trial: params, seed, code, metrics, environment, outputs, error."""
    from tracker import trials

    detail = trials.show(project(), ref)
    if as_json:
        emit_json(detail.as_dict())
        return
    t = detail.trial
    env = detail.environment or {}
    lines = [
        f"trial       {t.id}  ({t.status})",
        f"experiment  {t.experiment}   run {t.run_id}",
        f"seed        {t.seed}",
        f"params      {fmt_params(t.params)}",
        f"command     {' '.join(t.command)}",
        f"code        {t.commit or '-'} on {t.branch or '(detached)'}"
        + (f", dirty (snapshot {t.snapshot[:12]}, patch saved)" if t.dirty and t.snapshot else ""),
        f"host        {t.host or '-'} ({t.executor})",
        f"started     {fmt_time(t.started)}   finished {fmt_time(t.finished)}   "
        f"took {fmt_duration(t.duration)}   exit {t.exit_code}",
        f"environment python {env.get('python', '?')} on {env.get('platform', '?')}, "
        f"{len(env.get('packages', {}))} packages, gpus: {len(env.get('gpus') or [])}",
        f"directory   {detail.directory}",
    ]
    if t.tags:
        lines.append(f"tags        {', '.join(t.tags)}")
    if t.note:
        lines.append("note        " + t.note.replace("\n", "\n            "))
    if t.metrics:
        at = "" if t.step is None else f"   (latest step {t.step}{', still running' if t.status == 'running' else ''})"
        lines.append("metrics     " + fmt_metrics(t.metrics, limit=50) + at)
    if t.extra.get("autolog"):
        for name, desc in t.extra["autolog"].items():
            lines.append(f"autolog     {name}: {fmt_params(desc.get('params', {}))}")
    if detail.artifacts:
        lines.append("outputs     " + ", ".join(f"{a} ({s} B)" for a, s, _ in detail.artifacts))
    if t.stop_requested and t.status == "running":
        lines.append(f"stopping    {t.stop_requested}")
    if t.error:
        lines.append("error       " + t.error.replace("\n", "\n            "))
    lines.append("history     " + "; ".join(f"{e.ts[11:19]} {e.message}" for e in detail.events))
    typer.echo("\n".join(lines))


@app.command("tag")
def tag(
    ref: str = typer.Argument(..., help="Trial id (or a unique prefix)."),
    tags: list[str] = typer.Argument(..., help="Tags: no spaces or commas."),
    remove: bool = typer.Option(False, "--remove", help="Remove these tags instead."),
) -> None:
    """Add tags to a trial (or --remove them). Find tagged trials with 'trials list --tag NAME'.

    Example: tracker trials tag 3f2a best paper-fig2
    """
    from tracker import trials

    trial = trials.tag(project(), ref, tags, remove=remove)
    info(f"trial {trial.id} tags: {', '.join(trial.tags) or '(none)'}")


@app.command("note")
def note(
    ref: str = typer.Argument(..., help="Trial id (or a unique prefix)."),
    text: str = typer.Argument(..., help="The note; \"\" removes it."),
) -> None:
    """Set a trial's note, shown by 'trials show' and in --json output (replaces any earlier note).

    Example: tracker trials note 3f2a "diverged after epoch 3: lr too high"
    """
    from tracker import trials

    trial = trials.note(project(), ref, text)
    info(f"trial {trial.id}: " + ("note saved" if trial.note else "note removed"))


@app.command("logs")
def logs(
    ref: str = typer.Argument(..., help="Trial id (or a unique prefix)."),
    stderr: bool = typer.Option(False, "--stderr", help="Show stderr instead of stdout."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the trial ends."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
) -> None:
    """Print a trial's captured stdout (or stderr)."""
    from tracker import trials
    from tracker.execution import outputs

    proj = project()
    stream = "stderr" if stderr else "stdout"
    if follow:
        for line in trials.follow(proj, ref, stream):
            typer.echo(line)
        return
    _, path = trials.log_path(proj, ref, stream)
    if not path.is_file():
        info(f"no {stream} captured for this trial")
        return
    if tail:
        typer.echo(outputs.tail(path, tail))
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            typer.echo(line, nl=False)


@app.command("delete")
def delete(
    refs: list[str] = typer.Argument(..., help="Trial ids (or unique prefixes)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Delete even running trials."),
) -> None:
    """Delete trials with their outputs, metrics and snapshot refs."""
    import sys

    from tracker import trials

    proj = project()
    if not yes:
        if not sys.stdin.isatty():
            from tracker.errors import UsageError

            raise UsageError("refusing to delete without confirmation", hint="pass --yes")
        typer.confirm(f"Delete {len(refs)} trial(s) and their outputs?", abort=True)
    gone = trials.delete(proj, refs, force=force)
    info(f"deleted {len(gone)} trial(s)")


@app.command("stop")
def stop(ref: str = typer.Argument(..., help="Trial id (or a unique prefix).")) -> None:
    """Stop a running trial, local or remote, from any shell; it ends as cancelled.

    The trial gets SIGTERM (its whole process tree), then SIGKILL after the grace
    period (defaults.grace in tracker.yaml). Re-run it with 'tracker trials reset ID --run'.
    """
    from tracker import trials

    trial = trials.stop(project(), ref)
    if trial.status == "running":
        info(f"asked trial {trial.id} to stop; it is still ending")
    else:
        info(f"trial {trial.id} is {trial.status}")


@app.command("reset")
def reset(
    refs: list[str] = typer.Argument(None, help="Trial ids; default: every failed/lost/cancelled one."),
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    status: list[str] = typer.Option(None, "--status", help="Only failed, lost, cancelled or pruned."),
    run_now: bool = typer.Option(False, "--run", help="Run the reset trials right away."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="With --run: trials at once (local)."),
    remote: str = typer.Option(None, "--remote", "-r", help="With --run: run on named remotes: gpu1,gpu2."),
) -> None:
    """Put failed, lost or cancelled trials (pruned ones if named) back to queued, ready to run again.

    Example: tracker trials reset --experiment baseline --run
    """
    from tracker import trials

    if (parallel or remote) and not run_now:
        from tracker.errors import UsageError

        raise UsageError("--parallel and --remote only apply with --run", hint="add --run")
    proj = project()
    done = trials.reset(proj, refs, experiment=experiment, status=status)
    info(f"reset {len(done)} trial(s) to queued")
    if run_now and done:
        from tracker.cli.run import ConsoleReporter
        from tracker.runs import rerun_queued

        reporter = ConsoleReporter()
        try:
            final = rerun_queued(proj, [t.id for t in done], reporter, parallel=parallel,
                                 remote=[r.strip() for r in remote.split(",") if r.strip()] if remote else None)
        finally:
            reporter.close()
        failed = [t for t in final if t.status != "completed"]
        info(f"{len(final) - len(failed)}/{len(final)} completed")
        if failed:
            raise typer.Exit(1)
