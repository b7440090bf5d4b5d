"""Fixtures for search tests: a committed project whose experiments optimise tests/search/objective.py.

The objective (see its docstring) is a noisy quadratic with a learning curve, minimised at
x = 0.3, n = 3, act = tanh, where the final val/loss is 2 / STEPS plus the seed's noise.
"""

from __future__ import annotations

import random
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import git
from tracker.project import Project
from tracker.search.optimizer import OptimizeOptions, OptimizeResult, optimize

OBJECTIVE = Path(__file__).resolve().parent / "objective.py"
SEEDS = [11, 22, 33, 44, 55]
STEPS = 20


def optimum(seed: int = SEEDS[0]) -> float:
    """The best final val/loss any configuration reaches on ``seed`` (as the objective prints it)."""
    return round(2 / STEPS + random.Random(seed).uniform(-0.01, 0.01), 6)


SPACE = """\
search:
  x: {type: uniform, low: 0.0, high: 1.0}
  n: {type: int, low: 1, high: 5}
  act: {type: choice, values: [tanh, relu]}
objective: {metric: val/loss, goal: min}
"""
GRID_SPACE = """\
search:
  x: {type: uniform, low: 0.1, high: 0.5, step: 0.1}
  n: {type: int, low: 2, high: 4}
  act: {type: choice, values: [tanh, relu]}
objective: {metric: val/loss, goal: min}
"""
GRID = [{"x": x, "n": n, "act": a} for x in (0.1, 0.2, 0.3, 0.4, 0.5) for n in (2, 3, 4) for a in ("tanh", "relu")]
"""Every point of the 'grid' and 'slowgrid' experiments."""


def experiment(params: str, space: str = SPACE, command: str | None = None) -> str:
    return f"command: {command or repr([sys.executable, 'objective.py'])}\nparams: {params}\n{space}"


EXPERIMENTS = {
    "quad": experiment(f"{{steps: {STEPS}}}"),
    # 20 steps of 0.05 s: the driver (polling every 0.5 s) sees the learning curve while it grows
    "slow": experiment(f"{{steps: {STEPS}, sleep: 0.05}}"),
    "grid": experiment(f"{{steps: {STEPS}}}", GRID_SPACE),
    "slowgrid": experiment(f"{{steps: {STEPS}, sleep: 0.02}}", GRID_SPACE),
}


def make_search_project(root: Path, experiments: dict[str, str] | None = None) -> Path:
    """A committed git repository that is a tracker project with objective.py and ``experiments``."""
    (root / "experiments").mkdir(parents=True)
    shutil.copy(OBJECTIVE, root / "objective.py")
    (root / "tracker.yaml").write_text(f"name: search\nseeds: {SEEDS}\nmaster_seed: 1\n")
    (root / ".gitignore").write_text(".tracker/\n")
    for name, text in (experiments or EXPERIMENTS).items():
        (root / "experiments" / f"{name}.yaml").write_text(text)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def add_experiment(project: Project, name: str, text: str) -> None:
    """Write and commit experiments/NAME.yaml."""
    (project.root / "experiments" / f"{name}.yaml").write_text(text)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", f"experiment {name}")


@pytest.fixture
def search_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh search project (see :data:`EXPERIMENTS`); the current directory is its root."""
    root = make_search_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    return Project.load(root)


class ObjectiveLog:
    """The lines objective.py appends when a trial starts: (trial id, x, n, act, seed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def starts(self) -> list[tuple[str, float, int, str, int]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            trial, x, n, act, seed = line.split()
            rows.append((trial, float(x), int(n), act, int(seed)))
        return rows

    def points(self) -> Counter[tuple[float, int, str, int]]:
        """How often each (x, n, act, seed) was started."""
        return Counter((x, n, act, seed) for _, x, n, act, seed in self.starts())

    def trials(self) -> Counter[str]:
        """How often each trial id started its script."""
        return Counter(trial for trial, *_ in self.starts())


@pytest.fixture
def objective_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectiveLog:
    path = tmp_path / "objective.log"
    monkeypatch.setenv("OBJECTIVE_LOG", str(path))
    return ObjectiveLog(path)


def run_search(project: Project, name: str, **options: object) -> OptimizeResult:
    """``tracker optimize NAME`` through the library, with ``options`` as OptimizeOptions."""
    return optimize(project, name, OptimizeOptions(**options))  # type: ignore[arg-type]


def point(params: dict[str, object]) -> tuple[object, ...]:
    """A configuration's searched params as a comparable tuple."""
    return (params["x"], params["n"], params["act"])
