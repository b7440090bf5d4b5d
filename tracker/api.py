"""The helper API for training scripts: stdlib only, so importing it is free.

Inside a tracker trial these read the trial's params and write metrics into
the trial directory; outside one they fall back to the command line and print,
so the same script runs with or without tracker::

    import tracker
    p = tracker.params(defaults={"lr": 0.1, "epochs": 5})
    for epoch in range(p["epochs"]):
        tracker.log(step=epoch, **{"train/loss": 0.3, "val/acc": 0.9})
    tracker.autolog(model)   # records model.get_params() (scikit-learn) or optimizer settings
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
AUTOLOG_FILE = "autolog.json"


def _coerce(raw: str, like: Any) -> Any:
    """Convert a command-line string to the type of the default value ``like``."""
    if isinstance(like, bool):
        return raw.lower() in {"1", "true", "yes", "on"}
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(raw)
            except ValueError:
                return raw
    if like is None or isinstance(like, (list, dict)):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def params(defaults: dict[str, Any] | None = None, argv: list[str] | None = None) -> dict[str, Any]:
    """The trial's parameters merged over ``defaults``.

    Reads ``TRACKER_PARAMS`` inside a trial, else ``--name=value`` / ``--name value``
    flags from ``argv`` (default ``sys.argv[1:]``), converted to the defaults' types.
    The seed is included under ``seed`` when known.
    """
    out = dict(defaults or {})
    raw = os.environ.get("TRACKER_PARAMS")
    if raw is not None:
        out.update(json.loads(raw))
        if os.environ.get("TRACKER_SEED"):
            out.setdefault("seed", int(os.environ["TRACKER_SEED"]))
        return out
    args = list(sys.argv[1:] if argv is None else argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    value, i = args[i + 1], i + 1
                else:
                    value = "true"
            key = name.replace("-", "_") if name.replace("-", "_") in out else name
            out[key] = _coerce(value, out.get(key))
        i += 1
    return out


def seed(default: int | None = None) -> int | None:
    """The trial's seed (``TRACKER_SEED``), or ``default`` outside tracker."""
    value = os.environ.get("TRACKER_SEED")
    return int(value) if value else default


def trial_dir(default: str | os.PathLike[str] = "outputs") -> Path:
    """Where the script should write models and outputs (``TRACKER_TRIAL_DIR``)."""
    path = Path(os.environ.get("TRACKER_TRIAL_DIR") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        item = getattr(value, "item", None)  # numpy / torch scalars
        return float(item()) if callable(item) else None


def log(step: int | None = None, **metrics: Any) -> None:
    """Record metric values (names like ``train/loss``, ``val/acc``) at ``step``.

    Inside a trial they are appended to ``$TRACKER_TRIAL_DIR/metrics.jsonl``;
    outside one they are printed as ``step: 1 loss: 0.25``.
    """
    values = {k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None}
    directory = os.environ.get("TRACKER_TRIAL_DIR")
    if directory and os.environ.get("TRACKER_TRIAL_ID"):
        record: dict[str, Any] = {"ts": time.time(), "metrics": values}
        if step is not None:
            record["step"] = int(step)
        if os.environ.get("TRACKER_PHASE"):
            record["phase"] = os.environ["TRACKER_PHASE"]
        with open(Path(directory) / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return
    parts = ([f"step: {step}"] if step is not None else []) + [f"{k}: {v:g}" for k, v in values.items()]
    print(" ".join(parts), flush=True)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def describe(obj: Any) -> dict[str, Any]:
    """Hyper-parameters of a scikit-learn estimator or a PyTorch optimizer."""
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if hasattr(obj, "get_params"):  # scikit-learn estimators and pipelines
        return {"class": kind, "params": _jsonable(obj.get_params(deep=True))}
    groups = getattr(obj, "param_groups", None)
    if isinstance(groups, list):  # torch.optim.Optimizer
        settings = [{k: _jsonable(v) for k, v in g.items() if k != "params"} for g in groups]
        return {"class": kind, "params": settings[0] if len(settings) == 1 else {"groups": settings}}
    raise TypeError(f"autolog: cannot read hyper-parameters from {kind}")


def autolog(*objects: Any, name: str | None = None) -> dict[str, Any]:
    """Capture the hyper-parameters of estimators/optimizers into the trial record."""
    captured = {}
    for i, obj in enumerate(objects):
        key = name if (name and len(objects) == 1) else type(obj).__name__
        if key in captured:
            key = f"{key}_{i}"
        captured[key] = describe(obj)
    directory = os.environ.get("TRACKER_TRIAL_DIR")
    if directory and os.environ.get("TRACKER_TRIAL_ID"):
        path = Path(directory) / AUTOLOG_FILE
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update(captured)
        path.write_text(json.dumps(existing, indent=2))
    return captured
