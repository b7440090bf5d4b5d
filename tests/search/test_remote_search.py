"""One optimization whose trials run on two real sshd hosts, gpu1 (127.0.0.2) and gpu2 (127.0.0.3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.conftest import home, with_test_remotes  # noqa: F401 - home: an empty HOME for SSH
from tests.search.conftest import STEPS, experiment, make_search_project, run_search
from tracker.project import Project

pytestmark = pytest.mark.ssh


@pytest.fixture
def remote_search_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_hosts: dict[str, str],
                          home: Path) -> Iterator[Project]:  # noqa: F811 - the imported fixture
    """A search project whose remotes gpu1 and gpu2 are the test hosts (python3 there runs the objective)."""
    root = make_search_project(tmp_path / "proj", {"quad": experiment(f"{{steps: {STEPS}}}",
                                                                      command="[python3, objective.py]")})
    monkeypatch.chdir(root)
    yield from with_test_remotes(root, ssh_hosts, "search")


def test_one_optimization_runs_on_both_hosts(remote_search_project: Project) -> None:
    project = remote_search_project
    result = run_search(project, "quad", strategy="random", trials=4, remote=["gpu1", "gpu2"])
    assert result.optimization.status == "completed", result.optimization.error
    assert [c.state for c in result.configurations] == ["complete"] * 4
    assert [t.status for t in result.trials] == ["completed"] * 4, [t.error for t in result.trials]
    assert {t.host for t in result.trials} == {"gpu1", "gpu2"}
    assert {t.executor for t in result.trials} == {"ssh"}
    for conf, trial in zip(result.configurations, result.trials, strict=True):
        assert trial.extra == {**trial.extra, "optimization": result.optimization.id, "configuration": conf.number}
        assert conf.values == {str(trial.seed): trial.metrics["val/loss"]}
        assert [p.step for p in project.store.metrics(trial.id, "val/loss")] == list(range(STEPS))
