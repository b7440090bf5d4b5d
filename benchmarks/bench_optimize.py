#!/usr/bin/env python3
"""`tracker optimize` against plain Optuna and Guild AI, on one objective and one budget, in one run.

The objective is tests/search/objective.py: a noisy quadratic with a learning curve (it prints
`step: N val/loss: V` per step; minimum at x=0.3, n=3, act=tanh). The space is x uniform
-1..1, n int 1..6, act relu/tanh; every tool gets the same budget of configurations, the same
data seed (--seed=7) and sequential trials. For each sampler seed it runs, interleaved:
  1. tracker random / tpe / gp, each `tracker optimize quad --strategy S --trials N
     --sampler-seed SEED -q --json` in a temporary git project, and plain Optuna with the same
     sampler and settings (RandomSampler; TPESampler(constant_liar, multivariate,
     n_startup_trials=10); GPSampler(n_startup_trials=10)): a `create_study` loop whose
     objective runs the script as a subprocess and parses its last val/loss. The samplers
     suggest the same configurations, so wall-time difference / trials is tracker's overhead;
  2. tracker hyperband / bohb on the script with a per-step sleep (--sleep), against Optuna's
     Random / TPE sampler with HyperbandPruner: its objective reads the output lines as they
     come, reports each val/loss, and kills the script when trial.should_prune() says so;
  3. `guild run --optimizer gp` and `--optimizer forest` with `--max-trials N --random-seed
     SEED` on the same script (Guild's flags interface), each in its own GUILD_HOME.
Steps are the val/loss lines each trial printed (what its tool saw). "Steps to random's best":
the steps run (trials in the order they ended) until a completed trial reached the final best of
random search with the same sampler seed; random's own total is trials x steps.

Usage: python benchmarks/bench_optimize.py [--configs 30] [--steps 20] [--sleep 0.05] [--seeds 3]
           [--pruning-seeds 3] [--guild-seeds 3] [--guild PATH]
Guild: looked up as --guild, /tmp/guildenv-opt/bin/guild, `guild` on PATH, /tmp/guildenv/bin/guild.
Guild 0.9.0's gp and forest optimizers (its bundled scikit-optimize) import numpy.core.umath_tests,
which NumPy 2 removed and NumPy 1.25+ refuses to load, and forest passes max_features='auto' to
scikit-learn, which 1.3 removed; so they run only in a venv pinned back:
    python3 -m venv /tmp/guildenv-opt && /tmp/guildenv-opt/bin/pip install guildai==0.9.0 \\
        'numpy<1.25' 'scipy<1.15' 'scikit-learn<1.3'
Without a working Guild its rows say why and the rest still runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

OBJECTIVE = Path(__file__).resolve().parents[1] / "tests/search/objective.py"
DATA_SEED = 7  # the objective's own --seed (its noise), the same for every tool and configuration
STARTUP = 10  # random configurations before TPE / GP model the space (tracker's default)
VALUE = re.compile(r"val/loss: (\S+)")

EXPERIMENT = textwrap.dedent("""\
    command: [{python!r}, objective.py]
    params: {{steps: {steps}, sleep: {sleep}}}
    seeds: [{seed}]
    search:
      x: {{type: uniform, low: -1, high: 1}}
      n: {{type: int, low: 1, high: 6}}
      act: {{type: choice, values: [relu, tanh]}}
    objective: {{metric: val/loss, goal: min}}
""")

# Plain Optuna: what a user writes without tracker. Run as its own process, like tracker's CLI.
BASELINE = textwrap.dedent('''\
    import json, re, subprocess, sys, warnings
    import optuna

    sampler_name, pruner_name, trials, seed, steps, sleep, data_seed = sys.argv[1:8]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seed = int(seed)
    sampler = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=%(startup)d,
                                                  multivariate=True),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed, n_startup_trials=%(startup)d),
    }[sampler_name]()
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
              if pruner_name == "hyperband" else optuna.pruners.NopPruner())
    line_re = re.compile(r"step: (\\d+) val/loss: (\\S+)")
    log = []

    def objective(trial):
        x = trial.suggest_float("x", -1, 1)
        n = trial.suggest_int("n", 1, 6)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        cmd = [sys.executable, "objective.py", f"--x={x}", f"--n={n}", f"--act={act}", f"--seed={data_seed}",
               f"--steps={steps}", f"--sleep={sleep}"]
        entry = {"params": {"x": x, "n": n, "act": act}, "state": "pruned", "value": None, "steps": 0}
        log.append(entry)
        if pruner_name == "none":
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            values = [float(m.group(2)) for m in line_re.finditer(out)]
            entry.update(state="complete", value=values[-1], steps=len(values))
            return values[-1]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        value = None
        for line in proc.stdout:
            m = line_re.search(line)
            if m is None:
                continue
            value = float(m.group(2))
            entry["steps"] += 1
            trial.report(value, int(m.group(1)))
            if trial.should_prune():
                proc.kill()
                proc.wait()
                raise optuna.TrialPruned()
        if proc.wait() != 0:
            raise RuntimeError(f"objective.py exited with {proc.returncode}")
        entry.update(state="complete", value=value)
        return value

    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=int(trials))
    print(json.dumps(log))
''') % {"startup": STARTUP}

GUILD_YML = textwrap.dedent("""\
    objective:
      main: objective
      flags-import: all
      output-scalars:
        step: 'step: (\\step)'
        val/loss: 'val/loss: (\\value)'
""")


@dataclass
class Outcome:
    """One search: its wall time and, per trial in the order they ended, (state, final value, steps)."""

    wall: float
    trials: list[tuple[str, float | None, int]]
    params: list[tuple[float, int, str]]

    @property
    def best(self) -> float:
        return min((v for state, v, _ in self.trials if state == "complete" and v is not None), default=math.inf)

    @property
    def steps(self) -> int:
        return sum(s for _, _, s in self.trials)

    def steps_to(self, target: float) -> int | None:
        """Steps run until a completed trial reached ``target`` (None: never)."""
        total = 0
        for state, value, steps in self.trials:
            total += steps
            if state == "complete" and value is not None and value <= target + 1e-9:
                return total
        return None


def clock(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``cmd``; return its wall time and stdout (stderr is kept for the error message)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited with {proc.returncode}: {last}")
    return wall, proc.stdout


def make_project(root: Path, steps: int, sleep: float) -> None:
    """A git project with the objective and two experiments: `quad` (no sleep) and `curve` (a sleep per step)."""
    root.mkdir(parents=True)
    shutil.copy(OBJECTIVE, root / "objective.py")
    (root / "tracker.yaml").write_text("name: bench-optimize\n")
    (root / ".gitignore").write_text(".tracker/\n")
    (root / "experiments").mkdir()
    for name, pause in (("quad", 0.0), ("curve", sleep)):
        (root / f"experiments/{name}.yaml").write_text(
            EXPERIMENT.format(python=sys.executable, steps=steps, sleep=pause, seed=DATA_SEED))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def run_tracker(tracker: str, project: Path, experiment: str, strategy: str, configs: int, seed: int) -> Outcome:
    wall, out = clock([tracker, "optimize", experiment, "--strategy", strategy, "--trials", str(configs),
                       "--sampler-seed", str(seed), "-q", "--json"], project)
    opt = json.loads(out)
    if opt["status"] != "completed":
        raise RuntimeError(f"tracker optimize ended {opt['status']}: {opt.get('error')}")
    with sqlite3.connect(project / ".tracker/tracker.db") as conn:
        rows = conn.execute(
            """SELECT t.status, json_extract(t.metrics, '$."val/loss"'), json_extract(t.params, '$.x'),
                      json_extract(t.params, '$.n'), json_extract(t.params, '$.act'),
                      (SELECT COUNT(*) FROM metrics m WHERE m.trial_id = t.id AND m.name = 'val/loss')
               FROM trials t WHERE t.run_id = ? ORDER BY t.finished, t.created""", (opt["id"],)).fetchall()
    conn.close()
    return Outcome(wall, [("complete" if status == "completed" else status, value, steps)
                          for status, value, *_, steps in rows], [(x, n, act) for _, _, x, n, act, _ in rows])


def run_optuna(where: Path, sampler: str, pruner: str, configs: int, seed: int, steps: int,
               sleep: float) -> Outcome:
    wall, out = clock([sys.executable, "baseline.py", sampler, pruner, str(configs), str(seed), str(steps),
                       str(sleep), str(DATA_SEED)], where)
    log = json.loads(out)
    return Outcome(wall, [(e["state"], e["value"], e["steps"]) for e in log],
                   [(e["params"]["x"], e["params"]["n"], e["params"]["act"]) for e in log])


def find_guild(explicit: str | None) -> str | None:
    for candidate in (explicit, "/tmp/guildenv-opt/bin/guild", shutil.which("guild"), "/tmp/guildenv/bin/guild"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def run_guild(guild: str, project: Path, home: Path, optimizer: str, configs: int, seed: int,
              steps: int) -> Outcome:
    home.mkdir()
    env = {**os.environ, "GUILD_HOME": str(home), "NO_IMPORT_FLAGS_PROGRESS": "1"}
    wall, _ = clock([guild, "run", "objective", "x=[-1.0:1.0]", "n=[1:6]", "act=[relu,tanh]", f"seed={DATA_SEED}",
                     f"steps={steps}", "sleep=0", "--optimizer", optimizer, "--max-trials", str(configs),
                     "--minimize", "val/loss", "--random-seed", str(seed), "-y", "-q"], project, env)
    _, out = clock([guild, "api", "runs"], project, env)
    runs = sorted((r for r in json.loads(out) if r["operation"] == "objective"), key=lambda r: r["started"])
    trials, params = [], []
    for r in runs:
        values = [float(v) for v in VALUE.findall((Path(r["dir"]) / ".guild/output").read_text())]
        ok = r["status"] == "completed" and values
        trials.append(("complete" if ok else r["status"], values[-1] if ok else None, len(values)))
        params.append((r["flags"]["x"], r["flags"]["n"], r["flags"]["act"]))
    if not any(state == "complete" for state, _, _ in trials):
        raise RuntimeError(f"no Guild trial completed ({len(trials)} trials)")
    return Outcome(wall, trials, params)


Results = dict[tuple[str, str], dict[int, Outcome]]  # (tool, strategy) -> sampler seed -> outcome

ORDER = [("tracker", s) for s in ("random", "tpe", "gp", "hyperband", "bohb")] + \
        [("optuna", s) for s in ("random", "tpe", "gp", "hyperband", "bohb")] + [("guild", "gp"), ("guild", "forest")]
LABEL = {("optuna", "random"): "RandomSampler", ("optuna", "tpe"): "TPESampler", ("optuna", "gp"): "GPSampler",
         ("optuna", "hyperband"): "Random + HyperbandPruner", ("optuna", "bohb"): "TPE + HyperbandPruner",
         ("guild", "gp"): "--optimizer gp", ("guild", "forest"): "--optimizer forest"}


def median_text(values: list[float], digits: int = 4) -> str:
    """The median, and the range when there are several values."""
    mid = f"{statistics.median(values):.{digits}f}"
    return mid if len(values) == 1 else f"{mid} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(results: Results) -> list[list[str]]:
    """One row per tool and strategy, over its sampler seeds (medians)."""
    random_best = {s: o.best for s, o in results.get(("tracker", "random"), {}).items()}
    rows = []
    for tool, strategy in ORDER:
        runs = results.get((tool, strategy))
        if not runs:
            continue
        wall = statistics.median(o.wall for o in runs.values())
        trials = statistics.median(len(o.trials) for o in runs.values())
        over = "—"
        optuna = results.get(("optuna", strategy), {})
        if tool == "tracker" and optuna:  # paired by sampler seed
            over = f"{statistics.median((o.wall - optuna[s].wall) / len(o.trials) for s, o in runs.items()):+.3f}"
        reach = "—"
        if tool != "guild" and random_best:
            hits = [o.steps_to(random_best[s]) for s, o in runs.items()]
            found = [h for h in hits if h is not None]
            reach = (f"{statistics.median(found):.0f}" if found else "never") + f" ({len(found)}/{len(hits)} seeds)"
        rows.append([tool, LABEL.get((tool, strategy), strategy), median_text([o.best for o in runs.values()]),
                     f"{wall:.2f}", f"{wall / trials:.3f}", over, f"{trials:.0f}",
                     f"{statistics.median(o.steps for o in runs.values()):.0f}", reach])
    return rows


def same_suggestions(results: Results, strategy: str) -> str:
    """Whether tracker and Optuna were given the same configurations, seed by seed."""
    mine, theirs = results.get(("tracker", strategy), {}), results.get(("optuna", strategy), {})
    same = [s for s in mine if s in theirs and len(mine[s].params) == len(theirs[s].params) and all(
        a[1:] == b[1:] and abs(a[0] - b[0]) < 1e-9 for a, b in zip(mine[s].params, theirs[s].params, strict=True))]
    return f"{strategy}: tracker and Optuna suggested the same configurations for {len(same)} of {len(mine)} seeds"


def targets(results: Results, total: int, sleep: float) -> list[str]:
    """The issue's three targets, each with what was measured."""
    lines = []
    over = {}
    for strategy in ("random", "tpe", "gp", "hyperband", "bohb"):
        mine, theirs = results.get(("tracker", strategy), {}), results.get(("optuna", strategy), {})
        pairs = [(o, theirs[s]) for s, o in mine.items() if s in theirs]
        if not pairs:
            continue
        extra = 0.0 if strategy in ("random", "tpe", "gp") else sleep
        # hyperband/bohb: less the sleep of the steps tracker ran beyond Optuna's (its pruning lag)
        over[strategy] = statistics.median(
            ((a.wall - b.wall) - (a.steps - b.steps) * extra) / len(a.trials) for a, b in pairs)
    if over:
        worst = max(over, key=over.get)
        lines.append(f"overhead per trial over plain Optuna < 0.2 s: {'met' if over[worst] < 0.2 else 'NOT met'} "
                     f"({', '.join(f'{k} {v:+.3f} s' for k, v in over.items())}; hyperband/bohb net of the "
                     f"{sleep} s sleep of the extra steps they ran)")
    ours = {k[1]: statistics.median(o.best for o in v.values()) for k, v in results.items() if k[0] == "tracker"}
    guild = {k[1]: statistics.median(o.best for o in v.values()) for k, v in results.items() if k[0] == "guild"}
    if ours and guild:
        met = min(ours.values()) <= min(guild.values())
        lines.append(f"best value at least as good as Guild's: {'met' if met else 'NOT met'} (median best: tracker "
                     f"{', '.join(f'{k} {v:.4f}' for k, v in ours.items())}; Guild "
                     f"{', '.join(f'{k} {v:.4f}' for k, v in guild.items())})")
    random_best = {s: o.best for s, o in results.get(("tracker", "random"), {}).items()}
    for tool, strategy in [k for k in ORDER if k[1] in ("hyperband", "bohb")]:
        runs = results.get((tool, strategy), {})
        reach = [runs[s].steps_to(random_best[s]) for s in runs if s in random_best]
        if not reach:
            continue
        ok = sum(1 for r in reach if r is not None and r <= total / 2)
        lines.append(f"{tool} {strategy} reaches random's best within half of random's {total} steps: "
                     f"{'met' if ok == len(reach) else 'NOT met'}, within it for {ok} of {len(reach)} seeds "
                     f"(steps: {', '.join('never' if r is None else str(r) for r in reach)})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=30, help="configurations per search (each one trial)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds per step in the Hyperband/BOHB comparison")
    ap.add_argument("--seeds", type=int, default=3, help="sampler seeds for random/tpe/gp")
    ap.add_argument("--pruning-seeds", type=int, default=None, help="sampler seeds for hyperband/bohb "
                    "(default: --seeds)")
    ap.add_argument("--guild-seeds", type=int, default=None, help="Guild's --random-seed values (default: --seeds; "
                    "0: skip Guild)")
    ap.add_argument("--guild")
    args = ap.parse_args()
    tracker = shutil.which("tracker")
    if tracker is None:
        sys.exit("tracker is not on PATH (make install, then PATH=.venv/bin:$PATH)")
    tracker = str(Path(tracker).resolve())
    n, seeds = args.configs, range(args.seeds)
    pruning_seeds = range(args.seeds if args.pruning_seeds is None else args.pruning_seeds)
    guild_seeds = range(args.seeds if args.guild_seeds is None else args.guild_seeds)
    results: Results = {}
    notes: list[str] = []
    started = time.perf_counter()

    def record(tool: str, strategy: str, seed: int, outcome: Outcome) -> None:
        results.setdefault((tool, strategy), {})[seed] = outcome
        print(f"  {tool:7} {strategy:9} seed {seed}: best {outcome.best:.4f}, {outcome.wall:6.2f} s, "
              f"{len(outcome.trials)} trials, {outcome.steps} steps", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="tracker-bench-opt-") as tmp:
        tmpdir = Path(tmp)
        project = tmpdir / "proj"
        make_project(project, args.steps, args.sleep)
        baseline = tmpdir / "optuna"  # outside the project, whose git tree stays clean
        baseline.mkdir()
        shutil.copy(OBJECTIVE, baseline / "objective.py")
        (baseline / "baseline.py").write_text(BASELINE)
        _, out = clock([sys.executable, "objective.py", "--x=0.3", "--n=3", "--act=tanh", f"--seed={DATA_SEED}",
                        f"--steps={args.steps}"], project)
        optimum = float(VALUE.findall(out)[-1])
        bare = statistics.median(clock([sys.executable, "objective.py", f"--seed={DATA_SEED}",
                                        f"--steps={args.steps}"], project)[0] for _ in range(7))

        # 1 and 2: tracker and plain Optuna, one after the other, in alternating order seed by seed
        plan = [(s, strategy, "quad", strategy, "none", 0.0) for s in seeds for strategy in ("random", "tpe", "gp")]
        plan += [(s, strategy, "curve", sampler, "hyperband", args.sleep) for s in pruning_seeds
                 for strategy, sampler in (("hyperband", "random"), ("bohb", "tpe"))]
        for s, strategy, experiment, sampler, pruner, sleep in plan:
            for tool in ("tracker", "optuna") if s % 2 == 0 else ("optuna", "tracker"):
                if tool == "tracker":
                    outcome = run_tracker(tracker, project, experiment, strategy, n, s)
                else:
                    outcome = run_optuna(baseline, sampler, pruner, n, s, args.steps, sleep)
                record(tool, strategy, s, outcome)

        # 3. Guild AI
        guild = find_guild(args.guild) if guild_seeds else None
        if guild_seeds and guild is None:
            notes.append("Guild AI: not found (the docstring says how to install it); no Guild rows")
        if guild:
            gproj = tmpdir / "guild-proj"
            gproj.mkdir()
            shutil.copy(OBJECTIVE, gproj / "objective.py")
            (gproj / "guild.yml").write_text(GUILD_YML)
            version = subprocess.run([guild, "--version"], capture_output=True, text=True).stdout.strip()
            notes.append(f"Guild: {version}, {guild}")
            for optimizer in ("gp", "forest"):
                for s in guild_seeds:
                    try:
                        outcome = run_guild(guild, gproj, tmpdir / f"guild-home-{optimizer}-{s}", optimizer, n, s,
                                            args.steps)
                    except (RuntimeError, OSError, ValueError, KeyError) as exc:
                        notes.append(f"Guild --optimizer {optimizer} did not run: {exc}")
                        break
                    record("guild", optimizer, s, outcome)

    print(f"{n} configurations x 1 seed, {args.steps} steps each; sampler seeds: {len(seeds)} (random/tpe/gp), "
          f"{len(pruning_seeds)} (hyperband/bohb, {args.sleep} s per step), {len(guild_seeds)} (Guild); "
          f"bare script {bare * 1000:.0f} ms; optimum val/loss {optimum:.4f}; random's total steps "
          f"{n * args.steps}; the benchmark took {time.perf_counter() - started:.0f} s")
    header = ["tool", "strategy", "best val/loss: median (range)", "wall s", "s/trial", "over Optuna s/trial",
              "trials", "total steps", "steps to random's best"]
    for row in [header, ["---"] * len(header), *table(results)]:
        print("| " + " | ".join(row) + " |")
    print("\nper seed: best / wall s / total steps / steps to random's best")
    random_best = {s: o.best for s, o in results.get(("tracker", "random"), {}).items()}
    for key in ORDER:
        for s, o in sorted(results.get(key, {}).items()):
            reach = o.steps_to(random_best[s]) if s in random_best and key[0] != "guild" else "—"
            print(f"  {key[0]:7} {key[1]:9} seed {s}: {o.best:.4f} / {o.wall:6.2f} / {o.steps} / "
                  f"{'never' if reach is None else reach}")
    for note in [*notes, *(same_suggestions(results, s) for s in ("random", "tpe", "gp"))]:
        print(f"note: {note}")
    print()
    for line in targets(results, n * args.steps, args.sleep):
        print(f"target: {line}")


if __name__ == "__main__":
    main()
