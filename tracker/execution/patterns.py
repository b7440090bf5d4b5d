"""``output_scalars`` patterns: an experiment's own regexes for metrics, checked when its file is read.

Kept apart from :mod:`tracker.execution.capture` (which applies them) and free of tracker
imports, so the config models can validate a pattern without importing the capture code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    """One ``output_scalars`` entry: a regex with ``name``/``value``/``step`` groups, or one group
    for the fixed ``key`` (``key == "step"`` sets the step)."""

    regex: re.Pattern[str]
    key: str | None = None

    def values(self, line: str) -> list[tuple[str, str]]:
        """(name, text of the number) for every match in ``line``."""
        out = []
        for m in self.regex.finditer(line):
            if self.key is not None:
                out.append((self.key, m.group(1)))
                continue
            groups = m.groupdict()
            if groups.get("step") is not None:
                out.append(("step", groups["step"]))
            if groups.get("name") is not None and groups.get("value") is not None:
                out.append((groups["name"], groups["value"]))
        return out


def compile_pattern(item: str | dict[str, str]) -> Pattern:
    """An ``output_scalars`` item as a :class:`Pattern`; ValueError says what is wrong with it."""
    if isinstance(item, dict):
        if len(item) != 1:
            raise ValueError(f"an output_scalars entry maps one metric name to one regex, got {item!r}")
        [(key, text)] = item.items()
    else:
        key, text = None, item
    if not isinstance(text, str):
        raise ValueError(f"expected a regex string, got {text!r}")
    try:
        regex = re.compile(text)
    except re.error as exc:
        raise ValueError(f"invalid regex {text!r}: {exc}") from None
    if key is not None and regex.groups != 1:
        raise ValueError(f"the regex for {key!r} needs exactly one group (the value), "
                         f"got {regex.groups}: {text!r}")
    groups = set(regex.groupindex)
    if key is None and not ({"name", "value"} <= groups or "step" in groups):
        raise ValueError(f"{text!r} needs (?P<name>...) and (?P<value>...) groups, or (?P<step>...); "
                         "or write '{name: regex}' with one group")
    return Pattern(regex, key)
