"""Reading a running trial's output as it grows: log lines and metric points.

The driver calls :meth:`LiveOutput.read` every poll; it returns only what the
trial's ``stdout.log``, ``stderr.log`` and ``metrics.jsonl`` gained since the
last call (whole lines; a partial last line waits for its newline, or for the
final read). The same parsing rules as :mod:`tracker.execution.outputs` apply,
so a trial's live metrics and its final ones are the same points.
"""

from __future__ import annotations

import os
from pathlib import Path

from tracker.api import METRICS_FILE
from tracker.execution import outputs
from tracker.execution.phases import marker
from tracker.store import MetricPoint, now

_STREAMS = (("stdout", outputs.STDOUT), ("stderr", outputs.STDERR), ("metrics", METRICS_FILE))


class LiveOutput:
    """The new lines and metric points of one trial directory since the previous read.

    ``phase``: the phase the trial starts in; a marker line (see :mod:`tracker.execution.phases`)
    moves a stream on to the next. ``namespace``: the experiment has phases, so metric names
    are put in their phase's namespace.
    """

    def __init__(self, trial_dir: Path, phase: str | None, namespace: bool = False) -> None:
        self.dir = trial_dir
        self.namespace = namespace
        self.offsets = dict.fromkeys((name for _, name in _STREAMS), 0)
        self.partial = dict.fromkeys((name for _, name in _STREAMS), b"")
        self.phases = dict.fromkeys((name for _, name in _STREAMS), phase)

    def _new_lines(self, name: str, final: bool) -> list[str]:
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offsets[name])
                data = fh.read()
        except OSError:
            return []
        if not data and not (final and self.partial[name]):
            return []
        self.offsets[name] += len(data)
        data = self.partial[name] + data
        lines = data.split(b"\n")
        self.partial[name] = b"" if final else lines.pop()
        if final and lines and lines[-1] == b"":
            lines.pop()
        return [line.decode(errors="replace").rstrip("\r") for line in lines]

    def _points(self, name: str, lines: list[str], stamp: str) -> list[MetricPoint]:
        """The metric points of a log's lines, each in the phase its stream was in."""
        points: list[MetricPoint] = []
        start = 0
        for i, line in enumerate([*lines, None]):
            started = marker(line) if line is not None else None
            if line is None or started:
                points.extend(p if p.ts else MetricPoint(p.name, p.value, p.step, p.phase, stamp)
                              for p in outputs.metrics_from_lines(lines[start:i], self.phases[name], self.namespace))
                start = i + 1
                if started:
                    self.phases[name] = started
        return points

    def read(self, final: bool = False) -> tuple[list[tuple[str, str]], list[MetricPoint]]:
        """(stream, line) pairs printed and metric points logged since the last read."""
        printed: list[tuple[str, str]] = []
        points: list[MetricPoint] = []
        stamp = now()
        for stream, name in _STREAMS:
            lines = self._new_lines(name, final)
            if not lines:
                continue
            if stream == "metrics":
                points.extend(outputs.metrics_from_records(lines, self.phases[name], self.namespace))
                continue
            printed.extend((stream, line) for line in lines)
            points.extend(self._points(name, lines, stamp))
        return printed, points
