"""The one launch path: what every command that starts trials does once, and only once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracker import launch
from tracker.project import Project
from tracker.queue.submit import submit
from tracker.runs import RunOptions, run_experiment


@pytest.fixture
def fingerprints(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every fingerprint computed from now on, in order."""
    made: list[str | None] = []
    original: Callable[..., str | None] = launch.fingerprint

    def counted(*args: Any, **kwargs: Any) -> str | None:
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(launch, "fingerprint", counted)
    return made


def test_queueing_computes_each_trials_fingerprint_once(project_dir: Path, fingerprints: list[str | None]) -> None:
    result = submit(Project.find(), ["base"], RunOptions(seed_count=3))
    n = len(result.trials)
    assert n >= 3
    assert sorted(fingerprints) == sorted(t.extra["fingerprint"] for t in result.trials)  # once each, no more
    again = submit(Project.find(), ["base"], RunOptions(seed_count=3))
    assert again.trials == [] and len(again.skipped) == n and len(fingerprints) == 2 * n  # already waiting


def test_a_run_computes_each_trials_fingerprint_once(project_dir: Path, fingerprints: list[str | None]) -> None:
    result = run_experiment(Project.find(), "base", RunOptions(seed_count=2))
    assert {t.status for t in result.trials} == {"completed"}
    assert sorted(fingerprints) == sorted(t.extra["fingerprint"] for t in result.trials)
