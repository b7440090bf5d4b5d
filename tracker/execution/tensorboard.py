"""Scalars from the TensorBoard event files a trial wrote, read with TensorBoard's own reader.

A script that logs with ``torch.utils.tensorboard.SummaryWriter``, tensorboardX, Keras's
``TensorBoard`` callback or ``tf.summary`` into the trial directory (``tracker.trial_dir()``)
has its scalars stored when the trial ends. A tag keeps its name, except that event files in
a directory named for a phase (Keras writes ``train/`` and ``validation/``) put that name in
front: ``validation/epoch_loss``. The reader is the ``tensorboard`` package
(``pip install 'seedtracker[tensorboard]'``), imported only when event files exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from tracker.errors import MissingDependencyError
from tracker.execution.outputs import metric_name
from tracker.store import MetricPoint

EVENTS_GLOB = "events.out.tfevents.*"
_PHASE_DIRS = {"train", "training", "val", "valid", "validation", "eval", "test"}


def event_dirs(root: Path) -> list[Path]:
    """The directories under ``root`` that hold event files."""
    if not root.is_dir():
        return []
    return sorted({path.parent for path in root.rglob(EVENTS_GLOB) if path.is_file()})


def _stamp(wall_time: float) -> str:
    text = datetime.fromtimestamp(wall_time, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _values(directory: Path) -> Iterable[tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of every scalar in the event files of ``directory``."""
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
        from tensorboard.util import tensor_util
    except ImportError as exc:
        raise MissingDependencyError("tensorboard", "tensorboard") from exc
    acc = ea.EventAccumulator(str(directory), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in tags.get(ea.SCALARS, []):
        for event in acc.Scalars(tag):
            yield tag, event.step, float(event.value), event.wall_time
    for tag in tags.get(ea.TENSORS, []):  # tf.summary (TF2) writes scalars as tensors
        for event in acc.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1 and array.dtype.kind in "fiu":
                yield tag, event.step, float(array.reshape(())), event.wall_time


def scalars(root: Path, phase: str | None, namespace: bool = False,
            skip: Iterable[str] = ()) -> list[MetricPoint]:
    """The scalars of every event file under ``root``, as metric points (names in ``skip``,
    already captured from the output, are left out).

    Raises MissingDependencyError when there are event files but no reader."""
    skip = set(skip)
    points = []
    for directory in event_dirs(root):
        prefix = f"{directory.name}/" if directory != root and directory.name in _PHASE_DIRS else ""
        for tag, step, value, wall in _values(directory):
            name, own = metric_name(prefix + tag, phase, namespace)
            if name not in skip:
                points.append(MetricPoint(name, value, step, own, _stamp(wall)))
    return points
