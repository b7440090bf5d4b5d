"""Reading a running trial's output as it grows: log lines and metric points.

The driver calls :meth:`LiveOutput.read` every poll; it returns only what the
trial's ``stdout.log``, ``stderr.log`` and ``metrics.jsonl`` gained since the
last call (whole lines; a partial last line waits for its newline, or for the
final read). Printed lines are read by one :class:`~tracker.execution.capture.Capture`
per stream, which carries the step, the phase and an open table from one read to the next,
so a trial's live metrics and its final ones are the same points.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path

from tracker.api import METRICS_FILE
from tracker.config import OutputScalars
from tracker.execution import outputs
from tracker.execution.capture import Capture
from tracker.execution.patterns import compile_pattern
from tracker.store import MetricPoint, now

_STREAMS = (("stdout", outputs.STDOUT), ("stderr", outputs.STDERR), ("metrics", METRICS_FILE))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs.

    Reading a burst of output makes hundreds of thousands of small objects (points, rows) that
    are never cyclic garbage, yet each few hundred of them start a collection that walks them
    all again: half the CPU of parsing 300,000 lines. They are freed by reference counting.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class LiveOutput:
    """The new lines and metric points of one trial directory since the previous read.

    ``phase``: the phase the trial starts in; a marker line (see :mod:`tracker.execution.phases`)
    moves a stream on to the next. ``namespace``: the experiment has phases, so metric names
    are put in their phase's namespace. ``scalars``: the experiment's ``output_scalars``.
    """

    def __init__(self, trial_dir: Path, phase: str | None, namespace: bool = False,
                 scalars: OutputScalars | None = None) -> None:
        self.dir = trial_dir
        self.namespace = namespace
        self.offsets = dict.fromkeys((name for _, name in _STREAMS), 0)
        self.partial = dict.fromkeys((name for _, name in _STREAMS), b"")
        scalars = scalars or OutputScalars()
        patterns = [compile_pattern(p) for p in scalars.patterns]
        self.captures = {name: Capture(phase, namespace, patterns, scalars.defaults)
                         for stream, name in _STREAMS if stream != "metrics"}
        self.phase = phase  # of metrics.jsonl records without their own

    def _new_text(self, name: str, final: bool) -> str:
        """The whole lines ``name`` gained (all of it on the final read), as text."""
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offsets[name])
                data = fh.read()
        except OSError:
            return ""
        self.offsets[name] += len(data)
        data = self.partial[name] + data
        if final:
            self.partial[name] = b""
        else:
            cut = data.rfind(b"\n") + 1
            data, self.partial[name] = data[:cut], data[cut:]
        return data.decode(errors="replace")

    def read(self, final: bool = False) -> tuple[list[tuple[str, str]], list[MetricPoint]]:
        """(stream, line) pairs printed and metric points logged since the last read."""
        printed: list[tuple[str, str]] = []
        points: list[MetricPoint] = []
        stamp = now()
        for stream, name in _STREAMS:
            text = self._new_text(name, final)
            if not text:
                continue
            if "\r\n" in text:
                text = text.replace("\r\n", "\n")
            if stream == "metrics":
                points.extend(outputs.metrics_from_records(text.splitlines(), self.phase, self.namespace))
                continue
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()
            printed.extend((stream, line) for line in lines)
            capture = self.captures[name]
            points.extend(capture.read(text, stamp))
            if final:
                points.extend(capture.flush(stamp))
        return printed, points
