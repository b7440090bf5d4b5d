"""The search's rules, one copy for both search modes: the search a process runs here
(:mod:`tracker.search.optimizer`) and the search the workers of a queue run together
(:mod:`tracker.search.distributed`).

- **Settings**: what a search is checked against before anything is written, and recorded with it.
- **Aggregation**: a configuration's objective is the mean (or median) of its seeds' final values.
- **Budget and deadline**: no new configuration once ``budget`` were made, or once the
  deadline passed. The deadline is a wall-clock time (seconds since the epoch) recorded in
  the settings, because a distributed search is asked for configurations by processes on
  many machines, whose monotonic clocks cannot be compared; a process's own clock could not
  survive a resume either.
- **What ends a configuration** (:func:`seed_end`): a seed that completed with a finite
  objective gives a value; a non-finite one (nan, inf) or a failed seed fails the
  configuration; a pruned seed prunes it; a cancelled or lost seed *interrupts* it (not its
  fault: it is not told to the sampler as a failure, and ``resume`` runs its seeds again);
  a completed seed that never reported the objective is a mistake in the experiment that
  stops the search.
- **Halting**: after ``max_failures`` configurations failed in a row (in the order they ended,
  counted from the search's last start or resume, read from the store), no new one is made.
- **The end**: a search in which every configuration failed ends ``failed``, with the error
  the configurations had in common.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker import experiments
from tracker.config import ExperimentConfig, check_tags
from tracker.errors import UsageError
from tracker.project import Project
from tracker.search import space as spacelib
from tracker.search import strategies
from tracker.store import Configuration, Trial

if TYPE_CHECKING:
    from tracker.execution.targets import Target

AGGREGATES = {"mean": statistics.fmean, "median": statistics.median}
DEFAULT_BUDGET = 20
"""Configurations a search tries when neither --trials nor --timeout is given (grid: the whole grid)."""
DEFAULT_MAX_FAILURES = 5
"""A search stops after this many configurations failed in a row."""


@dataclass(frozen=True)
class OptimizeOptions:
    """What ``tracker optimize`` was asked to do."""

    strategy: str = "tpe"
    trials: int | None = None  # configurations to try (each over every seed)
    timeout: float | None = None  # start no new configuration after this many seconds
    parallel: int | None = None
    remote: list[str] = field(default_factory=list)
    target: str | Target | None = None  # where the trials run (an executor's target; None: local)
    seeds: int | None = None  # first S preset seeds per configuration (default: the experiment's, else 1)
    aggregate: str = "mean"
    sampler_seed: int | None = None  # default: the project's master seed
    max_failures: int = DEFAULT_MAX_FAILURES  # 0: never stop for failures
    seed_pruning: bool = True  # stop a configuration worse than the best on the seeds done (Wilcoxon)
    tags: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- settings


def settings(project: Project, name: str, config: ExperimentConfig, options: OptimizeOptions,
             where: spacelib.Where) -> dict[str, Any]:
    """Check everything a search needs before anything is written; return the settings to record."""
    if config.objective is None:
        raise where.error(f"experiment {name!r} has no 'objective:' to optimise", "objective",
                          hint="add e.g. objective: {metric: val/acc, goal: max}")
    if options.aggregate not in AGGREGATES:
        raise UsageError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {options.aggregate!r}")
    check_bounds(options.trials, options.timeout)
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
        "since": 0,  # the deadline is set when the search starts (see :func:`deadline`)
        "sampler_seed": sampler_seed, "max_failures": options.max_failures,
        "seed_pruning": options.seed_pruning, "params": dict(config.params),
        "space": {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in ranges.items()},
        "config_hash": experiments.config_hash(config), "tags": tags,
        # Hyperband puts configuration k in a bracket by crc32(study name, k): a name from the seed,
        # not the optimization's random id, so the same sampler seed gives the same pruning
        "study_name": f"{name}-{sampler_seed}",
    }


def check_bounds(trials: int | None, timeout: float | None) -> None:
    """``--trials`` and ``--timeout`` are positive when given."""
    for flag, value in (("--trials", trials), ("--timeout", timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be positive, got {value}")


def resumed(settings: dict[str, Any], made: int, *, trials: int | None, timeout: float | None) -> dict[str, Any]:
    """The settings of a search resumed with ``made`` configurations: a new budget and deadline,
    and failures in a row counted afresh."""
    out = dict(settings)
    if trials is not None:
        out["budget"] = trials
    out.update(timeout=timeout, deadline=deadline(timeout), since=made)
    return out


# ---------------------------------------------------------------------------- budget and deadline


def deadline(timeout: float | None) -> float | None:
    """The wall-clock time (epoch seconds) after which no new configuration is made."""
    return time.time() + timeout if timeout else None


def past_deadline(settings: dict[str, Any]) -> bool:
    """Whether the search's deadline (if any) has passed, on the wall clock every machine shares."""
    at = settings.get("deadline")
    return at is not None and time.time() >= at


def budget_spent(settings: dict[str, Any], made: int) -> bool:
    """Whether ``made`` configurations use up the search's budget (if any)."""
    return settings.get("budget") is not None and made >= settings["budget"]


# ---------------------------------------------------------------------------- what ends a configuration


@dataclass(frozen=True)
class SeedEnd:
    """What one ended seed (trial) means for its configuration.

    ``kind``: ``value`` (a finite objective), ``failed``, ``pruned``, ``interrupted`` (cancelled
    or lost: run it again on resume) or ``missing`` (completed without ever reporting the objective).
    """

    kind: str
    value: float | None = None
    error: str | None = None


def seed_end(metric: str, trial: Trial, experiment: str) -> SeedEnd:
    """What ``trial``'s final status means for its configuration (see the module docstring)."""
    if trial.status == "completed":
        value = trial.metrics.get(metric)
        if value is None:
            seen = ", ".join(sorted(trial.metrics)) or "none"
            return SeedEnd("missing", error=(
                f"the objective metric {metric!r} was never reported by trial {trial.id} (metrics seen: {seen}); "
                f"log it, e.g. print('{metric}: 0.9') or tracker.log(**{{'{metric}': value}}), or fix "
                f"'objective:' in experiments/{experiment}.yaml"))
        if not math.isfinite(value):
            return SeedEnd("failed", value, f"trial {trial.id} reported {metric} = {value}")
        return SeedEnd("value", value)
    if trial.status == "pruned":
        return SeedEnd("pruned")
    if trial.status == "failed":
        detail = (trial.error or "see its logs").splitlines()[0]
        return SeedEnd("failed", error=f"trial {trial.id} failed: {detail}")
    return SeedEnd("interrupted")


def interrupted_note(count: int) -> str:
    """Why a search with interrupted configurations stopped, and how to go on."""
    return (f"{count} configuration(s) were interrupted (a trial was stopped or lost); "
            "'tracker optimize resume' runs their seeds again")


# ---------------------------------------------------------------------------- halting and the end


def failed_in_a_row(settings: dict[str, Any], known: Sequence[Configuration]) -> int:
    """How many configurations failed in a row at the end, in the order they ended, since the
    search's last start or resume."""
    ended = sorted((c for c in known if c.state not in ("running",) and c.number >= settings.get("since", 0)),
                   key=lambda c: (c.finished or "", c.number))
    tail = 0
    for conf in reversed(ended):
        if conf.state != "failed":
            break
        tail += 1
    return tail


def halted(settings: dict[str, Any], known: Sequence[Configuration]) -> str | None:
    """Why no configuration should be made any more: ``max_failures`` failed in a row."""
    most = settings.get("max_failures") or 0
    tail = failed_in_a_row(settings, known)
    if most and tail >= most:
        return f"{tail} configurations failed in a row, so no more were tried (--max-failures 0 never stops)"
    return None


def all_failed(known: Sequence[Configuration]) -> str | None:
    """The error of a search in which every configuration ended and failed: how many, and the
    error they had most in common; None when one did not fail (or none ended)."""
    if not known or any(c.state != "failed" for c in known):
        return None
    details = Counter(re.sub(r"^trial [0-9a-f]+ (failed: )?", "", c.error or "unknown error") for c in known)
    common, count = details.most_common(1)[0]
    share = "all" if count == len(known) else f"{count} of them"
    return f"every configuration failed ({len(known)}); {share}: {common}"
