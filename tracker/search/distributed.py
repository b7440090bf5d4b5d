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
from typing import Any

from tracker import experiments, gitinfo
from tracker.config import ExperimentConfig
from tracker.errors import UsageError
from tracker.execution import lifecycle
from tracker.experiments import TrialSpec
from tracker.launch import Launcher, new_id
from tracker.project import Project
from tracker.search import rules, strategies
from tracker.search import space as spacelib
from tracker.store import Configuration, Optimization, Trial, now

ASK_RETRIES = 50  # a worker that keeps losing the race for configuration N gives up this time


def start(project: Project, name: str, options: Any, *, queue: str, max_attempts: int | None = None) -> Optimization:
    """Record an optimization that the workers of ``queue`` run, and queue its first configuration."""
    from tracker.names import check_name

    check_name("queue", queue)
    if options.parallel or options.remote or options.target:
        flag = "--remote" if options.remote else "--target" if options.target else "--parallel"
        raise UsageError(f"{flag} does not apply with --queue: workers "
                         "run the trials", hint="start 'tracker worker --queue NAME --slots N' where they should run")
    strategy = strategies.get(options.strategy)
    if strategy.curves:
        raise UsageError(f"--strategy {options.strategy} stops trials on their learning curves, which needs one "
                         "process watching every trial; with --queue use grid, random, tpe or gp",
                         hint=f"or run it here: tracker optimize {name} --strategy {options.strategy} -j N")
    config = experiments.load(project, name)
    settings = rules.settings(project, name, config, options, spacelib.Where.of(project, name))
    code = gitinfo.capture(project.root, project.config.code)
    attempts = project.config.queue.max_attempts if max_attempts is None else max_attempts
    if attempts < 1:
        raise UsageError(f"--max-attempts must be at least 1, got {attempts}")
    store = project.store
    blob = json.dumps(config.model_dump(mode="json", exclude_unset=True), sort_keys=True).encode()
    settings.update(
        queue=queue, max_attempts=attempts, seed_pruning=False, deadline=rules.deadline(options.timeout),
        code={"commit": code.commit, "branch": code.branch, "snapshot": code.snapshot,
              "patch_sha256": store.put_blob(code.patch) if code.patch else None,
              "config_sha256": store.put_blob(blob)})
    record = Optimization(id=new_id(), experiment=name, strategy=options.strategy, settings=settings,
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
    return not (rules.budget_spent(s, len(known)) or rules.past_deadline(s) or rules.halted(s, known))


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


def _queue_seeds(project: Project, record: Optimization, number: int, params: dict[str, Any],
                 seeds: list[int] | None = None) -> list[Trial]:
    """Queue one trial per seed of configuration ``number`` (default: every seed), on the code and
    settings the search started with."""
    store = project.store
    s = record.settings
    code = s["code"]
    patch = store.blob(code["patch_sha256"]) if code.get("patch_sha256") else b""
    state = gitinfo.CodeState(code["commit"], code.get("branch"), bool(patch), code.get("snapshot"), patch or b"", ())
    configs = {record.experiment: _config(project, record)}
    specs = [TrialSpec(record.experiment, {**s.get("params", {}), **params}, seed)
             for seed in (s["seeds"] if seeds is None else seeds)]
    start = Launcher(project, queue=s["queue"], max_attempts=s.get("max_attempts", 1))
    return start.create(specs, configs, state, start.record(configs), s.get("tags", []), run_id=record.id,
                        extra={"optimization": record.id, "configuration": number})


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
    """Record the end of every running configuration whose seeds say so (:func:`rules.seed_end`):
    complete once every seed has a value, failed or pruned at the first seed that is; a seed
    cancelled or lost leaves it running (interrupted) for ``resume``."""
    running = [c for c in known if c.state == "running"]
    if not running:
        return
    store = project.store
    s = record.settings
    metric, seeds = s["metric"], s["seeds"]
    by_number = _by_number(project, record)
    fatal = None
    for conf in running:
        values: dict[int, Any] = {}
        verdict: tuple[str, str | None] | None = None
        trials = by_number.get(conf.number, [])
        for t in trials:
            if t.status in ("queued", "running"):
                continue
            end = rules.seed_end(metric, t, record.experiment)
            if end.value is not None:
                values[t.seed or 0] = end.value
            if end.kind in ("failed", "missing", "pruned") and verdict is None:
                verdict = ("pruned" if end.kind == "pruned" else "failed", end.error)
            if end.kind == "missing":
                fatal = end.error
        if verdict is not None:
            lifecycle.cancel_unstarted(store, [t.id for t in trials if t.status == "queued"],  # its other seeds
                                       "cancelled: another seed of its configuration did not complete")
            _save(project, conf, verdict[0], values, error=verdict[1])
        elif all(seed in values for seed in seeds):
            _save(project, conf, "complete", values,
                  value=rules.AGGREGATES[s["aggregate"]]([values[seed] for seed in seeds]))
    if fatal and store.get_optimization(record.id).status == "running":  # the experiment is wrong: stop
        store.update_optimization(record.id, status="failed", error=fatal, finished=now())


def _by_number(project: Project, record: Optimization) -> dict[int, list[Trial]]:
    """The optimization's trials by configuration number."""
    out: dict[int, list[Trial]] = {}
    for t in project.store.list_trials(optimization=record.id):
        out.setdefault(t.extra.get("configuration", -1), []).append(t)
    return out


def interrupted(project: Project, record: Optimization, known: list[Configuration]) -> list[Configuration]:
    """The running configurations with a seed cancelled or lost and no trial queued or running
    any more: they wait for ``resume``."""
    states: dict[int, set[str]] = {}
    for t in project.store.list_trials(optimization=record.id):
        states.setdefault(t.extra.get("configuration", -1), set()).add(t.status)
    return [c for c in known if c.state == "running" and states.get(c.number, set()) & {"cancelled", "lost"}
            and not states[c.number] & {"queued", "running"}]


def _save(project: Project, conf: Configuration, state: str, values: dict[int, Any], *,
          value: float | None = None, error: str | None = None) -> None:
    project.store.save_configuration(Configuration(
        conf.optimization, conf.number, conf.params, state, conf.created, value,
        {str(k): v for k, v in values.items() if v is not None}, None, error, now()))


def finish_if_done(project: Project, record: Optimization) -> None:
    """End the optimization once it makes no more configurations and none runs (an interrupted
    one waits for ``resume``): ``failed`` when every configuration failed, else ``completed``,
    or ``stopped`` (too many failures in a row, or interrupted configurations)."""
    store = project.store
    known = store.configurations(record.id)
    waiting = interrupted(project, record, known)
    if sum(c.state == "running" for c in known) > len(waiting):
        return
    halt = rules.halted(record.settings, known)
    if halt or not _may_ask(record, known):
        every = rules.all_failed(known)
        if every:
            status, error = "failed", f"{halt}; {every}" if halt else every
        elif halt:
            status, error = "stopped", halt
        elif waiting:
            status, error = "stopped", rules.interrupted_note(len(waiting))
        else:
            status, error = "completed", None
        current = store.get_optimization(record.id)
        if current.status == "running":
            store.update_optimization(record.id, status=status, error=error, finished=now())


def resume(project: Project, record: Optimization, *, trials: int | None, timeout: float | None) -> Optimization:
    """Let the workers go on with a distributed optimization: a new budget or deadline, status
    running, and the missing seeds of interrupted configurations queued again."""
    known = project.store.configurations(record.id)
    settings = rules.resumed(record.settings, len(known), trials=trials, timeout=timeout)
    project.store.update_optimization(record.id, settings=settings, status="running", error=None, finished=None)
    record = project.store.get_optimization(record.id)
    by_number = _by_number(project, record)
    for conf in interrupted(project, record, known):
        done = {t.seed for t in by_number.get(conf.number, []) if t.status == "completed"}
        _queue_seeds(project, record, conf.number, conf.params, [s for s in settings["seeds"] if s not in done])
    ask(project, record)
    return project.store.get_optimization(record.id)
