#!/usr/bin/env python3
"""The store, two trees of tracker side by side in one run (e.g. main before a change and the change).

  1. Listing: `tracker trials list --json` and `--csv` over a store of --list-size completed
     trials (5 experiments, 2 params, 2 metrics each), on SQLite and on PostgreSQL (the SQLite
     store copied there with `tracker store migrate`, once per tree into a database of its
     own: that copy's time is a row too). Median of --repeat runs, the trees taking turns.
  2. Claims: benchmarks/bench_queue.py's claims part of each tree (--claims queued trials in a
     fresh PostgreSQL database, --workers claimer processes claiming and completing them until
     the queue is drained), --repeat times, the trees taking turns; the median claims/s.

Every command runs the tree's own code (PYTHONPATH=TREE). Both trees must share the store schema.

Usage: python benchmarks/bench_store.py --tree before=/path/to/main --tree after=. [--list-size 100000]
           [--claims 2000] [--workers 8] [--repeat 3] [--pg-url postgresql://...] [--skip listing|claims]
Without --pg-url a server is started with tests/infra/postgres.sh (bench_queue.py's Postgres) and
stopped after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _table import print_table  # noqa: E402
from bench_queue import Postgres  # noqa: E402

TRACKER = shutil.which("tracker") or sys.exit("tracker is not installed (pip install -e .)")


def tracker(tree: Path, *args: str, cwd: Path) -> float:
    """Seconds one `tracker ARGS` of ``tree`` takes (output discarded); exits on failure."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([TRACKER, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"tracker {' '.join(args)} ({tree}) failed: {done.stderr}")
    return time.perf_counter() - start


def fill(project: Path, tree: Path, n: int) -> None:
    """A project whose SQLite store holds ``n`` completed trials (written by ``tree``'s code)."""
    (project / ".tracker").mkdir(parents=True)
    (project / "tracker.yaml").write_text("name: bench\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    code = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(tree)!r})
from tracker.store import SQLiteStore, Trial, now
store = SQLiteStore.open(Path({str(project / '.tracker' / 'tracker.db')!r}))
for start in range(0, {n}, 10_000):
    store.add_trials(Trial(id=f"b{{i:011x}}", experiment=f"exp{{i % 5}}", status="completed", seed=i % 10,
                           params={{"lr": 0.1 * (i % 7), "layers": i % 4}}, created=now(),
                           metrics={{"train/loss": 1 / (i + 1), "val/acc": (i % 100) / 100}},
                           commit="0" * 40, host="bench") for i in range(start, min(start + 10_000, {n})))
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def listing(trees: dict[str, Path], args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, str]]:
    project = tmp / "project"
    fill(project, next(iter(trees.values())), args.list_size)
    stores: list[tuple[str, list[str]]] = [("SQLite", [])]
    rows: list[tuple[str, str, str]] = []
    databases = []
    if "postgresql" in args.stores:
        for name, tree in trees.items():
            pg = Postgres(args.pg_url)
            databases.append(pg)
            seconds = tracker(tree, "store", "migrate", "--to", pg.url, "--batch", "5000", cwd=project)
            rows.append((f"{name}: tracker store migrate --to postgresql:// ({args.list_size:,} trials)",
                         f"{seconds * 1000:.0f} ms", "once"))
            stores.append((f"PostgreSQL ({name}'s copy)", ["--store", pg.url]))
    try:
        for label, store in stores:
            for fmt in ("--json", "--csv"):
                times: dict[str, list[float]] = {name: [] for name in trees}
                for _ in range(args.repeat):
                    for name, tree in trees.items():
                        times[name].append(tracker(tree, *store, "trials", "list", fmt, cwd=project))
                for name in trees:
                    rows.append((f"{name}: {label} tracker trials list {fmt} ({args.list_size:,} trials)",
                                 f"{statistics.median(times[name]) * 1000:.0f} ms",
                                 "target < 1 s" if fmt == "--json" else ""))
    finally:
        for pg in databases:
            pg.drop()
    return rows


def claims(trees: dict[str, Path], args: argparse.Namespace) -> list[tuple[str, str, str]]:
    rates: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, tree in trees.items():
            cmd = [sys.executable, str(tree / "benchmarks" / "bench_queue.py"), "--skip", "tracker", "--skip", "pyexp",
                   "--stores", "postgresql", "--workers", str(args.workers), "--claims", str(args.claims), "--json",
                   "--pg-url", args.pg_url]
            done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"bench_queue.py of {tree} failed: {done.stdout}{done.stderr}")
            [row] = json.loads(done.stdout)["claims"]
            if row["duplicates"] or row["unclaimed"]:
                sys.exit(f"{name}: claims went wrong: {row}")
            rates[name].append(row["claims_per_s"])
    return [(f"{name}: claims/s, {args.workers} claimers on PostgreSQL ({args.claims:,} trials)",
             f"{statistics.median(rates[name]):.0f}", f"runs: {', '.join(f'{r:.0f}' for r in rates[name])}")
            for name in trees]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH", help="a tree of tracker to time")
    ap.add_argument("--list-size", type=int, default=100_000)
    ap.add_argument("--claims", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stores", default="sqlite,postgresql", help="the stores to list from")
    ap.add_argument("--pg-url", help="a PostgreSQL server's URL (fresh databases are made there, then dropped)")
    ap.add_argument("--skip", choices=["listing", "claims"], action="append", default=[])
    args = ap.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)}
    rows: list[tuple[str, str, str]] = []
    server = None if args.pg_url else Postgres(None)  # one server for the run, stopped after it if started here
    args.pg_url = args.pg_url or server.url
    try:
        with tempfile.TemporaryDirectory(prefix="tracker-bench-store-") as tmp:
            if "listing" not in args.skip:
                rows += listing(trees, args, Path(tmp))
            if "claims" not in args.skip:
                rows += claims(trees, args)
    finally:
        if server:
            server.drop()
    print_table(rows)


if __name__ == "__main__":
    main()
