"""Distributed optimisation: worker processes searching one study in the store together."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import cli
from tests.search.conftest import GRID, ObjectiveLog, point
from tracker.errors import UsageError
from tracker.project import Project
from tracker.search import distributed
from tracker.search.optimizer import OptimizeOptions, resume


def workers(project: Project, n: int, *args: str) -> list[str]:
    """Run ``n`` worker processes until the queue is empty; return their stderr."""
    procs = [subprocess.Popen([sys.executable, "-m", "tracker", "worker", "--idle-exit", "0", "--poll", "0.2", *args],
                              cwd=project.root, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        errs.append(err)
    return errs


def test_three_workers_cover_a_grid_exactly_once(search_project: Project, objective_log: ObjectiveLog,
                                                  backend: str | None) -> None:
    record = distributed.start(search_project, "grid", OptimizeOptions(strategy="grid", seeds=2), queue="default")
    assert record.settings["budget"] == len(GRID) and record.owner == {}
    assert search_project.store.count(status="queued") == 2  # its first configuration waits for workers
    errs = workers(search_project, 3)
    confs = search_project.store.configurations(record.id)
    assert sorted(point(c.params) for c in confs) == sorted(point(p) for p in GRID)  # every point once
    assert {c.state for c in confs} == {"complete"} and [c.number for c in confs] == list(range(len(GRID)))
    counts = objective_log.points()
    assert len(counts) == len(GRID) * 2 and set(counts.values()) == {1}  # no trial ran twice
    assert sum("ran 0 trial" not in e for e in errs) >= 2  # the work was shared
    final = search_project.store.get_optimization(record.id)
    assert final.status == "completed" and final.finished
    best = min(confs, key=lambda c: c.value)
    assert point(best.params) == (0.3, 3, "tanh")
    code, out, _ = cli("optimize", "best", record.id)
    assert code == 0 and "0.3" in out
    assert (search_project.root / ".tracker" / "tracker.db").exists() == (backend is None)


def test_workers_share_a_tpe_study_within_its_budget_and_a_resume_goes_on(search_project: Project) -> None:
    record = distributed.start(search_project, "quad", OptimizeOptions(strategy="tpe", trials=8, seeds=1),
                               queue="opt")
    workers(search_project, 3, "--queue", "opt")
    confs = search_project.store.configurations(record.id)
    assert len(confs) == 8 and {c.state for c in confs} == {"complete"}
    assert len({point(c.params) for c in confs}) == 8  # pending-aware: no two workers got the same suggestion
    assert search_project.store.get_optimization(record.id).status == "completed"
    assert search_project.store.count(optimization=record.id) == 8
    again = resume(search_project, record.id, trials=12)
    assert again.optimization.status == "running"
    workers(search_project, 2, "--queue", "opt")
    confs = search_project.store.configurations(record.id)
    assert [c.number for c in confs] == list(range(12)) and {c.state for c in confs} == {"complete"}
    assert search_project.store.get_optimization(record.id).status == "completed"


def test_a_failing_configuration_cancels_its_other_seeds(search_project: Project) -> None:
    from tests.search.conftest import add_experiment, experiment

    add_experiment(search_project, "crash", experiment("{steps: 3, crash_above: 0.0}"))
    record = distributed.start(search_project, "crash", OptimizeOptions(strategy="random", trials=2, seeds=2,
                                                                         max_failures=2), queue="default")
    workers(search_project, 1, "--slots", "1")
    confs = search_project.store.configurations(record.id)
    assert [c.state for c in confs] == ["failed", "failed"] and "exit code 7" in confs[0].error
    final = search_project.store.get_optimization(record.id)
    assert final.status == "failed" and "2 configurations failed in a row" in final.error  # every one failed
    assert "every configuration failed (2); all: exit code 7" in final.error
    assert {t.status for t in search_project.store.list_trials(optimization=record.id)} <= {"failed", "cancelled"}


def test_what_a_distributed_search_refuses(search_project: Project) -> None:
    with pytest.raises(UsageError, match="learning curves"):
        distributed.start(search_project, "quad", OptimizeOptions(strategy="hyperband"), queue="default")
    with pytest.raises(UsageError, match="--parallel does not apply with --queue"):
        distributed.start(search_project, "quad", OptimizeOptions(parallel=2), queue="default")
    code, _, err = cli("optimize", "quad", "--queue-name", "x")
    assert code == 2 and "add --queue" in err
    code, _, err = cli("optimize", "quad", "--queue", "--trials", "2", "--seeds", "1")
    assert code == 0 and "tracker worker --queue default" in err
    assert search_project.store.count(status="queued") == 1
