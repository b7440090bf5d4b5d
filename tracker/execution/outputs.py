"""Reading what a trial leaves behind: metrics, deliverables, artifacts, errors.

Metrics come from two places: ``name: value`` lines in stdout/stderr (so
scripts that never import tracker still work) and ``metrics.jsonl`` written by
:func:`tracker.log`. :mod:`tracker.execution.live` reads both while the trial runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tracker.api import AUTOLOG_FILE
from tracker.config import Deliverable
from tracker.hashing import sha256_file
from tracker.store import MetricPoint

STDOUT = "stdout.log"
STDERR = "stderr.log"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PAIR = re.compile(rf"([A-Za-z_][\w./-]*)\s*[:=]\s*({_NUMBER})(?=[\s,;|]|$)", re.IGNORECASE)
_PHASES = {"train": "train", "val": "validate", "valid": "validate", "validate": "validate",
           "validation": "validate", "test": "test", "eval": "validate"}


def phase_of(name: str, default: str | None) -> str | None:
    """The phase a metric belongs to, from its ``phase/`` prefix."""
    prefix = name.split("/", 1)[0].lower() if "/" in name else ""
    return _PHASES.get(prefix, default)


def parse_line(line: str) -> dict[str, float] | None:
    """Parse a line made only of ``name: value`` pairs (``step: 3 val/acc: 0.9``)."""
    text = line.strip()
    if not text or (":" not in text and "=" not in text):
        return None
    pairs = list(_PAIR.finditer(text))
    if not pairs:
        return None
    rest = _PAIR.sub("", text).strip(" \t,;|")
    if rest:  # prose around the numbers: not a metrics line
        return None
    return {m.group(1): float(m.group(2)) for m in pairs}


def metrics_from_lines(lines: Iterable[str], phase: str | None) -> Iterator[MetricPoint]:
    """Metric points from output lines; a ``step`` key sets the step of its line."""
    for line in lines:
        values = parse_line(line)
        if not values:
            continue
        step_value = values.pop("step", None)
        step = int(step_value) if step_value is not None and math.isfinite(step_value) else None
        for name, value in values.items():
            yield MetricPoint(name, value, step, phase_of(name, phase))


def metrics_from_records(lines: Iterable[str], phase: str | None) -> Iterator[MetricPoint]:
    """Metric points from ``metrics.jsonl`` lines written by :func:`tracker.log` (bad lines are skipped)."""
    from datetime import datetime, timezone

    for line in lines:
        try:
            record = json.loads(line)
            ts = datetime.fromtimestamp(record["ts"], timezone.utc).isoformat(timespec="milliseconds")
            for name, value in record["metrics"].items():
                yield MetricPoint(name, float(value), record.get("step"), phase_of(name, phase),
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


def check_deliverables(trial_dir: Path, deliverables: Iterable[Deliverable]) -> list[str]:
    """Problems with a trial's deliverables (empty when all are there)."""
    problems = []
    for d in deliverables:
        path = trial_dir / d.path
        if not path.exists():
            problems.append(f"deliverable {d.path} is missing")
        elif d.check == "nonempty" and path.is_file() and path.stat().st_size == 0:
            problems.append(f"deliverable {d.path} is empty")
        elif d.check == "contains_keys":
            try:
                data = json.loads(path.read_text())
            except ValueError:
                problems.append(f"deliverable {d.path} is not valid JSON")
                continue
            missing = [k for k in d.keys if not isinstance(data, dict) or k not in data]
            if missing:
                problems.append(f"deliverable {d.path} lacks keys {', '.join(missing)}")
    return problems


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
