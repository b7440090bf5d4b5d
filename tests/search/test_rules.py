"""The search's rules hold alike for the search run here and the search the workers of a queue run.

Each rule is checked in both modes (``here``: ``tracker optimize``, ``workers``: ``tracker
optimize --queue`` and ``tracker worker`` processes), plus what a search in which every
configuration failed, a script without intermediate values, and a prune that comes too late do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.search.conftest import add_experiment, experiment
from tests.search.test_distributed import workers
from tracker.execution.base import Poll, Reporter
from tracker.execution.local import LocalExecutor
from tracker.launch import Launcher
from tracker.project import Project
from tracker.runs import RunOptions, plan
from tracker.search import distributed, rules
from tracker.search.optimizer import OptimizationError, OptimizeOptions, optimize, resume
from tracker.store import Configuration, Optimization, Trial

SCRIPT = """\
import argparse, os, signal, sys
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--seed", type=int)
p.add_argument("--mode", default="ok")
a = p.parse_args()
if a.mode == "nan":
    print("val/loss: inf")  # diverged
elif a.mode == "lose" and a.seed == 22 and os.path.exists(os.environ["LOSE_ONCE"]):
    os.remove(os.environ["LOSE_ONCE"])
    os.kill(os.getppid(), signal.SIGKILL)  # the trial's runner dies: the trial is lost
elif a.mode == "silent":
    print("val/other: 1")
else:
    print(f"val/loss: {a.x}")  # a final value only, no step
"""
SPACE = "search:\n  x: {type: uniform, low: 0.0, high: 1.0}\nobjective: {metric: val/loss, goal: min}\n"


def _rules_experiment(project: Project, name: str, mode: str) -> None:
    (project.root / "rules.py").write_text(SCRIPT)
    add_experiment(project, name, experiment(f"{{mode: {mode}}}", SPACE, command=repr([sys.executable, "rules.py"])))


def _search(project: Project, mode: str, name: str, options: OptimizeOptions) -> Optimization:
    """Run the search to its end ``here`` or by one worker; return its record."""
    if mode == "here":
        return optimize(project, name, options).optimization
    record = distributed.start(project, name, options, queue="default", max_attempts=1)
    workers(project, 1)
    return project.store.get_optimization(record.id)


MODES = ["here", "workers"]


@pytest.mark.parametrize("mode", MODES)
def test_a_non_finite_objective_fails_its_configuration(search_project: Project, mode: str) -> None:
    _rules_experiment(search_project, "nan", "nan")
    record = _search(search_project, mode, "nan", OptimizeOptions(strategy="random", trials=2, seeds=1,
                                                                   max_failures=0))
    confs = search_project.store.configurations(record.id)
    assert [c.state for c in confs] == ["failed", "failed"]
    assert all("reported val/loss = inf" in (c.error or "") for c in confs)
    assert record.status == "failed" and "every configuration failed (2)" in (record.error or "")


@pytest.mark.parametrize("mode", MODES)
def test_an_objective_never_reported_fails_the_search(search_project: Project, mode: str) -> None:
    _rules_experiment(search_project, "silent", "silent")
    options = OptimizeOptions(strategy="random", trials=3, seeds=1, max_failures=0)
    if mode == "here":
        with pytest.raises(OptimizationError, match="'val/loss' was never reported"):
            _search(search_project, mode, "silent", options)
        [record] = search_project.store.list_optimizations()
    else:
        record = _search(search_project, mode, "silent", options)
    assert record.status == "failed" and "metrics seen: val/other" in (record.error or "")
    assert len(search_project.store.configurations(record.id)) == 1  # no configuration after the first


@pytest.mark.parametrize("mode", MODES)
def test_a_lost_seed_interrupts_its_configuration_and_resume_runs_it_again(
        search_project: Project, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _rules_experiment(search_project, "lose", "lose")
    monkeypatch.setenv("LOSE_ONCE", str(tmp_path / "lose-once"))
    (tmp_path / "lose-once").write_text("")
    options = OptimizeOptions(strategy="random", trials=1, seeds=2, max_failures=1)
    record = _search(search_project, mode, "lose", options)
    [conf] = search_project.store.configurations(record.id)
    assert conf.state == "running"  # interrupted, not failed: it is not the configuration's fault
    assert record.status == "stopped" and "1 configuration(s) were interrupted" in (record.error or "")
    lost = [t for t in search_project.store.list_trials(optimization=record.id) if t.status == "lost"]
    assert [t.seed for t in lost] == [22]
    if mode == "here":
        resume(search_project, record.id)
    else:
        distributed.resume(search_project, record, trials=None, timeout=None)
        workers(search_project, 1)
    [conf] = search_project.store.configurations(record.id)
    assert conf.state == "complete" and sorted(conf.values) == ["11", "22"]
    assert search_project.store.get_optimization(record.id).status == "completed"


@pytest.mark.parametrize("mode", MODES)
def test_the_deadline_is_a_wall_clock_time_in_the_record(search_project: Project, mode: str) -> None:
    _rules_experiment(search_project, "ok", "ok")
    before = time.time()
    record = _search(search_project, mode, "ok", OptimizeOptions(strategy="random", trials=1, seeds=1,
                                                                  timeout=3600))
    assert before + 3600 <= record.settings["deadline"] <= time.time() + 3600
    assert rules.past_deadline(record.settings) is False
    assert rules.past_deadline({**record.settings, "deadline": time.time() - 1}) is True


def _conf(number: int, state: str, finished: str) -> Configuration:
    return Configuration("o", number, {}, state, "2026-01-01T00:00:00.000Z", None, {}, None,
                         "trial 0123abcd failed: exit code 7: boom" if state == "failed" else None, finished)


def test_failed_in_a_row_counts_in_the_order_configurations_ended_since_the_last_start() -> None:
    known = [_conf(0, "failed", "t1"), _conf(1, "complete", "t5"), _conf(2, "failed", "t3"),
             _conf(3, "failed", "t6"), _conf(4, "running", "")]
    assert rules.failed_in_a_row({}, known) == 1  # 1 ended after 2: the run of failures is 3 alone
    known.append(_conf(5, "pruned", "t7"))
    assert rules.failed_in_a_row({}, known) == 0  # a pruned configuration ran: it breaks a run
    known.append(_conf(6, "failed", "t8"))
    known.append(_conf(7, "failed", "t9"))
    assert rules.halted({"max_failures": 2}, known) is not None
    assert rules.failed_in_a_row({"since": 7}, known) == 1  # counted afresh from a resume
    assert rules.all_failed([c for c in known if c.state == "failed"]) == \
        "every configuration failed (5); all: exit code 7: boom"
    assert rules.all_failed(known) is None


def test_a_search_in_which_every_configuration_failed_ends_failed_with_the_common_error(
        search_project: Project) -> None:
    from tests.conftest import cli

    add_experiment(search_project, "broken", experiment("{steps: 3, crash_above: -1.0}"))
    code, out, err = cli("optimize", "broken", "--strategy", "random", "--trials", "2", "--max-failures", "0", "-q")
    assert code == 1, err
    assert "failed" in out.splitlines()[0]
    assert "every configuration failed (2); all: exit code 7" in out


class _Messages(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_hyperband_on_a_script_without_intermediate_values_says_so_once(search_project: Project) -> None:
    _rules_experiment(search_project, "flat", "ok")
    reporter = _Messages()
    result = optimize(search_project, "flat", OptimizeOptions(strategy="hyperband", trials=3, seeds=1), reporter)
    assert {c.state for c in result.configurations} == {"complete"}
    notes = [line for line in reporter.lines if "reported no intermediate value of val/loss" in line]
    assert len(notes) == 1 and "--strategy hyperband prunes nothing" in notes[0]
    assert reporter.lines[0].startswith(f"optimization {result.optimization.id}: hyperband search of flat")


class _LatePoll(LocalExecutor):
    """Says "running" once for a trial whose script has already exited: the poll raced the script's end."""

    late: set[str]

    def poll(self, trial: Trial) -> Poll:
        self._procs[trial.id].wait()  # the runner ends, after the script printed all and exited 0
        late = self.__dict__.setdefault("late", set())
        if trial.id not in late:
            late.add(trial.id)
            return Poll("running")
        return super().poll(trial)


def test_a_prune_never_discards_the_result_of_a_trial_that_had_already_exited(search_project: Project) -> None:
    planned = plan(search_project, ["quad"], RunOptions(seeds=[11]))
    start = Launcher(search_project, executor=_LatePoll(search_project))
    trials = start.create(planned.specs, planned.configs, planned.code, start.record(planned.configs))
    pruned_at: list[int] = []

    def prune_last_step(trial: Trial, point: object) -> bool:
        pruned_at.append(point.step)  # type: ignore[attr-defined]
        return point.step == 19  # type: ignore[attr-defined]

    [final] = start.drive(trials, start.driver(pruner=prune_last_step))
    assert 19 in pruned_at  # the pruner did say "stop" at the last step...
    assert final.status == "completed" and final.exit_code == 0  # ...but the script had finished: kept
    assert final.metrics["val/loss"] > 0 and final.stop_requested is None


def test_optimize_status_watch_prints_lines_when_piped_and_ctrl_c_cancels_nothing(search_project: Project) -> None:
    _rules_experiment(search_project, "ok", "ok")
    record = distributed.start(search_project, "ok", OptimizeOptions(strategy="random", trials=2, seeds=1),
                               queue="default")
    watch = subprocess.Popen([sys.executable, "-m", "tracker", "optimize", "status", record.id, "--watch"],
                             cwd=search_project.root, env=dict(os.environ), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert watch.stderr is not None
    first = watch.stderr.readline()
    assert first.startswith(f"{record.id}: 0/2 configurations, 0 trial(s) running")
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=60)
    assert watch.returncode == 130
    assert "nothing was cancelled" in err and "trials were cancelled" not in err
    assert {t.status for t in search_project.store.list_trials(optimization=record.id)} == {"queued"}


def test_ctrl_c_in_optimize_names_the_optimization_to_resume(search_project: Project) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tracker", "optimize", "slow", "--strategy", "random",
                             "--trials", "3"], cwd=search_project.root, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # said at the start, before any trial
    assert first.startswith("optimization ") and "random search of slow" in first
    ref = first.split()[1].rstrip(":")
    for line in proc.stderr:
        if "started" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"'tracker optimize resume {ref}' continues it" in err and "optimize list" not in err
    assert Project.load(Path(search_project.root)).store.get_optimization(ref).status == "interrupted"
