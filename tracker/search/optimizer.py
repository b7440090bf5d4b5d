"""``tracker optimize``: ask Optuna for configurations, run each over the same seeds as normal trials.

One configuration (an Optuna trial) is evaluated on the first S preset seeds, one tracker
trial per seed, so every configuration is paired with every other by seed; its objective is
the mean (or median) of the seeds' final values of the objective metric. The loop is a feed
for the driver: when a slot frees it starts the next seed of an open configuration, or asks
the sampler for a new configuration (running ones count as pending, so parallel slots do
not get the same suggestion). While trials run, each intermediate value of the objective
reaches the strategy's pruner (Hyperband); with several seeds and no such pruner, a
configuration that is worse than the best on the seeds done so far is stopped (Optuna's
WilcoxonPruner, a paired signed-rank test over seeds).

The store is the one record of a search: the optimization, every configuration with its
state and per-seed values, and the trials. ``resume`` rebuilds the study from it, so nothing
finished runs again, interrupted configurations run their missing seeds, and the sampler
is re-seeded from the sampler seed and the number of configurations already made.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker import codeset, experiments, gitinfo
from tracker.config import ExperimentConfig
from tracker.errors import UsageError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.execution.driver import Driver
from tracker.experiments import TrialSpec
from tracker.launch import Launcher, new_id
from tracker.project import Project
from tracker.search import rules, strategies
from tracker.search import space as spacelib
from tracker.search.rules import OptimizeOptions
from tracker.store import Configuration, MetricPoint, Optimization, Trial, now

if TYPE_CHECKING:
    from tracker.execution.targets import Target

WILCOXON_P = 0.1
"""The p-value under which a configuration worse than the best on the same seeds is stopped."""


@dataclass(frozen=True)
class OptimizeResult:
    """Where an optimization ended: its record, configurations, best one and trials."""

    optimization: Optimization
    configurations: list[Configuration]
    best: Configuration | None
    trials: list[Trial]


class OptimizationError(UsageError):
    """The search cannot go on (an objective never reported): exit 1 with the reason."""

    exit_code = 1


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a search; ``optimization`` is its id (to resume it)."""

    def __init__(self, optimization: str) -> None:
        super().__init__(optimization)
        self.optimization = optimization


@dataclass
class _Open:
    """A configuration being evaluated."""

    number: int
    params: dict[str, Any]  # the searched params
    trial: Any  # its live optuna.Trial
    todo: list[int]  # seeds not started yet
    created: str
    trials: dict[int, str] = field(default_factory=dict)  # seed -> trial id
    values: dict[int, float] = field(default_factory=dict)  # seed -> final objective
    curve: dict[int, dict[int, float]] = field(default_factory=dict)  # step -> seed -> value
    reported: set[int] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)  # seeds whose trial ended
    interrupted: bool = False  # a seed was cancelled or lost: left for 'resume'


# ---------------------------------------------------------------------------- entry points


def _launcher(project: Project, parallel: int | None, remote: list[str], reporter: Reporter,
              given: BaseExecutor | None, target: str | Target | None = None) -> Launcher:
    """The launcher of a search's trials: ``given`` as it is, else local (in the project's venv when
    tracker.yaml asks for it) or on ``remote`` hosts; prepared, so a bad --parallel --remote or --target fails here."""
    from tracker import runs

    if parallel is not None and parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    options = runs.RunOptions(parallel=parallel, remote=list(remote), target=target)
    start = runs.launcher(project, options, reporter, given)
    start.prepare()
    return start


def _space(settings: dict[str, Any]) -> dict[str, Any]:
    from tracker.config import SearchSpace

    return {k: SearchSpace(**v) for k, v in settings["space"].items()}


def optimize(project: Project, name: str, options: OptimizeOptions, reporter: Reporter | None = None,
             executor: BaseExecutor | None = None) -> OptimizeResult:
    """Start an optimization of experiment ``name`` and run it to its end; return where it ended."""
    reporter = reporter or Reporter()
    config = experiments.load(project, name)
    where = spacelib.Where.of(project, name)
    settings = rules.settings(project, name, config, options, where)
    code = gitinfo.capture(project.root, project.config.code)  # outside git: refused before anything is written
    if line := codeset.left_out_line(code.left_out):
        reporter.message(line)
    start = _launcher(project, options.parallel, options.remote, reporter, executor, options.target)
    settings["deadline"] = rules.deadline(options.timeout)  # the clock starts once the executor is ready
    record = Optimization(id=new_id(), experiment=name, strategy=options.strategy, settings=settings,
                          status="running", created=now(), owner=lifecycle.owner(), commit=code.commit)
    project.store.add_optimization(record)
    reporter.message(f"optimization {record.id}: {options.strategy} search of {name} "
                     f"(Ctrl-C stops it; 'tracker optimize resume {record.id}' continues it)")
    return _Search(project, record, config, start, code, reporter, []).run()


def resume(project: Project, ref: str, *, parallel: int | None = None, remote: list[str] | None = None,
           trials: int | None = None, timeout: float | None = None, reporter: Reporter | None = None,
           executor: BaseExecutor | None = None, target: str | Target | None = None) -> OptimizeResult:
    """Continue an interrupted or finished optimization: the same study, nothing finished repeated.

    ``trials`` raises the number of configurations to try (the total, counting those done).
    """
    from tracker.search import results

    reporter = reporter or Reporter()
    store = project.store
    record = store.get_optimization(ref)
    if record.settings.get("queue"):
        from tracker.search import distributed

        rules.check_bounds(trials, timeout)
        if parallel or remote or target:
            raise UsageError(f"optimization {record.id} is searched by the workers of queue "
                             f"{record.settings['queue']!r}; --parallel, --remote and --target do not apply")
        record = distributed.resume(project, record, trials=trials, timeout=timeout)
        return OptimizeResult(record, store.configurations(record.id), None,
                              store.list_trials(optimization=record.id))
    if results.state(project, record) == "running":
        raise UsageError(f"optimization {record.id} is still running (pid {record.owner.get('pid')} on "
                         f"{record.owner.get('host')})", hint="wait for it, or stop it with Ctrl-C there")
    for trial in store.list_trials(optimization=record.id, status=["running"]):
        from tracker.execution.driver import adopt_and_stop

        adopt_and_stop(project, trial)  # a detached remote trial of a client that died
    config = experiments.load(project, record.experiment)
    if experiments.config_hash(config) != record.settings.get("config_hash"):
        reporter.message(f"note: experiments/{record.experiment}.yaml changed since the optimization started; "
                         "the search keeps its recorded space, params and objective")
    rules.check_bounds(trials, timeout)
    settings = rules.resumed(record.settings, len(store.configurations(record.id)), trials=trials, timeout=timeout)
    if settings.get("budget") is None and timeout is None:  # it was bounded by time alone
        raise UsageError(f"optimization {record.id} had no --trials budget, only a --timeout, so a resume "
                         "needs one of them", hint=f"tracker optimize resume {record.id} --timeout SECONDS "
                                                   "(or --trials N, counting the configurations done)")
    code = gitinfo.capture(project.root, project.config.code)
    if code.commit != record.commit:
        reporter.message(f"note: the code moved on since the optimization started "
                         f"({(record.commit or '?')[:8]} -> {(code.commit or '?')[:8]}); new trials run on it")
    start = _launcher(project, parallel, remote or [], reporter, executor, target)
    if not store.claim_optimization(record.id, lifecycle.owner(), unless=record.owner):
        raise UsageError(f"optimization {record.id} was resumed by another process meanwhile")
    store.update_optimization(record.id, settings=settings)
    record = store.get_optimization(record.id)
    return _Search(project, record, config, start, code, reporter, store.configurations(record.id)).run()


# ---------------------------------------------------------------------------- the search


class _Search:
    """One process driving one optimization (see the module docstring)."""

    def __init__(self, project: Project, record: Optimization, config: ExperimentConfig, start: Launcher,
                 code: gitinfo.CodeState, reporter: Reporter, known: list[Configuration]) -> None:
        optuna = strategies.load_optuna()  # quiet: no log lines, no warning that WilcoxonPruner is experimental

        self.project = project
        self.store = project.store
        self.record = record
        self.config = config
        self.start = start
        self.code = code
        self.reporter = reporter
        s = record.settings
        self.metric: str = s["metric"]
        self.goal: str = s["goal"]
        self.seeds: list[int] = list(s["seeds"])
        self.aggregate = rules.AGGREGATES[s["aggregate"]]
        self.budget: int | None = s.get("budget")
        self.where = spacelib.Where(f"experiments/{record.experiment}.yaml", {})
        space = _space(s)
        self.dists = spacelib.distributions(space)
        self.strategy = strategies.get(record.strategy)
        self.curves = self.strategy.curves
        self.by_seed = not self.curves and s.get("seed_pruning", True) and len(self.seeds) > 1
        pruner = self.strategy.pruner()
        if self.by_seed:
            pruner = optuna.pruners.WilcoxonPruner(p_threshold=WILCOXON_P, n_startup_steps=2)
        seed = s.get("sampler_seed")
        if seed is not None and known:  # a resumed search continues, it does not replay its start
            seed = (seed + len(known) * 7919) % 2**32
        self.study = optuna.create_study(study_name=s.get("study_name", record.id),
                                         sampler=self.strategy.sampler(seed), pruner=pruner,
                                         direction="maximize" if self.goal == "max" else "minimize")
        self.open: dict[int, _Open] = {}
        self.by_trial: dict[str, _Open] = {}
        self.made = len(known)
        self.curves_seen = bool(known)  # whether a first trial has shown if the script reports steps
        self.halt: str | None = None
        self.fatal: str | None = None
        self.driver: Driver | None = None
        self.timed_out = False
        self.points: Iterator[dict[str, Any]] | None = None
        if self.strategy.grid:
            names, values = spacelib.grid(space, self.where)
            self.points = spacelib.grid_points(names, values, s.get("sampler_seed"))
        self._rebuild(known)

    # ------------------------------------------------------------------ the study from the store

    def _rebuild(self, known: list[Configuration]) -> None:
        """Finished configurations become finished trials of the study; open ones continue."""
        import optuna
        from optuna.trial import TrialState

        self.visited = {spacelib.key(c.params) for c in known}
        states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
        trials = self.store.list_trials(optimization=self.record.id)
        by_number: dict[int, list[Trial]] = {}
        for t in trials:
            by_number.setdefault(t.extra.get("configuration", -1), []).append(t)
        for conf in known:
            mine = by_number.get(conf.number, [])
            if conf.state in states:
                self.study.add_trial(optuna.trial.create_trial(
                    state=states[conf.state], value=conf.value if conf.state == "complete" else None,
                    params=conf.params, distributions=self.dists, intermediate_values=self._curve(conf, mine)))
                continue
            self.study.enqueue_trial(conf.params)
            live = self.study.ask(self.dists)
            done = {t.seed: t for t in mine if t.status == "completed" and self.metric in t.metrics}
            item = _Open(conf.number, conf.params, live, [s for s in self.seeds if s not in done], conf.created)
            for seed, t in done.items():
                item.trials[seed] = t.id
                item.values[seed] = t.metrics[self.metric]
                item.ended.add(seed)
                if self.by_seed:
                    live.report(item.values[seed], self.seeds.index(seed))
            for step, values in self._steps(list(done.values())).items():
                item.curve[step] = values
            self.open[conf.number] = item
            if not item.todo:  # every seed completed before the search was cut short
                self._close(item, "complete", value=self.aggregate([item.values[s] for s in self.seeds]))

    def _steps(self, trials: list[Trial]) -> dict[int, dict[int, float]]:
        """step -> seed -> value of the objective, from the stored metrics of ``trials``."""
        out: dict[int, dict[int, float]] = {}
        for t in trials:
            for p in self.store.metrics(t.id, self.metric):
                if p.step is not None:
                    out.setdefault(p.step, {})[t.seed or 0] = p.value
        return out

    def _curve(self, conf: Configuration, trials: list[Trial]) -> dict[int, float]:
        """The intermediate values a finished configuration had: per step (Hyperband) or per seed (Wilcoxon)."""
        if self.by_seed:
            return {self.seeds.index(int(s)): v for s, v in conf.values.items() if int(s) in self.seeds}
        if not self.curves:
            return {}
        ended = [t for t in trials if t.status in ("completed", "pruned")]
        return {step: self.aggregate(list(v.values())) for step, v in sorted(self._steps(ended).items())}

    # ------------------------------------------------------------------ running

    def run(self) -> OptimizeResult:
        driver = self.driver = self.start.driver(pruner=self._prune if self.curves else None, on_end=self._ended)
        if self.budget:
            self.reporter.planned(max(self.budget - self._closed_count(), 0) * len(self.seeds)
                                  + sum(len(o.todo) for o in self.open.values()))
        status, error = "completed", None
        try:
            first = self._next()
            if first is not None:
                self.start.run(driver, first, self._feed(first))
        except KeyboardInterrupt as exc:
            self._finish("interrupted", "interrupted; 'tracker optimize resume' continues it")
            raise SearchInterrupted(self.record.id) from exc
        except BaseException as exc:
            self._finish("interrupted", f"interrupted by an error: {exc}")
            raise
        confs = self.store.configurations(self.record.id)
        every = rules.all_failed(confs)
        if self.fatal:
            status, error = "failed", self.fatal
        elif every:
            status, error = "failed", f"{self.halt}; {every}" if self.halt else every
        elif self.halt:
            status, error = "stopped", self.halt
        elif self.open:
            status, error = "stopped", rules.interrupted_note(len(self.open))
        record = self._finish(status, error)
        from tracker.search import results

        result = OptimizeResult(record, confs, results.best(record, confs),
                                self.store.list_trials(optimization=record.id))
        if self.fatal:
            raise OptimizationError(self.fatal)
        return result

    def _finish(self, status: str, error: str | None) -> Optimization:
        self.store.update_optimization(self.record.id, status=status, error=error, finished=now())
        return self.store.get_optimization(self.record.id)

    def _closed_count(self) -> int:
        return self.made - len(self.open)

    def _feed(self, first: Trial) -> Iterator[Trial | None]:
        yield first
        while True:
            trial = self._next()
            if trial is not None:
                yield trial
            elif self.open and any(not o.interrupted for o in self.open.values()):
                yield None  # a configuration still runs: ask again when a trial ends
            else:
                return

    def _next(self) -> Trial | None:
        """The next trial to start: a seed of an open configuration, else one of a new configuration."""
        if self.fatal:
            return None
        for item in self.open.values():
            if item.todo and not item.interrupted:
                return self._create(item, item.todo.pop(0))
        if self.halt or not self._may_ask():
            return None
        item = self._ask()
        return self._create(item, item.todo.pop(0)) if item else None

    def _may_ask(self) -> bool:
        if rules.budget_spent(self.record.settings, self.made):
            return False
        if rules.past_deadline(self.record.settings):
            if not self.timed_out:
                self.timed_out = True
                self.reporter.message(f"--timeout reached: no new configuration after {self.made}")
            return False
        return True

    def _ask(self) -> _Open | None:
        if self.points is not None:
            point = next((p for p in self.points if spacelib.key(p) not in self.visited), None)
            if point is None:
                return None
            self.study.enqueue_trial(point)
        live = self.study.ask(self.dists)
        params = {name: live.params[name] for name in self.dists}
        self.visited.add(spacelib.key(params))
        item = _Open(self.made, params, live, list(self.seeds), now())
        self.made += 1
        self.open[item.number] = item
        self._save(item, "running")
        return item

    def _create(self, item: _Open, seed: int) -> Trial:
        configs = {self.record.experiment: self.config}
        params = {**self.record.settings.get("params", {}), **item.params}
        spec = TrialSpec(self.record.experiment, params, seed)
        (trial,) = self.start.create([spec], configs, self.code, self.start.record(configs),
                                     self.record.settings.get("tags", []), run_id=self.record.id,
                                     extra={"optimization": self.record.id, "configuration": item.number})
        item.trials[seed] = trial.id
        self.by_trial[trial.id] = item
        return trial

    # ------------------------------------------------------------------ the driver's callbacks

    def _prune(self, trial: Trial, point: MetricPoint) -> bool:
        """Each intermediate value of a running trial: report the configuration's step, maybe stop it."""
        item = self.by_trial.get(trial.id)
        if item is None or point.name != self.metric or point.step is None:
            return False
        if item.number not in self.open:
            return True  # its configuration was pruned meanwhile
        if math.isfinite(point.value):
            item.curve.setdefault(point.step, {})[trial.seed or 0] = point.value
        step = self._report(item)
        if step is None or not item.trial.should_prune():
            return False
        self._close(item, "pruned", step=step, stop_reason=f"pruned at step {step} (with its configuration)",
                    skip=trial.id)
        return True

    def _report(self, item: _Open) -> int | None:
        """Report every step all the configuration's running seeds have reached; return the last one."""
        last = None
        for step in sorted(set(item.curve) - item.reported):
            if all(s in item.curve[step] for s in item.trials if s not in item.ended):
                item.reported.add(step)
                item.trial.report(self.aggregate(list(item.curve[step].values())), step)
                last = step
        return last

    def _ended(self, trial: Trial) -> None:
        """A trial of this search reached its final status: record its seed, maybe close its configuration."""
        item = self.by_trial.get(trial.id)
        if item is None or item.number not in self.open:
            return
        seed = trial.seed or 0
        item.ended.add(seed)
        if self.curves and trial.status in ("completed", "pruned"):  # values it logged after the last poll
            for point in self.store.metrics(trial.id, self.metric):
                if point.step is not None and math.isfinite(point.value):
                    item.curve.setdefault(point.step, {})[seed] = point.value
            self._report(item)
            self._check_curves(trial, item)
        end = rules.seed_end(self.metric, trial, self.record.experiment)
        if end.kind == "missing":
            self.fatal = end.error
            self._close(item, "failed", error=end.error)
        elif end.kind == "failed":
            if end.value is not None:
                item.values[seed] = end.value
            self._close(item, "failed", error=end.error,
                        stop_reason="cancelled: another seed of its configuration failed")
        elif end.kind == "pruned":
            step = trial.extra.get("pruned_step")
            self._close(item, "pruned", step=step, stop_reason=f"pruned at step {step} (with its configuration)")
        elif end.kind == "interrupted":  # the configuration waits for 'resume'
            item.interrupted = True
        else:
            assert end.value is not None
            item.values[seed] = end.value
            if self.by_seed:
                item.trial.report(end.value, self.seeds.index(seed))
                if len(item.values) < len(self.seeds) and item.trial.should_prune():
                    self._close(item, "pruned", step=None,
                                stop_reason=f"pruned after {len(item.values)} seed(s): worse than the best "
                                            "configuration on the same seeds (Wilcoxon signed-rank test)")
                    return
            if len(item.values) == len(self.seeds):
                self._close(item, "complete", value=self.aggregate([item.values[s] for s in self.seeds]))

    def _check_curves(self, trial: Trial, item: _Open) -> None:
        """At the first trial that completes: say so when the script reports no intermediate values,
        which leaves Hyperband/BOHB nothing to prune on (the search is then a random or TPE search)."""
        if self.curves_seen or trial.status != "completed":
            return
        self.curves_seen = True
        if not any((trial.seed or 0) in values for values in item.curve.values()):
            self.reporter.message(
                f"note: trial {trial.id} reported no intermediate value of {self.metric} (one with a step), so "
                f"--strategy {self.record.strategy} prunes nothing and runs as a plain search; report one per "
                f"step, e.g. print(f'step: {{epoch}} {self.metric}: {{value}}') (see docs/optimize.md)")

    def _close(self, item: _Open, state: str, *, value: float | None = None, step: int | None = None,
               error: str | None = None, stop_reason: str | None = None, skip: str | None = None) -> None:
        """End a configuration: tell the study, record it, stop its other running seeds."""
        from optuna.trial import TrialState

        del self.open[item.number]
        if state == "complete":
            self.study.tell(item.trial, value)
        else:
            self.study.tell(item.trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
        item.todo.clear()
        self._save(item, state, value=value, step=step, error=error)
        if state == "failed" and not self.fatal and not self.halt:
            self.halt = rules.halted(self.record.settings, self.store.configurations(self.record.id))
            if self.halt:
                self.reporter.message(f"stopping: {self.halt}")
        if stop_reason and self.driver is not None:
            for tid in item.trials.values():
                run = self.driver.running.get(tid)
                if tid != skip and run is not None and not run.stopping:
                    self.driver.request_stop(run, stop_reason)
        self._tell_user(item, state, value)

    def _save(self, item: _Open, state: str, *, value: float | None = None, step: int | None = None,
              error: str | None = None) -> None:
        self.store.save_configuration(Configuration(
            self.record.id, item.number, item.params, state, item.created, value,
            {str(s): v for s, v in item.values.items()}, step, error, None if state == "running" else now()))

    def _tell_user(self, item: _Open, state: str, value: float | None) -> None:
        try:
            best = self.study.best_trial
        except ValueError:
            best = None
        shown = f"{self.metric}={value:.6g}" if value is not None else state
        text = f"configuration {item.number}: {shown}"
        if best is not None and best.value is not None:
            text += f" (best so far: {best.value:.6g}, configuration {best.number})"
        self.reporter.message(text)


