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
    emit_table,
    fmt_duration,
    fmt_metrics,
    fmt_params,
    info,
    is_tty,
    parse_assignments,
    project,
)


def run(
    experiment: str = typer.Argument(..., help="Experiment name (experiments/NAME.yaml)."),
    seeds: int = typer.Option(None, "--seeds", "-n", help="Use the first N preset seeds."),
    seed: list[int] = typer.Option(None, "--seed", "-s", help="Run with this seed (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Override a param: NAME=VALUE."),
    grid: list[str] = typer.Option(None, "--grid", "-g", help="Grid over values: NAME=[v1,v2]."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials to run at once (local)."),
    remote: str = typer.Option(None, "--remote", "-r", help="Run on named remotes: gpu1,gpu2."),
    backup_to: str = typer.Option(None, "--backup-to", help="Back up each completed trial here."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag every trial of this run (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials without running them."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the trials' output."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run EXPERIMENT: fixed params x grid x seeds, each trial tied to the current commit.

    Examples:

        tracker run baseline                  # default number of preset seeds
        tracker run baseline --seeds 5 -j 2   # 5 seeds, 2 trials at a time
        tracker run baseline -p lr=0.05 --seed 7
        tracker run baseline --grid lr=[0.1,0.01] --dry-run
    """
    from tracker.runs import RunOptions, run_experiment

    proj = project()
    had_seeds = bool(proj.config.seeds)
    options = RunOptions(
        seeds=list(seed or []), seed_count=seeds, params=parse_assignments(param, "--param"),
        grid=parse_assignments(grid, "--grid"), parallel=parallel, dry_run=dry_run,
        remote=[r.strip() for r in remote.split(",") if r.strip()] if remote else [],
        backup_to=backup_to, tags=list(tag or []),
    )
    if dry_run:
        from tracker.runs import plan

        _, specs = plan(proj, experiment, options)
        _note_new_seeds(proj, had_seeds)
        if as_json:
            emit_json([{"experiment": s.experiment, "seed": s.seed, "params": s.params} for s in specs])
        else:
            emit_table([(i + 1, s.seed, fmt_params(s.params)) for i, s in enumerate(specs)],
                       ["#", "seed", "params"], title=f"{len(specs)} trials would run")
        return
    reporter = ConsoleReporter(stream=not quiet and not as_json)
    try:
        result = run_experiment(proj, experiment, options, reporter)
    finally:
        reporter.close()
    _note_new_seeds(proj, had_seeds)
    if as_json:
        emit_json([t.summary() for t in result.trials])
    else:
        varying = _varying([t.params for t in result.trials])
        emit_table([(t.id, t.seed, fmt_params({k: t.params[k] for k in varying if k in t.params}),
                     t.status, fmt_duration(t.duration), fmt_metrics(t.metrics, limit=3))
                    for t in result.trials], ["trial", "seed", "params", "status", "time", "metrics"],
                   title=f"{experiment}: {len(result.trials) - len(result.failed)}/{len(result.trials)} completed")
    if result.failed:
        first = result.failed[0]
        info(f"{len(result.failed)} trial(s) did not complete; see 'tracker trials logs {first.id}'")
        raise typer.Exit(1)


def _note_new_seeds(proj: Any, had_seeds: bool) -> None:
    if not had_seeds and proj.config.seeds:
        info(f"generated {len(proj.config.seeds)} preset seeds (master seed {proj.config.master_seed}) "
             "into tracker.yaml; every experiment uses them, so commit tracker.yaml")


def _varying(params: list[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for p in params for k in p))
    return [k for k in keys if len({repr(p.get(k)) for p in params}) > 1]


class ConsoleReporter:
    """Streams trial output and shows a progress bar on a terminal; plain lines when piped."""

    def __init__(self, stream: bool = True) -> None:
        self.stream = stream
        self.tty = is_tty()
        self._lock = threading.Lock()
        self._console: Any = None
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._transfers: dict[str, Any] = {}

    def _rich(self, experiment: str) -> Any:
        """The rich console and progress bar, made on first use and only on a terminal."""
        if self._console is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            from tracker.cli._common import console

            self._console = console(stderr=True)
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(experiment, total=None, detail="")
        return self._console

    def _print(self, trial: Any, plain: str, styled: str | None = None) -> None:
        if self.tty:
            self._rich(trial.experiment if trial else "tracker").print(
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
            if self._progress is not None:
                self._progress.update(self._task, completed=self._done, detail=f"{self._done} trial(s) done")

    def message(self, text: str) -> None:
        with self._lock:
            self._print(None, text)

    def progress(self, label: str, done: int, total: int) -> None:
        """A bytes/rate bar per label on a terminal (large code syncs); nothing when piped."""
        if not self.tty:
            return
        with self._lock:
            self._rich(label)
            tasks = self._transfers
            if label not in tasks:
                tasks[label] = (self._progress.add_task(label, total=total, detail=""), time.monotonic())
            task, started = tasks[label]
            rate = done / max(time.monotonic() - started, 1e-3) / 1e6
            self._progress.update(task, completed=done, total=total,
                                  detail=f"{done / 1e6:.1f}/{total / 1e6:.1f} MB at {rate:.1f} MB/s")
            if done >= total:
                self._progress.remove_task(tasks.pop(label)[0])

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
