"""Reading what a trial leaves behind: metrics, deliverables, artifacts, errors.

Metrics come from three places: what a script prints to stdout/stderr (so scripts
that never import tracker still work; the formats are :mod:`tracker.execution.capture`'s),
``metrics.jsonl`` written by :func:`tracker.log`, and TensorBoard event files
(:mod:`tracker.execution.tensorboard`). :mod:`tracker.execution.live` reads the first two while
the trial runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tracker.api import AUTOLOG_FILE
from tracker.config import PHASE_PREFIX, Deliverable
from tracker.hashing import sha256_file
from tracker.store import MetricPoint

STDOUT = "stdout.log"
STDERR = "stderr.log"
_PHASES = {"train": "train", "val": "validate", "valid": "validate", "validate": "validate",
           "validation": "validate", "test": "test", "eval": "validate"}
_KERAS_VAL = re.compile(r"(val|valid|validation)_(\w.*)")  # Keras: val_loss is validation's loss


def _split(name: str) -> tuple[str, str]:
    """(namespace, rest) of a metric name: ``val/acc`` and Keras's ``val_acc`` are ("val", "acc")."""
    head, _, rest = name.partition("/")
    if rest:
        return head, rest
    keras = _KERAS_VAL.match(name)
    return (keras.group(1), keras.group(2)) if keras else ("", name)


def phase_of(name: str, default: str | None) -> str | None:
    """The phase a metric belongs to, from its ``phase/`` (or Keras ``val_``) prefix."""
    head = _split(name)[0].lower()
    return _PHASES.get(head, default) if head else default


# what each phase may report under its own name (a training script may report validation)
_KEEPS = {"train": ("train", "validate"), "validate": ("validate",), "test": ("test",)}


def namespaced(name: str, phase: str) -> tuple[str, str]:
    """(name, phase) of a metric reported in ``phase`` of an experiment with phases.

    A name already in a namespace the phase may report keeps it (``valid/acc`` and Keras's
    ``val_acc`` become ``val/acc``); any other gets the phase's own (``acc`` in validate is
    ``val/acc``; ``val/acc`` printed by a test command is ``test/val/acc``: test never writes
    validation).
    """
    head, rest = _split(name)
    own = _PHASES.get(head.lower()) if head else None
    if own in _KEEPS[phase]:
        return f"{PHASE_PREFIX[own]}/{rest}", own
    return f"{PHASE_PREFIX[phase]}/{name}", phase


def metric_name(name: str, phase: str | None, namespace: bool) -> tuple[str, str | None]:
    """(stored name, phase) of metric ``name`` reported in ``phase``; ``namespace``: the
    experiment has phases, so the name goes into its phase's namespace."""
    if namespace and phase in _KEEPS:
        return namespaced(name, phase)
    return name, phase_of(name, phase)


def _point(name: str, value: float, step: int | None, phase: str | None, namespace: bool,
           ts: str | None = None) -> MetricPoint:
    name, phase = metric_name(name, phase, namespace)
    return MetricPoint(name, value, step, phase, ts)


def metrics_from_records(lines: Iterable[str], phase: str | None, namespace: bool = False) -> Iterator[MetricPoint]:
    """Metric points from ``metrics.jsonl`` lines written by :func:`tracker.log` (bad lines are skipped);
    a record's own ``phase`` (from ``TRACKER_PHASE`` when it was logged) wins over ``phase``."""
    from datetime import datetime, timezone

    for line in lines:
        try:
            record = json.loads(line)
            ts = datetime.fromtimestamp(record["ts"], timezone.utc).isoformat(timespec="milliseconds")
            own = record.get("phase")
            for name, value in record["metrics"].items():
                yield _point(name, float(value), record.get("step"), own if own in _KEEPS else phase, namespace,
                             ts.replace("+00:00", "Z"))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            continue


def autologged(trial_dir: Path) -> dict[str, object]:
    """Hyper-parameters captured by :func:`tracker.autolog`."""
    path = trial_dir / AUTOLOG_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def _load_keys(path: Path) -> Any:
    """A JSON file's data, or a YAML file's for .yaml/.yml; ValueError when it does not parse."""
    text = path.read_text(errors="replace")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from exc
    return json.loads(text)


def check_deliverables(trial_dir: Path, deliverables: Iterable[Deliverable], phase: str | None = None) -> list[str]:
    """Problems with a trial's deliverables (empty when all are there); ``phase`` names whose they are."""
    problems = []
    whose = f" ({phase} phase)" if phase else ""
    for d in deliverables:
        path = trial_dir / d.path
        if not path.exists():
            problems.append(f"deliverable {d.path}{whose} is missing")
        elif d.check == "nonempty" and path.is_file() and path.stat().st_size == 0:
            problems.append(f"deliverable {d.path}{whose} is empty")
        elif d.check == "min_size" and (size := _size(path)) < d.min_bytes:
            problems.append(f"deliverable {d.path}{whose} has {size} bytes, less than its min_size {d.size}")
        elif d.check == "contains_keys":
            kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
            try:
                data = _load_keys(path)
            except (ValueError, OSError):
                problems.append(f"deliverable {d.path}{whose} is not valid {kind}")
                continue
            missing = [k for k in d.keys if not isinstance(data, dict) or k not in data]
            if missing:
                problems.append(f"deliverable {d.path}{whose} lacks keys {', '.join(missing)}")
    return problems


def _size(path: Path) -> int:
    """A file's size, or a directory's total (a checkpoint may be a directory)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def scan_artifacts(trial_dir: Path) -> list[tuple[str, int, str]]:
    """(relative path, size, sha256) of every regular file in the trial directory."""
    out = []
    for path in sorted(trial_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out.append((path.relative_to(trial_dir).as_posix(), path.stat().st_size, sha256_file(path)))
    return out


def tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a text file (for error tails)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read().decode(errors="replace")
    return "\n".join(data.splitlines()[-lines:])
