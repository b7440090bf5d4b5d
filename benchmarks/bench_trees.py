#!/usr/bin/env python3
"""Two checkouts of tracker side by side, interleaved, in one run: where a change moved the CLI's costs.

bench_cli.py times one tree; on a shared 2-core machine two of its runs minutes apart can
differ by 10 ms per trial. This script runs the same measurements for a BEFORE and an AFTER
tree in alternation (A B, B A, ...), so a noisy moment hits both, and takes medians:
  1. per-trial overhead of `tracker run e -q` of N new seeds (bench_cli's project and script) over
     the bare script, split with the store's started/finished stamps into: start-up before
     the first trial (divided by N), started->finished minus the bare script, the gap between
     a trial's end and the next start, and the time from the last end to the exit (over N);
  2. `tracker --help` against a bare two-command Typer app run by the same venv;
  3. `tracker trials list --json` over a store of 100k trials.

Each tree needs its own venv with tracker installed editable in TREE/.venv.
Usage: python benchmarks/bench_trees.py --before /tmp/before [--after .] [--trials 20]
                                          [--repeat 15] [--list-size 100000] [--list-repeat 9]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table
from bench_cli import BARE_TYPER, SCRIPT

# bench_cli's store filler, run by each tree's own python (so each tree writes its own schema)
FILL = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from pathlib import Path; "
        "from bench_cli import fill_store; fill_store(Path(sys.argv[1]), int(sys.argv[2]))")


def clock(cmd: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def make_project(root: Path, bin_dir: Path, seeds: int) -> None:
    """bench_cli's project, with this tree's python and tracker (so also its uncommitted seeds)."""
    root.mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    (root / "tracker.yaml").write_text("name: bench\n")
    (root / ".gitignore").write_text(".tracker/\n.guild/\n")
    (root / "experiments").mkdir()
    (root / "experiments/e.yaml").write_text(f"command: [{str(bin_dir / 'python')!r}, train.py]\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b",
                                                 "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    subprocess.run([str(bin_dir / "tracker"), "seeds", "generate", str(max(seeds, 10)), "--master-seed", "1"],
                   cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed_run(project: Path, bin_dir: Path, n: int, first_seed: int) -> dict[str, float]:
    """One `tracker run e --seed ... -q` of n new seeds (a tracker that skips trials it already
    completed would otherwise run nothing on a repeat), split into its parts (seconds)."""
    seeds = [arg for i in range(first_seed, first_seed + n) for arg in ("--seed", str(i))]
    t0 = time.time()
    wall = clock([str(bin_dir / "tracker"), "run", "e", *seeds, "-q"], project)
    with sqlite3.connect(project / ".tracker/tracker.db") as conn:
        run_id = conn.execute("SELECT run_id FROM trials ORDER BY created DESC LIMIT 1").fetchone()[0]
        rows = sorted(((stamp(s), stamp(f)) for s, f in conn.execute(
            "SELECT started, finished FROM trials WHERE run_id = ?", (run_id,))))
    conn.close()
    return {"wall": wall / n, "startup": (rows[0][0] - t0) / n,
            "run": statistics.fmean(f - s for s, f in rows),
            "gap": statistics.fmean(rows[i + 1][0] - rows[i][1] for i in range(n - 1)) * (n - 1) / n,
            "exit": (t0 + wall - rows[-1][1]) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=Path(__file__).resolve().parents[1], type=Path)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--list-size", type=int, default=100_000)
    ap.add_argument("--list-repeat", type=int, default=9)
    args = ap.parse_args()
    trees = {"before": args.before.resolve() / ".venv/bin", "after": args.after.resolve() / ".venv/bin"}
    for name, bin_dir in trees.items():
        if not (bin_dir / "tracker").exists():
            sys.exit(f"no {bin_dir / 'tracker'}: install the {name} tree into its .venv")
    n = args.trials
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-cmp-") as tmp:
        tmpdir = Path(tmp)
        projects = {name: tmpdir / f"proj-{name}" for name in trees}
        for name, bin_dir in trees.items():
            make_project(projects[name], bin_dir, n)
            clock([str(bin_dir / "tracker"), "run", "e", "--seeds", "2", "-q"], projects[name])  # warm up

        # 1. per-trial overhead, interleaved
        order = list(trees)
        bare: list[float] = []
        parts: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for r in range(args.repeat):
            bare += [clock([str(trees["after"] / "python"), "train.py", f"--seed={i}"], projects["after"])
                     for i in range(3)]
            for name in order if r % 2 == 0 else order[::-1]:
                parts[name].append(timed_run(projects[name], trees[name], n, 1000 + r * n))
        b = statistics.median(bare)

        def med(name: str, key: str) -> float:
            return statistics.median(p[key] for p in parts[name]) * 1000

        def pair(key: str, minus: float = 0.0) -> str:
            return " / ".join(f"{med(name, key) - minus:.1f}" for name in trees)

        rows += [("bare script, per trial (ms)", f"{b * 1000:.1f}", f"median of {len(bare)} runs"),
                 (f"tracker run of {n} trials, per trial (ms)", pair("wall"),
                  f"median of {args.repeat} interleaved runs each"),
                 ("  overhead over the bare script (ms/trial)", pair("wall", b * 1000),
                  f"target <= 40 ms; after - before = {med('after', 'wall') - med('before', 'wall'):+.1f} ms"),
                 ("    start-up before the first trial, / N", pair("startup"), "Python, Typer, config, git, store"),
                 ("    a trial's started->finished - bare script", pair("run", b * 1000),
                  "runner, reaping, wake-up of the driver"),
                 ("    finished -> next started, summed / N", pair("gap"), "finalize, then submit the next"),
                 ("    last finished -> exit, / N", pair("exit"), "")]

        # 2. --help against a bare Typer app of the same venv
        (tmpdir / "bare_typer.py").write_text(BARE_TYPER)
        helps: dict[str, list[float]] = {f"{name} {kind}": [] for name in trees for kind in ("typer", "tracker")}
        for r in range(args.repeat):
            for name in order if r % 2 == 0 else order[::-1]:
                helps[f"{name} typer"].append(clock([str(trees[name] / "python"), str(tmpdir / "bare_typer.py"),
                                                     "--help"]))
                helps[f"{name} tracker"].append(clock([str(trees[name] / "tracker"), "--help"]))
        h = {k: statistics.median(v) * 1000 for k, v in helps.items()}
        rows += [("bare Typer app --help (ms)", " / ".join(f"{h[f'{x} typer']:.0f}" for x in trees), ""),
                 ("tracker --help (ms)", " / ".join(f"{h[f'{x} tracker']:.0f}" for x in trees),
                  " / ".join(f"{h[f'{x} tracker'] / h[f'{x} typer']:.2f}x" for x in trees)
                  + " the bare Typer app (target <= 1.3x)")]

        # 3. listing at scale
        lists: dict[str, list[float]] = {name: [] for name in trees}
        for name, bin_dir in trees.items():
            subprocess.run([str(bin_dir / "python"), "-c", FILL, str(projects[name]), str(args.list_size)],
                           cwd=projects[name], check=True)
            clock([str(bin_dir / "tracker"), "trials", "list", "--json"], projects[name])
        for r in range(args.list_repeat):
            for name in order if r % 2 == 0 else order[::-1]:
                lists[name].append(clock([str(trees[name] / "tracker"), "trials", "list", "--json"],
                                         projects[name]))
        rows.append((f"tracker trials list --json, {args.list_size:,} trials (ms)",
                     " / ".join(f"{statistics.median(lists[x]) * 1000:.0f}" for x in trees), "target < 1 s"))

    print_table(rows, value_header="before / after")


if __name__ == "__main__":
    main()
