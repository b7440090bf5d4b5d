"""Train a linear classifier on scikit-learn's digits data set (it ships with scikit-learn).

Runs with or without tracker: `python train.py --lr 0.01 --epochs 10 --seed 3`.
Each epoch prints `step: N train/loss: ... val/acc: ...`; tracker records such
`name: value` lines as metrics. The model and metrics.json are written to
$TRACKER_TRIAL_DIR (or outputs/ when run by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, hinge_loss, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def split(seed: int, val_size: float, test_size: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(train, validation, test) parts of the digits, each (x, y), drawn with ``seed``."""
    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_size / (1 - test_size), random_state=seed, stratify=y_rest)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", type=float, default=0.01, help="constant learning rate (eta0)")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 regularisation strength")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set")
    p.add_argument("--loss", default="log_loss", choices=["log_loss", "modified_huber", "hinge"])
    p.add_argument("--val-size", type=float, default=0.2, help="fraction held out for validation")
    p.add_argument("--test-size", type=float, default=0.2, help="fraction held out for the test")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the shuffling and the model")
    p.add_argument("--no-test", action="store_true",
                   help="leave the test split alone (experiments with a test phase evaluate it later)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    out = Path(os.environ.get("TRACKER_TRIAL_DIR", "outputs"))
    out.mkdir(parents=True, exist_ok=True)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(args.seed, args.val_size, args.test_size)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (scaler.transform(part) for part in (x_train, x_val, x_test))

    model = SGDClassifier(loss=args.loss, alpha=args.alpha, learning_rate="constant", eta0=args.lr,
                          random_state=args.seed)
    classes = np.unique(y_train)
    rng = np.random.default_rng(args.seed)
    val_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        if args.loss == "hinge":  # no probabilities: report the hinge loss itself
            loss = hinge_loss(y_train, model.decision_function(x_train), labels=classes)
        else:
            loss = log_loss(y_train, model.predict_proba(x_train), labels=classes)
        train_acc = accuracy_score(y_train, model.predict(x_train))
        val_acc = accuracy_score(y_val, model.predict(x_val))
        print(f"step: {epoch} train/loss: {loss:.4f} train/acc: {train_acc:.4f} val/acc: {val_acc:.4f}",
              flush=True)

    print(f"val/acc: {val_acc:.4f}")
    results = {"val_acc": val_acc, "epochs": args.epochs}
    if not args.no_test:
        results["test_acc"] = accuracy_score(y_test, model.predict(x_test))
        print(f"test/acc: {results['test_acc']:.4f}")
    with open(out / "model.pkl", "wb") as fh:
        pickle.dump({"scaler": scaler, "model": model}, fh)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))

    try:  # optional: record the estimator's full hyper-parameters in the trial
        import tracker
    except ImportError:
        return
    tracker.autolog(model)


if __name__ == "__main__":
    main()
