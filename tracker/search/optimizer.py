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
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracker import codeset, experiments, gitinfo
from tracker.config import ExperimentConfig, check_tags
from tracker.errors import UsageError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.execution.driver import Driver
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.search import space as spacelib
from tracker.search import strategies
from tracker.store import Configuration, MetricPoint, Optimization, Trial, now

AGGREGATES = {"mean": statistics.fmean, "median": statistics.median}
DEFAULT_BUDGET = 20
"""Configurations a search tries when neither --trials nor --timeout is given (grid: the whole grid)."""
DEFAULT_MAX_FAILURES = 5
"""A search stops after this many configurations failed in a row."""
WILCOXON_P = 0.1
"""The p-value under which a configuration worse than the best on the same seeds is stopped."""


@dataclass(frozen=True)
class OptimizeOptions:
    """What ``tracker optimize`` was asked to do."""

    strategy: str = "tpe"
    trials: int | None = None  # configurations to try (each over every seed)
    timeout: float | None = None  # start no new configuration after this many seconds
    parallel: int | None = None
    remote: list[str] = field(default_factory=list)
    seeds: int | None = None  # first S preset seeds per configuration (default: the experiment's, else 1)
    aggregate: str = "mean"
    sampler_seed: int | None = None  # default: the project's master seed
    max_failures: int = DEFAULT_MAX_FAILURES  # 0: never stop for failures
    seed_pruning: bool = True  # stop a configuration worse than the best on the seeds done (Wilcoxon)
    tags: list[str] = field(default_factory=list)


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


# ---------------------------------------------------------------------------- settings


def _settings(project: Project, name: str, config: ExperimentConfig, options: OptimizeOptions,
              where: spacelib.Where) -> dict[str, Any]:
    """Check everything a search needs before anything is written; return the settings to record."""
    if config.objective is None:
        raise where.error(f"experiment {name!r} has no 'objective:' to optimise", "objective",
                          hint="add e.g. objective: {metric: val/acc, goal: max}")
    if options.aggregate not in AGGREGATES:
        raise UsageError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {options.aggregate!r}")
    _check_bounds(options.trials, options.timeout)
    tags = check_tags(options.tags)
    if options.max_failures < 0:
        raise UsageError(f"--max-failures must be 0 (never stop) or more, got {options.max_failures}")
    strategy = strategies.get(options.strategy)
    ranges = spacelib.ranges(config, where)
    strategy.sampler(None)  # a missing optional dependency (gp: torch) fails here, before any trial
    budget = options.trials
    if strategy.grid:
        _, values = spacelib.grid(ranges, where)
        size = math.prod(len(v) for v in values)
        budget = min(budget, size) if budget else size
    elif budget is None and options.timeout is None:
        budget = DEFAULT_BUDGET
    if options.seeds is not None and options.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {options.seeds}")
    spec = config.training_seeds
    if options.seeds is not None or not isinstance(spec, list):
        count = options.seeds or (spec if isinstance(spec, int) else 1)
        seeds = experiments.preset_seeds(project, count)[:count]
    else:
        seeds = list(spec)
    sampler_seed = options.sampler_seed
    if sampler_seed is None:
        sampler_seed = project.config.master_seed
    return {
        "metric": config.objective.metric, "goal": config.objective.goal, "seeds": seeds,
        "aggregate": options.aggregate, "budget": budget, "timeout": options.timeout,
        "sampler_seed": sampler_seed, "max_failures": options.max_failures,
        "seed_pruning": options.seed_pruning, "params": dict(config.params),
        "space": {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in ranges.items()},
        "config_hash": experiments.config_hash(config), "tags": tags,
        # Hyperband puts configuration k in a bracket by crc32(study name, k): a name from the seed,
        # not the optimization's random id, so the same sampler seed gives the same pruning
        "study_name": f"{name}-{sampler_seed}",
    }


def _check_bounds(trials: int | None, timeout: float | None) -> None:
    for flag, value in (("--trials", trials), ("--timeout", timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be positive, got {value}")


def _executor(project: Project, parallel: int | None, remote: list[str], reporter: Reporter,
              given: BaseExecutor | None) -> tuple[BaseExecutor, Any]:
    """The executor (and the project's venv, for a local search) a search runs its trials on;
    ``given`` is used as it is. A bad --parallel or --remote fails here."""
    from tracker import runs

    if given is not None:
        return given, None
    options = runs.RunOptions(parallel=parallel, remote=list(remote))
    return runs.in_venv(project, options, runs.make_executor(project, options), reporter)


def _space(settings: dict[str, Any]) -> dict[str, Any]:
    from tracker.config import SearchSpace

    return {k: SearchSpace(**v) for k, v in settings["space"].items()}


# ---------------------------------------------------------------------------- entry points


def optimize(project: Project, name: str, options: OptimizeOptions, reporter: Reporter | None = None,
             executor: BaseExecutor | None = None) -> OptimizeResult:
    """Start an optimization of experiment ``name`` and run it to its end; return where it ended."""
    from tracker import runs

    reporter = reporter or Reporter()
    config = experiments.load(project, name)
    where = spacelib.Where.of(project, name)
    settings = _settings(project, name, config, options, where)
    code = gitinfo.capture(project.root, project.config.code)  # outside git: refused before anything is written
    if line := codeset.left_out_line(code.left_out):
        reporter.message(line)
    executor, venv = _executor(project, options.parallel, options.remote, reporter, executor)
    lifecycle.reconcile(project)
    record = Optimization(id=runs.new_id(), experiment=name, strategy=options.strategy, settings=settings,
                          status="running", created=now(), owner=lifecycle.owner(), commit=code.commit)
    project.store.add_optimization(record)
    return _Search(project, record, config, executor, venv, code, reporter, []).run()


def resume(project: Project, ref: str, *, parallel: int | None = None, remote: list[str] | None = None,
           trials: int | None = None, timeout: float | None = None, reporter: Reporter | None = None,
           executor: BaseExecutor | None = None) -> OptimizeResult:
    """Continue an interrupted or finished optimization: the same study, nothing finished repeated.

    ``trials`` raises the number of configurations to try (the total, counting those done).
    """
    from tracker.search import results

    reporter = reporter or Reporter()
    store = project.store
    record = store.get_optimization(ref)
    lifecycle.reconcile(project)
    if record.settings.get("queue"):
        from tracker.search import distributed

        _check_bounds(trials, timeout)
        if parallel or remote:
            raise UsageError(f"optimization {record.id} is searched by the workers of queue "
                             f"{record.settings['queue']!r}; --parallel and --remote do not apply")
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
    _check_bounds(trials, timeout)
    settings = dict(record.settings)
    if trials is not None:
        settings["budget"] = trials
    if settings.get("budget") is None and timeout is None:  # it was bounded by time alone
        raise UsageError(f"optimization {record.id} had no --trials budget, only a --timeout, so a resume "
                         "needs one of them", hint=f"tracker optimize resume {record.id} --timeout SECONDS "
                                                   "(or --trials N, counting the configurations done)")
    settings["timeout"] = timeout
    code = gitinfo.capture(project.root, project.config.code)
    if code.commit != record.commit:
        reporter.message(f"note: the code moved on since the optimization started "
                         f"({(record.commit or '?')[:8]} -> {(code.commit or '?')[:8]}); new trials run on it")
    executor, venv = _executor(project, parallel, remote or [], reporter, executor)
    if not store.claim_optimization(record.id, lifecycle.owner(), unless=record.owner):
        raise UsageError(f"optimization {record.id} was resumed by another process meanwhile")
    store.update_optimization(record.id, settings=settings)
    record = store.get_optimization(record.id)
    return _Search(project, record, config, executor, venv, code, reporter,
                   store.configurations(record.id)).run()


# ---------------------------------------------------------------------------- the search


class _Search:
    """One process driving one optimization (see the module docstring)."""

    def __init__(self, project: Project, record: Optimization, config: ExperimentConfig, executor: BaseExecutor,
                 venv: Any, code: gitinfo.CodeState, reporter: Reporter, known: list[Configuration]) -> None:
        optuna = strategies.load_optuna()  # quiet: no log lines, no warning that WilcoxonPruner is experimental

        self.project = project
        self.store = project.store
        self.record = record
        self.config = config
        self.executor = executor
        self.venv = venv
        self.code = code
        self.reporter = reporter
        s = record.settings
        self.metric: str = s["metric"]
        self.goal: str = s["goal"]
        self.seeds: list[int] = list(s["seeds"])
        self.aggregate = AGGREGATES[s["aggregate"]]
        self.budget: int | None = s.get("budget")
        self.timeout: float | None = s.get("timeout")
        self.max_failures: int = s.get("max_failures", DEFAULT_MAX_FAILURES)
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
        self.failed_in_row = 0
        self.halt: str | None = None
        self.fatal: str | None = None
        self.driver: Driver | None = None
        self.env_id: str | None = None
        self.timed_out = False
        self.deadline = time.monotonic() + self.timeout if self.timeout else None
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
        from tracker import runs

        driver = self.driver = Driver(self.project, self.executor, self.reporter,
                                      pruner=self._prune if self.curves else None, on_end=self._ended)
        if self.budget:
            self.reporter.planned(max(self.budget - self._closed_count(), 0) * len(self.seeds)
                                  + sum(len(o.todo) for o in self.open.values()))
        status, error = "completed", None
        try:
            with runs.sigterm_as_interrupt():
                first = self._next()
                if first is not None:
                    driver.prepare([first])
                    driver.run(self._feed(first))
        except KeyboardInterrupt:
            self._finish("interrupted", "interrupted; 'tracker optimize resume' continues it")
            raise
        except BaseException as exc:
            self._finish("interrupted", f"interrupted by an error: {exc}")
            raise
        if self.fatal:
            status, error = "failed", self.fatal
        elif self.halt:
            status, error = "stopped", self.halt
        elif self.open:
            status, error = "stopped", (f"{len(self.open)} configuration(s) were interrupted (a trial was stopped "
                                        "or lost); 'tracker optimize resume' runs their seeds again")
        record = self._finish(status, error)
        from tracker.search import results

        confs = self.store.configurations(record.id)
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
        if self.budget is not None and self.made >= self.budget:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
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
        from tracker import runs

        if self.env_id is None:
            self.env_id = runs.record_environment(self.project, self.config.command_argv(), self.venv)
            self.store.save_experiment(self.record.experiment, self.config.model_dump(mode="json"),
                                       experiments.config_hash(self.config))
        params = {**self.record.settings.get("params", {}), **item.params}
        spec = TrialSpec(self.record.experiment, params, seed)
        _, (trial,) = runs.create_trials(
            self.project, [spec], {self.record.experiment: self.config}, self.code,
            {self.record.experiment: self.env_id}, self.executor.name, self.record.settings.get("tags", []),
            run_id=self.record.id, extra={"optimization": self.record.id, "configuration": item.number})
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
        if trial.status == "completed":
            value = trial.metrics.get(self.metric)
            if value is None:
                seen = ", ".join(sorted(trial.metrics)) or "none"
                self.fatal = (f"the objective metric {self.metric!r} was never reported by trial {trial.id} "
                              f"(metrics seen: {seen}); log it, e.g. print('{self.metric}: 0.9') or "
                              f"tracker.log(**{{'{self.metric}': value}}), or fix 'objective:' in "
                              f"experiments/{self.record.experiment}.yaml")
                self._close(item, "failed", error=self.fatal)
                return
            item.values[seed] = value
            if not math.isfinite(value):
                self._close(item, "failed", error=f"trial {trial.id} reported {self.metric} = {value}")
                return
            if self.by_seed:
                item.trial.report(value, self.seeds.index(seed))
                if len(item.values) < len(self.seeds) and item.trial.should_prune():
                    self._close(item, "pruned", step=None,
                                stop_reason=f"pruned after {len(item.values)} seed(s): worse than the best "
                                            "configuration on the same seeds (Wilcoxon signed-rank test)")
                    return
            if len(item.values) == len(self.seeds):
                self._close(item, "complete", value=self.aggregate([item.values[s] for s in self.seeds]))
        elif trial.status == "pruned":
            step = trial.extra.get("pruned_step")
            self._close(item, "pruned", step=step, stop_reason=f"pruned at step {step} (with its configuration)")
        elif trial.status == "failed":
            self._close(item, "failed", error=f"trial {trial.id} failed: {trial.error or 'see its logs'}",
                        stop_reason="cancelled: another seed of its configuration failed")
        else:  # cancelled or lost: the configuration waits for 'resume'
            item.interrupted = True

    def _close(self, item: _Open, state: str, *, value: float | None = None, step: int | None = None,
               error: str | None = None, stop_reason: str | None = None, skip: str | None = None) -> None:
        """End a configuration: tell the study, record it, stop its other running seeds."""
        from optuna.trial import TrialState

        del self.open[item.number]
        if state == "complete":
            self.study.tell(item.trial, value)
            self.failed_in_row = 0
        else:
            self.study.tell(item.trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
        item.todo.clear()
        self._save(item, state, value=value, step=step, error=error)
        if state == "failed" and not self.fatal:
            self.failed_in_row += 1
            if self.max_failures and self.failed_in_row >= self.max_failures:
                self.halt = (f"{self.failed_in_row} configurations failed in a row, so no more were tried "
                             "(--max-failures 0 never stops)")
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


