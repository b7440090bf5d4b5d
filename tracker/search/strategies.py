"""Search strategies: one small interface over Optuna's samplers and pruners.

A strategy gives the sampler that suggests configurations (seeded, aware of running ones),
an optional pruner that stops poor configurations early from their learning curves, and
whether it walks a fixed list of points (the grid). Built in:

============  ==========================================  =================================
name          suggests with                               stops early with
============  ==========================================  =================================
grid          every grid point once (shuffled by seed)    –
random        ``RandomSampler``                           –
tpe           ``TPESampler`` (constant liar)              –
gp            ``GPSampler`` (needs ``seedtracker[gp]``)       –
hyperband     ``RandomSampler``                           ``HyperbandPruner``
bohb          ``TPESampler`` (constant liar)              ``HyperbandPruner``
============  ==========================================  =================================

Other packages add strategies through the ``tracker.strategies`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from tracker.errors import MissingDependencyError, UsageError
from tracker.plugins import Registry

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler


STARTUP = 10
"""Configurations the model-based samplers (tpe, gp, bohb) draw at random before their model has data."""


class Strategy(ABC):
    """How configurations are suggested and stopped early."""

    name: str = ""
    grid: bool = False  # walks every point of a finite grid once, then ends
    curves: bool = False  # prunes on intermediate values (needs trials that report a step)

    @abstractmethod
    def sampler(self, seed: int | None) -> BaseSampler:
        """The Optuna sampler, seeded (the same seed and history give the same suggestions)."""

    def pruner(self) -> BasePruner | None:
        """The Optuna pruner that stops a configuration from its learning curve, if any."""
        return None


def load_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError("optuna", "search") from exc
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


class Random(Strategy):
    name = "random"

    def sampler(self, seed: int | None) -> BaseSampler:
        return load_optuna().samplers.RandomSampler(seed=seed)


class Grid(Random):
    """Every grid point once: the optimizer enqueues the points, the sampler only fills gaps."""

    name = "grid"
    grid = True


class TPE(Strategy):
    name = "tpe"

    def sampler(self, seed: int | None) -> BaseSampler:
        return load_optuna().samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=STARTUP,
                                             multivariate=True)


class GP(Strategy):
    name = "gp"

    def sampler(self, seed: int | None) -> BaseSampler:
        optuna = load_optuna()
        try:
            import scipy  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            raise UsageError("--strategy gp needs PyTorch and SciPy, which tracker does not install by default",
                             hint="pip install 'seedtracker[gp]' (or use --strategy tpe)") from exc
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP)


class Hyperband(Random):
    """Random configurations, stopped early by Hyperband's successive halving on their learning curves."""

    name = "hyperband"
    curves = True

    def pruner(self) -> BasePruner | None:
        return load_optuna().pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)


class BOHB(TPE, Hyperband):
    """TPE suggestions with Hyperband's early stopping (Bayesian optimisation and Hyperband)."""

    name = "bohb"

    def sampler(self, seed: int | None) -> BaseSampler:
        return TPE.sampler(self, seed)


BUILTIN = {cls.name: f"tracker.search.strategies:{cls.__name__}" for cls in (Grid, Random, TPE, GP, Hyperband, BOHB)}
strategies: Registry[Strategy] = Registry("strategy", Strategy, "tracker.strategies", BUILTIN, UsageError)


def get(name: str) -> Strategy:
    """The strategy registered as ``name``."""
    return strategies.get(name)()
