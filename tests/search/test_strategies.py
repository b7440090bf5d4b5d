"""The contract every search strategy keeps, run on the real objective (tests/search/objective.py).

Each registered strategy must find the known optimum within a stated budget and tolerance,
try exactly the configurations ``--trials`` asks for, and repeat its sequence of
configurations from the same sampler seed.
"""

from __future__ import annotations

import pytest

from tests.search.conftest import GRID, SEEDS, optimum, point, run_search
from tracker.project import Project
from tracker.search.strategies import strategies

CONTRACT: dict[str, tuple[int | None, float]] = {
    # strategy: (configurations tried, how far above the optimum's final val/loss the best may be)
    "grid": (None, 0.0),  # the whole 30-point grid, which holds the optimum: hit exactly
    "random": (30, 0.06),  # any n=3/tanh point with |x-0.3| < 0.2, or n=2|4/tanh near x=0.3
    "hyperband": (30, 0.06),  # random suggestions: the same bound as random
    "tpe": (25, 0.02),  # 10 random start-up configurations, then 15 guided ones
    "bohb": (25, 0.02),  # TPE's suggestions: the same bound as tpe
    "gp": (20, 0.005),  # 10 random start-up configurations, then 10 from the Gaussian process
}
DEFAULT = (30, 0.06)
"""A strategy from another package must do at least as well as random search."""

NAMES = strategies.names()


def space_for(name: str) -> str:
    """The grid strategy walks the stepped 'grid' experiment; the others search the continuous 'quad'."""
    return "grid" if name == "grid" else "quad"


def test_every_builtin_strategy_is_in_the_contract() -> None:
    assert set(CONTRACT) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_reaches_the_optimum_within_its_budget(search_project: Project, name: str) -> None:
    budget, tolerance = CONTRACT.get(name, DEFAULT)
    result = run_search(search_project, space_for(name), strategy=name, trials=budget)
    expected = len(GRID) if budget is None else budget
    assert result.optimization.status == "completed", result.optimization.error
    assert len(result.configurations) == expected
    assert len(result.trials) == expected  # one seed each
    assert {t.seed for t in result.trials} == {SEEDS[0]}
    assert result.best is not None
    assert result.best.value - optimum() <= tolerance + 1e-9, (result.best.value, result.best.params)
    if name == "grid":
        assert result.best.params == {"x": 0.3, "n": 3, "act": "tanh"}
        assert result.best.value == optimum()


@pytest.mark.parametrize("name", NAMES)
def test_same_sampler_seed_same_configurations(search_project: Project, name: str) -> None:
    # 12 configurations: past the 10 random start-up ones of tpe, bohb and gp
    runs = [run_search(search_project, space_for(name), strategy=name, trials=12, parallel=1, sampler_seed=7)
            for _ in range(2)]
    first, second = ([point(c.params) for c in r.configurations] for r in runs)
    assert len(first) == len(second) == 12  # --trials is honoured exactly
    assert [len(r.trials) for r in runs] == [12, 12]
    assert first == second
    assert len(set(first)) == 12
    other = run_search(search_project, space_for(name), strategy=name, trials=3, parallel=1, sampler_seed=8)
    assert [point(c.params) for c in other.configurations] != first[:3]  # the seed is not ignored
