"""A real objective with a known optimum: a noisy quadratic with a per-step learning curve.

val/loss at step s = (x - 0.3)**2 + 0.05 * (n - 3)**2 + [act != "tanh"] * 0.1 + 2 / (s + 1) + noise(seed),
minimised at x = 0.3, n = 3, act = tanh. The final loss (after STEPS steps) of the optimum is
2 / STEPS plus the seed's noise (at most 0.01). The noise depends only on the seed, so
configurations compared on the same seeds are paired.
"""

import argparse
import os
import random
import sys
import time

STEPS = 20

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
p.add_argument("--n", type=int, default=1)
p.add_argument("--act", default="relu")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=STEPS)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--crash_above", type=float, default=None)
p.add_argument("--quiet_metric", type=int, default=0)
p.add_argument("--bare_step", type=int, default=0)  # print the step on a line of its own (Guild's convention)
a = p.parse_args()
if a.crash_above is not None and a.x > a.crash_above:
    print("diverged: x too large", file=sys.stderr)
    sys.exit(7)
noise = random.Random(a.seed).uniform(-0.01, 0.01)
base = (a.x - 0.3) ** 2 + 0.05 * (a.n - 3) ** 2 + (0.0 if a.act == "tanh" else 0.1)
log = os.environ.get("OBJECTIVE_LOG")
if log:
    with open(log, "a") as f:
        f.write(f"{os.environ.get('TRACKER_TRIAL_ID')} {a.x} {a.n} {a.act} {a.seed}\n")
for step in range(a.steps):
    if a.sleep:
        time.sleep(a.sleep)
    name = "val/other" if a.quiet_metric else "val/loss"
    if a.bare_step:
        print(f"step: {step}\n{name}: {base + 2 / (step + 1) + noise:.6f}\ntrain/loss: {base:.6f}", flush=True)
    else:
        print(f"step: {step} {name}: {base + 2 / (step + 1) + noise:.6f} train/loss: {base:.6f}", flush=True)
