#!/usr/bin/env python3
"""Metric ingestion: a script printing metric lines as fast as it can, under tracker and Guild AI.

One script (``flood.py``) prints --lines lines ``step: i loss: x acc: y`` with plain ``print``
and no pacing, then writes its own CPU time (``time.process_time``) and the wall-clock moment
it exits. It runs, interleaved --repeat times:

  1. under ``tracker run flood -q`` (the default capture reads all three names; step sets the
     step), in a git project with a SQLite store;
  2. under ``guild run -y flood`` with ``output-scalars`` patterns for the same three names
     (Guild's ``step`` key sets the step), when Guild is found (PATH, or /tmp/guildenv).

For each: the time from the script's exit to everything stored (tracker: the trial's
``finished`` time, written in the transaction that stores its last points; Guild: the end of
``guild run``, which writes its scalars before it exits) and the CPU the tool used
(every descendant's CPU from ``getrusage(RUSAGE_CHILDREN)``, less the script's own) relative
to the script's own CPU in that same run. Both tools' CPU include their start-up; the same
run with --lines 0 is measured too, so the ingestion alone is (CPU at N) - (CPU at 0).
tracker sets PYTHONUNBUFFERED=1 for its trials (a write per print); Guild does not,
so the script's own CPU differs between the two and each ratio uses its own run's.

Targets (issue 19): stored within 0.5 s of exit, CPU at most 3x the script's.

With --before DIR, tracker from another checkout (PYTHONPATH=DIR, e.g. a worktree of main)
runs interleaved with this one, in its own project, as "tracker (before)".

Usage: python benchmarks/bench_metrics.py [--lines 300000] [--repeat 3] [--guild PATH] [--no-guild]
                                          [--before DIR]
Needs tracker on PATH. With Guild it takes a few minutes (Guild is slow at this).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

FLOOD = textwrap.dedent("""
    # Prints --lines metric lines flat out; writes its CPU time and its exit moment to --out.
    import argparse, time
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=300000)
    p.add_argument("--out", default="flood.out")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    for i in range(a.lines):
        print(f"step: {i} loss: {1.0 / (i + 1):.6f} acc: {i / max(a.lines, 1):.6f}")
    cpu = time.process_time()
    with open(a.out, "w") as fh:
        fh.write(f"{cpu} {time.time()}\\n")
""")

GUILD_YML = textwrap.dedent(r"""
    flood:
      main: flood
      flags:
        lines: 300000
        out: flood.out
      output-scalars:
        - step: 'step: (\value)'
        - loss: 'loss: (\value)'
        - acc: 'acc: (\value)'
""")


def find_guild(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("guild"), "/tmp/guildenv/bin/guild"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def git_project(root: Path, out: Path) -> None:
    """A throw-away git project with the flood experiment for both tools."""
    root.mkdir(parents=True)
    (root / "flood.py").write_text(FLOOD)
    (root / "guild.yml").write_text(GUILD_YML.replace("out: flood.out", f"out: {out}"))
    (root / "tracker.yaml").write_text("name: bench\n")
    (root / ".gitignore").write_text(".tracker/\n.guild/\n")
    (root / "experiments").mkdir()
    (root / "experiments/flood.yaml").write_text(
        f"command: [{sys.executable!r}, flood.py, --out, {str(out)!r}]\nparams: {{lines: 300000}}\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b",
                                                 "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    subprocess.run(["tracker", "seeds", "generate", "100", "--master-seed", "1"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for args in (["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "seeds"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(cmd: list[str], cwd: Path, out: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` to its end: its CPU (all descendants), the script's CPU, its exit moment, the end."""
    out.unlink(missing_ok=True)
    before = children_cpu()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time()
    total = children_cpu() - before
    script_cpu, exited = (float(x) for x in out.read_text().split())
    return {"cpu": total - script_cpu, "script_cpu": script_cpu, "exited": exited, "end": end}


def tracker_run(project: Path, out: Path, lines: int, seed: int, tree: str | None = None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree} if tree else None
    r = measured(["tracker", "run", "flood", "--seed", str(seed), "-p", f"lines={lines}", "-q"], project, out, env)
    with sqlite3.connect(project / ".tracker/tracker.db") as conn:
        trial_id, finished = conn.execute("SELECT id, finished FROM trials WHERE experiment = 'flood' AND seed = ? "
                                          "ORDER BY created DESC LIMIT 1", (seed,)).fetchone()
        points = conn.execute("SELECT COUNT(*) FROM metrics WHERE trial_id = ?", (trial_id,)).fetchone()[0]
    if points != 2 * lines:
        raise RuntimeError(f"tracker stored {points} points, expected {2 * lines}")
    r["stored"] = datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
    return r


def guild_run(guild: str, project: Path, home: Path, out: Path, lines: int) -> dict[str, float]:
    home.mkdir(exist_ok=True)
    env = {**os.environ, "GUILD_HOME": str(home), "NO_IMPORT_FLAGS_PROGRESS": "1"}
    r = measured([guild, "run", "-y", "-q", "flood", f"lines={lines}"], project, out, env)
    r["stored"] = r["end"]
    if lines:
        text = subprocess.run([guild, "runs", "info", "--all-scalars"], cwd=project, env=env,
                              capture_output=True, text=True).stdout
        if f"(step {lines - 1})" not in text:
            raise RuntimeError(f"guild did not store the last step {lines - 1}:\n{text[-500:]}")
    return r


def summary(runs: list[dict[str, float]], empty: list[dict[str, float]]) -> dict[str, float]:
    med = statistics.median
    return {"latency": med(r["stored"] - r["exited"] for r in runs),
            "ratio": med(r["cpu"] / r["script_cpu"] for r in runs),
            "ingest": med(r["cpu"] for r in runs) - med(r["cpu"] for r in empty),
            "cpu": med(r["cpu"] for r in runs), "script": med(r["script_cpu"] for r in runs),
            "start": med(r["cpu"] for r in empty)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--guild")
    ap.add_argument("--no-guild", action="store_true")
    ap.add_argument("--before", help="another tracker checkout to run interleaved (PYTHONPATH)")
    args = ap.parse_args()
    guild = None if args.no_guild else find_guild(args.guild)
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        tmpdir = Path(tmp)
        out = tmpdir / "flood.out"
        project = tmpdir / "project"
        git_project(project, out)
        if args.before:
            git_project(tmpdir / "before", out)
        results: dict[str, dict[int, list[dict[str, float]]]] = {"tracker": {}, "tracker (before)": {}, "guild": {}}
        seed = 0
        for _ in range(args.repeat):  # interleaved, so a noisy moment hits every variant alike
            for lines in (args.lines, 0):
                seed += 1
                results["tracker"].setdefault(lines, []).append(tracker_run(project, out, lines, seed))
                if args.before:
                    results["tracker (before)"].setdefault(lines, []).append(
                        tracker_run(tmpdir / "before", out, lines, seed, args.before))
                if guild:
                    results["guild"].setdefault(lines, []).append(
                        guild_run(guild, project, tmpdir / "guild-home", out, lines))
    rows = []
    for tool in results:
        if not results[tool]:
            continue
        s = summary(results[tool][args.lines], results[tool][0])
        rows += [
            (f"{tool}: script exit -> all {args.lines:,} lines stored", f"{s['latency']:.2f} s",
             "target <= 0.5 s" + (": met" if s["latency"] <= 0.5 else ": NOT MET") if tool == "tracker" else ""),
            (f"{tool}: CPU besides the script / script's CPU", f"{s['ratio']:.1f}x",
             f"{s['cpu']:.2f} s against {s['script']:.2f} s" + (
                 f"; target <= 3x: {'met' if s['ratio'] <= 3 else 'NOT MET'}" if tool == "tracker" else "")),
            (f"{tool}: the same, ingestion only (less a 0-line run)", f"{s['ingest'] / s['script']:.1f}x",
             f"{s['ingest']:.2f} s; start-up and the rest of a run {s['start']:.2f} s"),
        ]
    print(json.dumps({"lines": args.lines, "repeat": args.repeat, "guild": guild, "before": args.before,
                      "load": os.getloadavg()[0]}))
    print_table(rows)


if __name__ == "__main__":
    main()
