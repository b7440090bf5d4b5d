"""What counts as a trial's code: the files git tracks, plus untracked *source* files by rule.

A file git tracks is always code. An untracked (and not git-ignored) file is code when it
is source: text (no NUL byte in its first 8 kB, as git decides), at most
``code.max_file_size`` (1 MiB by default), and not in a place that holds no source:
tracker's own state (``.tracker/``, wherever ``TRACKER_HOME`` puts it inside the
repository), a virtual environment (a directory holding ``pyvenv.cfg`` or ``conda-meta``),
caches (``__pycache__``, ``.ipynb_checkpoints``, ...), and the files tracker itself wrote
into the project (reports, exports, checkouts; see :func:`claim_output`). tracker.yaml's
``code:`` section adjusts the rule::

    code:
      include: ["data/*.csv"]     # untracked files taken as code whatever the rules say
      exclude: ["scratch/"]       # untracked files never taken as code
      max_file_size: 2MiB         # larger untracked files are left out

Patterns are relative to the project root: one without ``/`` matches a file or directory
name anywhere (``*.csv``, ``scratch``); one with ``/`` matches the path from the root
(``data/*.csv``, ``scratch/``). Tracker's state is never code, whatever ``include`` says.

The selection is what :func:`tracker.gitinfo.capture` snapshots, fingerprints and writes
into ``code.patch``; :func:`left_out_line` is the one line a run prints about the rest.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracker.config import CodeConfig

SKIP_DIRS = frozenset({
    "__pycache__", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox",
    ".eggs", "node_modules", ".guild", "mlruns", "wandb", "lightning_logs",
})
"""Directories that hold no source (caches and other tools' run records), left out wherever they are."""

OUTPUTS_FILE = "outputs"
"""In the state directory: the project-relative paths of the files tracker wrote into the project."""

_UNNAMED = frozenset({"tracker's output", "a venv", "no source", "code.exclude"})
_SNIFF = 8000  # bytes git reads to decide text or binary


@dataclass(frozen=True)
class LeftOut:
    """An untracked file or directory that is not code, and why."""

    path: str  # relative to the project root; a directory ends in "/"
    why: str  # "binary", "5.0 MiB > max_file_size 1 MiB", "a venv", ...


@dataclass(frozen=True)
class Selection:
    """Which untracked files are code (repository-relative, for git) and what was left out."""

    code: tuple[str, ...] = ()
    left_out: tuple[LeftOut, ...] = field(default_factory=tuple)


def size_text(n: float) -> str:
    """``5 MiB``, ``1.5 MiB``, ``12 kiB``, ``300 B``."""
    unit = "B"
    for unit in ("B", "kiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            break
        n /= 1024
    if unit == "B" or n >= 10:
        return f"{n:.0f} {unit}"
    return f"{n:.1f}".removesuffix(".0") + f" {unit}"


def matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` (see the module docstring) matches ``path`` (project-relative, posix)."""
    pattern = pattern.strip("/") if pattern.endswith("/") else pattern.lstrip("/")
    parts = path.rstrip("/").split("/")
    if "/" not in pattern:
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts)
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def is_binary(path: Path) -> bool:
    """True when the file's first 8 kB hold a NUL byte (git's own test)."""
    try:
        with path.open("rb") as fh:
            return b"\0" in fh.read(_SNIFF)
    except OSError:
        return True


def _holds_no_source(directory: Path) -> str | None:
    """Why ``directory`` is never code (a venv, a cache), or None."""
    if directory.name in SKIP_DIRS or directory.name.endswith(".egg-info"):
        return "no source"
    if (directory / "pyvenv.cfg").is_file() or (directory / "conda-meta").is_dir():
        return "a venv"
    return None


def outputs(state: Path) -> set[str]:
    """The project-relative paths tracker wrote into the project (see :func:`claim_output`)."""
    try:
        text = (state / OUTPUTS_FILE).read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line for line in text.splitlines() if line}


def claim_output(root: Path, state: Path, path: Path) -> str | None:
    """Record that tracker wrote ``path``; return a note when it lies in the project's code.

    A file (or directory) tracker writes inside the project is left out of every later
    trial's code, so a report or an export never makes trials dirty. Outside the project,
    in its state directory or where git ignores it, nothing is recorded and None is returned.

    Example: ``claim_output(project.root, project.paths.state, Path("report.html"))``
    """
    target = path.resolve()
    try:
        rel = target.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
    if target == state.resolve() or state.resolve() in target.parents or _ignored(root, target):
        return None
    if rel not in outputs(state):
        state.mkdir(parents=True, exist_ok=True)
        with (state / OUTPUTS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(rel + "\n")
    return (f"note: {rel} is inside the project; it is left out of trials' code as tracker's output "
            f"(write it under {_display(state, root)}/ or outside the project to keep the tree tidy)")


def _ignored(root: Path, target: Path) -> bool:
    """Whether git ignores ``target`` (then it never was code)."""
    import subprocess

    proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(target)], cwd=root, capture_output=True)
    return proc.returncode == 0


def _display(state: Path, root: Path) -> str:
    try:
        return state.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(state)


class _Sorter:
    """Decides, path by path, what of the untracked files is code."""

    def __init__(self, top: Path, root: Path, rules: CodeConfig, state: Path) -> None:
        self.top, self.rules = top, rules
        try:
            self.prefix = root.resolve().relative_to(top.resolve()).as_posix()
        except ValueError:
            self.prefix = "."
        self.prefix = "" if self.prefix == "." else self.prefix + "/"
        self.outputs = outputs(state)
        self._dirs: dict[str, str | None] = {}

    def local(self, path: str) -> str:
        """A repository-relative path as the rules see it (relative to the project root)."""
        return path[len(self.prefix):] if self.prefix and path.startswith(self.prefix) else path

    def included(self, rel: str) -> bool:
        return any(matches(p, rel) for p in self.rules.include)

    def dir_reason(self, path: str) -> str | None:
        """Why the repository-relative directory ``path`` is not code, or None."""
        if path not in self._dirs:
            rel = self.local(path.rstrip("/"))
            why = None
            if rel in self.outputs:
                why = "tracker's output"
            elif any(matches(p, rel) for p in self.rules.exclude):
                why = "code.exclude"
            else:
                why = _holds_no_source(self.top / path)
            self._dirs[path] = why
        return self._dirs[path]

    def file_reason(self, path: str) -> tuple[str, str | None]:
        """The file's project-relative path (or that of the directory that rules it out), and why it is
        not code (None: it is code)."""
        rel = self.local(path)
        if self.included(rel):
            return rel, None
        parts = path.split("/")
        for i in range(1, len(parts)):
            directory = "/".join(parts[:i]) + "/"
            why = self.dir_reason(directory)
            if why:
                return self.local(directory), why
        if rel in self.outputs:
            return rel, "tracker's output"
        if any(matches(p, rel) for p in self.rules.exclude):
            return rel, "code.exclude"
        full = self.top / path
        try:
            size = full.stat().st_size
        except OSError:
            return rel, "unreadable"
        if size > self.rules.max_bytes:
            return rel, f"{size_text(size)} > max_file_size {size_text(self.rules.max_bytes)}"
        if is_binary(full):
            return rel, "binary"
        return rel, None


def select(top: Path, root: Path, rules: CodeConfig, state: Path, entries: Sequence[str],
           expand: Callable[[list[str]], list[str]]) -> Selection:
    """Sort untracked ``entries`` (repository-relative; a directory ends in "/", as ``git status`` gives
    them) into code and left out. ``expand`` lists the untracked files under directories that may hold code.
    """
    sorter = _Sorter(top, root, rules, state)
    files: list[str] = []
    dirs: list[str] = []
    left: dict[str, str] = {}
    for entry in entries:
        if not entry.endswith("/"):
            files.append(entry)
            continue
        why = sorter.dir_reason(entry)
        rel = sorter.local(entry)
        if why and not any(p.strip("/").startswith(rel.rstrip("/")) or matches(p, rel) for p in rules.include):
            left[rel] = why
        else:
            dirs.append(entry)
    if dirs:
        files += expand(dirs)
    code = []
    for path in files:
        rel, why = sorter.file_reason(path)
        if why is None:
            code.append(path)
        else:
            left.setdefault(rel, why)
    return Selection(tuple(code), tuple(LeftOut(p, w) for p, w in sorted(left.items())))


def left_out_line(left_out: Iterable[LeftOut], shown: int = 4) -> str | None:
    """The one line a run prints about the untracked files it did not take as code, or None.

    Only files someone might have meant as code are named (binary or too large ones): tracker's
    outputs, venvs, caches and what ``code.exclude`` names never are.
    """
    items = [x for x in left_out if x.why not in _UNNAMED]
    if not items:
        return None
    named = ", ".join(f"{x.path} ({x.why})" for x in items[:shown])
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return (f"left out of the trials' code (untracked, not source): {named}{more}; "
            "to take one as code, commit it or add it to 'code: include:' in tracker.yaml")


def state_of(root: Path) -> Path:
    """The state directory of the project at ``root`` (``TRACKER_HOME`` or ``.tracker``)."""
    from tracker.paths import ProjectPaths

    return ProjectPaths(root).state


def default_output(state: Path, kind: str, name: str) -> Path:
    """Where tracker puts an output the user did not place: ``<state>/<kind>/<name>``, never in the code.

    Example: ``default_output(project.paths.state, "reports", "report.html")``
    """
    path = state / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
