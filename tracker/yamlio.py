"""YAML reading that remembers line numbers, and atomic file writing.

Config errors must name the file and the line, so :func:`load_yaml` returns the
data plus a map from key paths (``("grid", "lr")``) to 1-based line numbers.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

import yaml

from tracker.errors import ConfigError, TrackerError

LineMap = dict[tuple[Any, ...], int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key and sequence item."""


def _build_lines(node: yaml.Node, path: tuple[Any, ...], lines: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _build_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _build_lines(item, (*path, i), lines)


def display_path(path: Path) -> str:
    """A path as users should see it in messages: relative to the cwd when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Read a YAML file; return (data, line map). Errors name the file and line."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", path=shown) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=shown) from exc
    return parse_yaml(text, shown)


def parse_yaml(text: str, path: object = "<string>") -> tuple[Any, LineMap]:
    """Parse YAML text; return (data, line map)."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", path=path, line=line,
                          hint="check indentation and quoting") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from exc
    lines: LineMap = {}
    if node is not None:
        _build_lines(node, (), lines)
    return data, lines


def line_of(lines: LineMap, loc: tuple[Any, ...]) -> int | None:
    """Best line for a key path: the deepest prefix of ``loc`` that has a line."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers never see a half-written file.

    An existing file keeps its mode; a new one gets the mode the umask gives any
    new file (0644 under umask 022), not the 0600 of a private temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cannot_write(path: Path, exc: OSError) -> TrackerError:
    """The one-line error for an output file (an export, a report) that could not be written."""
    return TrackerError(f"cannot write {path}: {exc.strerror or exc}",
                        hint="check the directory exists, is writable and the disk has space")


def write_output(path: Path, text: str) -> None:
    """:func:`atomic_write` for a file the user asked for; a failure is one :class:`TrackerError` line."""
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise cannot_write(path, exc) from exc


def dump_yaml(data: Any) -> str:
    """Dump ``data`` as block-style YAML, keys in insertion order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
