"""``tracker run``: run an experiment's trials locally or on remotes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import typer

from tracker.cli._common import (
    JSON_OPTION,
    emit_json,
    emit_plan,
    emit_table,
    fmt_duration,
    fmt_metrics,
    fmt_params,
    info,
    parse_assignments,
    project,
)
from tracker.cli._targets import REMOTE_OPTION, TARGET_OPTION, chosen, remotes, report_launched
from tracker.cli.progress import ConsoleReporter, report_failed
from tracker.cli.queue import MAX_ATTEMPTS_OPTION, QUEUE_OPTION, submit_and_report
from tracker.cli.slurm import ARRAY_PARALLEL, CPUS, GPUS, MEM, PARTITION, SLURM, TIME, with_resources


def run(
    experiments: list[str] = typer.Argument(..., help="Experiment names (experiments/NAME.yaml); several run as one."),
    seeds: int = typer.Option(None, "--seeds", "-n", help="Use the first N preset seeds."),
    seed: list[int] = typer.Option(None, "--seed", "-s", help="Run with this seed (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Override a param: NAME=VALUE."),
    grid: list[str] = typer.Option(None, "--grid", "-g", help="Grid over values: 'NAME=[v1,v2]' (quoted: zsh "
                                                                "expands brackets)."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials to run at once (local)."),
    target: str = TARGET_OPTION,
    remote: str = REMOTE_OPTION,
    backup_to: str = typer.Option(None, "--backup-to", help="Back up each completed trial here."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag every trial of this run (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials (and those skipped) without running them."),
    rerun: bool = typer.Option(False, "--rerun", help="Also run trials already completed with the same params, "
                               "seed, code and settings."),
    max_failures: int = typer.Option(None, "--max-failures", help="Start no more trials after N failed the same "
                                     "way and none completed (default 3; 0: never stop early)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the trials' output."),
    queue: bool = typer.Option(False, "--queue", help="Queue the trials in the store for 'tracker worker' "
                               "processes on any machine instead of running them here."),
    queue_name: str = QUEUE_OPTION,
    max_attempts: int = MAX_ATTEMPTS_OPTION,
    slurm: bool = SLURM,
    partition: str = PARTITION,
    time_limit: str = TIME,
    gpus: str = GPUS,
    cpus: int = CPUS,
    mem: str = MEM,
    array_parallel: int = ARRAY_PARALLEL,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run EXPERIMENTS: fixed params x grid x seeds, each trial tied to the current commit.

    Trials already completed with the same params, seed, code and experiment settings are
    skipped (--rerun runs them again). Several experiments run as one run: the options
    apply to each, the trials share the slots, one summary ends it.

    Examples:

        tracker run baseline                  # default number of preset seeds
        tracker run baseline --seeds 5 -j 2   # 5 seeds, 2 trials at a time
        tracker run baseline -p lr=0.05 --seed 7
        tracker run baseline --grid 'lr=[0.1,0.01]' --dry-run
        tracker run baseline wide deep -j 4   # three experiments, one run
        tracker run baseline --seeds 10 --queue   # for workers: tracker worker
        tracker run baseline --seeds 10 --slurm --time 1:00:00 --gpus 1
        tracker run baseline --target cluster    # a target of tracker.yaml (targets:)
    """
    from tracker.errors import UsageError
    from tracker.runs import RunOptions, run_experiments

    proj = project()
    where = with_resources(proj, chosen(proj, target, remote, slurm),
                           {"--partition": partition, "--time": time_limit, "--gpus": gpus, "--cpus": cpus,
                            "--mem": mem, "--array-parallel": array_parallel})
    launcher = where.kind == "launcher"
    if launcher and (queue or queue_name != "default"):
        raise UsageError(f"{'--slurm' if slurm else f'--target {target}'} runs its trials in a queue of its own",
                         hint="drop --queue/--queue-name")
    if not (queue or launcher) and (queue_name != "default" or max_attempts is not None):
        raise UsageError(f"{'--queue-name' if queue_name != 'default' else '--max-attempts'} applies to queued "
                         "trials", hint="add --queue, or a target that starts workers (--slurm)")
    if (queue or launcher) and max_failures is not None:
        raise UsageError("--max-failures stops a run that starts its own trials; queued trials are started by "
                         "workers, each on its own", hint="drop --max-failures, or run without --queue/--slurm")
    had_seeds = bool(proj.config.seeds)
    options = RunOptions(
        seeds=list(seed or []), seed_count=seeds, params=parse_assignments(param, "--param"),
        grid=parse_assignments(grid, "--grid"), parallel=parallel, dry_run=dry_run,
        remote=remotes(remote), target=where if target and not launcher else None,
        backup_to=backup_to, rerun=rerun, tags=list(tag or []),
        **({} if max_failures is None else {"max_failures": max_failures}),
    )
    if queue:
        submit_and_report(proj, experiments, options, queue_name, max_attempts, as_json)
        _note_new_seeds(proj, had_seeds)
        return
    if launcher:
        launched = where.launcher(proj).launch(experiments, options, max_attempts=max_attempts)
        report_launched(launched, dry_run, as_json)
        _note_new_seeds(proj, had_seeds)
        return
    title = ", ".join(dict.fromkeys(experiments))
    reporter = ConsoleReporter(stream=not quiet and not as_json)
    try:
        result = run_experiments(proj, experiments, options, reporter)
    finally:
        reporter.close()
    _note_new_seeds(proj, had_seeds)
    if dry_run:
        emit_plan(result.specs, result.skipped, "run",
                  f"{len(result.specs)} trials would run, {len(result.skipped)} skipped", as_json, result.reasons)
        if where.type != "local" and not as_json:
            info(f"they would run on {where.name} ({where.type})")
        return
    if not result.trials:
        info(f"nothing to run: all {len(result.skipped)} trial(s) of {title} already completed with the same "
             "params, seed, code and settings (--rerun runs them again)")
        if as_json:
            emit_json([])
        return
    if as_json:
        emit_json([t.summary() for t in result.trials])
    else:
        from tracker.experiments import objectives

        shown = _summary_params([t.params for t in result.trials], [*options.params, *options.grid])
        goals = objectives(proj, result.experiments)
        several = len(result.experiments) > 1
        emit_table([((t.experiment,) if several else ()) + (
                     t.id, t.seed, fmt_params({k: t.params[k] for k in shown if k in t.params}),
                     t.status, fmt_duration(t.duration), fmt_metrics(t.metrics, first=goals.get(t.experiment)))
                    for t in result.trials],
                   (["experiment"] if several else []) + ["trial", "seed", "params", "status", "time", "metrics"],
                   title=f"{title}: {len(result.trials) - len(result.failed)}/{len(result.trials)} completed",
                   keep={"trial", "seed", "status", "time"})
    if result.skipped:
        info(f"skipped {len(result.skipped)} trial(s) already completed (--rerun runs them again)")
    for reason, n in Counter(r for r in result.reasons if r).items():
        info(f"ran {n} trial(s) completed before, not skipped: {reason}")
    if result.stopped:
        info(f"stopped early: {result.stopped}")
    if result.failed:
        report_failed(proj, result.failed)
        raise typer.Exit(1)


def _note_new_seeds(proj: Any, had_seeds: bool) -> None:
    if not had_seeds and proj.config.seeds:
        info(f"generated {len(proj.config.seeds)} preset seeds (master seed {proj.config.master_seed}) "
             "into tracker.yaml; every experiment uses them, so commit tracker.yaml")


def _summary_params(params: list[dict[str, Any]], overridden: list[str]) -> list[str]:
    """The params worth a column in the run summary: those set on the command line and those that vary."""
    keys = list(dict.fromkeys(k for p in params for k in p))
    return [k for k in keys if k in overridden or len({repr(p.get(k)) for p in params}) > 1]


def test(
    experiment: str = typer.Argument(..., help="The experiment (it needs a test phase)."),
    best: str = typer.Option(..., "--best", "-b", metavar="METRIC",
                             help="Choose the configuration with the best mean of this validation metric."),
    goal: str = typer.Option(None, "--goal", help="max or min (default: the experiment objective's goal)."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Test trials to run at once."),
    target: str = TARGET_OPTION,
    remote: str = REMOTE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the trials' output."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the test phase of the configuration validation chose, once per training seed.

    Selection looks only at completed training trials: the configuration whose METRIC,
    averaged over its seeds, is best. Each test trial reads its training trial's outputs
    ($TRACKER_TRAIN_DIR) and uses test seeds disjoint from training and validation seeds.
    A second test of the same experiment runs, but warns that test results were already seen.

    Examples:

        tracker test baseline --best val/acc
        tracker test cartpole --best val/return -j 3
    """
    from tracker.heldout import run_test

    proj = project()
    reporter = ConsoleReporter(stream=not quiet and not as_json)
    try:
        result = run_test(proj, experiment, best, goal=goal, parallel=parallel, reporter=reporter,
                          target=chosen(proj, target, remote) if target or remote else None)
    finally:
        reporter.close()
    if as_json:
        emit_json(result.as_dict())
    else:
        s = result.selection
        means = result.as_dict()["metrics"]
        info(f"selected {fmt_params(s.params) or 'the only configuration'} by {s.metric} "
             f"({s.goal}: {s.value:.6g}, mean of {len(s.sources)} seed(s)) among {s.configurations} "
             f"configuration(s); test run {result.run}")
        emit_table([(t.id, t.seed, t.status, fmt_duration(t.duration), fmt_metrics(t.metrics)) for t in result.trials],
                   ["trial", "seed", "status", "time", "metrics"],
                   title=f"test of {experiment}: {len(result.trials) - len(result.failed)}/{len(result.trials)} "
                   "completed", keep={"trial", "seed", "status", "time"})
        if means:
            info("test means: " + "  ".join(f"{k}={v:.6g}" for k, v in means.items()))
    if result.failed:
        report_failed(proj, result.failed)
        raise typer.Exit(1)
