"""``tracker trials``: list, show, logs, delete and reset trials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    fmt_value,
    info,
    is_tty,
    parse_assignments,
    project,
)

if TYPE_CHECKING:
    from tracker.store import Trial
    from tracker.trials import Column

app = typer.Typer(help="List, inspect, tag, delete and reset trials.", no_args_is_help=True)


TTY_LIMIT = 100
TTY_COLUMNS = ["id", "experiment", "status", "seed", "params", "metrics", "step", "commit", "host", "started",
               "duration"]
# left out, in this order, while the table is wider than the terminal
OPTIONAL = ["tags", "host", "step", "started", "commit", "duration", "experiment"]
WHOLE = {"id", "experiment", "status", "phase", "seed", "step", "commit", "dirty", "host", "started", "finished",
         "duration", "exit_code"}  # never wrapped


@app.command("list")
def list_(
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment (repeatable)."),
    status: list[str] = typer.Option(None, "--status", help="Only this status (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", metavar="NAME=VALUE",
                                    help="Only trials with this param value (repeatable)."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Only trials with this tag (repeatable: all of them)."),
    optimization: str = typer.Option(None, "--optimization", "-O", metavar="ID",
                                     help="Only the trials of this optimization."),
    limit: int = typer.Option(None, "--limit", "-n", help="Only the newest N trials."),
    all_: bool = typer.Option(False, "--all", "-a", help="On a terminal, show every trial (not just 100)."),
    columns: str = typer.Option(None, "--columns", "-c", metavar="NAMES",
                                help="Comma-separated columns: trial fields (id, status, seed, params, metrics, "
                                     "commit, started, duration, ...) and param or metric names (lr, val/acc)."),
    as_json: bool = JSON_OPTION,
    csv: bool = typer.Option(False, "--csv", help="Print CSV: one column per param and metric."),
) -> None:
    """List trials, oldest first. Piped output is tab-separated with one column per param/metric.

    On a terminal the metrics start with the experiment's objective, and columns
    that do not fit are left out (choose them with --columns).

    Example: tracker trials list -e baseline --status completed -p lr=0.1 --tag best --columns id,seed,lr,val/acc
    """
    import sys

    from tracker import trials

    proj = project()
    filters = {"experiment": experiment, "status": status,
               "params": parse_assignments(param, "--param"), "tags": tag, "optimization": optimization}
    if as_json:
        if columns is not None:
            from tracker.errors import UsageError

            raise UsageError("--columns applies to tables, not --json", hint="drop one of them")
        sys.stdout.write(trials.list_json(proj, limit=limit, **filters) + "\n")
        return
    chosen = trials.resolve_columns(proj, columns.split(",")) if columns is not None else None
    if csv or not is_tty():
        if chosen is None:  # every field, param and metric, straight from the store (fast)
            names, rows = trials.list_rows(proj, limit=limit, **filters)
            emit_table(rows, names, csv=csv)
        else:
            found = trials.list_trials(proj, limit=limit, **filters)
            emit_table([[_raw(c, t) for c in chosen] for t in found], [c.name for c in chosen], csv=csv)
        return
    shown = limit if limit is not None or all_ else TTY_LIMIT
    found = trials.list_trials(proj, limit=shown, **filters)
    from tracker.experiments import objectives

    goals = objectives(proj)
    tagged = ["tags"] if any(t.tags for t in found) else []
    phased = ["phase"] if any(t.phase != "train" for t in found) else []
    chosen = chosen or trials.resolve_columns(proj, TTY_COLUMNS[:3] + phased + TTY_COLUMNS[3:] + tagged)
    order = trials.params_varying_first(found)  # a long params cell is cut: what tells rows apart comes first
    hidden = emit_table([[_cell(c, t, goals.get(t.experiment), order) for c in chosen] for t in found],
                        [c.name for c in chosen], keep=WHOLE & {c.name for c in chosen}, truncate={"params"},
                        optional=[] if columns else OPTIONAL)
    if hidden:
        info(f"({', '.join(hidden)} left out to fit the terminal; choose columns with --columns)")
    total = trials.count(proj, **filters)
    if limit is None and not all_ and total > len(found):
        info(f"showing the newest {len(found)} of {total} trials (--all or --limit N for more)")


def _cell(column: Column, trial: Trial, objective: str | None, order: list[str]) -> str:
    """One cell of the terminal table, formatted for people (params in ``order``)."""
    if column.kind != "field":
        value = column.value(trial)
        return "" if value is None else fmt_value(value)
    key = column.key
    if key == "params":
        return fmt_params({k: trial.params[k] for k in order if k in trial.params})
    if key == "metrics":
        return fmt_metrics(trial.metrics, first=objective)
    if key == "commit":
        return fmt_commit(trial.commit, trial.dirty)
    if key in ("started", "finished"):
        return fmt_time(column.value(trial))
    if key == "duration":
        return fmt_duration(trial.duration)
    if key == "tags":
        return ", ".join(trial.tags)
    value = column.value(trial)
    return "" if value is None else fmt_value(value)


def _raw(column: Column, trial: Trial) -> Any:
    """A cell for CSV/TSV: params and metrics as JSON, tags comma-separated, the rest as it is."""
    import json

    value = column.value(trial)
    if column.kind == "field" and column.key == "tags":
        return ",".join(value)
    return json.dumps(value) if isinstance(value, dict) else value


@app.command("show")
def show(ref: str = typer.Argument(..., metavar="TRIAL", help="Trial id (or a unique prefix)."),
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
        f"seed        {t.seed}" + "".join(f"   {phase} seeds {', '.join(map(str, seeds))}"
                                          for phase, seeds in t.extra.get("eval_seeds", {}).items()),
        f"params      {fmt_params(t.params)}",
        f"command     {' '.join(t.command)}",
        f"code        {t.commit or '-'} on {t.branch or '(detached)'}"
        + (f", dirty (snapshot {t.snapshot[:12]}, patch saved)" if t.dirty and t.snapshot else ""),
        f"host        {t.host or '-'} ({t.executor})",
        f"started     {fmt_time(t.started)}   finished {fmt_time(t.finished)}   "
        f"took {fmt_duration(t.duration)}   exit {t.exit_code}",
        f"environment python {env.get('python', '?')} on {env.get('platform', '?')}, "
        f"{len(env.get('packages', {}))} packages, gpus: {len(env.get('gpus') or [])}"
        + (f", venv {env['venv']['key']}" if env.get("venv") else ""),
        f"directory   {detail.directory}",
    ]
    if t.queue:
        worker = t.handle.get("worker") or t.owner.get("worker")
        lines.append(f"queue       {t.queue}, attempt {t.attempts} of {t.max_attempts}"
                     + (f", worker {worker}" if worker else ""))
        for e in t.errors:
            lines.append(f"  attempt {e.get('attempt')} {e.get('status')} ({fmt_time(e.get('at'))}"
                         f"{', worker ' + e['worker'] if e.get('worker') else ''}): "
                         + str(e.get("error") or "").splitlines()[0])
    if t.extra.get("optimization"):
        lines.append(f"search      optimization {t.extra['optimization']}, configuration "
                     f"{t.extra.get('configuration')}")
    if t.phase == "test" and t.extra.get("test"):
        test = t.extra["test"]
        lines.append(f"test        of trial {test.get('source')}, chosen by {test.get('metric')} "
                     f"({test.get('goal')}: {test.get('value'):.6g}) among {test.get('configurations')} "
                     f"configuration(s); test run {test.get('run')}")
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
    if detail.job_state:
        lines.append(f"{detail.backend:<11} {detail.job or 'queue'}: {detail.job_state}")
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
    ref: str = typer.Argument(..., metavar="TRIAL", help="Trial id (or a unique prefix)."),
    stderr: bool = typer.Option(False, "--stderr", help="Show stderr instead of stdout."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the trial ends."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
) -> None:
    """Print a trial's captured stdout (or stderr); says so when only stderr holds output."""
    from tracker import trials
    from tracker.execution import outputs

    proj = project()
    stream = "stderr" if stderr else "stdout"
    if follow:
        for line in trials.follow(proj, ref, stream):
            typer.echo(line)
        return
    trial, path = trials.log_path(proj, ref, stream)
    if not path.is_file() or not path.stat().st_size:
        info(f"no {stream} captured for this trial")
        other = "stdout" if stderr else "stderr"
        _, path = trials.log_path(proj, trial.id, other)
        if path.is_file() and path.stat().st_size:
            info(f"it wrote to {other}: see 'tracker trials logs {trial.id}{'' if stderr else ' --stderr'}'")
        return
    if tail:
        typer.echo(outputs.tail(path, tail))
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            typer.echo(line, nl=False)


@app.command("delete")
def delete(
    refs: list[str] = typer.Argument(..., metavar="TRIALS", help="Trial ids (or unique prefixes)."),
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
def stop(ref: str = typer.Argument(..., metavar="TRIAL", help="Trial id (or a unique prefix).")) -> None:
    """Stop a running trial, local or remote, from any shell; it ends as cancelled.

    The trial gets SIGTERM (its whole process tree), then SIGKILL after the grace
    period (defaults.grace in tracker.yaml). A queued trial (in a queue, reset, or not yet
    started by its run) is cancelled before anything starts it. Re-run it with 'tracker trials reset ID --run'.
    """
    from tracker import trials

    trial = trials.stop(project(), ref)
    if trial.status == "running":
        info(f"asked trial {trial.id} to stop; it is still ending")
    else:
        info(f"trial {trial.id} is {trial.status}")


def _say_how_to_run(done: list[Trial]) -> None:
    """One line per queue the trials went back to, one for those that wait for ``reset --run``."""
    from collections import Counter

    for queue, n in sorted(Counter(t.queue for t in done if t.queue).items()):
        info(f"{n} back in queue {queue}: a worker runs them (tracker worker --queue {queue})")
    local = [t for t in done if not t.queue]
    if local:
        info(f"{len(local)} waiting: run them with 'tracker trials reset --run' "
             f"(or cancel one with 'tracker trials stop {local[0].id}')")


@app.command("reset")
def reset(
    refs: list[str] = typer.Argument(None, metavar="TRIALS",
                                     help="Trial ids; default: every failed/lost/cancelled one."),
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    status: list[str] = typer.Option(None, "--status", help="Only failed, lost, cancelled or pruned."),
    run_now: bool = typer.Option(False, "--run", help="Run the reset trials right away."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="With --run: trials at once (local)."),
    remote: str = typer.Option(None, "--remote", "-r", help="With --run: run on named remotes: gpu1,gpu2."),
    max_failures: int = typer.Option(None, "--max-failures", help="With --run: start no more trials after N "
                                     "failed the same way and none completed (default 3; 0: never stop early)."),
) -> None:
    """Put failed, lost or cancelled trials (pruned ones if named) back to queued, ready to run again.

    A trial of a queue goes back to its queue, for its workers; any other waits until
    'tracker trials reset --run' runs it (with the others reset before and not yet run)
    or 'tracker trials stop ID' cancels it.

    Example: tracker trials reset --experiment baseline --run
    """
    from tracker import trials

    if (parallel or remote or max_failures is not None) and not run_now:
        from tracker.errors import UsageError

        raise UsageError("--parallel, --remote and --max-failures only apply with --run", hint="add --run")
    proj = project()
    done = trials.reset(proj, refs, experiment=experiment, status=status)
    info(f"reset {len(done)} trial(s) to queued")
    if not run_now:
        _say_how_to_run(done)
    if run_now and done:
        from tracker.cli.progress import ConsoleReporter, report_failed
        from tracker.runs import rerun_queued

        reporter = ConsoleReporter()
        try:
            result = rerun_queued(proj, [t.id for t in done], reporter, parallel=parallel,
                                  remote=[r.strip() for r in remote.split(",") if r.strip()] if remote else None,
                                  **({} if max_failures is None else {"max_failures": max_failures}))
        finally:
            reporter.close()
        info(f"{len(result.trials) - len(result.failed)}/{len(result.trials)} completed")
        if result.stopped:
            info(f"stopped early: {result.stopped}")
        if result.failed:
            report_failed(proj, result.failed)
            raise typer.Exit(1)
