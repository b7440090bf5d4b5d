"""Tabular Q-learning on a tiny slippery corridor: training episodes vs evaluation episodes.

The agent starts at cell 0 of a corridor of 12 cells and is rewarded +1 for reaching the
last one, -0.01 per move; a move slips the other way with probability 0.25. Each episode's
environment is seeded: training episodes from the training seed, evaluation episodes from
fresh evaluation seeds that tracker draws apart from the training seeds. One script does
every phase, told which by TRACKER_PHASE (or --phase):

- train:    learns Q from `--episodes` episodes, prints `step: N return: R` (train/return),
            writes q.json to $TRACKER_TRIAL_DIR;
- validate: plays one greedy episode per evaluation seed with that Q, prints `return: R`
            (val/return, the mean over the seeds);
- test:     the same on the test seeds, with the Q of the training trial ($TRACKER_TRAIN_DIR).

Needs nothing beyond Python. By hand: `python rl.py --phase train --seed 1`, then
`python rl.py --phase validate --eval_seeds 5,6,7`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

CELLS, SLIP, STEP_COST, MAX_STEPS = 12, 0.25, 0.01, 60


def episode(q: list[list[float]], rng: random.Random, env_seed: int, epsilon: float = 0.0,
            lr: float = 0.0, gamma: float = 0.95) -> float:
    """Play one episode in the environment seeded by ``env_seed``; learn when ``lr`` > 0."""
    env = random.Random(env_seed)
    state, total = 0, 0.0
    for _ in range(MAX_STEPS):
        if rng.random() < epsilon:
            action = rng.randrange(2)
        else:
            action = max((0, 1), key=lambda a: (q[state][a], a))
        move = 1 if action == 1 else -1
        if env.random() < SLIP:
            move = -move
        after = min(max(state + move, 0), CELLS - 1)
        reward = 1.0 if after == CELLS - 1 else -STEP_COST
        done = after == CELLS - 1
        if lr:
            target = reward + (0.0 if done else gamma * max(q[after]))
            q[state][action] += lr * (target - q[state][action])
        state, total = after, total + reward
        if done:
            break
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", default=os.environ.get("TRACKER_PHASE", "train"), choices=["train", "validate", "test"])
    p.add_argument("--lr", type=float, default=0.2, help="Q-learning step size")
    p.add_argument("--episodes", type=int, default=100, help="training episodes")
    p.add_argument("--epsilon", type=float, default=0.1, help="exploration rate while training")
    p.add_argument("--seed", type=int, default=0, help="the training seed")
    p.add_argument("--eval_seeds", default="1,2,3", help="evaluation seeds, one greedy episode each")
    args = p.parse_args()
    out = Path(os.environ.get("TRACKER_TRIAL_DIR", "outputs"))
    out.mkdir(parents=True, exist_ok=True)
    if args.phase == "train":
        rng = random.Random(args.seed)
        q = [[0.0, 0.0] for _ in range(CELLS)]
        returns = []
        for number in range(1, args.episodes + 1):
            returns.append(episode(q, rng, rng.randrange(2**31), args.epsilon, args.lr))
            if number % 25 == 0:
                print(f"step: {number} return: {sum(returns[-25:]) / 25:.4f}", flush=True)
        (out / "q.json").write_text(json.dumps(q))
        return
    trained = Path(os.environ.get("TRACKER_TRAIN_DIR") or out)
    q = json.loads((trained / "q.json").read_text())
    seeds = [int(s) for s in args.eval_seeds.split(",")]
    returns = [episode(q, random.Random(0), seed) for seed in seeds]
    print(f"return: {sum(returns) / len(returns):.4f}")


if __name__ == "__main__":
    main()
