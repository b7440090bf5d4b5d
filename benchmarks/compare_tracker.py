#!/usr/bin/env python3
"""How long `tracker compare` takes over 100,000 trials (10,000 configurations x 10 seeds by default).

Fills a fresh project's store through the library API (completed trials with a learning curve of
--steps points each), then times `tracker compare EXP --json` (the CLI, in a subprocess) and the
library call `tracker.analysis.compare.compare`. Another benchmark imports `make_project`,
`fill` and `time_compare` to set the same data beside other tools.

Usage: python benchmarks/compare_tracker.py [--configs 10000] [--seeds 10] [--steps 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

EXPERIMENT = "e"


def make_project(root: Path) -> Path:
    """An empty tracker project at ``root`` whose experiment 'e' maximises val/acc."""
    (root / "experiments").mkdir(parents=True)
    (root / "tracker.yaml").write_text("name: bench-compare\n")
    (root / "experiments" / f"{EXPERIMENT}.yaml").write_text(
        "command: [python, train.py]\nobjective: {metric: val/acc, goal: max}\n")
    return root


def fill(root: Path, configs: int, seeds: int, steps: int, experiment: str = EXPERIMENT) -> int:
    """Add ``configs`` x ``seeds`` completed trials of ``experiment`` (params lr, layers; a val/acc
    curve of ``steps`` points that depends on both and on the seed); return how many."""
    import random

    from tracker.project import Project
    from tracker.store import MetricPoint, Trial, now

    store = Project.load(root).store
    n = 0
    for c in range(configs):
        lr, layers = round(0.001 * (1 + c % 100), 4), 1 + c // 100
        quality = 0.9 - abs(lr - 0.05) - 0.001 * layers
        for seed in range(seeds):
            rng = random.Random(c * 1_000_003 + seed)
            curve = [quality * (1 - 0.5 ** (s + 1)) + rng.gauss(0, 0.01) for s in range(steps)]
            trial = Trial(id=f"c{c:06d}s{seed:04d}", experiment=experiment, status="completed", seed=seed,
                          params={"lr": lr, "layers": layers}, created=now(), commit="0" * 40, host="bench")
            store.import_trial(trial, [MetricPoint("val/acc", v, s) for s, v in enumerate(curve)])
            n += 1
    return n


def time_compare(project_dir: Path, experiment: str = EXPERIMENT) -> float:
    """Seconds one `tracker compare EXPERIMENT --json` takes in ``project_dir`` (a subprocess)."""
    tracker = shutil.which("tracker", path=str(Path(sys.executable).parent)) or "tracker"
    start = time.perf_counter()
    subprocess.run([tracker, "compare", experiment, "--json"], cwd=project_dir, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_library(project_dir: Path, experiment: str = EXPERIMENT) -> float:
    """Seconds one library call of compare takes (the project already open)."""
    from tracker.analysis.compare import compare
    from tracker.project import Project

    project = Project.load(project_dir)
    start = time.perf_counter()
    compare(project, [experiment])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-compare-") as tmp:
        root = make_project(Path(tmp) / "proj")
        start = time.perf_counter()
        n = fill(root, args.configs, args.seeds, args.steps)
        filled = time.perf_counter() - start
        time_compare(root)  # warm the page cache
        cli = statistics.median(time_compare(root) for _ in range(args.repeat))
        lib = statistics.median(time_library(root) for _ in range(args.repeat))
    shape = f"{args.configs:,} configurations x {args.seeds} seeds, {args.steps} steps each"
    print_table([(f"fill the store ({n:,} trials)", f"{filled:.0f} s", shape),
                 ("tracker compare --json (CLI)", f"{cli * 1000:.0f} ms", f"median of {args.repeat}; target < 1 s"),
                 ("compare() (library)", f"{lib * 1000:.0f} ms", f"median of {args.repeat}")])


if __name__ == "__main__":
    main()
