"""``tracker test``: the held-out test phase, run once for the configuration validation chose.

Selection never looks at test data: the configuration is the one whose validation metric,
averaged over its training seeds, is best. Its test phase then runs once per trained model
(one test trial per training seed, each reading its training trial's directory through
``TRACKER_TRAIN_DIR``), on test seeds disjoint from the training and validation seeds. Each
test trial records what chose it: the metric, its value, and how many configurations were
tried, so a reader can judge how optimistic the selection was. Testing the same experiment
again is allowed but flagged: once test results have been seen, choosing again overfits them.
Each test is recorded in the store by configuration and code (:func:`use_key`), apart from the
trials: deleting test trials or copying the experiment file under a new name does not make a
second look at the test set count as the first.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker import experiments, gitinfo
from tracker.config import ExperimentConfig, selectable
from tracker.errors import UsageError
from tracker.execution.base import BaseExecutor, Reporter
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.store import TestUse, Trial, now

if TYPE_CHECKING:
    from tracker.execution.targets import Target


@dataclass(frozen=True)
class Selection:
    """The configuration validation chose, and what it was chosen among."""

    experiment: str
    metric: str
    goal: str
    params: dict[str, Any]
    value: float  # the metric's mean over the configuration's training seeds
    sources: list[Trial]  # its completed training trials, one per seed
    configurations: int  # how many configurations reported the metric


@dataclass(frozen=True)
class TestResult:
    """A ``tracker test``: the selection, its test trials (final) and the tests seen before it."""

    selection: Selection
    run: int  # 1 for an experiment's first test, 2 for its second...
    earlier: list[Trial] = field(default_factory=list)  # completed test trials of earlier tests
    trials: list[Trial] = field(default_factory=list)

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status != "completed"]

    def as_dict(self) -> dict[str, Any]:
        """What ``tracker test --json`` prints."""
        s = self.selection
        return {"experiment": s.experiment, "selected_by": s.metric, "goal": s.goal, "params": s.params,
                "validation": s.value, "configurations": s.configurations, "run": self.run,
                "seen_before": len(self.earlier) > 0, "metrics": test_means(self.trials),
                "trials": [t.summary() for t in self.trials]}


def _goal(config: ExperimentConfig, metric: str, goal: str | None) -> str:
    if goal is not None:
        if goal not in ("min", "max"):
            raise UsageError(f"--goal must be min or max, got {goal!r}")
        return goal
    if config.objective is not None and config.objective.metric == metric:
        return config.objective.goal
    raise UsageError(f"cannot tell whether {metric} is better high or low",
                     hint="pass --goal max or --goal min, or make it the experiment's objective")


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def select(project: Project, name: str, metric: str, goal: str | None = None) -> Selection:
    """The configuration of experiment ``name`` with the best mean of ``metric`` over its seeds.

    Only completed training trials count. ``metric`` must not be a test metric.
    """
    config = experiments.load(project, name)
    try:
        selectable(metric)
    except ValueError as exc:
        raise UsageError(f"--best {exc}") from None
    trials = [t for t in project.store.list_trials(experiment=[name], status=["completed"]) if t.phase == "train"]
    if not trials:
        raise UsageError(f"experiment {name!r} has no completed training trials to choose from",
                         hint=f"run it first: tracker run {name}")
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        if metric in t.metrics:
            groups.setdefault(_key(t.params), []).append(t)
    if not groups:
        seen = sorted({m for t in trials for m in t.metrics})
        raise UsageError(f"no completed trial of {name!r} reported {metric}",
                         hint=f"metrics reported: {', '.join(seen) or 'none'}")
    goal = _goal(config, metric, goal)
    means = {key: statistics.fmean(t.metrics[metric] for t in group) for key, group in groups.items()}
    best = (max if goal == "max" else min)(means, key=lambda k: means[k])
    sources = sorted(groups[best], key=lambda t: (t.created, t.id))
    latest: dict[int | None, Trial] = {}
    for t in sources:  # a seed run twice (--rerun): its latest model is the one tested
        latest[t.seed] = t
    return Selection(name, metric, goal, sources[0].params, means[best], list(latest.values()), len(groups))


def use_key(project: Project, config: ExperimentConfig, params: dict[str, Any], code: gitinfo.CodeState) -> str:
    """What a test use is counted by: the configuration (its commands and params) and the code
    (every file of the commit, or of the snapshot of a dirty tree, but the experiment files and
    tracker.yaml), not the experiment's name: a copied or renamed experiment file counts the same."""
    import hashlib

    rev = code.snapshot or code.commit
    listing = gitinfo.git(project.root, "ls-tree", "-r", rev).splitlines() if rev else []
    files = [line for line in listing if not line.split("\t", 1)[-1].startswith(("experiments/", "tracker.yaml"))]
    what = {"train": config.phase("train").argv(config.command), "test": config.phase("test").argv(config.command),
            "params": params, "code": hashlib.sha256("\n".join(files).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _where(uses: Sequence[TestUse], name: str) -> str:
    """", as experiment 'copy'" when the configuration was tested under other experiment names."""
    others = sorted({u.experiment for u in uses} - {name})
    return f", as experiment {', '.join(map(repr, others))}" if others else ""


def earlier_tests(project: Project, name: str) -> list[Trial]:
    """The completed test trials of experiment ``name`` (test results already seen)."""
    return [t for t in project.store.list_trials(experiment=[name], status=["completed"]) if t.phase == "test"]


def test_means(trials: Sequence[Trial]) -> dict[str, float]:
    """Each test metric's mean over the completed test trials."""
    values: dict[str, list[float]] = {}
    for t in trials:
        if t.status == "completed":
            for name, value in t.metrics.items():
                values.setdefault(name, []).append(value)
    return {name: statistics.fmean(v) for name, v in sorted(values.items())}


def run_test(project: Project, name: str, metric: str, *, goal: str | None = None, parallel: int | None = None,
             reporter: Reporter | None = None, executor: BaseExecutor | None = None,
             target: str | Target | None = None) -> TestResult:
    """Select the best configuration of ``name`` by ``metric`` and run its test phase once per training seed.

    Refused when the experiment has no test phase. When test results of ``name`` were seen
    before, ``reporter`` gets a warning saying so and the run is numbered accordingly.
    """
    from tracker import runs

    reporter = reporter or Reporter()
    config = experiments.load(project, name)
    if "test" not in config.phases:
        raise UsageError(f"experiment {name!r} has no test phase",
                         hint="add one, e.g. 'phases: {test: python evaluate.py --split test}' (see docs/phases.md)")
    selection = select(project, name, metric, goal)
    code = gitinfo.capture(project.root, project.config.code)
    key = use_key(project, config, selection.params, code)
    earlier = earlier_tests(project, name)
    uses = project.store.test_uses(key)
    done = sorted({t.extra.get("test", {}).get("run", 1) for t in earlier})
    run = max(done[-1] if done else 0, len(uses)) + 1
    if earlier or uses:
        first = min([t.created for t in earlier] + [u.at for u in uses])
        reporter.message(f"warning: test results of {name!r} were already seen ({run - 1} earlier test run(s), "
                         f"first on {first[:10]}{_where(uses, name)}); choosing again after seeing them makes "
                         "test results optimistic, so report the first test")
    seeds = experiments.evaluation_seeds(project, name, config, "test", [t.seed for t in selection.sources])
    missing = [t.id for t in selection.sources if not project.paths.trial_dir(t.id).is_dir()]
    if missing:
        raise UsageError(f"the outputs of training trial {missing[0]} are not on this machine",
                         hint=f"restore them first (tracker restore {missing[0]})")
    info = {"metric": metric, "goal": selection.goal, "value": selection.value,
            "configurations": selection.configurations, "run": run}
    specs = [TrialSpec(name, t.params, t.seed, phase="test",
                       extra={"eval_seeds": {"test": seeds}, "test": {**info, "source": t.id}})
             for t in selection.sources]
    start = runs.launcher(project, runs.RunOptions(parallel=parallel, target=target), reporter, executor)
    start.prepare()
    env_ids = start.record({name: config}, phase="test")
    trials = start.create(specs, {name: config}, code, env_ids, ["test"])
    project.store.record_test_use(TestUse(key, name, selection.params, code.commit, trials[0].run_id, now()))
    final = start.drive(trials, start.driver(max_failures=0))
    return TestResult(selection, run, earlier, final)
