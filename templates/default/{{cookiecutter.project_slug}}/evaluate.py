"""Evaluate a model that train.py wrote on one split of the digits: validation or test.

The `phases` experiment runs it as its validate phase (on the model of the same trial, in
$TRACKER_TRIAL_DIR) and, through `tracker test phases --best val/acc`, as its test phase
(on the chosen configuration's models, in $TRACKER_TRAIN_DIR). It prints `acc: ...`, which
tracker records as val/acc or test/acc by phase. The split is drawn with the training seed,
so the validation and test examples are the ones training never saw.

By hand: `python evaluate.py --split val --model outputs/model.pkl --seed 3`.
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

from sklearn.metrics import accuracy_score

from train import split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=["val", "test"], required=True)
    p.add_argument("--model", help="the model file (default: model.pkl of the trial that trained it)")
    p.add_argument("--seed", type=int, default=0, help="the training seed: it drew the split")
    p.add_argument("--val-size", type=float, default=0.2)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--eval_seeds", help="evaluation seeds (unused: this evaluation is deterministic)")
    args, _ = p.parse_known_args()  # the training params arrive too; they are not needed here
    trained = Path(os.environ.get("TRACKER_TRAIN_DIR") or os.environ.get("TRACKER_TRIAL_DIR") or "outputs")
    with open(args.model or trained / "model.pkl", "rb") as fh:
        saved = pickle.load(fh)
    _, val, test = split(args.seed, args.val_size, args.test_size)
    x, y = val if args.split == "val" else test
    acc = accuracy_score(y, saved["model"].predict(saved["scaler"].transform(x)))
    print(f"acc: {acc:.4f}")


if __name__ == "__main__":
    main()
