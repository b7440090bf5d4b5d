#!/usr/bin/env python3
"""How long `tracker compare` takes over 100,000 trials (10,000 configurations x 10 seeds by default).

Fills a fresh project's store through the library API (completed trials with a learning curve of
--steps points each), then times `tracker compare EXP --json` (the CLI, in a subprocess) and the
library call `tracker.analysis.compare.compare`, wall and CPU time (user + sys: on a shared machine
the honest proxy for an idle one). Another benchmark imports `make_project`, `fill` and
`time_compare` to set the same data beside other tools.

With --before TREE, the CLI of another checkout (PYTHONPATH=TREE) is timed on the same store too,
alternating with this one (before, after, after, before, ...), so a busy moment hits both alike.
With --project DIR, a project filled by an earlier run (kept there) is used as it is.

Usage: python benchmarks/compare_tracker.py [--configs 10000] [--seeds 10] [--steps 10] [--repeat 5]
                                            [--before /work/main] [--project /tmp/bench-compare]
"""

from __future__ import annotations

import argparse
import os
import resource
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


def clock_compare(project_dir: Path, experiment: str = EXPERIMENT, tree: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of the subprocess) of one `tracker compare EXPERIMENT --json`
    in ``project_dir`` (with the code of ``tree`` when given). On a shared machine the CPU time is
    the honest proxy for an idle one."""
    tracker = shutil.which("tracker", path=str(Path(sys.executable).parent)) or "tracker"
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([tracker, "compare", experiment, "--json"], cwd=project_dir, check=True,
                   stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def time_compare(project_dir: Path, experiment: str = EXPERIMENT) -> float:
    """Seconds one `tracker compare EXPERIMENT --json` takes in ``project_dir`` (a subprocess)."""
    return clock_compare(project_dir, experiment)[0]


def clock_library(project_dir: Path, experiment: str = EXPERIMENT) -> tuple[float, float]:
    """Wall and CPU seconds of one library call of compare (the project already open)."""
    from tracker.analysis.compare import compare
    from tracker.project import Project

    project = Project.load(project_dir)
    start, cpu = time.perf_counter(), time.process_time()
    compare(project, [experiment])
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", type=Path, help="another checkout whose CLI is timed alongside, interleaved")
    ap.add_argument("--project", type=Path, help="fill a project here and keep it; reuse it when it exists")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-compare-") as tmp:
        root = args.project or Path(tmp) / "proj"
        n, filled = 0, None
        if not (root / "tracker.yaml").exists():
            make_project(root)
            start = time.perf_counter()
            n = fill(root, args.configs, args.seeds, args.steps)
            filled = time.perf_counter() - start
        time_compare(root)  # warm the page cache
        cli, old = [], []
        for i in range(args.repeat):
            for tree in ([None, args.before] if i % 2 else [args.before, None]) if args.before else [None]:
                (cli if tree is None else old).append(clock_compare(root, tree=tree))
        lib = [clock_library(root) for _ in range(args.repeat)]
    shape = f"{args.configs:,} configurations x {args.seeds} seeds, {args.steps} steps each"

    def ms(runs: list[tuple[float, float]], i: int) -> str:
        return f"{statistics.median(r[i] for r in runs) * 1000:.0f} ms"

    rows = [(f"fill the store ({n:,} trials)", f"{filled:.0f} s", shape)] if filled is not None else []
    if args.before:
        rows += [(f"before ({args.before}): tracker compare --json, wall", ms(old, 0), f"median of {args.repeat}"),
                 (f"before ({args.before}): tracker compare --json, CPU", ms(old, 1), "interleaved with this tree")]
    rows += [("tracker compare --json (CLI), wall", ms(cli, 0), f"median of {args.repeat}; target < 1 s"),
             ("tracker compare --json (CLI), CPU", ms(cli, 1), "user + sys of the subprocess"),
             ("compare() (library), wall", ms(lib, 0), f"median of {args.repeat}"),
             ("compare() (library), CPU", ms(lib, 1), "")]
    print_table(rows)


if __name__ == "__main__":
    main()
