"""``tracker compare``: configurations of experiments, aggregated over seeds, with honest tests.

A *row* is one configuration (an experiment and its params; with ``by`` only those params, the
others and the experiments aggregated over) and its values of one metric on each seed: the trial's
last value, averaged over the trials of the row that ran that seed. Rows are ranked by what the
chosen statistic (mean, median or IQM) is at least worth with 95% confidence: the lower bound of
its bootstrap interval when higher is better, the upper bound when lower is better. So one lucky
seed does not outrank ten good ones. Rows with fewer than ``min_seeds`` seeds (default 2: no
interval) are not ranked: they follow the ranked rows, by their statistic. Every other row is
then compared with the best:

- **paired** when the two rows share at least 2 seeds (only the shared seeds count): the paired
  t-test, and Wilcoxon's signed-rank test; effect size Cohen's d_z;
- otherwise **unpaired**: Welch's t-test and the Mann-Whitney U test; effect size Hedges' g.

The t-test is the primary test (its p-value, Holm-adjusted over the k - 1 comparisons, decides
"significant" at 0.05): with the 3-10 seeds experiments usually have, rank tests cannot reach
small p-values at all (Wilcoxon over 5 seeds: never below 0.0625). Both p-values are in
``as_dict()``. The probability of improvement P(best beats other) is U / (n m) (Agarwal et al.
2021), averaged over the experiments both rows ran in (experiments are the tasks). See
docs/compare.md.
"""

from __future__ import annotations

import gc
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from tracker.errors import MissingDependencyError, NotFoundError, UsageError
from tracker.project import Project

STATS = ("mean", "median", "iqm")
GOALS = ("min", "max")
PHASES = ("train", "test")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Row:
    """One configuration aggregated over seeds (``values[i]`` is its value on ``seeds[i]``).

    ``std`` is None for one seed; ``ci_low``/``ci_high`` bound the chosen statistic (``value``)
    with 95% confidence (bootstrap), None for fewer than 2 seeds. ``best_step_value`` is the mean
    over trials of each trial's best value along its curve, ``best_step`` the mean step of it.
    ``ranked`` is False for a row with fewer seeds than the comparison's ``min_seeds``.
    """

    experiment: str
    params: dict[str, Any]
    n: int
    seeds: list[int | None]
    values: list[float]
    trial_ids: list[str]
    mean: float
    std: float | None
    median: float
    iqm: float
    value: float
    min: float
    max: float
    ci_low: float | None
    ci_high: float | None
    best_step_value: float | None
    best_step: float | None
    experiments: list[str] = field(default_factory=list)  # every experiment the row's trials belong to
    ranked: bool = True


@dataclass(frozen=True)
class Pair:
    """Row ``b`` against the best row ``a``: ``difference`` is stat(b) - stat(a) (on the shared seeds
    when ``paired``), with its 95% bootstrap interval; ``n`` counts the shared seeds when paired,
    else both rows' seeds (``n_a`` + ``n_b``); ``p_value`` is the primary (t) test's,
    ``p_adjusted`` Holm's over every pair, ``p_rank`` the rank test's (Wilcoxon or Mann-Whitney).
    ``effect_size`` is Cohen's d_z (paired) or Hedges' g of b - a. ``prob_improvement`` is
    P(a better than b). ``needed_seeds``: seeds per configuration a t-test would need to detect
    an effect this large 80% of the time, when this one is not significant. ``shared``: the seeds
    both rows ran (a pair is paired from 2 on)."""

    a: int
    b: int
    paired: bool
    n: int
    test: str
    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    effect_size: float | None
    effect: str
    significant: bool
    needed_seeds: int | None
    sentence: str
    rank_test: str = ""
    p_rank: float | None = None
    prob_improvement: float | None = None
    n_a: int = 0
    n_b: int = 0
    shared: int = 0


@dataclass(frozen=True)
class Comparison:
    """The rows (best first) and the pairs of a comparison of ``metric`` (``goal``: min or max)."""

    metric: str
    goal: str
    stat: str
    rows: list[Row]
    pairs: list[Pair]
    experiments: list[str] = field(default_factory=list)
    phase: str = "train"
    by: list[str] | None = None
    where: str | None = None
    goal_source: str = "default"  # "objective of EXP", "--goal" or "default"
    trials: int = 0  # completed trials compared
    missing: int = 0  # completed trials (that passed --where) without a finite value of the metric
    min_seeds: int = 2  # rows with fewer seeds are not ranked
    tags: list[str] = field(default_factory=list)  # only trials with every one of these tags
    repeated: int = 0  # (row, seed) units with more than one trial, whose values were averaged

    def as_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON values (what ``tracker compare --json`` prints)."""
        top = {f.name: getattr(self, f.name) for f in fields(self)}
        row_names, pair_names = [f.name for f in fields(Row)], [f.name for f in fields(Pair)]  # once, not per row
        top["rows"] = [{n: getattr(r, n) for n in row_names} for r in self.rows]
        top["pairs"] = [{n: getattr(p, n) for n in pair_names} for p in self.pairs]
        return top


def _num(value: Any) -> float | None:
    """A float, None for NaN/None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------- choices


def _in_phase(metric: str, phase: str) -> str:
    """An objective's (validation) metric as the ``phase`` trials name it: val/acc is test/acc in tests."""
    return metric if phase != "test" else f"test/{metric.split('/', 1)[-1]}"


def _objective(project: Project, experiments: Sequence[str], metric: str | None,
               goal: str | None, phase: str) -> tuple[str, str, str]:
    """The metric, goal and where the goal came from (an objective, --goal or the default)."""
    from tracker import experiments as exps

    objectives: dict[str, tuple[str, str]] = {}
    for name in experiments:
        if name not in exps.names(project):
            continue  # only in the store (its file was deleted): no objective to read
        config = exps.load(project, name)
        if config.objective is not None:
            objectives[name] = (_in_phase(config.objective.metric, phase), config.objective.goal)
    if metric is None:
        found = {m for m, _ in objectives.values()}
        if not found:
            raise UsageError(f"{', '.join(experiments)} name{'s' if len(experiments) == 1 else ''} no objective, "
                             "so tracker does not know which metric to compare", hint="give --metric, e.g. "
                             "--metric val/acc")
        if len(found) > 1 or len(objectives) < len(experiments):
            said = ", ".join(f"{e}: {objectives[e][0] if e in objectives else 'none'}" for e in experiments)
            raise UsageError(f"the experiments' objectives differ ({said})",
                             hint="say which metric to compare with --metric")
        metric = found.pop()
    if goal is not None:
        return metric, goal, "--goal"
    for name, (m, g) in objectives.items():
        if m == metric:
            return metric, g, f"objective of {name}"
    return metric, "max", "default"


def _check(experiments: Sequence[str], stat: str, goal: str | None, phase: str) -> None:
    if not experiments:
        raise UsageError("name at least one experiment to compare", hint="e.g. tracker compare baseline")
    for value, allowed, option in ((stat, STATS, "--stat"), (phase, PHASES, "--phase")):
        if value not in allowed:
            raise UsageError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    if goal is not None and goal not in GOALS:
        raise UsageError(f"--goal must be min or max, not {goal!r}")


def _not_a_test_ranking(metric: str, phase: str) -> None:
    """Ranking configurations chooses among them: a test metric may rank only test trials (their report)."""
    from tracker.config import is_test_metric

    if phase != "test" and is_test_metric(metric):
        raise UsageError(f"{metric!r} is a test metric: ranking {phase} trials by it would choose a configuration "
                         "on the test set", hint="compare a validation metric (--metric val/acc), or the test "
                                                 "results of 'tracker test' with --phase test")


# ---------------------------------------------------------------------------------------------- rows


@dataclass
class _Group:
    """The trials of one row while they are collected: seed -> values, experiment -> seed -> values."""

    experiment_order: list[str]
    params: dict[str, Any]
    by_seed: dict[Any, list[float]] = field(default_factory=lambda: defaultdict(list))
    tasks: dict[str, dict[Any, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    best: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def _units(by_seed: dict[Any, list[float]]) -> tuple[list[int | None], list[float]]:
    """One value per seed (the mean of the trials on it), seeds in order; trials without a seed
    are units of their own."""
    seeded = sorted(s for s in by_seed if not isinstance(s, tuple))
    unseeded = [s for s in by_seed if isinstance(s, tuple)]  # ("none", trial id)
    values = [v[0] if len(v) == 1 else math.fsum(v) / len(v) for v in map(by_seed.__getitem__, seeded)]
    return [*seeded, *(None for _ in unseeded)], values + [by_seed[s][0] for s in unseeded]


def _canonical(params: dict[str, Any]) -> Any:
    """A hashable key equal for equal params in any key order."""
    try:
        key = tuple(sorted((k, type(v).__name__, v) for k, v in params.items()))  # 1 and 1.0 stay apart
        hash(key)
        return key
    except TypeError:  # list or dict values
        return json.dumps(params, sort_keys=True)


def _collect(project: Project, experiments: list[str], metric: str, goal: str, phase: str,
             by: list[str] | None, where: str | None, tags: list[str]) -> tuple[list[_Group], int, int]:
    """Read the trials (one query; one more for ``tags``) and group them into rows; also how many
    were read and how many lacked the metric."""
    from tracker.analysis import where as where_lang

    store = project.store
    tagged = ({row[0] for row in store.table([], [], experiment=experiments, status="completed", tags=tags)}
              if tags else None)
    condition = where_lang.parse(where) if where is not None else None
    params_known: list[str] | None = None
    metrics_known: list[str] | None = None
    if condition is not None or by:
        params_known, metrics_known = store.key_names(experiment=experiments, status="completed")
    if condition is not None:
        where_lang.check_names(condition, params_known or [], metrics_known or [])
    if by:
        unknown = [b for b in by if b not in (params_known or []) and b != "experiment"]
        if unknown:
            raise UsageError(f"--by names {', '.join(map(repr, unknown))}, which no selected trial has as a param",
                             hint=f"params: {', '.join(sorted(params_known or [])) or 'none'} (or 'experiment')")
    also = [n for n in (condition.names if condition else []) if n not in (params_known or [])
            and n in (metrics_known or [])]
    rows = store.metric_rows(metric, experiments=experiments, phase=phase, goal=goal, also=also)
    if not rows or tagged == set():
        how = (f"tracker test {experiments[0]} --best {metric}" if phase == "test" else
               f"tracker run {' '.join(experiments)}")
        tagged_with = f" tagged {', '.join(tags)}" if tagged == set() else ""
        raise UsageError(f"no completed {phase} trials of {', '.join(experiments)}{tagged_with} to compare",
                         hint=f"make some with '{how}{' --tag ' + ' --tag '.join(tags) if tagged_with else ''}'")
    # per distinct params text (a few thousand at most): the params, the row key they give, the params shown
    seen: dict[str, tuple[dict[str, Any], Any, dict[str, Any]]] = {}
    per_experiment = by is None or "experiment" in by
    several = len(experiments) > 1
    groups: dict[Any, _Group] = {}
    order = {e: i for i, e in enumerate(experiments)}
    missing = 0
    kept = 0
    for trial_id, experiment, seed, params_text, value, best, step, *extra in rows:
        hit = seen.get(params_text)
        if hit is None:
            params = json.loads(params_text)
            if by is None:
                hit = (params, _canonical(params), params)
            else:
                shown = {b: params.get(b) for b in by if b != "experiment"}
                hit = (params, tuple(json.dumps(v, sort_keys=True) for v in shown.values()), shown)
            seen[params_text] = hit
        params, key, shown = hit
        if tagged is not None and trial_id not in tagged:
            continue
        if condition is not None:
            metric_values = dict(zip(also, extra, strict=True))

            def get(name: str, params: dict[str, Any] = params, metric_values: dict[str, Any] = metric_values,
                    seed: Any = seed, experiment: str = experiment) -> Any:
                if name in params:
                    return params[name]
                if name in metric_values:
                    return where_lang.MISSING if metric_values[name] is None else metric_values[name]
                return {"seed": seed, "experiment": experiment}.get(name, where_lang.MISSING)

            if not condition.test(get):
                continue
        kept += 1
        if value is None or not math.isfinite(value):  # never logged, or nan / inf (a diverged run)
            missing += 1
            continue
        if per_experiment:
            key = (experiment, key)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group([experiment], shown)
        elif experiment not in group.experiment_order:
            group.experiment_order.append(experiment)
        unit = seed if seed is not None else ("none", trial_id)
        group.by_seed[unit].append(value)
        if several:  # the tasks of the probability of improvement
            group.tasks[experiment][unit].append(value)
        group.ids.append(trial_id)
        if best is not None and math.isfinite(best):
            group.best.append(best)
            if step is not None:
                group.steps.append(step)
    for group in groups.values():
        group.experiment_order.sort(key=lambda e: order[e])
    if kept and missing == kept:
        _, names = store.key_names(experiment=experiments, status="completed")
        raise UsageError(f"no completed {phase} trial of {', '.join(experiments)} has the metric {metric!r}",
                         hint=f"metrics that exist: {', '.join(sorted(names)) or 'none'}")
    return list(groups.values()), kept, missing


def _rows(groups: list[_Group], stat: str, goal: str, trials: int, min_seeds: int) -> list[tuple[Row, _Group]]:
    """Summaries of every group (vectorised per number of seeds) with their groups, best first: the
    rows with ``min_seeds`` or more by their interval's worse bound, then the others by ``stat``."""
    import numpy as np

    from tracker.analysis import stats

    units = [_units(g.by_seed) for g in groups]
    by_n: dict[int, list[int]] = defaultdict(list)
    for i, (_, values) in enumerate(units):
        by_n[len(values)].append(i)
    summaries: list[dict[str, Any]] = [{} for _ in groups]
    resamples = stats.resamples(trials)
    for n, members in by_n.items():
        matrix = np.array([units[i][1] for i in members], dtype=float)
        columns = {k: v.tolist() for k, v in stats.summary(matrix).items() if k != "n"}  # numbers, not numpy
        low, high = (v.tolist() for v in stats.bootstrap_ci([matrix], stat, n_resamples=resamples))
        for j, i in enumerate(members):
            summaries[i] = {k: v[j] for k, v in columns.items()}
            summaries[i]["n"] = n
            summaries[i]["ci"] = (_num(low[j]), _num(high[j])) if n >= 2 else (None, None)
    rows = []
    for g, (seeds, values), s in zip(groups, units, summaries, strict=True):
        rows.append(Row(
            experiment=",".join(g.experiment_order), params=g.params, n=s["n"], seeds=seeds, values=values,
            trial_ids=g.ids, mean=s["mean"], std=_num(s["std"]), median=s["median"], iqm=s["iqm"],
            value=s[stat], min=s["min"], max=s["max"], ci_low=s["ci"][0], ci_high=s["ci"][1],
            best_step_value=math.fsum(g.best) / len(g.best) if g.best else None,
            best_step=math.fsum(g.steps) / len(g.steps) if g.steps else None,
            experiments=list(g.experiment_order), ranked=s["n"] >= min_seeds))
    sign = -1.0 if goal == "max" else 1.0

    def rank(row: Row) -> tuple[bool, float, float, int]:
        bound = row.ci_low if goal == "max" else row.ci_high
        worst = row.value if bound is None or not row.ranked else bound  # NaN interval (inf values): its value
        # ties: the better value, more seeds, then the order the configurations were first run in (a stable sort)
        return not row.ranked, sign * worst, sign * row.value, -row.n

    return sorted(zip(rows, groups, strict=True), key=lambda rg: rank(rg[0]))


# ---------------------------------------------------------------------------------------------- pairs


def _label(row: Row, other: Row) -> str:
    """``row`` in a few words: the params (and experiment) where it differs from ``other``."""
    parts = [] if row.experiment == other.experiment else [row.experiment]
    parts += [f"{k}={_fmt_param(v)}" for k, v in row.params.items() if other.params.get(k, object()) != v]
    return " ".join(parts) or ", ".join(f"{k}={_fmt_param(v)}" for k, v in row.params.items()) or row.experiment


def _fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else json.dumps(value)


def _fmt(value: float | None, digits: int = 3) -> str:
    """A number for sentences: ``digits`` significant digits."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if value != 0 else "0"


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def _sentence(rows: list[Row], pair: dict[str, Any], goal: str) -> str:
    """The pair in one plain sentence (``pair``: the Pair's fields but the sentence)."""
    from tracker.analysis.stats import MAX_SEEDS

    a, b = rows[pair["a"]], rows[pair["b"]]
    n, n_a, n_b, needed, p_adj = pair["n"], pair["n_a"], pair["n_b"], pair["needed_seeds"], pair["p_adjusted"]
    first, second = _label(a, b), _label(b, a)
    gain = -pair["difference"] if goal == "max" else pair["difference"]  # > 0: a is better
    low, high = pair["ci_low"], pair["ci_high"]
    if low is not None and high is not None and goal == "max":
        low, high = -high, -low
    if gain < 0:  # on the shared seeds the order can flip
        first, second, gain = second, first, -gain
        low, high = (None, None) if low is None or high is None else (-high, -low)
    ci = f" (95% CI {_fmt(low)}..{_fmt(high)})" if low is not None and high is not None else ""
    head = f"{first} and {second} are equal" if gain == 0 else f"{first} is better than {second} by {_fmt(gain)}{ci}"
    shared = pair["shared"]
    if pair["paired"]:
        over = f"over {n} shared seeds"
    elif n_a == n_b == 1:
        over = "over 1 shared seed" if shared else "over 1 seed each (no shared seeds)"
    else:
        over = f"over {n_a} and {n_b} seeds ({'1 shared seed, too few to pair' if shared else 'no shared seeds'})"
    if p_adj is None:
        why = ("too few seeds for a test" if min(n_a, n_b) < 2 or n < 2 else
               "no test possible: the values do not vary")
        return f"{head}, {over}: {why}"
    verdict = "significant" if pair["significant"] else "not significant"
    if not pair["significant"] and needed:
        many = f"more than {MAX_SEEDS:,}" if needed > MAX_SEEDS else f"about {needed}"
        verdict += f" ({many} seeds per configuration would detect a difference this large 80% of the time)"
    return f"{head}, {_p_text(p_adj)} after Holm, {pair['test']} {over}: {verdict}"


def _prob_improvement(rows: list[Row], groups: dict[int, _Group], goal: str) -> dict[int, float]:
    """P(best row beats row i) for every other row: U / (n m) over their values, vectorised per
    size. Rows of several experiments average it over the experiments both ran (the tasks)."""
    import numpy as np

    from tracker.analysis.stats import prob_improvement

    sign = 1.0 if goal == "max" else -1.0
    best = rows[0]
    out: dict[int, float] = {}
    simple: dict[int, list[int]] = defaultdict(list)
    for i in range(1, len(rows)):
        ga, gb = groups[0], groups[i]
        shared = [e for e in ga.experiment_order if e in gb.experiment_order]
        if (len(ga.experiment_order) == 1 and gb.experiment_order == ga.experiment_order) or not shared:
            simple[rows[i].n].append(i)  # one task: all values
            continue
        scores = [prob_improvement([sign * v for v in _units(ga.tasks[e])[1]],
                                   [sign * v for v in _units(gb.tasks[e])[1]]) for e in shared]
        out[i] = math.fsum(scores) / len(scores)
    x = sign * np.asarray(best.values, dtype=float)[None, :, None]
    for members in simple.values():
        y = sign * np.array([rows[i].values for i in members], dtype=float)[:, None, :]
        wins = (x > y).mean(axis=(1, 2)) + 0.5 * (x == y).mean(axis=(1, 2))
        out.update(zip(members, wins.tolist(), strict=True))
    return out


def _pairs(rows: list[Row], groups: dict[int, _Group], stat: str, goal: str, trials: int) -> list[Pair]:
    """Every row against the best one, tests vectorised over pairs of the same shape, Holm over all."""
    import numpy as np

    from tracker.analysis import stats

    if len(rows) < 2:
        return []
    best = rows[0]
    best_at = {s: v for s, v in zip(best.seeds, best.values, strict=True) if s is not None}
    plans: dict[tuple[bool, int, int], list[tuple[int, list[float], list[float]]]] = defaultdict(list)
    common: dict[int, int] = {}  # row -> seeds it shares with the best
    for i, row in enumerate(rows[1:], start=1):
        shared = [(best_at[s], v) for s, v in zip(row.seeds, row.values, strict=True) if s is not None and s in best_at]
        common[i] = len(shared)
        if len(shared) >= 2:
            plans[(True, len(shared), len(shared))].append((i, [x for x, _ in shared], [y for _, y in shared]))
        else:
            plans[(False, best.n, row.n)].append((i, best.values, row.values))
    fn = stats.statistic(stat)
    resamples = stats.resamples(trials)
    found: dict[int, dict[str, Any]] = {}
    for (paired, n_a, n_b), members in plans.items():
        x = np.array([m[1] for m in members], dtype=float)
        y = np.array([m[2] for m in members], dtype=float)
        diff = fn(y, axis=-1) - fn(x, axis=-1)
        low, high = stats.bootstrap_ci([x, y], stat, paired=paired, n_resamples=resamples)
        if paired:
            p_t, p_r = stats.paired_tests(x, y)
            effect = stats.cohens_dz(x, y)
        elif min(n_a, n_b) >= 2:
            p_t, p_r = stats.unpaired_tests(x, y)
            effect = stats.hedges_g(x, y)
        else:
            p_t = p_r = effect = np.full(len(members), np.nan)
        for j, (i, *_) in enumerate(members):
            found[i] = {"paired": paired, "n_a": n_a, "n_b": n_b, "difference": float(diff[j]),
                        "ci": (_num(low[j]), _num(high[j])), "p": _num(p_t[j]), "p_rank": _num(p_r[j]),
                        "effect": _num(effect[j])}
    tested = [i for i in sorted(found) if found[i]["p"] is not None]
    for i, p in zip(tested, stats.holm([found[i]["p"] for i in tested]), strict=True):
        found[i]["p_adjusted"] = p
    for paired in (True, False):  # needed seeds for the non-significant ones, one vectorised search each
        todo = [i for i in tested if found[i]["paired"] is paired and found[i]["p_adjusted"] >= stats.ALPHA
                and found[i]["effect"] is not None]
        if todo:
            needed = stats.needed_seeds(np.array([found[i]["effect"] for i in todo]), paired=paired)
            for i, n in zip(todo, needed, strict=True):
                found[i]["needed"] = int(n) or None
    improvement = _prob_improvement(rows, groups, goal)
    pairs = []
    for i in range(1, len(rows)):
        f = found[i]
        p_adj = f.get("p_adjusted")
        pair = dict(
            a=0, b=i, paired=f["paired"], n=f["n_a"] if f["paired"] else f["n_a"] + f["n_b"],
            test="paired t-test" if f["paired"] else "Welch's t-test",
            difference=f["difference"], ci_low=f["ci"][0], ci_high=f["ci"][1], p_value=f["p"], p_adjusted=p_adj,
            effect_size=f["effect"], effect=stats.effect_label(f["effect"]),
            significant=p_adj is not None and p_adj < stats.ALPHA, needed_seeds=f.get("needed"),
            rank_test="Wilcoxon signed-rank" if f["paired"] else "Mann-Whitney U", p_rank=f["p_rank"],
            prob_improvement=improvement[i], n_a=f["n_a"], n_b=f["n_b"], shared=common[i])
        pairs.append(Pair(**pair, sentence=_sentence(rows, pair, goal)))
    return pairs


# ---------------------------------------------------------------------------------------------- entry point


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a comparison is built: it makes no cycles, and with
    100,000 trials' rows alive every full collection walks them all (0.4-0.5 s of CPU, a fifth of
    ``compare()`` over 100,000 trials). Collection resumes as it was afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compare(project: Project, experiments: Sequence[str], *, metric: str | None = None,
            by: Sequence[str] | None = None, where: str | None = None, stat: str = "mean",
            goal: str | None = None, phase: str = "train", tags: Sequence[str] = (),
            min_seeds: int = 2) -> Comparison:
    """Compare the configurations of ``experiments`` on ``metric`` over seeds (see the module docstring).

    Completed trials of ``phase`` count (pruned and failed ones do not), only those with every one
    of ``tags`` when given. ``metric`` defaults to the experiments' objective (in test trials its
    test twin: val/acc is compared as test/acc); ``goal`` to the objective's when the metric is the
    objective's, else max. Rows with fewer than ``min_seeds`` seeds are listed after the ranked ones.

    Example::

        result = compare(project, ["baseline"], by=["lr"], stat="iqm")
        for pair in result.pairs:
            print(pair.sentence)
    """
    experiments = list(dict.fromkeys(experiments))
    _check(experiments, stat, goal, phase)
    if min_seeds < 1:
        raise UsageError(f"--min-seeds must be 1 or more, got {min_seeds}")
    tags = list(dict.fromkeys(tags))
    from tracker import experiments as exps

    known = set(exps.names(project)) | set(project.store.count_by_status())
    for name in experiments:
        if name not in known:
            raise NotFoundError(f"no experiment {name!r}", hint="see 'tracker experiments list'")
    metric, goal, source = _objective(project, experiments, metric, goal, phase)
    _not_a_test_ranking(metric, phase)
    by_list = list(dict.fromkeys(b.strip() for part in by for b in part.split(",") if b.strip())) if by else None
    try:
        import numpy  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "scipy", "analysis") from exc
    with _gc_paused():
        groups, trials, missing = _collect(project, experiments, metric, goal, phase, by_list, where, tags)
        ranked = _rows(groups, stat, goal, trials, min_seeds)
        rows = [row for row, _ in ranked]
        pairs = _pairs(rows, {i: g for i, (_, g) in enumerate(ranked)}, stat, goal, trials)
        repeated = sum(len(values) > 1 for g in groups for values in g.by_seed.values())
    return Comparison(metric=metric, goal=goal, stat=stat, rows=rows, pairs=pairs, experiments=experiments,
                      phase=phase, by=by_list, where=where, goal_source=source, trials=trials, missing=missing,
                      min_seeds=min_seeds, tags=tags, repeated=repeated)
