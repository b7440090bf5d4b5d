"""``tracker optimize``: search an experiment's space; status, resume, best, list and report."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from tracker.cli._common import (
    JSON_OPTION,
    claim,
    emit_json,
    emit_table,
    fmt_params,
    fmt_time,
    info,
    placed,
    project,
)
from tracker.cli._targets import REMOTE_OPTION, TARGET_OPTION, remotes
from tracker.cli.queue import MAX_ATTEMPTS_OPTION, QUEUE_OPTION


class _StartByDefault(TyperGroup):
    """``tracker optimize EXPERIMENT ...`` means ``tracker optimize start EXPERIMENT ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_StartByDefault, no_args_is_help=True,
                  help="Search an experiment's space (grid, random, tpe, gp, hyperband, bohb) over seeds.")

STRATEGIES = "grid|random|tpe|gp|hyperband|bohb"


@app.command("start")
def start(
    experiment: str = typer.Argument(..., help="The experiment whose 'search:' space is searched."),
    strategy: str = typer.Option("tpe", "--strategy", "-S", help=f"How configurations are chosen: {STRATEGIES}."),
    trials: int = typer.Option(None, "--trials", "-t", help="Configurations to try (default 20; grid: all)."),
    timeout: float = typer.Option(None, "--timeout", help="Start no new configuration after SECONDS."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials to run at once (local)."),
    target: str = TARGET_OPTION,
    remote: str = REMOTE_OPTION,
    seeds: int = typer.Option(None, "--seeds", "-n", help="Evaluate each configuration on the first N preset "
                              "seeds (default: the experiment's seeds, else 1)."),
    aggregate: str = typer.Option("mean", "--aggregate", help="Objective of a configuration over its seeds: "
                                  "mean|median."),
    sampler_seed: int = typer.Option(None, "--sampler-seed", help="Seed of the sampler (default: the project's "
                                     "master seed)."),
    max_failures: int = typer.Option(None, "--max-failures", help="Stop after N configurations failed in a row "
                                     "(default 5; 0: never)."),
    no_seed_pruning: bool = typer.Option(False, "--no-seed-pruning", help="Run every seed of every "
                                         "configuration (no paired early stop)."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag every trial (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the trials' output."),
    queue: bool = typer.Option(False, "--queue", help="Let the workers of a queue search together (tracker "
                               "worker on any machine) instead of running the search here."),
    queue_name: str = QUEUE_OPTION,
    max_attempts: int = MAX_ATTEMPTS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Optimise EXPERIMENT's objective over its 'search:' ranges; each configuration runs over the same seeds.

    Every trial is a normal trial (list, show, logs, checkout), grouped under the
    optimization's id. Ctrl-C stops it; 'tracker optimize resume ID' continues it.

    Examples:

        tracker optimize quad --strategy tpe --trials 50 -j 4
        tracker optimize quad --strategy grid
        tracker optimize quad --strategy bohb --trials 100 --seeds 3
        tracker optimize quad --strategy random --remote gpu1,gpu2
        tracker optimize quad --strategy tpe --trials 200 --queue   # then: tracker worker (anywhere)
    """
    from tracker.search.optimizer import optimize
    from tracker.search.rules import DEFAULT_MAX_FAILURES, OptimizeOptions

    proj = project()
    options = OptimizeOptions(strategy=strategy, trials=trials, timeout=timeout, parallel=parallel,
                              remote=remotes(remote), target=target, seeds=seeds, aggregate=aggregate,
                              sampler_seed=sampler_seed,
                              max_failures=DEFAULT_MAX_FAILURES if max_failures is None else max_failures,
                              seed_pruning=not no_seed_pruning, tags=list(tag or []))
    if not queue and (queue_name != "default" or max_attempts is not None):
        from tracker.errors import UsageError

        raise UsageError(f"{'--queue-name' if queue_name != 'default' else '--max-attempts'} applies to a search "
                         "by workers", hint="add --queue")
    if queue:
        from tracker.search import distributed

        record = distributed.start(proj, experiment, options, queue=queue_name, max_attempts=max_attempts)
        if as_json:
            emit_json(_status(record.id).as_dict())
            return
        info(f"optimization {record.id}: the workers of queue {queue_name!r} search it together; start them with "
             f"'tracker worker --queue {queue_name}' on any machine, follow it with 'tracker optimize status "
             f"{record.id}'")
        return
    _drive(proj, lambda reporter: optimize(proj, experiment, options, reporter), quiet or as_json, as_json)


@app.command("resume")
def resume(
    optimization: str = typer.Argument(..., help="The optimization id (or a unique prefix)."),
    trials: int = typer.Option(None, "--trials", "-t", help="Raise the number of configurations to N in all."),
    timeout: float = typer.Option(None, "--timeout", help="Start no new configuration after SECONDS."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials to run at once (local)."),
    target: str = TARGET_OPTION,
    remote: str = REMOTE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not stream the trials' output."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Continue an interrupted optimization: the same study; nothing finished runs again.

    Configurations that were cut short run their missing seeds; then new ones are
    asked for until the budget (--trials raises it) is spent.
    """
    from tracker.search.optimizer import resume as resume_search

    proj = project()
    _drive(proj, lambda reporter: resume_search(proj, optimization, parallel=parallel, remote=remotes(remote),
                                                target=target, trials=trials, timeout=timeout, reporter=reporter),
           quiet or as_json, as_json)


def _drive(proj: Any, call: Any, quiet: bool, as_json: bool) -> None:
    from tracker.cli.progress import ConsoleReporter
    from tracker.search.optimizer import SearchInterrupted
    from tracker.search.results import status as status_of

    reporter = ConsoleReporter(stream=not quiet)
    try:
        result = call(reporter)
    except SearchInterrupted as exc:
        reporter.close()
        info(f"tracker: optimization {exc.optimization} interrupted; running trials were cancelled "
             f"('tracker optimize resume {exc.optimization}' continues it)")
        raise typer.Exit(130) from None
    finally:
        reporter.close()
    o = result.optimization
    st = status_of(proj, o.id)
    if as_json:
        emit_json(st.as_dict())
    else:
        _print_status(st)
    if o.status != "completed" and not (o.status == "running" and o.settings.get("queue")):
        raise typer.Exit(1)


def _status(ref: str) -> Any:
    from tracker.search.results import status as status_of

    return status_of(project(), ref)


def _print_status(st: Any) -> None:
    o = st.optimization
    s = o.settings
    budget = f"/{st.budget}" if st.budget else ""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(st.configurations.items())) or "none yet"
    trial_counts = ", ".join(f"{n} {k}" for k, n in sorted(st.trials.items())) or "none yet"
    lines = [
        f"optimization {o.id}: {o.experiment}, {o.strategy}, {st.state}",
        f"  objective:       {s.get('goal')} {s.get('metric')} ({s.get('aggregate')} over seeds "
        f"{', '.join(map(str, s.get('seeds', [])))})",
        f"  configurations:  {st.made}{budget} ({counts})",
        f"  trials:          {trial_counts}",
    ]
    if st.best is not None:
        lines.append(f"  best:            configuration {st.best.number}: {s.get('metric')} = {st.best.value:.6g}")
        lines.append(f"  best params:     {fmt_params(st.best.params)}")
    if o.error:
        lines.append(f"  note:            {o.error}")
    if st.state in ("interrupted", "stopped"):
        lines.append(f"  continue with:   tracker optimize resume {o.id}")
    typer.echo("\n".join(lines))


@app.command("status")
def status(
    optimization: str = typer.Argument(..., help="The optimization id (or a unique prefix)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Show a live progress bar until it ends."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Where an optimization stands: best configuration and value so far, configurations and trials by state."""
    st = _status(optimization)
    if watch and st.state == "running" and not as_json:
        try:
            st = _watch(optimization)
        except KeyboardInterrupt:
            info(f"stopped watching; optimization {optimization} goes on (nothing was cancelled)")
            raise typer.Exit(130) from None
    if as_json:
        emit_json(st.as_dict())
        return
    _print_status(st)


def _watch(ref: str) -> Any:
    """Configurations done (and the best value) until the optimization ends: a progress bar on a
    terminal, a plain line at each change when piped."""
    import time

    from tracker.cli._common import is_tty

    st = _status(ref)
    show = _watch_bar(st) if is_tty() else _watch_lines()
    with show as update:
        while True:
            update(st)
            if st.state != "running":
                return st
            time.sleep(1.0)
            st = _status(ref)


def _progress_line(st: Any) -> tuple[int, str]:
    """Configurations done, and a line saying how far the search is."""
    done = st.made - st.configurations.get("running", 0)
    best = f"best {st.best.value:.6g}" if st.best is not None else "no result yet"
    return done, (f"{done}/{st.budget or '?'} configurations, {st.trials.get('running', 0)} trial(s) running, "
                  f"{best}")


@contextlib.contextmanager
def _watch_bar(st: Any) -> Iterator[Callable[[Any], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tracker.cli._common import console

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(st.optimization.experiment, total=st.budget, detail="")

        def update(now: Any) -> None:
            done, line = _progress_line(now)
            bar.update(task, completed=done, detail=line)

        yield update


@contextlib.contextmanager
def _watch_lines() -> Iterator[Callable[[Any], None]]:
    last: list[str] = []

    def update(now: Any) -> None:
        _, line = _progress_line(now)
        if line not in last:
            last[:] = [line]
            info(f"{now.optimization.id}: {line}")

    yield update


@app.command("best")
def best(
    optimization: str = typer.Argument(..., help="The optimization id (or a unique prefix)."),
    save: str = typer.Option(None, "--save", metavar="NAME", help="Write it as experiments/NAME.yaml."),
    force: bool = typer.Option(False, "--force", help="Overwrite experiments/NAME.yaml."),
    commit: bool = typer.Option(False, "--commit", help="Commit the new experiment file (and only it)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The best configuration: its params (fixed and searched), value and per-seed values."""
    from tracker.cli._common import tracked_edit
    from tracker.search.results import best_of, save_best

    proj = project()
    found = best_of(proj, optimization)
    if save:
        with tracked_edit(proj, f"Add experiment {save} (best of optimization {found.optimization.id})",
                          commit=commit) as written:
            written.append(save_best(proj, optimization, save, force=force))
        info(f"wrote experiments/{save}.yaml; run it with 'tracker run {save}'")
    if as_json:
        emit_json(found.as_dict())
        return
    s = found.optimization.settings
    typer.echo(f"configuration {found.configuration.number} of {found.optimization.id}: "
               f"{s.get('metric')} = {found.configuration.value:.6g} ({s.get('aggregate')} of "
               f"{len(found.configuration.values)} seed(s))")
    for name, value in found.params.items():
        typer.echo(f"  {name}: {value!r}" if isinstance(value, str) else f"  {name}: {value}")


@app.command("list")
def list_(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment's."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every optimization: experiment, strategy, state, configurations and best value."""
    from tracker.search.results import list_optimizations

    found = list_optimizations(project(), experiment)
    if as_json:
        emit_json([st.as_dict() for st in found])
        return
    if not found:
        info("no optimizations yet; start one with 'tracker optimize EXPERIMENT --strategy tpe'")
        return
    emit_table([(st.optimization.id, st.optimization.experiment, st.optimization.strategy, st.state,
                 f"{st.made}/{st.budget}" if st.budget else st.made,
                 "" if st.best is None else f"{st.best.value:.6g}", fmt_time(st.optimization.created))
                for st in found],
               ["id", "experiment", "strategy", "status", "configurations", "best", "created"],
               keep={"id", "status"})


@app.command("report")
def report(
    optimization: str = typer.Argument(..., help="The optimization id (or a unique prefix)."),
    out: Path = typer.Option(None, "--out", "-o", help="The HTML file to write "
                             "(default: .tracker/reports/optimization-ID.html, outside the code)."),
) -> None:
    """One self-contained HTML page (opens offline): history with best-so-far, parameter importances,
    parallel coordinates, intermediate values with pruned configurations marked."""
    from tracker.search.report import write_report

    proj = project()
    out = placed(proj, out, "reports", f"optimization-{optimization}.html")
    path = write_report(proj, optimization, out)
    claim(proj, path)
    info(f"wrote {path}")
