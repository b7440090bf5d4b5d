#!/usr/bin/env python3
"""How long ``tracker report`` takes to write the page of 1,000 trials with learning curves (target < 5 s).

Fills a fresh project's store through the library: N completed trials of one experiment, a grid of
lr x layers (N / seeds configurations) over SEEDS seeds, each trial with STEPS steps of val/acc and
train/loss. Then times ``write_report`` (compare, curves, plots, tables, plotly.js inlined), best of
REPEAT, then ``tracker report`` as a command (a fresh process: imports included), best of REPEAT,
and prints the page size.

Usage: python benchmarks/bench_report.py [--trials 1000] [--seeds 10] [--steps 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table


def fill(root: Path, trials: int, seeds: int, steps: int) -> None:
    """A project at ``root`` whose store holds ``trials`` completed trials with curves."""
    from tracker.project import Project
    from tracker.store import MetricPoint, Trial, now

    (root / "experiments").mkdir(parents=True)
    (root / "tracker.yaml").write_text("name: bench\n")
    (root / "experiments" / "e.yaml").write_text(
        "command: [python, train.py]\nobjective: {metric: val/acc, goal: max}\n")
    store = Project.load(root).store
    configurations = max(1, trials // seeds)
    batch = [Trial(id=f"r{i:011x}", experiment="e", status="completed", seed=i % seeds,
                   params={"lr": round(0.01 * (1 + (i // seeds) % 10), 2), "layers": 1 + (i // seeds) // 10 % 10},
                   created=now(), started=now(), finished=now(), commit="0" * 40, branch="main", host="bench")
             for i in range(configurations * seeds)]
    store.add_trials(batch)
    for t in batch:
        rng = random.Random(t.id)
        rate = t.params["lr"] * 10 / t.params["layers"]
        points = []
        for step in range(steps):
            acc = 0.9 * (1 - math.exp(-rate * (step + 1) / steps * 5)) + rng.uniform(-0.01, 0.01)
            points += [MetricPoint("val/acc", acc, step), MetricPoint("train/loss", 1 - acc, step)]
        store.append_metrics(t.id, points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from tracker.analysis.report import write_report
    from tracker.project import Project

    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
        root = Path(tmp) / "proj"
        start = time.perf_counter()
        fill(root, args.trials, args.seeds, args.steps)
        filled = time.perf_counter() - start
        project = Project.load(root)
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            out = write_report(project, ["e"], Path(tmp) / f"report{i}.html")
            times.append(time.perf_counter() - start)
        size = out.stat().st_size
        tracker = shutil.which("tracker") or sys.exit("tracker is not installed (pip install -e .)")
        tracker = str(Path(tracker).absolute())
        cli = []
        cpu = []
        for _ in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([tracker, "report", "e", "--out", "cli.html"], cwd=root, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cli.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    configurations = args.trials // args.seeds
    print_table([
        ("fill the store", f"{filled:.1f} s", f"{args.trials} trials x {args.steps} steps x 2 metrics"),
        (f"write_report, {args.trials} trials", f"{min(times):.2f} s",
         f"best of {args.repeat} ({', '.join(f'{t:.2f}' for t in times)}); {configurations} configurations; "
         "target < 5 s"),
        ("tracker report (a new process)", f"{min(cli):.2f} s",
         f"best of {args.repeat} ({', '.join(f'{t:.2f}' for t in cli)}); imports of scipy, statsmodels, plotly"),
        ("  its CPU time (user + system)", f"{min(cpu):.2f} s", "what it costs on an idle machine, about"),
        ("page size", f"{size / 1e6:.1f} MB", "plotly.js inlined (about 4.8 MB of it)"),
    ], value_header="value")


if __name__ == "__main__":
    main()
