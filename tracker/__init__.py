"""tracker: experiment tracking for machine-learning research.

The package root holds only the helper API for training scripts (stdlib only,
so ``import tracker`` in a script costs nothing); the library lives in the
submodules and the CLI in :mod:`tracker.cli`.
"""

from __future__ import annotations

from tracker.api import autolog, log, params, seed, trial_dir

__version__ = "0.1.0"
__all__ = ["__version__", "autolog", "log", "params", "seed", "trial_dir"]
