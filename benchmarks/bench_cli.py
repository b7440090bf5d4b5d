#!/usr/bin/env python3
"""Side-by-side timings of tracker's CLI against the bare script and Guild AI, in one run.

Measures (median of repeated runs, wall clock):
  1. start-up: `tracker --help` vs `python -c pass`, a bare two-command Typer app's
     `--help`, and `guild --help` (when Guild is installed);
  2. per-trial overhead: the same tiny training script run bare N times, as one
     `tracker run` of N trials against one `guild run` batch of N trials (like with like), and
     as separate `tracker run` calls against separate `guild run` calls (at most 10 of each);
  3. listing: `tracker trials list --json` over a store of 100k trials; with --postgres URL (an
     empty database) also `tracker store migrate --to URL` of that store and the same listings
     from PostgreSQL (`tracker --store URL trials list ...`).

Usage: python benchmarks/bench_cli.py [--trials 20] [--repeat 7] [--guild PATH] [--list-size 100000] [--startup-only]
                                      [--postgres postgresql://postgres@127.0.0.1:55441/bench]
Guild is looked up on PATH, then in /tmp/guildenv (pip install guildai into a venv there).
A server for --postgres: PG_PORT=55441 tests/infra/postgres.sh start, then createdb bench.
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
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

SCRIPT = textwrap.dedent("""
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    a = p.parse_args()
    print(f"loss: {a.lr / (a.seed + 1):.4f}")
""")

BARE_TYPER = textwrap.dedent('''
    import typer
    app = typer.Typer()
    @app.command()
    def run(name: str):
        """Run."""
    @app.command()
    def show(name: str):
        """Show."""
    app()
''')


def clock(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    return clock_both(cmd, cwd=cwd, env=env)[0]


def clock_both(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys) of ``cmd``: on a busy machine CPU is the steadier figure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def median(cmd: list[str], repeat: int, **kw: object) -> float:
    return medians(cmd, repeat, **kw)[0]


def medians(cmd: list[str], repeat: int, **kw: object) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``repeat`` runs (after one that warms the page cache)."""
    clock(cmd, **kw)
    runs = [clock_both(cmd, **kw) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def find_guild(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("guild"), "/tmp/guildenv/bin/guild"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def make_project(root: Path, seeds: int) -> None:
    root.mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    (root / "tracker.yaml").write_text("name: bench\n")
    (root / ".gitignore").write_text(".tracker/\n.guild/\n")
    (root / "experiments").mkdir()
    (root / "experiments/e.yaml").write_text(f"command: [{sys.executable!r}, train.py]\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b",
                                                 "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    subprocess.run(["tracker", "seeds", "generate", str(max(seeds, 10)), "--master-seed", "1"],
                   cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fill_store(root: Path, n: int) -> None:
    """Add ``n`` completed trials to the store of the project at ``root``, with whichever tracker imports."""
    from tracker.project import Project
    from tracker.store import Trial, now

    store = Project.load(root).store
    batch = []
    for i in range(n):
        batch.append(Trial(id=f"b{i:011x}", experiment=f"exp{i % 5}", status="completed", seed=i % 10,
                           params={"lr": 0.1 * (i % 7), "layers": i % 4}, created=now(),
                           metrics={"train/loss": 1 / (i + 1), "val/acc": (i % 100) / 100},
                           commit="0" * 40, host="bench"))
        if len(batch) == 10_000:
            store.add_trials(batch)
            batch = []
    store.add_trials(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--guild")
    ap.add_argument("--list-size", type=int, default=100_000)
    ap.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database to list from as well")
    ap.add_argument("--startup-only", action="store_true", help="only part 1, start-up")
    args = ap.parse_args()
    tracker = shutil.which("tracker") or sys.exit("tracker is not installed (pip install -e .)")
    guild = find_guild(args.guild)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
        tmpdir = Path(tmp)
        bare_typer = tmpdir / "bare_typer.py"
        bare_typer.write_text(BARE_TYPER)

        # 1. start-up
        py_pass = median([sys.executable, "-c", "pass"], args.repeat)
        typer_help, typer_cpu = medians([sys.executable, str(bare_typer), "--help"], args.repeat)
        tracker_help, tracker_cpu = medians([tracker, "--help"], args.repeat)
        rows += [("python -c pass", f"{py_pass * 1000:.0f} ms", ""),
                 ("bare Typer app --help", f"{typer_help * 1000:.0f} ms", f"CPU {typer_cpu * 1000:.0f} ms"),
                 ("tracker --help", f"{tracker_help * 1000:.0f} ms",
                  f"{tracker_help / typer_help:.2f}x bare Typer (target <= 1.1x); CPU {tracker_cpu * 1000:.0f} ms, "
                  f"{tracker_cpu / typer_cpu:.2f}x")]
        if guild:
            guild_help = median([guild, "--help"], args.repeat)
            rows.append(("guild --help", f"{guild_help * 1000:.0f} ms", ""))
        if args.startup_only:
            print_table(rows)
            return

        # 2. per-trial overhead
        n = args.trials
        project = tmpdir / "proj"
        make_project(project, n)
        bare = statistics.median(
            clock([sys.executable, "train.py", f"--seed={i}", "--lr=0.1"], cwd=project) for i in range(n))
        many = clock([tracker, "run", "e", "--seeds", str(n), "-q"], cwd=project) / n
        single = statistics.median(
            clock([tracker, "run", "e", "--seed", str(i), "-q"], cwd=project) for i in range(min(n, 10)))
        rows += [("bare script, per trial", f"{bare * 1000:.0f} ms", ""),
                 (f"tracker run of {n} trials, per trial", f"{many * 1000:.0f} ms",
                  f"overhead {(many - bare) * 1000:.0f} ms/trial (target < 200 ms)"),
                 ("tracker run, one trial per call", f"{single * 1000:.0f} ms",
                  f"overhead {(single - bare) * 1000:.0f} ms/trial")]
        if guild:
            (tmpdir / "guild-home").mkdir()
            env = {**os.environ, "GUILD_HOME": str(tmpdir / "guild-home"), "NO_IMPORT_FLAGS_PROGRESS": "1"}
            guild_run = statistics.median(
                clock([guild, "run", "-y", "-q", "train.py", f"seed={i}", "lr=0.1"], cwd=project, env=env)
                for i in range(min(n, 10)))
            batch = [guild, "run", "-y", "-q", "train.py", f"seed=[{','.join(str(100 + i) for i in range(n))}]",
                     "lr=0.1"]
            guild_batch = clock(batch, cwd=project, env=env) / n
            rows += [(f"guild run of {n} trials as one batch, per trial", f"{guild_batch * 1000:.0f} ms",
                      f"overhead {(guild_batch - bare) * 1000:.0f} ms/trial; tracker's many-trial overhead is "
                      f"1/{(guild_batch - bare) / max(many - bare, 1e-9):.0f} of it"),
                     ("guild run, one trial per call", f"{guild_run * 1000:.0f} ms",
                      f"overhead {(guild_run - bare) * 1000:.0f} ms/trial; tracker's one-call overhead is "
                      f"{(single - bare) / (guild_run - bare):.2f}x of it (target <= 0.2x)")]

        # 3. listing at scale
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's tracker, installed or not
        fill_store(project, args.list_size)
        lst = median([tracker, "trials", "list", "--json"], 3, cwd=project)
        csv = median([tracker, "trials", "list", "--csv"], 3, cwd=project)
        rows += [(f"tracker trials list --json ({args.list_size:,} trials)", f"{lst * 1000:.0f} ms",
                  "target < 1 s"),
                 (f"tracker trials list --csv ({args.list_size:,} trials)", f"{csv * 1000:.0f} ms", "")]
        if args.postgres:
            moved = clock([tracker, "store", "migrate", "--to", args.postgres, "--batch", "5000"], cwd=project)
            pg = [tracker, "--store", args.postgres, "trials", "list"]
            lst = median([*pg, "--json"], 3, cwd=project)
            csv = median([*pg, "--csv"], 3, cwd=project)
            rows += [(f"tracker store migrate --to postgresql:// ({args.list_size:,} trials)",
                      f"{moved * 1000:.0f} ms", "once"),
                     (f"PostgreSQL: tracker trials list --json ({args.list_size:,} trials)", f"{lst * 1000:.0f} ms",
                      "target < 1 s"),
                     (f"PostgreSQL: tracker trials list --csv ({args.list_size:,} trials)", f"{csv * 1000:.0f} ms",
                      "")]

    print_table(rows)


if __name__ == "__main__":
    main()
