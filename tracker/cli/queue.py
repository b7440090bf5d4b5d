"""``tracker worker`` and ``tracker queue submit|status``: trials in a shared queue, run by workers anywhere."""

from __future__ import annotations

import os
from typing import Any

import typer

from tracker.cli._common import JSON_OPTION, emit_json, emit_plan, emit_table, info, parse_assignments, project

app = typer.Typer(help="Queue trials in the store for workers on any machine (see also 'tracker worker').",
                  no_args_is_help=True)

QUEUE_OPTION = typer.Option("default", "--queue-name", "-Q", help="The queue (workers pull from one queue).")
MAX_ATTEMPTS_OPTION = typer.Option(None, "--max-attempts", help="Run a trial lost by its worker again until it "
                                   "had this many attempts (default: tracker.yaml queue.max_attempts, 3).")


def submit_and_report(proj: Any, experiments: list[str], options: Any, queue: str, max_attempts: int | None,
                      as_json: bool) -> None:
    """Queue the trials (the library's :func:`tracker.queue.submit.submit`) and say what was queued."""
    from tracker.queue.submit import submit

    result = submit(proj, experiments, options, queue=queue, max_attempts=max_attempts)
    if options.dry_run:
        emit_plan(result.specs, result.skipped, "queue", f"{len(result.specs)} trials would be queued in "
                  f"{queue!r}, {len(result.skipped)} skipped", as_json)
        return
    if as_json:
        emit_json({"run_id": result.run_id, "queue": queue, "queued": [t.summary() for t in result.trials],
                   "skipped": [t.id for t in result.skipped]})
        return
    if result.skipped:
        info(f"skipped {len(result.skipped)} trial(s) already completed, queued or running with the same params, "
             "seed, code and settings (--rerun queues them again)")
    if result.trials:
        info(f"queued {len(result.trials)} trial(s) in {queue!r} (run {result.run_id}); start workers with "
             f"'tracker worker --queue {queue}' and watch them with 'tracker queue status'")
    else:
        info("nothing queued")


@app.command("submit")
def submit(
    experiments: list[str] = typer.Argument(..., help="Experiment names (experiments/NAME.yaml)."),
    seeds: int = typer.Option(None, "--seeds", "-n", help="Use the first N preset seeds."),
    seed: list[int] = typer.Option(None, "--seed", "-s", help="Run with this seed (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Override a param: NAME=VALUE."),
    grid: list[str] = typer.Option(None, "--grid", "-g", help="Grid over values: 'NAME=[v1,v2]' (quoted: zsh "
                                                                "expands brackets)."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag every trial (repeatable)."),
    queue: str = QUEUE_OPTION,
    max_attempts: int = MAX_ATTEMPTS_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials (and those skipped) without queuing."),
    rerun: bool = typer.Option(False, "--rerun", help="Also queue trials already completed or queued with the "
                               "same params, seed, code and settings."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Queue EXPERIMENTS' trials for workers (the same as 'tracker run --queue').

    Examples:

        tracker queue submit baseline --seeds 5
        tracker queue submit baseline --grid 'lr=[0.1,0.01]' -Q gpu
    """
    from tracker.runs import RunOptions

    options = RunOptions(seeds=list(seed or []), seed_count=seeds, params=parse_assignments(param, "--param"),
                         grid=parse_assignments(grid, "--grid"), dry_run=dry_run, rerun=rerun, tags=list(tag or []))
    submit_and_report(project(), experiments, options, queue, max_attempts, as_json)


@app.command("status")
def status(
    queue: str = typer.Option(None, "--queue-name", "-Q", help="Only this queue."),
    everyone: bool = typer.Option(False, "--all", "-a", help="Also list workers that stopped."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Queued, running and ended trials per queue and experiment, and the workers with their last heartbeat."""
    from tracker.queue.status import queue_status

    st = queue_status(project(), queue, everyone=everyone)
    if as_json:
        emit_json(st.as_dict())
        return
    ended = ("completed", "failed", "lost", "cancelled", "pruned")
    rows = [(q, exp, c.get("queued", 0), c.get("running", 0), *(c.get(s, 0) for s in ended))
            for q, per in sorted(st.counts.items()) for exp, c in sorted(per.items())]
    emit_table(rows, ["queue", "experiment", "queued", "running", *ended], title="trials")
    if not st.workers:
        info("no worker is running; start one with 'tracker worker'")
        return
    emit_table([(w.id, w.queue, w.host, w.pid, w.slots, w.status, len(w.running), w.done,
                 "-" if w.heartbeat is None else f"{st.at - w.heartbeat:.0f}s ago") for w in st.workers],
               ["worker", "queue", "host", "pid", "slots", "status", "running", "done", "heartbeat"], title="workers")


def worker(
    store: str = typer.Option(None, "--store", help="The store's URL (default: the project's; TRACKER_STORE)."),
    queue: str = typer.Option("default", "--queue", "-Q", help="The queue to pull trials from."),
    slots: int = typer.Option(1, "--slots", "-k", help="Trials to run at once."),
    max_trials: int = typer.Option(None, "--max-trials", help="Exit after claiming this many trials."),
    idle_exit: float = typer.Option(None, "--idle-exit", help="Exit after this many seconds with nothing to run "
                                    "(0: as soon as the queue is empty). Default: wait for work forever."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between looks at an empty queue."),
) -> None:
    """Claim queued trials from the store and run them here, until stopped (Ctrl-C puts its trials back).

    Run it on any machine with a checkout of the project that reaches the store.

    Examples:

        tracker worker --slots 2
        tracker worker --store postgresql://tracker@db.lab/tracker --idle-exit 600
    """
    from tracker.queue.worker import WorkerOptions, run_worker

    if store:
        os.environ["TRACKER_STORE"] = store
    proj = project()
    from tracker.cli.progress import ConsoleReporter

    reporter = ConsoleReporter(stream=False)
    try:
        result = run_worker(proj, WorkerOptions(queue=queue, slots=slots, max_trials=max_trials,
                                                idle_exit=idle_exit, poll=poll), reporter)
    finally:
        reporter.close()
    info(f"worker {result.worker_id}: ran {len(result.trials)} trial(s)"
         + (f"; {len(result.requeued)} stopped and put back in the queue" if result.requeued else ""))
