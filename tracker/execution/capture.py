"""What counts as a metric in a script's output: the formats read by default, an experiment's patterns.

A :class:`Capture` reads one stream's lines in order and remembers what a line can set for
the lines after it: the step (a ``step: N`` line, Keras's ``Epoch N/M``, a stable-baselines3
table's ``total_timesteps``), the phase (tracker's phase marker lines) and an open SB3 table.
Each line is tried against the experiment's ``output_scalars`` patterns first, then (unless
turned off) against the default formats, in this order:

- ``name: value`` pairs making up the whole line: ``step: 3 loss: 0.25 val/acc=0.9``;
- the same after a logging prefix: ``INFO:root:val_loss: 0.5``,
  ``2024-01-01 12:00:00,123 - INFO - acc: 0.9``;
- a JSON object or a Python dict: ``{"step": 3, "loss": 0.2}``, ``{'eval_loss': 0.4, 'epoch': 1.0}``
  (numbers at any depth, nested keys joined with ``/``);
- Keras: ``Epoch 3/10`` sets the step, ``32/32 [====] - 0s 2ms/step - loss: 0.5 - val_acc: 0.6``
  gives every ``name: value`` part after the progress bar;
- stable-baselines3's verbose table (``|    ep_rew_mean     | 22.4     |`` under ``| rollout/ |``),
  stored as ``rollout/ep_rew_mean`` at the table's ``time/total_timesteps``;
- a label of up to five words, a colon and a number, alone on a line: ``Model accuracy: 0.93``
  becomes ``model_accuracy`` (a one-word label keeps its spelling).

A number inside prose ("reached 0.93 after 5 epochs") is never a metric: every format needs the
whole line (after a logging prefix) to be metrics, so a sentence that merely mentions a number
is not read. docs/guide.md ("How tracker captures metrics") states the same rules for users.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, islice, repeat

from tracker.execution.outputs import metric_name
from tracker.execution.patterns import Pattern
from tracker.execution.phases import marker
from tracker.store import MetricPoint

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[nN][aA][nN]|[iI][nN][fF])"
_NAME = r"[A-Za-z_][\w./-]*"
_PAIR = re.compile(rf"({_NAME})\s*[:=]\s*({NUMBER})(?=[\s,;|]|$)")
_PAIRS = re.compile(rf"(?:{_NAME}\s*[:=]\s*(?:{NUMBER})(?:[\s,;|]+|$))+")
_LOG_PREFIX = re.compile(
    r"(?:[\[(]?\d{4}-\d\d-\d\d[T ][\d:.,]+\S*[\])]?\s*(?:[-|:]\s*)?)?"  # a timestamp
    r"(?:[\w.]+\s+-\s+)?"  # a logger name (%(name)s - %(levelname)s)
    r"[\[(]?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)[\])]?"
    r"(?::[\w.<>-]*:|\s*[-:|]\s*|\s+)")
_EPOCH = re.compile(r"Epoch\s+(\d+)\s*/\s*\d+", re.IGNORECASE)
_KERAS_BAR = re.compile(r"\d+/\d+\s*(?:\[[=>.]*\]|[━─]+)?(?=\s|$)")
_KERAS_PART = re.compile(rf"({_NAME}):\s*({NUMBER})")
_TABLE_ROW = re.compile(r"\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|")
_SENTENCE = re.compile(rf"([A-Za-z][\w./-]*(?: [A-Za-z][\w./-]*){{0,4}})\s*:\s*({NUMBER})\s*%?")
_TIMESTEPS = ("time/total_timesteps", "total_timesteps")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _flat(data: object, prefix: str = "") -> Iterable[tuple[str, float]]:
    """(name, number) of a JSON value: numbers at any depth, keys joined with '/'; booleans are not numbers."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flat(value, f"{prefix}{key}" if not prefix else f"{prefix}/{key}")
    elif isinstance(data, (int, float)) and not isinstance(data, bool) and prefix:
        yield prefix, float(data)


def _mapping(text: str) -> object:
    """A JSON object, or a Python dict literal as Hugging Face's Trainer prints (``{'loss': 0.5}``); None if neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _label(text: str) -> str:
    """A metric name from a printed label: ``Model accuracy`` -> ``model_accuracy``; one word as is."""
    return "_".join(text.lower().split()) if " " in text else text


@dataclass(frozen=True)
class _Shape:
    """Regexes for lines of the same ``name: value`` pairs: one line (its numbers as groups), a run of them."""

    names: tuple[str, ...]
    line: re.Pattern[str]
    run: re.Pattern[str]
    step: int | None  # the column of the step, if one of the names is "step"


@lru_cache(maxsize=256)
def _shape(names: tuple[str, ...]) -> _Shape:
    """The regexes for lines that print ``names`` in this order (a few shapes per script: cached)."""

    def line(group: str) -> str:
        number = f"{group}{NUMBER})"
        body = r"[ \t,;|]+".join(rf"{re.escape(name)}[ \t]*[:=][ \t]*{number}" for name in names)
        return rf"[ \t]*{body}[ \t,;|]*(?:\n|\Z)"

    steps = [i for i, name in enumerate(names) if name.lower() == "step"]
    return _Shape(names, re.compile(line("(")), re.compile(rf"(?:{line('(?:')})++"), steps[-1] if steps else None)


class Capture:
    """The metric points in one stream's lines, read in order; see the module docstring.

    ``phase``: the phase the stream starts in. ``namespace``: the experiment has phases, so
    every name is put in its phase's namespace. ``patterns``: the experiment's own regexes,
    tried first. ``defaults``: read the default formats too.
    """

    def __init__(self, phase: str | None, namespace: bool = False, patterns: Iterable[Pattern] = (),
                 defaults: bool = True) -> None:
        self.phase = phase
        self.namespace = namespace
        self.patterns = tuple(patterns)
        self.defaults = defaults
        self.step: int | None = None
        self.table: list[tuple[str, float]] = []  # rows of an open SB3 table
        self._section = ""
        self._names: dict[str, tuple[str, str | None]] = {}

    # ------------------------------------------------------------------ entry points

    def read(self, text: str, ts: str | None = None) -> list[MetricPoint]:
        """The points of ``text`` (whole lines, each point stamped ``ts``); an SB3 table still
        open waits for its end.

        Lines of ``name: value`` pairs with the same names one after another (a training loop's
        output) are read as one run by a regex made for those names, without a Python step per line.
        """
        out: list[MetricPoint] = []
        pos, end = 0, len(text)
        shape: _Shape | None = None
        while pos < end:
            if shape is not None:
                run = shape.run.match(text, pos)
                if run is not None:
                    self._read_run(shape, run.group(0), out, ts)
                    pos = run.end()
                    continue
            newline = text.find("\n", pos)
            newline = end if newline < 0 else newline
            shape = self._line(text[pos:newline], out, ts)
            pos = newline + 1
        return out

    def _line(self, line: str, out: list[MetricPoint], ts: str | None) -> _Shape | None:
        """Read one line; the shape of its names when it is plain pairs (the next lines may repeat it)."""
        if "\r" in line:  # a progress line redrawn in place: its last state counts
            line = line.rstrip("\r").rsplit("\r", 1)[-1]
        if self.table and not line.lstrip().startswith("|"):
            self._close_table(out, ts)
        started = marker(line)
        if started:  # the next phase's command: its own names and steps
            self.phase, self._names, self.step = started, {}, None
            return None
        if (self.patterns and self._patterns(line, out, ts)) or not self.defaults:
            return None  # a line an experiment's pattern read is not read again by the defaults
        text = line.strip()
        if _PAIRS.fullmatch(text) is None:
            if text:
                self._other(text, out, ts)
            return None
        pairs = _PAIR.findall(text)
        self._emit(pairs, out, ts)
        return None if self.patterns else _shape(tuple(name for name, _ in pairs))

    def _read_run(self, shape: _Shape, run: str, out: list[MetricPoint], ts: str | None) -> None:
        """Points of consecutive lines that all have ``shape``'s names, converted a metric at a time."""
        rows = shape.line.findall(run)
        columns = list(zip(*rows, strict=True)) if len(shape.names) > 1 else [rows]
        steps: Iterable[int | None] = repeat(self.step)
        if shape.step is not None:
            try:  # integers, as steps are printed
                steps = list(map(int, columns[shape.step]))
            except ValueError:  # `step: 3.0`, or `nan` (which keeps the step before it)
                current, steps = self.step, []
                for raw in columns[shape.step]:
                    value = float(raw)
                    if math.isfinite(value):
                        current = int(value)
                    steps.append(current)
            self.step = steps[-1]
        if not isinstance(steps, list):
            steps = list(islice(steps, len(rows)))
        metrics = []
        for i, name in enumerate(shape.names):
            if i != shape.step:
                stored, phase = self._stored(name)
                metrics.append(map(MetricPoint, repeat(stored), map(float, columns[i]), steps, repeat(phase),
                                   repeat(ts)))
        out.extend(chain.from_iterable(zip(*metrics, strict=True)))  # in the order they were printed

    def flush(self, ts: str | None = None) -> list[MetricPoint]:
        """What is still pending at the end of the stream (an SB3 table cut short)."""
        out: list[MetricPoint] = []
        if self.table:
            self._close_table(out, ts)
        return out

    # ------------------------------------------------------------------ formats

    def _stored(self, name: str) -> tuple[str, str | None]:
        """(stored name, phase) of a printed name in the current phase."""
        known = self._names.get(name)
        if known is None:
            known = self._names[name] = metric_name(name, self.phase, self.namespace)
        return known

    def _point(self, name: str, value: float, step: int | None, ts: str | None) -> MetricPoint:
        stored, phase = self._stored(name)
        return MetricPoint(stored, value, step, phase, ts)

    def _set_step(self, text: str | float) -> int | None:
        value = _number(text) if isinstance(text, str) else text
        if value is not None and math.isfinite(value):
            self.step = int(value)
        return self.step

    def _emit(self, values: Iterable[tuple[str, float | str]], out: list[MetricPoint], ts: str | None) -> None:
        """Add ``values``; a ``step`` among them sets the step of all and of the lines after."""
        found = []
        step = self.step
        for name, raw in values:
            value = _number(raw) if isinstance(raw, str) else raw
            if value is None:
                continue
            if name.lower() == "step":
                step = self._set_step(value)
            else:
                found.append((name, value))
        out.extend(self._point(name, value, step, ts) for name, value in found)

    def _patterns(self, line: str, out: list[MetricPoint], ts: str | None) -> bool:
        """Read ``line`` with the experiment's patterns; True when one matched."""
        values = [v for p in self.patterns for v in p.values(line)]
        self._emit(values, out, ts)
        return bool(values)

    def _other(self, text: str, out: list[MetricPoint], ts: str | None) -> None:
        """Every default format but plain pairs."""
        first = text[0]
        if first == "|":
            self._table_row(text)
            return
        if first == "{" and text[-1] == "}":
            self._emit(_flat(_mapping(text)), out, ts)
            return
        prefix = _LOG_PREFIX.match(text)
        if prefix:
            text = text[prefix.end():].strip()
            if _PAIRS.fullmatch(text):
                self._emit(_PAIR.findall(text), out, ts)
                return
        epoch = _EPOCH.fullmatch(text)
        if epoch:
            self._set_step(epoch.group(1))
            return
        bar = _KERAS_BAR.match(text)
        if bar:
            parts = (_KERAS_PART.fullmatch(part.strip()) for part in text[bar.end():].split(" - "))
            self._emit([m.groups() for m in parts if m], out, ts)
            return
        sentence = _SENTENCE.fullmatch(text)
        if sentence:
            self._emit([(_label(sentence.group(1)), sentence.group(2))], out, ts)

    def _table_row(self, text: str) -> None:
        row = _TABLE_ROW.fullmatch(text)
        if not row:
            return
        key, raw = row.groups()
        if not raw and key.endswith("/"):
            self._section = key
            return
        value = _number(raw)
        if value is not None and key:
            self.table.append((self._section + key, value))

    def _close_table(self, out: list[MetricPoint], ts: str | None) -> None:
        rows, self.table, self._section = self.table, [], ""
        steps = [v for k, v in rows if k in _TIMESTEPS]
        if steps:
            self._set_step(steps[-1])
        out.extend(self._point(name, value, self.step, ts) for name, value in rows)
