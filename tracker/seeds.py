"""Preset seed lists: generated once from a master seed, shared by every experiment.

Using the same first N seeds in every experiment pairs comparisons by seed.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence

DEFAULT_COUNT = 10
SEED_LIMIT = 2**31 - 1  # fits numpy, torch, sklearn and 32-bit C ints


def generate(count: int = DEFAULT_COUNT, master_seed: int | None = None) -> tuple[int, list[int]]:
    """Return ``(master_seed, seeds)``: ``count`` distinct seeds drawn from ``master_seed``.

    The same master seed always gives the same list, and a longer list starts
    with the shorter one, so a list can be rebuilt or extended::

        >>> generate(5, master_seed=42)[1][:3] == generate(3, master_seed=42)[1]
        True
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    master = secrets.randbelow(SEED_LIMIT) if master_seed is None else master_seed
    rng = random.Random(master)
    seeds: list[int] = []
    seen: set[int] = set()
    while len(seeds) < count:  # sequential draws: a longer list extends a shorter one
        value = rng.randrange(SEED_LIMIT)
        if value not in seen:
            seen.add(value)
            seeds.append(value)
    return master, seeds


def choose(presets: Sequence[int], spec: int | Sequence[int] | None, default_count: int) -> list[int]:
    """Seeds for a run: an explicit list, or the first N presets (N from ``spec`` or default)."""
    if spec is not None and not isinstance(spec, int):
        return list(spec)
    count = default_count if spec is None else spec
    return list(presets[:count])


def evaluation(key: int | str, phase: str, count: int, exclude: Sequence[int] = ()) -> list[int]:
    """The first ``count`` evaluation seeds of ``phase`` (validate or test), drawn from ``key``.

    One stream is drawn from the project's master seed (``key``), leaving out the training
    seeds in ``exclude``; validate takes its even places and test its odd ones, so the three
    pools never share a seed and a longer list extends a shorter one::

        >>> v, t = evaluation(42, "validate", 3, [1, 2]), evaluation(42, "test", 3, [1, 2])
        >>> set(v) & set(t), set(v + t) & {1, 2}
        (set(), set())
    """
    if phase not in ("validate", "test"):
        raise ValueError(f"evaluation seeds are for validate or test, not {phase!r}")
    rng = random.Random(f"{key}:evaluation")
    seen = set(exclude)
    stream: list[int] = []
    offset = 0 if phase == "validate" else 1
    while len(stream) < 2 * count:
        value = rng.randrange(SEED_LIMIT)
        if value not in seen:
            seen.add(value)
            stream.append(value)
    return stream[offset::2]
