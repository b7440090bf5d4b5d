#!/usr/bin/env python3
"""What one ask of a distributed search costs a worker, as the study grows (``tracker optimize --queue``).

A worker that finds its queue empty rebuilds the study from the store and asks it for the next
configuration (then queues one trial per seed). This fills a fresh project's store with N finished
TPE configurations of a 3-parameter space and times ``distributed.ask`` (rebuild, settle, sample,
insert, queue the trials), best of REPEAT, for each N.

Usage: python benchmarks/bench_distributed.py [--sizes 50,200,400] [--repeat 3] [--strategy tpe]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

EXPERIMENT = """\
command: [python3, -c, "print('val/loss: 1')"]
search:
  x: {type: uniform, low: 0.0, high: 1.0}
  n: {type: int, low: 1, high: 5}
  act: {type: choice, values: [tanh, relu]}
objective: {metric: val/loss, goal: min}
"""


def project(root: Path):  # -> Project
    from tracker.project import Project

    (root / "experiments").mkdir(parents=True)
    (root / "tracker.yaml").write_text("name: bench\nseeds: [1]\nmaster_seed: 1\n")
    (root / "experiments" / "e.yaml").write_text(EXPERIMENT)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return Project.load(root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50,200,400")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--strategy", default="tpe")
    args = ap.parse_args()
    from tracker.search import distributed
    from tracker.search.optimizer import OptimizeOptions
    from tracker.store import Configuration, now

    rows = []
    rng = random.Random(0)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
            proj = project(Path(tmp) / "p")
            record = distributed.start(proj, "e", OptimizeOptions(strategy=args.strategy, trials=size + args.repeat
                                                                  + 1, seeds=1), queue="q")
            store = proj.store
            for number in range(size):  # configuration 0 (queued by start) included: all finished
                store.save_configuration(Configuration(record.id, number, {
                    "x": rng.random(), "n": rng.randint(1, 5), "act": rng.choice(["tanh", "relu"])},
                    "complete", now(), value=rng.random(), finished=now()))
            for t in store.list_trials(optimization=record.id):
                store.transition(t.id, "cancelled", expected=["queued"])
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                assert distributed.ask(proj, store.get_optimization(record.id))
                times.append(time.perf_counter() - start)
            rows.append((f"ask at {size} configurations", f"{min(times) * 1000:.0f} ms",
                         f"best of {args.repeat} ({', '.join(f'{t * 1000:.0f}' for t in times)} ms); "
                         f"{args.strategy}, 3 params"))
    print_table(rows, value_header="value")


if __name__ == "__main__":
    main()
