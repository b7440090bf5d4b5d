#!/usr/bin/env python3
"""Side-by-side costs of tracker's live trial lifecycle, in one run.

Measures (wall clock; medians of repeated runs where repeated):
  1. metric-line throughput: a script prints N `step: i loss: x acc: y` lines at a steady
     10,000 lines/s (paced with time.perf_counter, flushed every 100 lines) and reports its
     own wall and CPU time, run bare (stdout to /dev/null, and to a pipe read by this
     process) and under `tracker run -q`; then whether the store kept up: the stored metric
     points must equal lines x 2, and the lag of the stored latest step (trials.step, read
     with sqlite3 every 0.5 s) behind the printed step must not grow from start to end
     (the last third's median lag within one 0.5 s poll of the first third's; the
     least-squares slope of the lag is printed too);
  2. heartbeat cost: `SQLiteStore.heartbeat(ids)` for 1, 10 and 100 running trials on a
     file store, as work per trial-second at the renewal interval min(lease/4, 15 s) of
     the default 60 s lease; and the driver's CPU per poll with N idle (sleeping) trials;
  3. lost detection: `tracker run` of a sleeping trial with `lease: 5`, then kill -STOP
     (alive, but no more heartbeats) or kill -9 (dead owner) of the tracker process; the
     time until `tracker trials list --json`, run every 0.5 s, shows the trial `lost`.

Usage: python benchmarks/bench_lifecycle.py [--lines 100000] [--rate 10000] [--repeat 3]
                                            [--idle 1,10,100] [--lease 5]
Needs tracker on PATH (pip install -e .). Takes about 3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

ROOT = Path(__file__).resolve().parents[1]

STREAM = textwrap.dedent("""
    # Prints --lines metric lines at --rate lines/s; writes its wall and CPU time to --out
    # and the last printed step to --progress (so a watcher can compare it with the store).
    import argparse, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--progress", required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    prog = os.open(a.progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    out = sys.stdout
    start = time.perf_counter()
    cpu = time.process_time()
    behind = 0.0
    for i in range(a.lines):
        print(f"step: {i} loss: {1.0 / (i + 1):.6f} acc: {i / a.lines:.6f}")
        if i % 100 == 99 or i == a.lines - 1:
            out.flush()
            os.pwrite(prog, b"%12d" % i, 0)
            late = time.perf_counter() - (start + (i + 1) / a.rate)
            if late < 0:
                time.sleep(-late)
            else:
                behind = max(behind, late)
    wall = time.perf_counter() - start
    with open(a.out, "w") as fh:
        fh.write(f"{wall} {time.process_time() - cpu} {behind}\\n")
""")


# ---------------------------------------------------------------------------- helpers


def git_project(root: Path, files: dict[str, str]) -> None:
    """A throw-away git project with tracker.yaml, experiments and preset seeds (as bench_cli's)."""
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".gitignore").write_text(".tracker/\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b",
                                                 "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    subprocess.run(["tracker", "seeds", "generate", "200", "--master-seed", "1"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for args in (["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "seeds"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def db(project: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection on the project's store (only reads through it)."""
    return sqlite3.connect(project / ".tracker/tracker.db", timeout=30, isolation_level=None)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def clock(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def wait_for(pred, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError("timed out waiting")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in seconds (nanosecond schedstat, not 10 ms ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError):
            pass  # a thread that just ended
    return total / 1e9


def end(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Make sure a process this script started is gone (CONT first: it may be stopped)."""
    if proc.poll() is None:
        for s in (signal.SIGCONT, sig):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, s)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------- 1. throughput


def read_out(path: Path) -> tuple[float, float, float]:
    wall, cpu, behind = path.read_text().split()
    return float(wall), float(cpu), float(behind)


def stream_bare(cmd: list[str], out: Path, pipe: bool, unbuffered: bool = False) -> tuple[float, float, float]:
    """The script on its own; stdout block-buffered unless ``unbuffered`` (tracker sets PYTHONUNBUFFERED=1)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    if pipe:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while os.read(fd, 1 << 16):  # the consumer: read everything as it comes
            pass
        proc.stdout.close()
        proc.wait()
    else:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env)
    return read_out(out)


def stream_tracked(project: Path, seed: int, out: Path, progress: Path, lines: int,
                   rate: float) -> dict[str, object]:
    """One `tracker run stream -q`, sampling the store's lag every 0.5 s from this process."""
    conn = db(project) if (project / ".tracker/tracker.db").exists() else None
    progress.write_text("")
    samples: list[tuple[float, int, int]] = []  # (seconds since the first sample, printed step, stored step)
    proc = subprocess.Popen(["tracker", "run", "stream", "--seed", str(seed), "-q"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu: dict[str, list[float]] = {"driver": [], "runner": []}  # CPU seconds at the first and last sample
    runner = None
    try:
        t0 = None
        while proc.poll() is None:
            time.sleep(0.5)
            if conn is None:
                if not (project / ".tracker/tracker.db").exists():
                    continue
                conn = db(project)
            try:
                row = conn.execute("SELECT id, step, handle FROM trials WHERE experiment = 'stream' AND seed = ? "
                                   "AND status = 'running'", (seed,)).fetchone()
                text = progress.read_text().strip()
            except sqlite3.OperationalError:  # a store still being created
                continue
            if row is None or not text:
                continue
            printed = int(text)
            if printed >= lines - 1:
                break  # the script is done: the rest is the final read
            runner = runner or json.loads(row[2]).get("runner_pid")
            try:
                for key, pid in (("driver", proc.pid), ("runner", runner)):
                    cpu[key][1 if cpu[key] else 0:] = [cpu_seconds(pid)]
            except (OSError, TypeError):
                pass
            t0 = time.monotonic() if t0 is None else t0
            samples.append((time.monotonic() - t0, printed, row[1] if row[1] is not None else -1))
        proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    finally:
        end(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"tracker run failed: {err}")
    assert conn is not None
    row = conn.execute("SELECT id, status, step FROM trials WHERE experiment = 'stream' AND seed = ? "
                       "ORDER BY created DESC LIMIT 1", (seed,)).fetchone()
    trial_id = row[0]
    points = conn.execute("SELECT COUNT(*) FROM metrics WHERE trial_id = ?", (trial_id,)).fetchone()[0]
    conn.close()
    wall, script_cpu, behind = read_out(out)
    span = samples[-1][0] if len(samples) > 1 else 0
    share = {k: (v[1] - v[0]) / span if span and len(v) == 2 else float("nan") for k, v in cpu.items()}
    return {"wall": wall, "cpu": script_cpu, "behind": behind, "status": row[1], "step": row[2], "points": points,
            "samples": samples, "driver_cpu": share["driver"], "runner_cpu": share["runner"]}


def lag_at(samples: list[tuple[float, int, int]], where: str) -> tuple[float, int] | None:
    """(median, max) lag in steps over the first, middle or last third of the samples."""
    third = len(samples) // 3
    if third == 0:
        return None
    part = {"start": samples[:third], "middle": samples[third:2 * third], "end": samples[2 * third:]}[where]
    lags = [printed - stored for _, printed, stored in part]
    return statistics.median(lags), max(lags)


# ---------------------------------------------------------------------------- 2. heartbeats


def heartbeat_cost(tmp: Path, counts: list[int], repeat: int) -> dict[int, float]:
    """Median seconds of one store.heartbeat(ids) call per number of running trials."""
    sys.path.insert(0, str(ROOT))
    from tracker.store import SQLiteStore, Trial, now

    store = SQLiteStore.open(tmp / "heartbeat.db")
    store.add_trials(Trial(id=f"done{i:08d}", experiment="e", status="completed", seed=i, params={"lr": 0.1},
                           created=now()) for i in range(3000))  # a store of some size, like a real one
    out = {}
    for n in counts:
        ids = [f"run{n}-{i:06d}" for i in range(n)]
        store.add_trials(Trial(id=i, experiment="e", status="running", seed=0, params={}, created=now(),
                               started=now(), heartbeat=time.time(), lease=60.0) for i in ids)
        store.heartbeat(ids)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            assert store.heartbeat(ids) == n
            times.append(time.perf_counter() - start)
        out[n] = statistics.median(times)
    store.close()
    return out


def idle_tick_cost(project: Path, n: int, window: float) -> tuple[float, float]:
    """(driver CPU ms per poll, runner CPU ms per trial-second) of `tracker run -j N` of N sleeping trials."""
    proc = subprocess.Popen(["tracker", "run", "idle", "--seeds", str(n), "-j", str(n), "-q"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = None
    try:
        def all_running():
            nonlocal conn
            if conn is None:
                if not (project / ".tracker/tracker.db").exists():
                    return False
                conn = db(project)
            try:
                return conn.execute("SELECT COUNT(*) FROM trials WHERE experiment = 'idle' AND "
                                    "status = 'running'").fetchone()[0] >= n
            except sqlite3.OperationalError:
                return False

        wait_for(all_running, 120, 0.2)
        time.sleep(2.0)  # let every runner settle
        runners = [json.loads(h)["runner_pid"] for (h,) in conn.execute(
            "SELECT handle FROM trials WHERE experiment = 'idle' AND status = 'running'")]
        d0, r0, t0 = cpu_seconds(proc.pid), sum(cpu_seconds(p) for p in runners), time.monotonic()
        time.sleep(window)
        d1, r1, t1 = cpu_seconds(proc.pid), sum(cpu_seconds(p) for p in runners), time.monotonic()
        ticks = (t1 - t0) / 0.5  # the driver polls every 0.5 s while nothing ends
        driver_ms = (d1 - d0) * 1000 / ticks
        runner_ms = (r1 - r0) * 1000 / (n * (t1 - t0))
    finally:
        end(proc, signal.SIGINT, 60)
        if conn is not None:
            conn.close()
    return driver_ms, runner_ms


# ---------------------------------------------------------------------------- 3. lost detection


def list_status(project: Path, trial_id: str) -> str | None:
    res = subprocess.run(["tracker", "trials", "list", "--json"], cwd=project, capture_output=True, text=True)
    for t in json.loads(res.stdout or "[]"):
        if t["id"] == trial_id:
            return t["status"]
    return None


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def lost_after(project: Path, seed: int, sig: int) -> tuple[float, int, str]:
    """Seconds from ``sig`` to a `trials list --json` showing the trial lost, commands run, script fate."""
    conn = db(project)
    proc = subprocess.Popen(["tracker", "run", "sleepy", "--seed", str(seed), "-q"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        trial_id = wait_for(lambda: (conn.execute(
            "SELECT id FROM trials WHERE experiment = 'sleepy' AND seed = ? AND status = 'running'",
            (seed,)).fetchone() or [None])[0], 60)
        trial_dir = project / ".tracker/trials" / trial_id
        pid = wait_for(lambda: json.loads((trial_dir / "pid.json").read_text())["pid"]
                       if (trial_dir / "pid.json").exists() else None, 30)
        time.sleep(1.0)
        os.kill(proc.pid, sig)
        sent = time.monotonic()
        commands = 0
        while True:
            commands += 1
            status = list_status(project, trial_id)
            if status == "lost":
                took = time.monotonic() - sent
                break
            if time.monotonic() - sent > 120:
                raise RuntimeError(f"trial {trial_id} still {status} after 120 s")
            time.sleep(0.5)
        if sig == signal.SIGKILL:  # the runner must end the script once its owner is gone
            try:
                wait_for(lambda: gone(pid), 15)
                fate = "script ended by its runner"
            except RuntimeError:
                fate = "script still running 15 s later"
        else:
            fate = "script kept running (owner only stopped)"
    finally:
        end(proc)
        conn.close()
    return took, commands, fate


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each throughput variant")
    ap.add_argument("--idle", default="1,10,100", help="idle trial counts for the driver's poll cost ('' to skip)")
    ap.add_argument("--lease", type=float, default=5)
    args = ap.parse_args()
    shutil.which("tracker") or sys.exit("tracker is not installed (pip install -e .)")
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-life-") as tmp:
        tmpdir = Path(tmp)
        out, progress = tmpdir / "stream.out", tmpdir / "stream.progress"
        stream_args = ["--lines", str(args.lines), "--rate", str(args.rate), "--out", str(out),
                       "--progress", str(progress)]
        project = tmpdir / "proj"
        git_project(project, {
            "stream.py": STREAM,
            "tracker.yaml": f"name: bench\ndefaults: {{lease: {args.lease:g}}}\n",
            "experiments/stream.yaml": json.dumps({"command": [sys.executable, "stream.py", *stream_args]}) + "\n",
            "experiments/sleepy.yaml": json.dumps({"command": ["sleep", "600"], "seed_flag": None}) + "\n",
            "experiments/idle.yaml": json.dumps({"command": ["sleep", "600"], "seed_flag": None}) + "\n",
        })
        script = [sys.executable, str(project / "stream.py"), *stream_args]
        target_wall = args.lines / args.rate

        # 1. throughput, the variants interleaved so a noisy moment hits all of them alike
        runs: dict[str, list] = {"null": [], "pipe": [], "unbuf": [], "tracker": []}
        for r in range(args.repeat):
            runs["null"].append(stream_bare(script, out, pipe=False))
            runs["pipe"].append(stream_bare(script, out, pipe=True))
            runs["unbuf"].append(stream_bare(script, out, pipe=True, unbuffered=True))
            runs["tracker"].append(stream_tracked(project, 1000 + r, out, progress, args.lines, args.rate))

        def med(key: str, i: int) -> float:
            return statistics.median(x[i] if isinstance(x, tuple) else x[["wall", "cpu", "behind"][i]]
                                     for x in runs[key])

        base = med("pipe", 0)
        pace = args.lines / med("tracker", 0)  # lines/s the tracked script really printed (its --rate if it kept up)
        rows.append((f"script alone: {args.lines:,} lines at {args.rate:,.0f}/s", f"{target_wall:.2f} s",
                     "the pace it aims for"))
        for key, name in (("null", "bare, stdout to /dev/null"), ("pipe", "bare, stdout to a pipe"),
                          ("unbuf", "bare, pipe, PYTHONUNBUFFERED=1"), ("tracker", "under tracker run -q")):
            note = f"script CPU {med(key, 1):.2f} s; worst lateness {med(key, 2) * 1000:.0f} ms"
            if key == "tracker":
                slower = med(key, 0) / base - 1
                note = (f"{slower * 100:+.1f}% vs bare pipe (target <= +5%: {verdict(slower <= 0.05)}); "
                        + note)
            rows.append((f"  {name}: script wall time", f"{med(key, 0):.3f} s", note))
        rows.append(("  while streaming: CPU of tracker run / of the runner",
                     f"{statistics.median(t['driver_cpu'] for t in runs['tracker']) * 100:.0f}%",
                     f"/ {statistics.median(t['runner_cpu'] for t in runs['tracker']) * 100:.0f}% of one core "
                     f"(parsing and storing {pace * 2:,.0f} points/s / copying the pipes into the logs)"))
        expected = args.lines * 2
        stored = [t["points"] for t in runs["tracker"]]
        rows.append(("  stored metric points (each tracked run)", "/".join(str(s) for s in stored),
                     f"expected {expected} (lines x 2): {verdict(set(stored) == {expected})}; "
                     f"final step {'/'.join(str(t['step']) for t in runs['tracker'])}"))
        third = {}
        for where in ("start", "middle", "end"):
            lags = [lag_at(t["samples"], where) for t in runs["tracker"]]
            lags = [x for x in lags if x is not None]
            if not lags:
                continue
            steps = third[where] = statistics.median(x[0] for x in lags)
            rows.append((f"  store lag behind printed step, {where} third", f"{steps:.0f}",
                         f"steps = {steps / pace * 1000:.0f} ms (median of the samples; max per run: "
                         f"{', '.join(str(x[1]) for x in lags)})"))
        slopes = []
        for t in runs["tracker"]:
            xs = [x[0] for x in t["samples"]]
            ys = [x[1] - x[2] for x in t["samples"]]
            if len(xs) > 2:
                slopes.append(statistics.linear_regression(xs, ys).slope)
        if slopes:
            per_min = statistics.median(slopes) * 60 / pace * 1000
            rows.append(("  store lag trend (least-squares slope)", f"{per_min:+.0f} ms",
                         f"of lag per minute of streaming (runs: "
                         f"{', '.join(f'{x * 60 / pace * 1000:+.0f}' for x in slopes)}); ~0 = it keeps up"))
        if "start" in third and "end" in third:  # one poll (0.5 s) of slack: the samples and polls are not in step
            keeps_up = third["end"] <= third["start"] + pace * 0.5
            rows.append(("  store lag does not grow", verdict(keeps_up),
                         "end third's median lag within one 0.5 s poll of the start third's"))
        rows.append(("  lag samples per run", "/".join(str(len(t["samples"])) for t in runs["tracker"]),
                     "one every 0.5 s: printed step (the script's own record) minus trials.step"))

        # 2. heartbeats
        lease = 60.0
        interval = min(lease / 4, 15.0)
        for n, sec in heartbeat_cost(tmpdir, [1, 10, 100], 50).items():
            per = sec / n / interval * 1000
            rows.append((f"store.heartbeat of {n} running trial{'s' if n > 1 else ''}", f"{sec * 1000:.2f} ms",
                         f"every {interval:g} s: {per:.4f} ms per trial-second (target < 1 ms: {verdict(per < 1)})"))
        for n in [int(x) for x in args.idle.split(",") if x.strip()]:
            driver_ms, runner_ms = idle_tick_cost(project, n, 10.0)
            rows.append((f"driver poll with {n} idle trial{'s' if n > 1 else ''}", f"{driver_ms:.2f} ms",
                         f"CPU per 0.5 s poll ({driver_ms / n:.2f} ms per trial); each runner "
                         f"{runner_ms:.3f} ms CPU per second"))

        # 3. lost detection
        one = statistics.median(clock(["tracker", "trials", "list", "--json"], project) for _ in range(5))
        rows.append(("tracker trials list --json (this small store)", f"{one:.2f} s", "one read command"))
        for sig, name, bound, expect in (
                (signal.SIGSTOP, "kill -STOP of tracker run", args.lease + one + 0.5,
                 f"target <= lease {args.lease:g} s + one command (+ 0.5 s between commands)"),
                (signal.SIGKILL, "kill -9 of tracker run", one + 0.5, "target: the first read command (dead owner)")):
            took, commands, fate = lost_after(project, 2000 + sig, sig)
            rows.append((f"{name} -> lost in trials list", f"{took:.2f} s",
                         f"{commands} list command{'s' if commands > 1 else ''}; {expect}: {verdict(took <= bound)}; "
                         f"{fate}"))

    print_table(rows)


if __name__ == "__main__":
    main()
