"""``tracker run``: run an experiment's trials locally or on remotes."""

from __future__ import annotations

import sys
import threading
import time
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
    is_tty,
    parse_assignments,
    project,
)
from tracker.cli.queue import MAX_ATTEMPTS_OPTION, QUEUE_OPTION, submit_and_report
from tracker.cli.slurm import ARRAY_PARALLEL, CPUS, GPUS, MEM, PARTITION, TIME


def run(
    experiments: list[str] = typer.Argument(..., help="Experiment names (experiments/NAME.yaml); several run as one."),
    seeds: int = typer.Option(None, "--seeds", "-n", help="Use the first N preset seeds."),
    seed: list[int] = typer.Option(None, "--seed", "-s", help="Run with this seed (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Override a param: NAME=VALUE."),
    grid: list[str] = typer.Option(None, "--grid", "-g", help="Grid over values: 'NAME=[v1,v2]' (quoted: zsh "
                                                                "expands brackets)."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials to run at once (local)."),
    remote: str = typer.Option(None, "--remote", "-r", help="Run on named remotes: gpu1,gpu2."),
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
    slurm: bool = typer.Option(False, "--slurm", help="Submit the trials to SLURM as job arrays of workers "
                               "(docs/slurm.md); prints the array job ids."),
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
    """
    from tracker.errors import UsageError
    from tracker.runs import RunOptions, run_experiments

    proj = project()
    resources = {"--partition": partition, "--time": time_limit, "--gpus": gpus, "--cpus": cpus, "--mem": mem,
                 "--array-parallel": array_parallel}
    if not slurm and any(v is not None for v in resources.values()):
        raise UsageError(f"{next(k for k, v in resources.items() if v is not None)} applies to SLURM runs",
                         hint="add --slurm")
    if slurm and (queue or queue_name != "default"):
        raise UsageError("--slurm runs its trials in a queue of its own", hint="drop --queue/--queue-name")
    if not (queue or slurm) and (queue_name != "default" or max_attempts is not None):
        raise UsageError(f"{'--queue-name' if queue_name != 'default' else '--max-attempts'} applies to queued "
                         "trials", hint="add --queue or --slurm")
    if (queue or slurm) and max_failures is not None:
        raise UsageError("--max-failures stops a run that starts its own trials; queued trials are started by "
                         "workers, each on its own", hint="drop --max-failures, or run without --queue/--slurm")
    had_seeds = bool(proj.config.seeds)
    options = RunOptions(
        seeds=list(seed or []), seed_count=seeds, params=parse_assignments(param, "--param"),
        grid=parse_assignments(grid, "--grid"), parallel=parallel, dry_run=dry_run,
        remote=[r.strip() for r in remote.split(",") if r.strip()] if remote else [],
        backup_to=backup_to, rerun=rerun, tags=list(tag or []),
        **({} if max_failures is None else {"max_failures": max_failures}),
    )
    if queue:
        submit_and_report(proj, experiments, options, queue_name, max_attempts, as_json)
        _note_new_seeds(proj, had_seeds)
        return
    if slurm:
        from tracker.cli import slurm as slurm_cli
        from tracker.slurm.submit import SlurmOptions

        slurm_cli.submit_and_report(proj, experiments, options,
                                    SlurmOptions(partition, time_limit, gpus, cpus, mem, array_parallel),
                                    max_attempts, as_json)
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
                  f"{len(result.specs)} trials would run, {len(result.skipped)} skipped", as_json)
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
        goals = objectives(proj)
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
    if result.stopped:
        info(f"stopped early: {result.stopped}")
    if result.failed:
        report_failed(proj, result.failed)
        raise typer.Exit(1)


def report_failed(proj: Any, failed: list[Any]) -> None:
    """One line on what did not complete, pointing at the log that holds the error."""
    from tracker.trials import logs_command

    first = next((t for t in failed if t.status == "failed"), failed[0])
    info(f"{len(failed)} trial(s) did not complete; see '{logs_command(proj, first)}'")
    hint = next((t.extra["hint"] for t in failed if t.extra.get("hint")), None)
    if hint:
        info(hint)


def _note_new_seeds(proj: Any, had_seeds: bool) -> None:
    if not had_seeds and proj.config.seeds:
        info(f"generated {len(proj.config.seeds)} preset seeds (master seed {proj.config.master_seed}) "
             "into tracker.yaml; every experiment uses them, so commit tracker.yaml")


def _summary_params(params: list[dict[str, Any]], overridden: list[str]) -> list[str]:
    """The params worth a column in the run summary: those set on the command line and those that vary."""
    keys = list(dict.fromkeys(k for p in params for k in p))
    return [k for k in keys if k in overridden or len({repr(p.get(k)) for p in params}) > 1]


class ConsoleReporter:
    """Streams trial output and shows a progress bar on a terminal; plain lines when piped."""

    def __init__(self, stream: bool = True, console: Any = None) -> None:
        self.stream = stream
        self.tty = is_tty() if console is None else console.is_terminal
        self._lock = threading.Lock()
        self._console: Any = console  # a rich Console (default: stderr's, made on first use)
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._total: int | None = None
        self._transfers: dict[str, Any] = {}

    def _rich(self, experiment: str | None = None) -> Any:
        """The rich console and progress bar, made on first use and only on a terminal; the
        run's own bar (done/total) appears with its first trial."""
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            if self._console is None:
                from tracker.cli._common import console

                self._console = console(stderr=True)
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=self._console, transient=True)
            self._progress.start()
        if experiment is not None and self._task is None:
            self._task = self._progress.add_task(experiment, total=self._total, detail=self._count())
        return self._console

    def _count(self) -> str:
        """``done/total`` (just the done count while the total is unknown)."""
        return f"{self._done}/{self._total}" if self._total is not None else f"{self._done} done"

    def planned(self, total: int) -> None:
        with self._lock:
            self._total = total
            if self._task is not None:
                self._progress.update(self._task, total=total, detail=self._count())

    def _print(self, trial: Any, plain: str, styled: str | None = None) -> None:
        if self.tty:
            self._rich(trial.experiment if trial else None).print(
                styled or plain, markup=styled is not None, highlight=False)
        else:
            sys.stderr.write(plain + "\n")
            sys.stderr.flush()

    def started(self, trial: Any) -> None:
        with self._lock:
            text = f"trial {trial.id} started: seed={trial.seed} {fmt_params(trial.params)}"
            self._print(trial, text, f"[dim]{text}[/dim]")

    def output(self, trial: Any, stream: str, line: str) -> None:
        if self.stream:
            with self._lock:
                self._print(trial, f"{trial.id[:6]} | {line}")

    def finished(self, trial: Any) -> None:
        with self._lock:
            self._done += 1
            colour = {"completed": "green", "failed": "red"}.get(trial.status, "yellow")
            rest = f"in {fmt_duration(trial.duration)} {fmt_metrics(trial.metrics)}"
            self._print(trial, f"trial {trial.id} {trial.status} {rest}",
                        f"trial {trial.id} [{colour}]{trial.status}[/{colour}] {rest}")
            if self._task is not None:
                self._progress.update(self._task, completed=self._done, detail=self._count())

    def message(self, text: str) -> None:
        with self._lock:
            self._print(None, text)

    def progress(self, label: str, done: int, total: int) -> None:
        """A bytes/rate bar per label on a terminal (large code syncs); nothing when piped."""
        if not self.tty:
            return
        with self._lock:
            self._rich()
            tasks = self._transfers
            if label not in tasks:
                tasks[label] = (self._progress.add_task(label, total=total, detail=""), time.monotonic())
            task, started = tasks[label]
            rate = done / max(time.monotonic() - started, 1e-3) / 1e6
            self._progress.update(task, completed=done, total=total,
                                  detail=f"{done / 1e6:.1f}/{total / 1e6:.1f} MB at {rate:.1f} MB/s")
            if done >= total:
                self._progress.remove_task(tasks.pop(label)[0])

    def status(self, label: str, text: str | None) -> None:
        """One updating line per label on a terminal (an environment build's current step); plain lines when piped."""
        with self._lock:
            if not self.tty:
                if text:
                    sys.stderr.write(f"{label}: {text}\n")
                    sys.stderr.flush()
                return
            self._rich()
            tasks = self._transfers
            if text is None:
                if label in tasks:
                    self._progress.remove_task(tasks.pop(label)[0])
                return
            if label not in tasks:
                tasks[label] = (self._progress.add_task(label, total=None, detail=""), time.monotonic())
            self._progress.update(tasks[label][0], detail=text[:100])

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def test(
    experiment: str = typer.Argument(..., help="The experiment (it needs a test phase)."),
    best: str = typer.Option(..., "--best", "-b", metavar="METRIC",
                             help="Choose the configuration with the best mean of this validation metric."),
    goal: str = typer.Option(None, "--goal", help="max or min (default: the experiment objective's goal)."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Test trials to run at once."),
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
        result = run_test(proj, experiment, best, goal=goal, parallel=parallel, reporter=reporter)
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
