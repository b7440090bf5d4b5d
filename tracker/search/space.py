"""An experiment's search space: Optuna distributions from ``search:`` and ``grid:``, and its grid.

``grid:`` lists join the space as choices, so one experiment file serves both ``tracker run``
(every combination) and ``tracker optimize`` (a search over the same values and ranges).
Errors name the experiment file and the line of the offending key.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tracker.config import ExperimentConfig, SearchSpace
from tracker.errors import ConfigError
from tracker.yamlio import display_path, line_of, load_yaml

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from tracker.project import Project

MAX_GRID = 1_000_000
"""The largest grid tracker enumerates (a grid this size is never run to its end)."""

_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Where:
    """The experiment file, to point errors at a key's line."""

    path: str
    lines: dict[tuple[Any, ...], int]

    @classmethod
    def of(cls, project: Project, name: str) -> Where:
        path = project.paths.experiment_file(name)
        _, lines = load_yaml(path)
        return cls(display_path(path), lines)

    def error(self, message: str, *key: Any, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, line=line_of(self.lines, key), hint=hint)


def ranges(config: ExperimentConfig, where: Where) -> dict[str, SearchSpace]:
    """The searched params: ``search:`` ranges plus ``grid:`` lists as choices; checked."""
    if not config.search and not config.grid:
        raise where.error("the experiment has no 'search:' ranges to optimise over", "search",
                          hint="add e.g. search: {lr: {type: loguniform, low: 1.0e-4, high: 1.0}}")
    out: dict[str, SearchSpace] = {}
    for name, values in config.grid.items():
        out[name] = SearchSpace(type="choice", values=values)
    for name, spec in config.search.items():
        if name in config.params:
            raise where.error(f"{name!r} is in both 'params' and 'search'; keep it in one", "search", name)
        if name in config.grid:
            raise where.error(f"{name!r} is in both 'grid' and 'search'; keep it in one", "search", name)
        if config.seed_flag and name == config.seed_flag:
            raise where.error(f"{name!r} is the seed, set by tracker; it cannot be searched", "search", name,
                              hint="use --seeds to evaluate each configuration on several seeds")
        _check(name, spec, where)
        out[name] = spec
    for name, spec in out.items():
        for value in spec.values or []:
            if not isinstance(value, _SCALARS):
                key = ("grid", name) if name in config.grid else ("search", name, "values")
                raise where.error(f"{name!r}: choice values must be numbers, strings, booleans or null, "
                                  f"not {type(value).__name__}", *key)
    return out


def _check(name: str, spec: SearchSpace, where: Where) -> None:
    key = ("search", name)
    if spec.type != "choice" and spec.values is not None:
        raise where.error(f"{name!r}: 'values' belongs to type 'choice', not {spec.type!r}", *key)
    if spec.type == "choice" and (spec.low is not None or spec.high is not None or spec.step is not None):
        raise where.error(f"{name!r}: a 'choice' takes 'values' only, not low/high/step", *key)
    if spec.step is not None and spec.step <= 0:
        raise where.error(f"{name!r}: 'step' must be positive, got {spec.step}", *key)
    if spec.type == "loguniform" and spec.step is not None:
        raise where.error(f"{name!r}: a 'loguniform' range cannot have a 'step'", *key,
                          hint="use type int or uniform for a stepped range")
    if spec.log and spec.type == "uniform" and spec.low is not None and spec.low <= 0:
        raise where.error(f"{name!r}: 'log: true' needs low > 0, got low={spec.low}", *key)
    if spec.type == "int":
        if spec.step is not None and not float(spec.step).is_integer():
            raise where.error(f"{name!r}: an 'int' range needs an integer 'step', got {spec.step}", *key)
        if spec.log and (spec.step or 1) != 1:
            raise where.error(f"{name!r}: a log-scaled 'int' range cannot have a step other than 1", *key)
        if spec.log and spec.low is not None and spec.low < 1:
            raise where.error(f"{name!r}: a log-scaled 'int' range needs low >= 1", *key)
    if spec.type == "uniform" and spec.log and spec.step is not None:
        raise where.error(f"{name!r}: 'log: true' and 'step' cannot be combined", *key)
    if spec.step is not None and spec.low is not None and spec.high is not None:
        span, step = Decimal(str(spec.high)) - Decimal(str(spec.low)), Decimal(str(spec.step))
        if span % step:  # Optuna would move 'high' down to the last step, with a warning
            last = Decimal(str(spec.low)) + span // step * step
            raise where.error(f"{name!r}: high - low = {_text(span)} is not a multiple of 'step' {_text(step)}",
                              *key, hint=f"make 'high' {_text(last)} or {_text(last + step)}")


def _text(number: Decimal) -> str:
    return format(number.normalize(), "f")


def distributions(space: dict[str, SearchSpace]) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every searched param."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, BaseDistribution] = {}
    for name, s in space.items():
        if s.type == "choice":
            out[name] = CategoricalDistribution(list(s.values or []))
        elif s.type == "int":
            out[name] = IntDistribution(int(s.low or 0), int(s.high or 0), log=s.log, step=int(s.step or 1))
        else:
            out[name] = FloatDistribution(float(s.low or 0), float(s.high or 0), log=s.log or s.type == "loguniform",
                                          step=s.step)
    return out


def grid_values(name: str, s: SearchSpace, where: Where) -> list[Any]:
    """Every value a param takes in a grid (choices, stepped ints, stepped uniform ranges)."""
    if s.type == "choice":
        return list(s.values or [])
    low, high = float(s.low or 0), float(s.high or 0)
    if s.type == "int":
        return list(range(int(low), int(high) + 1, int(s.step or 1)))
    if s.type == "uniform" and s.step:
        n = math.floor((high - low) / s.step + 1e-9) + 1
        return [round(low + i * s.step, 12) for i in range(n)]
    raise where.error(f"grid search needs a finite range, but {name!r} is a continuous {s.type!r} range",
                      "search", name, hint="give it a 'step', make it a 'choice', or use another --strategy")


def grid(space: dict[str, SearchSpace], where: Where) -> tuple[list[str], list[list[Any]]]:
    """The grid's param names and each one's values; refused past :data:`MAX_GRID` points."""
    names = list(space)
    values = [grid_values(n, space[n], where) for n in names]
    size = math.prod(len(v) for v in values)
    if size > MAX_GRID:
        raise where.error(f"the grid has {size:,} points, more than the {MAX_GRID:,} tracker enumerates", "search",
                          hint="use fewer values or --strategy random/tpe")
    return names, values


def grid_points(names: list[str], values: list[list[Any]], seed: int | None) -> Iterator[dict[str, Any]]:
    """Every grid point once, in an order shuffled by ``seed`` (so a cut-short grid still spreads out)."""
    combos = list(itertools.product(*values))
    random.Random(seed).shuffle(combos)
    for combo in combos:
        yield dict(zip(names, combo, strict=True))


def key(params: dict[str, Any]) -> str:
    """A canonical text for a configuration's params (to find repeats)."""
    import json

    return json.dumps(params, sort_keys=True, default=str)
