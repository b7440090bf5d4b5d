#!/usr/bin/env python3
"""The launch path, side by side for two source trees (e.g. main and a branch) in one run.

Measures, for each tree:
  1. per-trial wall time of one `tracker run` of N trials of bench_cli.py's tiny script (the
     same measurement as bench_cli.py's "tracker run of N trials, per trial"), the trees
     interleaved run by run so both see the same machine load; the bare script's time per
     trial is subtracted for the overhead;
  2. fingerprint computations per trial when the N trials are queued (`tracker run --queue`),
     counted in-process.

Usage: python benchmarks/bench_launch.py BASE_TREE [THIS_TREE] [--trials 20] [--repeat 7]
  e.g. git worktree add /tmp/base main --detach; python benchmarks/bench_launch.py /tmp/base
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table
from bench_cli import clock, make_project

COUNT = textwrap.dedent("""
    import sys
    from tracker.project import Project
    from tracker.queue.submit import submit
    from tracker.runs import RunOptions
    count = [0]
    original = (sys.modules.get("tracker.launch") or sys.modules["tracker.runs"]).fingerprint
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("tracker")]
    def counted(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)
    for module in modules:
        if getattr(module, "fingerprint", None) is original:
            module.fingerprint = counted
    queued = submit(Project.find(), ["e"], RunOptions(seed_count=int(sys.argv[1]))).trials
    print(count[0] / len(queued))
""")


def fingerprints_per_trial(tree: Path, n: int) -> float:
    """Fingerprints computed per trial when ``n`` trials are queued in a fresh project."""
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
        project = Path(tmp) / "proj"
        make_project(project, n)
        out = subprocess.run([sys.executable, "-c", COUNT, str(n)], cwd=project,
                             env={**os.environ, "PYTHONPATH": str(tree)}, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("this", type=Path, nargs="?", default=Path(__file__).resolve().parents[1])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    tracker = shutil.which("tracker") or sys.exit("tracker is not installed (pip install -e .)")
    trees = {"base": args.base.resolve(), "this": args.this.resolve()}
    n = args.trials
    per_trial: dict[str, list[float]] = {name: [] for name in trees}
    bare: list[float] = []
    prints = {name: fingerprints_per_trial(tree, n) for name, tree in trees.items()}
    for _ in range(args.repeat):
        for name, tree in trees.items():
            with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
                project = Path(tmp) / "proj"
                make_project(project, n)
                env = {**os.environ, "PYTHONPATH": str(tree)}
                bare.append(clock([sys.executable, "train.py", "--seed=1", "--lr=0.1"], cwd=project))
                per_trial[name].append(clock([tracker, "run", "e", "--seeds", str(n), "-q"], cwd=project, env=env) / n)
    script = statistics.median(bare)
    rows = [("bare script, per trial", f"{script * 1000:.0f} ms", "")]
    for name, tree in trees.items():
        many = statistics.median(per_trial[name])
        rows += [(f"{name}: tracker run of {n} trials, per trial", f"{many * 1000:.0f} ms",
                  f"overhead {(many - script) * 1000:.0f} ms/trial ({tree})"),
                 (f"{name}: fingerprints per queued trial", f"{prints[name]:.1f}", "")]
    print_table(rows)


if __name__ == "__main__":
    main()
