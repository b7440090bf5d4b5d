"""tracker: experiment tracking for machine-learning research.

The package root holds only the helper API for training scripts (stdlib only,
so ``import tracker`` in a script costs nothing); the library lives in the
submodules and the CLI in :mod:`tracker.cli`.
"""

from __future__ import annotations

from tracker.api import autolog, log, params, seed, trial_dir

__version__ = "0.1.0"
__all__ = ["__version__", "autolog", "load_trials", "log", "params", "seed", "trial_dir"]


def __getattr__(name: str) -> object:
    """``tracker.load_trials`` (records, or a pandas DataFrame), imported on first use."""
    if name == "load_trials":
        from tracker.analysis.export import load_trials

        return load_trials
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")
