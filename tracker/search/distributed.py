"""Distributed optimisation: one study in the store, searched together by every worker of a queue.

``tracker optimize EXPERIMENT --queue`` records the optimization (its space, seeds, budget and
the code and settings it runs with) and queues its first configuration; from then on no
process owns the search. A ``tracker worker`` of that queue that finds nothing queued asks
the study for the next configuration and queues one trial per seed, which any worker runs.

The study is rebuilt from the store at each ask: finished configurations as finished
trials, running ones as running trials (TPE's constant liar and the other samplers treat
them as pending, so workers do not all get the same suggestion). Configuration N is
inserted only if nobody inserted N first: a worker that loses that race rebuilds and asks
again. So the budget is never exceeded and a grid point is never made twice, however many
workers ask at once, without a lock held across machines. Whoever ends a configuration's
last trial records its value, and the optimization ends when its budget, grid or deadline
is spent and nothing runs.

Pruning on learning curves (hyperband, bohb) and paired seed pruning need one process
watching every trial; they are refused with ``--queue`` (run them with ``-j N``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tracker import experiments, gitinfo, runs
from tracker.config import ExperimentConfig
from tracker.errors import UsageError
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.search import space as spacelib
from tracker.search import strategies
from tracker.store import Configuration, Optimization, Trial, now

ASK_RETRIES = 50  # a worker that keeps losing the race for configuration N gives up this time


def start(project: Project, name: str, options: Any, *, queue: str, max_attempts: int | None = None) -> Optimization:
    """Record an optimization that the workers of ``queue`` run, and queue its first configuration."""
    from tracker.names import check_name
    from tracker.search.optimizer import _settings

    check_name("queue", queue)
    if options.parallel or options.remote:
        raise UsageError(f"{'--remote' if options.remote else '--parallel'} does not apply with --queue: workers "
                         "run the trials", hint="start 'tracker worker --queue NAME --slots N' where they should run")
    strategy = strategies.get(options.strategy)
    if strategy.curves:
        raise UsageError(f"--strategy {options.strategy} stops trials on their learning curves, which needs one "
                         "process watching every trial; with --queue use grid, random, tpe or gp",
                         hint=f"or run it here: tracker optimize {name} --strategy {options.strategy} -j N")
    config = experiments.load(project, name)
    settings = _settings(project, name, config, options, spacelib.Where.of(project, name))
    code = gitinfo.capture(project.root, project.config.code)
    attempts = project.config.queue.max_attempts if max_attempts is None else max_attempts
    if attempts < 1:
        raise UsageError(f"--max-attempts must be at least 1, got {attempts}")
    store = project.store
    blob = json.dumps(config.model_dump(mode="json", exclude_unset=True), sort_keys=True).encode()
    settings.update(
        queue=queue, max_attempts=attempts, seed_pruning=False,
        deadline=time.time() + options.timeout if options.timeout else None,
        code={"commit": code.commit, "branch": code.branch, "snapshot": code.snapshot,
              "patch_sha256": store.put_blob(code.patch) if code.patch else None,
              "config_sha256": store.put_blob(blob)})
    record = Optimization(id=runs.new_id(), experiment=name, strategy=options.strategy, settings=settings,
                          status="running", created=now(), owner={}, commit=code.commit)
    store.add_optimization(record)
    store.save_experiment(name, config.model_dump(mode="json"), experiments.config_hash(config))
    ask(project, record)
    return store.get_optimization(record.id)


def searches(project: Project, queue: str) -> list[Optimization]:
    """The running optimizations the workers of ``queue`` search."""
    return [o for o in project.store.list_optimizations() if o.status == "running" and o.settings.get("queue") == queue]


def _config(project: Project, record: Optimization) -> ExperimentConfig:
    data = project.store.blob(record.settings["code"]["config_sha256"])
    if data is None:
        raise UsageError(f"the settings of optimization {record.id} are missing from the store")
    return ExperimentConfig.model_validate(json.loads(data))


def _may_ask(record: Optimization, known: list[Configuration]) -> bool:
    s = record.settings
    if s.get("budget") is not None and len(known) >= s["budget"]:
        return False
    if s.get("deadline") is not None and time.time() >= s["deadline"]:
        return False
    return not _halted(record, known)


def _halted(record: Optimization, known: list[Configuration]) -> str | None:
    """Why no configuration should be made any more: too many failed in a row."""
    most = record.settings.get("max_failures") or 0
    ended = [c for c in known if c.state != "running"]
    tail = 0
    for conf in reversed(ended):
        if conf.state != "failed":
            break
        tail += 1
    if most and tail >= most:
        return (f"{tail} configurations failed in a row, so no more were tried (--max-failures 0 never stops)")
    return None


def ask(project: Project, record: Optimization) -> bool:
    """Make the optimization's next configuration and queue one trial per seed; False when it has no more
    to make now (budget, grid or deadline spent, or too many failures)."""
    optuna = strategies.load_optuna()
    from optuna.trial import TrialState, create_trial

    store = project.store
    s = record.settings
    space = {k: _space_entry(v) for k, v in s["space"].items()}
    dists = spacelib.distributions(space)
    strategy = strategies.get(record.strategy)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
              "running": TrialState.RUNNING}
    for _ in range(ASK_RETRIES):
        known = store.configurations(record.id)
        settle_all(project, record, known)
        known = store.configurations(record.id)
        if not _may_ask(record, known):
            finish_if_done(project, record)
            return False
        number = len(known)
        seed = s.get("sampler_seed")
        study = optuna.create_study(study_name=s.get("study_name", record.id),
                                    sampler=strategy.sampler(None if seed is None else (seed + number * 7919) % 2**32),
                                    direction="maximize" if s["goal"] == "max" else "minimize")
        for conf in known:
            study.add_trial(create_trial(state=states[conf.state], params=conf.params, distributions=dists,
                                         value=conf.value if conf.state == "complete" else None))
        if strategy.grid:
            names, values = spacelib.grid(space, spacelib.Where(f"experiments/{record.experiment}.yaml", {}))
            visited = {spacelib.key(c.params) for c in known}
            point = next((p for p in spacelib.grid_points(names, values, seed) if spacelib.key(p) not in visited),
                         None)
            if point is None:
                finish_if_done(project, record)
                return False
            study.enqueue_trial(point)
        live = study.ask(dists)
        params = {name: live.params[name] for name in dists}
        if store.add_configuration(Configuration(record.id, number, params, "running", now())):
            _queue_seeds(project, record, number, params)
            return True
    return False


def _space_entry(data: dict[str, Any]) -> Any:
    from tracker.config import SearchSpace

    return SearchSpace(**data)


def _queue_seeds(project: Project, record: Optimization, number: int, params: dict[str, Any]) -> list[Trial]:
    """Queue one trial per seed of configuration ``number``, on the code and settings the search started with."""
    store = project.store
    s = record.settings
    code = s["code"]
    patch = store.blob(code["patch_sha256"]) if code.get("patch_sha256") else b""
    state = gitinfo.CodeState(code["commit"], code.get("branch"), bool(patch), code.get("snapshot"), patch or b"", ())
    config = _config(project, record)
    specs = [TrialSpec(record.experiment, {**s.get("params", {}), **params}, seed) for seed in s["seeds"]]
    env_id = runs.record_environment(project, config.command_argv(), None)
    _, trials = runs.create_trials(project, specs, {record.experiment: config}, state, {record.experiment: env_id},
                                   "queue", s.get("tags", []), run_id=record.id,
                                   extra={"optimization": record.id, "configuration": number},
                                   queue=s["queue"], max_attempts=s.get("max_attempts", 1))
    return trials


def settle(project: Project, trial: Trial) -> None:
    """A trial of a distributed optimization ended: close its configuration if that was the last word."""
    ref = trial.extra.get("optimization")
    if not ref:
        return
    record = project.store.get_optimization(ref)
    if not record.settings.get("queue"):
        return
    settle_all(project, record, project.store.configurations(record.id))
    finish_if_done(project, record)


def settle_all(project: Project, record: Optimization, known: list[Configuration]) -> None:
    """Record the end of every running configuration whose trials have all ended (or one failed)."""
    from tracker.search.optimizer import AGGREGATES

    running = [c for c in known if c.state == "running"]
    if not running:
        return
    store = project.store
    s = record.settings
    metric, seeds = s["metric"], s["seeds"]
    by_number: dict[int, list[Trial]] = {}
    for t in store.list_trials(optimization=record.id):
        by_number.setdefault(t.extra.get("configuration", -1), []).append(t)
    for conf in running:
        trials = by_number.get(conf.number, [])
        values = {t.seed: t.metrics.get(metric) for t in trials if t.status == "completed"}
        bad = next((t for t in trials if t.status in ("failed", "lost", "cancelled", "pruned")), None)
        missing = next((t for t in trials if t.status == "completed" and values[t.seed] is None), None)
        error = None
        if missing is not None:
            error = (f"the objective metric {metric!r} was never reported by trial {missing.id}; log it, e.g. "
                     f"print('{metric}: 0.9')")
        elif bad is not None:
            error = f"trial {bad.id} {bad.status}: {(bad.error or 'see its logs').splitlines()[0]}"
        if error:
            for t in trials:  # its other seeds need not run
                if t.status == "queued":
                    store.transition(t.id, "cancelled", expected=["queued"], finished=now(),
                                     error="cancelled: another seed of its configuration did not complete")
            _save(project, conf, "failed", values, error=error)
        elif all(seed in values for seed in seeds):
            value = AGGREGATES[s["aggregate"]]([values[seed] for seed in seeds])
            _save(project, conf, "complete", values, value=value)


def _save(project: Project, conf: Configuration, state: str, values: dict[int, Any], *,
          value: float | None = None, error: str | None = None) -> None:
    project.store.save_configuration(Configuration(
        conf.optimization, conf.number, conf.params, state, conf.created, value,
        {str(k): v for k, v in values.items() if v is not None}, None, error, now()))


def finish_if_done(project: Project, record: Optimization) -> None:
    """End the optimization once it makes no more configurations and none runs."""
    store = project.store
    known = store.configurations(record.id)
    if any(c.state == "running" for c in known):
        return
    halt = _halted(record, known)
    if halt or not _may_ask(record, known):
        current = store.get_optimization(record.id)
        if current.status == "running":
            store.update_optimization(record.id, status="stopped" if halt else "completed", error=halt,
                                      finished=now())


def resume(project: Project, record: Optimization, *, trials: int | None, timeout: float | None) -> Optimization:
    """Let the workers go on with a distributed optimization: a new budget or deadline, status running."""
    settings = dict(record.settings)
    if trials is not None:
        settings["budget"] = trials
    settings["deadline"] = time.time() + timeout if timeout else None
    project.store.update_optimization(record.id, settings=settings, status="running", error=None, finished=None)
    record = project.store.get_optimization(record.id)
    ask(project, record)
    return project.store.get_optimization(record.id)
