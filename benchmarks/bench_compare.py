#!/usr/bin/env python3
"""`tracker compare` over 100,000 trials, side by side with Guild AI and MLflow on stores of the same size.

The same results go into each tool: C configurations (lr x layers) x S seeds, a metric
`val/acc` with a short curve (STEPS points) per trial, the very values compare_tracker.fill
stores, configurations one after another so a partly filled store holds whole configurations.
  1. tracker: compare_tracker.fill puts C x S completed trials into a project's store through
     the library API (`store.import_trial` with the curve), then compare_tracker.time_compare
     times `tracker compare e --json` (the objective is val/acc; the CLI in a subprocess,
     start-up included; best of 3).
  2. Guild AI (an isolated venv, --guild): one real `guild run` makes a template run
     directory; the others are written the way Guild writes them (`.guild/attrs/*`, `opref`,
     source copy, output, scalars in a tfevents file) for at most --budget seconds. Then
     `guild compare --csv -` (every run's flags and last scalars read through Guild's run
     index; start-up included): once cold (the index reads each new tfevents file), then
     warm. Timed at 1,000 and 10,000 runs and at the filled size, unless the warm time
     extrapolated from 10,000 runs exceeds --guild-limit seconds.
  3. MLflow (an isolated venv, --mlflow-python): a local SQLite tracking store
     (sqlite:///...) filled through `MlflowClient.create_run` + `log_batch` + `set_terminated`
     for at most --budget seconds, then `mlflow.search_runs(...)` plus
     `df.groupby(param columns)["metrics.val/acc"].agg(["count", "mean", "std"])`, in
     process: a first call (which also opens the store) and a second one, the figure; the
     mlflow import is excluded and reported apart.
The timed reads run interleaved (tracker, Guild, MLflow, then again), 3 rounds.

Usage: python benchmarks/bench_compare.py [--configs 10000] [--seeds 10] [--steps 10]
           [--budget 300] [--guild /tmp/guildenv-opt/bin/guild] [--mlflow-python /tmp/mlflowenv/bin/python]
This file is also the MLflow worker: `python bench_compare.py --mlflow-worker fill|measure ...`,
run by the MLflow venv's python (so it imports only the standard library at the top).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--layers", type=int, default=1)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
for step in range(5):
    print(f"step: {step}")
    print(f"val/acc: {0.5 + 0.01 * step:.4f}")
"""


def configuration(c: int) -> dict[str, float | int]:
    """Configuration ``c``, as compare_tracker.fill makes it: 100 learning rates x 100 layer counts."""
    return {"lr": round(0.001 * (1 + c % 100), 4), "layers": 1 + c // 100}


def curve(c: int, seed: int, steps: int) -> list[float]:
    """The val/acc curve of configuration ``c`` and ``seed``, the very values compare_tracker.fill stores."""
    params = configuration(c)
    quality = 0.9 - abs(params["lr"] - 0.05) - 0.001 * params["layers"]
    rng = random.Random(c * 1_000_003 + seed)
    return [quality * (1 - 0.5 ** (s + 1)) + rng.gauss(0, 0.01) for s in range(steps)]


def runs(configs: int, seeds: int):
    """(configuration, seed) pairs, whole configurations first."""
    for c in range(configs):
        for s in range(seeds):
            yield c, s


def clock(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------ Guild

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC_TABLE = _crc32c_table()


def _masked_crc(data: bytes) -> bytes:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _record(event: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C."""
    length = struct.pack("<Q", len(event))
    return length + _masked_crc(length) + event + _masked_crc(event)


def tfevents(tag: str, values: list[float], wall: float) -> bytes:
    """An events file as TensorBoard's writer makes it: the version record, then one scalar event per step."""
    out = [_record(b"\x09" + struct.pack("<d", wall) + b"\x1a\x0dbrain.Event:2")]
    name = tag.encode()
    for step, value in enumerate(values):
        item = b"\x0a" + _varint(len(name)) + name + b"\x15" + struct.pack("<f", value)
        summary = b"\x0a" + _varint(len(item)) + item
        event = (b"\x09" + struct.pack("<d", wall + step) + b"\x10" + _varint(step)
                 + b"\x2a" + _varint(len(summary)) + summary)
        out.append(_record(event))
    return b"".join(out)


class GuildHome:
    """A Guild home filled with runs written the way Guild writes them, from one real run as template."""

    def __init__(self, guild: str, home: Path, project: Path) -> None:
        self.guild, self.home, self.project = guild, home, project
        self.env = {**os.environ, "GUILD_HOME": str(home), "NO_IMPORT_FLAGS_PROGRESS": "1"}
        home.mkdir(parents=True)
        project.mkdir(parents=True)
        (project / "train.py").write_text(TRAIN)
        subprocess.run([guild, "run", "-y", "-q", "train.py", "lr=0.1", "layers=1", "seed=1"], cwd=project,
                       env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        [template] = list((home / "runs").iterdir())
        self.attrs = {p.name: p.read_bytes() for p in (template / ".guild/attrs").iterdir()}
        self.files = {rel: (template / rel).read_bytes() for rel in
                      (".guild/opref", ".guild/output", ".guild/output.index", ".guild/manifest", "train.py")}
        shutil.rmtree(template)
        self.count = 0

    def add(self, c: int, s: int, steps: int) -> None:
        flags = {**configuration(c), "seed": s}
        run_id = uuid.uuid4().hex
        run = self.home / "runs" / run_id
        (run / ".guild/attrs").mkdir(parents=True)
        started = int(time.time() * 1_000_000)
        text = {
            "id": run_id,
            "flags": "".join(f"{k}: {v}\n" for k, v in sorted(flags.items())),
            "user_flags": "".join(f"{k}: {v}\n" for k, v in sorted(flags.items())),
            "label": " ".join(f"{k}={v}" for k, v in sorted(flags.items())) + "\n",
            "cmd": "- /usr/bin/python3\n- -um\n- guild.op_main\n- train\n"
                   + "".join(f"- --{k}\n- '{v}'\n" for k, v in sorted(flags.items())),
            "initialized": f"{started}\n", "started": f"{started}\n", "stopped": f"{started + 1_000_000}\n",
            "random_seed": f"{s}\n", "exit_status": "0\n",
        }
        for name, data in self.attrs.items():
            (run / ".guild/attrs" / name).write_bytes(text[name].encode() if name in text else data)
        for rel, data in self.files.items():
            (run / rel).write_bytes(data)
        (run / f".guild/events.out.tfevents.{started // 1_000_000}.bench.{os.getpid()}.0").write_bytes(
            tfevents("val/acc", curve(c, s, steps), started / 1e6))
        self.count += 1

    def compare(self, expect: int | None = None) -> float:
        """Seconds of `guild compare --csv -` over every run in the home; with ``expect``, also check
        that the CSV holds that many runs, with their flags and val/acc."""
        start = time.perf_counter()
        out = subprocess.run([self.guild, "compare", "--csv", "-"], cwd=self.project, env=self.env,
                             capture_output=True, text=True, check=True).stdout
        took = time.perf_counter() - start
        lines = out.splitlines()
        header = lines[0].split(",") if lines else []
        if expect is not None and (len(lines) - 1 != expect or "val/acc" not in header or "lr" not in header):
            raise SystemExit(f"guild compare listed {len(lines) - 1} runs of {expect}; columns {header}")
        return took


# ----------------------------------------------------------------------------------------- MLflow

def mlflow_worker(argv: list[str]) -> None:
    """Run by the MLflow venv: ``fill DB N SEEDS STEPS BUDGET`` prints the runs written and seconds;
    ``measure DB`` prints the seconds of search_runs + groupby (a first call, and a second in the same
    process), the import time and the groups."""
    import logging

    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    imported = time.perf_counter() - t0
    command, db = argv[0], argv[1]
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    if command == "fill":
        configs, seeds, steps, budget = int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5])
        client = MlflowClient()
        exp = client.create_experiment("e")
        start = time.perf_counter()
        n = 0
        for c, s in runs(configs, seeds):
            if time.perf_counter() - start > budget and s == 0:
                break
            run = client.create_run(exp)
            ts = int(time.time() * 1000)
            flags = {**configuration(c), "seed": s}
            client.log_batch(run.info.run_id,
                             metrics=[Metric("val/acc", v, ts, k) for k, v in enumerate(curve(c, s, steps))],
                             params=[Param(k, str(v)) for k, v in flags.items()])
            client.set_terminated(run.info.run_id)
            n += 1
        print(json.dumps({"runs": n, "seconds": time.perf_counter() - start}))
        return
    took = []
    for _ in range(2):  # the first call also opens the store (engine, schema check); the second is warm
        start = time.perf_counter()
        df = mlflow.search_runs(experiment_names=["e"], max_results=1_000_000)
        table = df.groupby(["params.lr", "params.layers"])["metrics.val/acc"].agg(["count", "mean", "std"])
        took.append(time.perf_counter() - start)
    print(json.dumps({"cold": took[0], "seconds": took[1], "import": imported, "runs": len(df),
                      "groups": len(table)}))


# ------------------------------------------------------------------------------------------- main

def main() -> None:
    if sys.argv[1:2] == ["--mlflow-worker"]:
        mlflow_worker(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds each of Guild and MLflow may fill")
    ap.add_argument("--guild", default="/tmp/guildenv-opt/bin/guild")
    ap.add_argument("--guild-limit", type=float, default=600.0,
                    help="skip a guild compare whose extrapolated time exceeds this many seconds")
    ap.add_argument("--mlflow-python", default="/tmp/mlflowenv/bin/python")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import compare_tracker
    from _table import print_table

    total = args.configs * args.seeds
    have_guild = Path(args.guild).exists()
    have_mlflow = Path(args.mlflow_python).exists()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-compare-") as tmp:
        tmpdir = Path(tmp)
        project = tmpdir / "tracker-proj"
        start = time.perf_counter()
        compare_tracker.fill(compare_tracker.make_project(project), args.configs, args.seeds, args.steps)
        fill = time.perf_counter() - start
        rows.append((f"tracker: filled {total:,} trials through the library API", f"{fill:.0f} s",
                     f"{total / fill:,.0f} trials/s"))
        mlflow_db = tmpdir / "mlflow.db"
        mlflow_runs = 0
        if have_mlflow:
            out = subprocess.run([args.mlflow_python, __file__, "--mlflow-worker", "fill", str(mlflow_db),
                                  str(args.configs), str(args.seeds), str(args.steps), str(args.budget)],
                                 check=True, capture_output=True, text=True).stdout
            filled = json.loads(out.strip().splitlines()[-1])
            mlflow_runs = filled["runs"]
            rows.append((f"MLflow: filled {mlflow_runs:,} runs (SQLite, log_batch)", f"{filled['seconds']:.0f} s",
                         f"{mlflow_runs / filled['seconds']:,.0f} runs/s"))
        guild = None
        guild_points: list[tuple[int, float, float | None]] = []  # (runs, cold s, warm s: None when too long)
        if have_guild:
            guild = GuildHome(args.guild, tmpdir / "guild-home", tmpdir / "guild-proj")
            start = time.perf_counter()
            checkpoints = [n for n in (1_000, 10_000) if n < total]
            for c, s in runs(args.configs, args.seeds):
                if s == 0 and time.perf_counter() - start > args.budget:
                    break
                guild.add(c, s, args.steps)
                if checkpoints and guild.count == checkpoints[0]:
                    pause = time.perf_counter()
                    guild_points.append((guild.count, guild.compare(guild.count), guild.compare()))
                    checkpoints.pop(0)
                    start += time.perf_counter() - pause  # the budget is for writing runs
            written = time.perf_counter() - start
            rows.append((f"Guild: wrote {guild.count:,} run directories", f"{written:.0f} s",
                         f"{guild.count / written:,.0f} runs/s (a real `guild run` takes seconds each)"))
            if guild.count not in [n for n, _, _ in guild_points]:
                cold = guild.compare(guild.count)  # every run listed, with its flags and val/acc
                per_run = guild_points[-1][2] / guild_points[-1][0] if guild_points else 0.0
                warm = guild.compare() if per_run * guild.count <= args.guild_limit else None
                guild_points.append((guild.count, cold, warm))

        # the timed reads, interleaved
        times: dict[str, list[float]] = {"tracker": [], "guild": [], "mlflow": []}
        mlflow_info: dict[str, float] = {}
        mlflow_cold: list[float] = []
        guild_full = guild is not None and guild_points[-1][2] is not None
        for _ in range(args.rounds):
            times["tracker"].append(compare_tracker.time_compare(project, "e"))
            if guild_full:
                times["guild"].append(guild.compare())
            if have_mlflow:
                out = subprocess.run([args.mlflow_python, __file__, "--mlflow-worker", "measure", str(mlflow_db)],
                                     check=True, capture_output=True, text=True).stdout
                mlflow_info = json.loads(out.strip().splitlines()[-1])
                times["mlflow"].append(mlflow_info["seconds"])
                mlflow_cold.append(mlflow_info["cold"])

        rows.append((f"tracker compare e --json, {total:,} trials", f"{min(times['tracker']):.2f} s",
                     f"best of {args.rounds}: {', '.join(f'{t:.2f}' for t in times['tracker'])}; CLI start-up "
                     f"included; target < 1 s"))
        for n, cold, warm in guild_points:
            if warm is None:
                rows.append((f"guild compare --csv -, {n:,} runs", "-", f"cold (index built) {cold:.1f} s; warm not "
                             f"timed (over --guild-limit {args.guild_limit:.0f} s)"))
                continue
            rows.append((f"guild compare --csv -, {n:,} runs", f"{warm:.1f} s",
                         f"cold (index built) {cold:.1f} s; {n / warm:,.0f} runs/s warm; "
                         f"{warm / n * total:.0f} s at {total:,} if linear"))
        if times["guild"]:
            rows.append((f"guild compare --csv -, {guild.count:,} runs, interleaved", f"{min(times['guild']):.1f} s",
                         f"best of {args.rounds}"))
        if times["mlflow"]:
            best = min(times["mlflow"])
            rows.append((f"mlflow.search_runs + groupby, {mlflow_runs:,} runs", f"{best:.2f} s",
                         f"best of {args.rounds}, second call in a process; first call (opens the store) "
                         f"{min(mlflow_cold):.2f} s; import mlflow {mlflow_info['import']:.1f} s apart; "
                         f"{mlflow_info['groups']:,} groups; {best / mlflow_runs * total:.1f} s at {total:,} "
                         "if linear"))
        print_table(rows, value_header="time")  # before the Guild home (GBs) is removed


if __name__ == "__main__":
    main()
