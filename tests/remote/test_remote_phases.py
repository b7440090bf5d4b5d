"""Phases over SSH: a remote training trial trains, then validates, with namespaced metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_project
from tests.core.test_phases import EVALUATE, TRAIN
from tests.remote.conftest import with_test_remotes
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment

EXPERIMENT = """\
command: [python3, ptrain.py]
grid: {lr: [0.1, 0.5]}
seeds: 1
phases:
  validate: {command: [python3, evaluate.py], seeds: 2}
  test: [python3, evaluate.py]
deliverables: [{path: validate.json, check: nonempty}]
"""


@pytest.fixture
def phased_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_hosts: dict[str, str], home: Path,
                  request: pytest.FixtureRequest) -> Iterator[Project]:
    root = make_project(tmp_path / "proj", experiment=EXPERIMENT)
    (root / "ptrain.py").write_text(TRAIN)
    (root / "evaluate.py").write_text(EVALUATE)
    monkeypatch.chdir(root)
    yield from with_test_remotes(root, ssh_hosts, request.node.name[:40])


def test_remote_trial_trains_then_validates(phased_remote: Project) -> None:
    result = run_experiment(phased_remote, "base", RunOptions(remote=["gpu1", "gpu2"]))
    assert [t.status for t in result.trials] == ["completed", "completed"], [t.error for t in result.trials]
    for t in result.trials:
        assert t.executor == "ssh" and t.host in ("gpu1", "gpu2")
        assert t.metrics["val/acc"] == pytest.approx(t.params["lr"]) and "train/loss" in t.metrics
        seeds = t.extra["eval_seeds"]["validate"]
        validated = json.loads((phased_remote.paths.trial_dir(t.id) / "validate.json").read_text())
        assert validated["seeds"] == seeds and validated["model"]["seed"] == t.seed
        assert not (phased_remote.paths.trial_dir(t.id) / "test.json").exists()
