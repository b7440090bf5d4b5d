"""``tracker optimize`` end to end: real trials of tests/search/objective.py, real processes, one store.

Grid coverage, early stopping (Hyperband, BOHB, paired seeds), seeds and aggregates, resume
after kill -9, parallel slots, failures and bad spaces, and optimization trials as normal trials.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.search.conftest import GRID, SEEDS, STEPS, ObjectiveLog, add_experiment, experiment, point, run_search
from tracker.project import Project
from tracker.search import optimizer
from tracker.search.optimizer import OptimizationError
from tracker.store import Trial

STATUS_KEYS = {"id", "experiment", "strategy", "status", "metric", "goal", "seeds", "aggregate", "sampler_seed",
               "budget", "configurations", "by_state", "trials", "created", "finished", "error", "best"}


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_cli(project: Project, *args: str) -> subprocess.Popen[bytes]:
    """``python -m tracker ARGS`` in the project, as a user would start it (output to a file)."""
    with (project.root.parent / "tracker-cli.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=project.root, stdout=log, stderr=log)


def the_optimization(project: Project) -> str:
    (record,) = project.store.list_optimizations()
    return record.id


def by_configuration(trials: list[Trial]) -> dict[int, list[Trial]]:
    out: dict[int, list[Trial]] = {}
    for t in trials:
        out.setdefault(t.extra["configuration"], []).append(t)
    return out


def starts_of(log: ObjectiveLog, params: dict[str, object], seed: int) -> int:
    return log.points()[(params["x"], params["n"], params["act"], seed)]


# ---------------------------------------------------------------------------- grid


def test_grid_covers_the_space_exactly_once_in_parallel(search_project: Project, objective_log: ObjectiveLog) -> None:
    result = optimizer.optimize(search_project, "grid", optimizer.OptimizeOptions(strategy="grid", parallel=3))
    assert result.optimization.status == "completed", result.optimization.error
    full = sorted((*point(p), SEEDS[0]) for p in GRID)
    started = objective_log.points()
    assert sorted(started) == full and set(started.values()) == {1}  # every point, none twice
    assert sorted(point(c.params) for c in result.configurations) == sorted(point(p) for p in GRID)
    assert [c.state for c in result.configurations] == ["complete"] * len(GRID)
    assert sorted((*point(t.params), t.seed) for t in result.trials if t.status == "completed") == full
    assert max(len(ts) for ts in by_configuration(result.trials).values()) == 1


def test_grid_resumed_after_ctrl_c_covers_the_rest_once(search_project: Project,
                                                        objective_log: ObjectiveLog) -> None:
    proc = start_cli(search_project, "optimize", "slowgrid", "--strategy", "grid", "-j", "3", "-q")
    store = search_project.store
    wait_for(lambda: store.list_optimizations() and sum(
        c.state == "complete" for c in store.configurations(the_optimization(search_project))) >= 6,
             "six grid points done")
    proc.send_signal(signal.SIGINT)  # Ctrl-C: running trials are cancelled, the search is interrupted
    assert proc.wait(timeout=60) == 130
    opt = the_optimization(search_project)
    before = store.configurations(opt)
    assert 6 <= len(before) < len(GRID)
    code, out, err = cli("optimize", "status", opt, "--json")
    assert code == 0 and json.loads(out)["status"] == "interrupted", err
    code, _, err = cli("optimize", "resume", opt, "-j", "3", "-q")
    assert code == 0, err
    confs = store.configurations(opt)
    assert sorted(point(c.params) for c in confs) == sorted(point(p) for p in GRID)  # the union, no repeats
    assert {c.state for c in confs} == {"complete"}
    trials = store.list_trials(optimization=opt)
    done = Counter((*point(t.params), t.seed) for t in trials if t.status == "completed")
    assert sorted(done) == sorted((*point(p), SEEDS[0]) for p in GRID) and set(done.values()) == {1}
    assert {t.status for t in trials if t.status != "completed"} == {"cancelled"}  # cut short by the Ctrl-C
    started = objective_log.trials()
    assert set(started.values()) == {1} and set(started) <= {t.id for t in trials}
    assert {t.id for t in trials if t.status == "completed"} <= set(started)
    for p in GRID:  # a point started again only after a trial of it was cancelled
        ran = [t for t in trials if point(t.params) == point(p) and t.id in started]
        assert [t.status for t in ran] in (["completed"], ["cancelled", "completed"]), ran


# ---------------------------------------------------------------------------- early stopping


def test_hyperband_prunes_a_script_that_prints_its_step_on_a_line_of_its_own(search_project: Project) -> None:
    add_experiment(search_project, "bare", experiment(f"{{steps: {STEPS}, sleep: 0.05, bare_step: 1}}"))
    result = run_search(search_project, "bare", strategy="hyperband", trials=8, parallel=2, sampler_seed=3)
    pruned = [t for t in result.trials if t.status == "pruned"]
    assert pruned, [t.status for t in result.trials]
    assert all(0 <= t.extra["pruned_step"] < STEPS - 1 for t in pruned)


@pytest.mark.parametrize("strategy", ["hyperband", "bohb"])
def test_learning_curve_strategies_prune_and_save_steps(search_project: Project, strategy: str) -> None:
    result = run_search(search_project, "slow", strategy=strategy, trials=9, seeds=2, parallel=2)
    assert result.optimization.status == "completed", result.optimization.error
    assert len(result.configurations) == 9
    pruned = [t for t in result.trials if t.status == "pruned"]
    assert pruned, [t.status for t in result.trials]
    for t in pruned:  # both the seed whose curve was judged and its sibling stopped with it
        step = t.extra["pruned_step"]
        assert isinstance(step, int) and 0 <= step < STEPS - 1, t.extra
        assert t.error is not None and t.error.startswith(f"pruned at step {step}"), t.error
    confs = {c.number: c for c in result.configurations}
    for number, trials in by_configuration(result.trials).items():
        if confs[number].state == "pruned":
            assert {t.status for t in trials} <= {"pruned", "completed"}
            assert confs[number].step is not None and confs[number].value is None
    assert result.best is not None and result.best.state == "complete"
    steps_run = sum(len(search_project.store.metrics(t.id, "val/loss")) for t in result.trials)
    assert steps_run < len(result.configurations) * 2 * STEPS  # fewer than running every trial to its end


def test_hyperband_prunes_the_same_way_for_the_same_sampler_seed(search_project: Project) -> None:
    # Hyperband's bracket of a configuration comes from the study's name: named after the seed, two
    # searches prune the same configurations at the same steps (a name from the random id did not)
    runs = [run_search(search_project, "slow", strategy="hyperband", trials=8, parallel=1, sampler_seed=3)
            for _ in range(2)]
    first, second = ([(point(c.params), c.state, c.step) for c in r.configurations] for r in runs)
    assert first == second
    assert any(state == "pruned" for _, state, _ in first)


def test_a_pruned_trial_stops_soon_after_its_rung(search_project: Project) -> None:
    # the driver polls every 0.1 s while a pruner watches: at 0.05 s per step a pruned trial logs a few
    # steps past the one that stopped it (with the 0.5 s poll it ran on for 7-9 more)
    import statistics

    result = run_search(search_project, "slow", strategy="hyperband", trials=10, parallel=1, sampler_seed=3)
    pruned = [t for t in result.trials if t.status == "pruned"]
    assert pruned
    beyond = [len(search_project.store.metrics(t.id, "val/loss")) - 1 - t.extra["pruned_step"] for t in pruned]
    assert statistics.median(beyond) <= 5, beyond


def test_seeds_are_paired_and_mean_aggregated(search_project: Project) -> None:
    result = run_search(search_project, "quad", strategy="random", trials=4, seeds=3, seed_pruning=False)
    assert result.optimization.settings["seeds"] == SEEDS[:3]
    trials = by_configuration(result.trials)
    assert len(result.configurations) == 4
    for conf in result.configurations:
        mine = trials[conf.number]
        assert sorted(t.seed for t in mine) == SEEDS[:3]  # the same first 3 preset seeds: paired
        assert {t.status for t in mine} == {"completed"}
        values = {str(t.seed): t.metrics["val/loss"] for t in mine}
        assert conf.values == values
        assert conf.value == pytest.approx(statistics.fmean(values.values()))


def test_median_aggregate(search_project: Project) -> None:
    code, out, err = cli("optimize", "quad", "--strategy", "random", "--trials", "3", "--seeds", "3",
                         "--aggregate", "median", "--no-seed-pruning", "-q", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["aggregate"] == "median" and status["seeds"] == SEEDS[:3]
    confs = Project.find().store.configurations(status["id"])
    assert len(confs) == 3
    for conf in confs:
        values = list(conf.values.values())
        assert len(values) == 3 and conf.value == statistics.median(values)
        assert conf.value != pytest.approx(statistics.fmean(values), abs=1e-9)  # the noise is not symmetric
    assert status["best"]["value"] == min(c.value for c in confs)


def test_paired_seed_test_stops_clearly_worse_configurations(search_project: Project) -> None:
    result = run_search(search_project, "quad", strategy="random", trials=8, seeds=5)
    assert result.optimization.status == "completed", result.optimization.error
    best = result.best
    assert best is not None and sorted(best.values) == sorted(map(str, SEEDS))  # the best ran every seed
    trials = by_configuration(result.trials)
    pruned = [c for c in result.configurations if c.state == "pruned"]
    assert pruned
    for conf in pruned:
        assert 0 < len(conf.values) < 5 and conf.value is None
        assert len(trials[conf.number]) < 5  # its remaining seeds never started
        assert all(v > best.values[s] for s, v in conf.values.items())  # worse on every seed it ran


# ---------------------------------------------------------------------------- resume


def test_resume_after_kill_9_runs_only_what_did_not_finish(search_project: Project,
                                                           objective_log: ObjectiveLog) -> None:
    budget = 6
    proc = start_cli(search_project, "optimize", "slow", "--strategy", "tpe", "--trials", str(budget),
                     "--seeds", "2", "-j", "2", "-q")
    store = search_project.store

    def mid_run() -> bool:
        if not store.list_optimizations():
            return False
        opt = the_optimization(search_project)
        done = [c for c in store.configurations(opt) if c.state == "complete"]
        running = store.list_trials(optimization=opt, status=["running"])
        return len(done) >= 2 and any((t.step or 0) < STEPS // 2 for t in running)

    wait_for(mid_run, "two configurations done and a trial in its first half")
    proc.kill()
    proc.wait(timeout=30)
    opt = the_optimization(search_project)
    code, out, err = cli("optimize", "status", opt, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "interrupted"
    before = {c.number: c for c in store.configurations(opt)}
    finished_before = {n for n, c in before.items() if c.state != "running"}
    cut = {n for n, c in before.items() if c.state == "running"}
    assert finished_before and cut
    completed_before = {t.id for t in store.list_trials(optimization=opt, status=["completed"])}

    code, out, err = cli("optimize", "resume", opt, "-q", "--json")
    assert code == 0, err
    assert "Warning" not in err  # nothing of Optuna's own (its Wilcoxon pruner is 'experimental')
    assert json.loads(out)["status"] == "completed"
    confs = store.configurations(opt)
    assert len(confs) == budget and {c.state for c in confs} == {"complete"}
    trials = store.list_trials(optimization=opt)
    assert completed_before <= {t.id for t in trials if t.status == "completed"}
    done = Counter((c.number, t.seed) for c in confs for t in trials
                   if t.extra["configuration"] == c.number and t.status == "completed")
    assert sorted(done) == sorted((c.number, s) for c in confs for s in SEEDS[:2])
    assert set(done.values()) == {1}  # each (configuration, seed) completed exactly once
    started = objective_log.trials()
    assert set(started.values()) == {1} and {t.id for t in trials if t.status == "completed"} <= set(started)
    for c in confs:
        for seed in SEEDS[:2]:
            runs = [t.status for t in trials if t.extra["configuration"] == c.number and t.seed == seed]
            if c.number in finished_before:  # nothing of a finished configuration ran again
                assert runs == ["completed"] and starts_of(objective_log, c.params, seed) == 1
            else:  # an interrupted one ran its cut-short seeds again, not its completed ones
                assert runs[-1] == "completed" and set(runs[:-1]) <= {"lost", "cancelled"} and len(runs) <= 2
    assert any(t.status == "lost" for t in trials if t.extra["configuration"] in cut)


def test_resume_closes_a_configuration_whose_seeds_all_completed(search_project: Project) -> None:
    # killed after its last trial ended but before the configuration was recorded as complete
    result = run_search(search_project, "quad", strategy="random", trials=2, seeds=2, seed_pruning=False)
    store = search_project.store
    opt = result.optimization.id
    last = result.configurations[-1]
    store.save_configuration(replace(last, state="running", value=None, finished=None))
    store.update_optimization(opt, status="interrupted", finished=None)
    resumed = optimizer.resume(search_project, opt)
    assert resumed.optimization.status == "completed", resumed.optimization.error
    assert [c.state for c in resumed.configurations] == ["complete", "complete"]
    assert resumed.configurations[-1].value == pytest.approx(last.value)
    assert len(resumed.trials) == len(result.trials)  # nothing ran again


def test_a_search_bounded_by_time_alone_resumes_only_with_a_bound(search_project: Project) -> None:
    first = run_search(search_project, "quad", strategy="random", timeout=1.0)
    opt, made = first.optimization.id, len(first.configurations)
    assert first.optimization.settings["budget"] is None
    again = subprocess.run([sys.executable, "-m", "tracker", "optimize", "resume", opt], cwd=search_project.root,
                           capture_output=True, text=True, timeout=60)  # without a bound it would never end
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "no --trials budget, only a --timeout" in again.stderr and "--timeout SECONDS" in again.stderr
    assert len(search_project.store.configurations(opt)) == made
    resumed = optimizer.resume(search_project, opt, trials=made + 2)
    assert resumed.optimization.status == "completed" and len(resumed.configurations) == made + 2


# ---------------------------------------------------------------------------- parallel


def test_parallel_slots_overlap_with_distinct_configurations(search_project: Project) -> None:
    result = run_search(search_project, "slow", strategy="tpe", trials=9, parallel=3)
    assert result.optimization.status == "completed", result.optimization.error
    assert len(result.configurations) == 9 and len(result.trials) == 9
    spans = sorted((t.started, t.finished, point(t.params)) for t in result.trials)
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if b[0] < a[1]]
    assert len(overlapping) >= 6  # three slots busy at once, most of the time
    for a, b in overlapping:
        assert a[2] != b[2]  # two configurations running at once are never the same
    assert len({point(c.params) for c in result.configurations}) == 9


# ---------------------------------------------------------------------------- failures and bad input


def test_a_crashing_configuration_fails_and_the_search_goes_on(search_project: Project) -> None:
    add_experiment(search_project, "crashy", experiment(f"{{steps: {STEPS}, crash_above: 0.5}}"))
    result = run_search(search_project, "crashy", strategy="random", trials=8, max_failures=0)
    assert result.optimization.status == "completed", result.optimization.error
    assert len(result.configurations) == 8
    failed = [c for c in result.configurations if c.state == "failed"]
    assert failed and all(c.params["x"] > 0.5 for c in failed)
    assert all("exit code 7" in (c.error or "") for c in failed)
    assert all(c.state == "complete" for c in result.configurations if c.params["x"] <= 0.5)
    assert result.best is not None and result.best.params["x"] <= 0.5


def test_max_failures_in_a_row_stops_the_search(search_project: Project) -> None:
    add_experiment(search_project, "broken", experiment(f"{{steps: {STEPS}, crash_above: -1.0}}"))
    code, out, err = cli("optimize", "broken", "--strategy", "random", "--trials", "10", "--max-failures", "3",
                         "-q", "--json")
    assert code == 1, err
    status = json.loads(out)
    assert status["status"] == "failed" and status["by_state"] == {"failed": 3}  # every configuration failed
    assert "3 configurations failed in a row" in status["error"]
    assert "every configuration failed (3); all: exit code 7" in status["error"]
    assert status["trials"] == {"failed": 3}


@pytest.mark.parametrize(("space", "strategy", "line", "words"), [
    ("search: {}\n", "tpe", 4, ["no 'search:' ranges"]),
    ("search:\n  x: {type: uniform, low: 0, high: 1}\n  lr: {type: loguniform, low: 0, high: 1}\n", "tpe", 6,
     ["low > 0"]),
    ("search:\n  n: {type: int, low: 1, high: 5, step: 1.5}\n", "tpe", 5, ["integer 'step'", "1.5"]),
    ("search:\n  n: {type: int, low: 1, high: 5}\n  x: {type: uniform, low: 0, high: 1}\n", "grid", 6,
     ["grid search needs a finite range", "'x'"]),
    ("search:\n  x: {type: uniform, low: 0, high: 1, log: true}\n", "random", 5, ["low > 0"]),
    ("search:\n  x: {type: uniform, low: 0, high: 1, step: 0.3}\n", "random", 5,
     ["high - low = 1 is not a multiple of 'step' 0.3", "make 'high' 0.9 or 1.2"]),
    ("search:\n  x: {type: uniform, low: 0, high: 1}\n  n: {type: int, low: 1, high: 4, step: 2}\n", "grid", 6,
     ["'n': high - low = 3 is not a multiple of 'step' 2"]),
])
def test_a_bad_space_is_a_config_error_at_its_line(search_project: Project, space: str, strategy: str, line: int,
                                                   words: list[str]) -> None:
    add_experiment(search_project, "bad", f"command: [python3, objective.py]\nobjective: {{metric: val/loss}}\n"
                                          f"params: {{steps: 2}}\n{space}")
    code, _, err = cli("optimize", "bad", "--strategy", strategy, "--trials", "2")
    assert code == 2
    assert err.startswith(f"error: experiments/bad.yaml:{line}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err
    assert search_project.store.list_optimizations() == [] and search_project.store.count() == 0


def test_an_objective_never_reported_is_exit_1_naming_what_was_seen(search_project: Project) -> None:
    add_experiment(search_project, "quiet", experiment(f"{{steps: {STEPS}, quiet_metric: 1}}"))
    code, _, err = cli("optimize", "quiet", "--strategy", "random", "--trials", "3", "-q")
    assert code == 1
    assert "Traceback" not in err
    assert "'val/loss' was never reported" in err and "metrics seen: train/loss, val/other" in err
    with pytest.raises(OptimizationError, match="val/other"):
        run_search(search_project, "quiet", strategy="random", trials=3)
    record = search_project.store.list_optimizations()[-1]
    assert record.status == "failed" and "val/loss" in (record.error or "")


def test_a_test_metric_objective_is_refused_at_load(search_project: Project) -> None:
    add_experiment(search_project, "peek", "command: [python3, objective.py]\nsearch:\n"
                                           "  x: {type: uniform, low: 0, high: 1}\nobjective:\n  metric: test/acc\n")
    code, _, err = cli("optimize", "peek", "--trials", "2")
    assert code == 2 and err.startswith("error: experiments/peek.yaml:5: "), err
    assert "test data must not drive selection" in err and "Traceback" not in err
    assert search_project.store.list_optimizations() == []


# ---------------------------------------------------------------------------- normal trials, best, list


def test_optimization_trials_are_normal_trials(search_project: Project, tmp_path: Path) -> None:
    code, out, err = cli("optimize", "quad", "--strategy", "random", "--trials", "3", "--seeds", "2",
                         "--no-seed-pruning", "-q", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert set(status) == STATUS_KEYS
    assert (status["status"], status["budget"], status["configurations"]) == ("completed", 3, 3)
    assert status["by_state"] == {"complete": 3} and status["trials"] == {"completed": 6}
    opt = status["id"]
    trials = search_project.store.list_trials(optimization=opt)
    code, out, _ = cli("trials", "list", "--json")
    assert sorted(t["id"] for t in json.loads(out)) == sorted(t.id for t in trials)
    code, out, _ = cli("trials", "show", trials[0].id, "--json")
    shown = json.loads(out)
    assert shown["extra"]["optimization"] == opt and shown["extra"]["configuration"] in (0, 1, 2)
    code, _, err = cli("checkout", trials[0].id, "--to", str(tmp_path / "code"))
    assert code == 0, err
    assert (tmp_path / "code" / "objective.py").read_text() == (search_project.root / "objective.py").read_text()

    code, out, _ = cli("optimize", "status", opt[:6], "--json")
    assert code == 0 and json.loads(out) == status
    code, out, _ = cli("optimize", "list", "--json")
    assert [s["id"] for s in json.loads(out)] == [opt] and set(json.loads(out)[0]) == STATUS_KEYS

    code, out, err = cli("optimize", "best", opt, "--save", "tuned", "--json")
    assert code == 0, err
    best = json.loads(out)
    assert best["params"] == status["best"]["params"] and best["value"] == status["best"]["value"]
    assert sorted(best["trials"]) == sorted(t.id for t in trials if t.extra["configuration"] == best["configuration"])
    from tracker import experiments

    saved = experiments.load(Project.find(), "tuned")
    assert saved.params == {"steps": STEPS, **{k: best["params"][k] for k in ("x", "n", "act")}}
    assert saved.search == {} and saved.seeds == SEEDS[:2]
    code, out, err = cli("run", "tuned", "--dry-run", "--json")
    assert code == 0, err
    assert [(p["seed"], p["params"]) for p in json.loads(out)] == [(s, best["params"]) for s in SEEDS[:2]]
