"""The manifest of a backed-up trial, and the checks every manifest passes before it is used.

A manifest is JSON under ``trials/<trial id>.json``: the trial record, its metrics, its
environment, and every file's path, size and sha256. Whoever can write to a storage
target can write a manifest, so :func:`decode` trusts nothing in it:

- every path stays inside the trial directory, appears once, is not both a file and a
  directory, and is at most ``MAX_PATH`` bytes and ``MAX_DEPTH`` levels deep;
- every field of the record has its type, and the status is a final one: a record
  copied while ``queued`` or ``running`` becomes ``lost``;
- the record carries nothing that names a process (owner, handle, pid, heartbeat,
  lease, stop request), so no command ever signals a process because of it.

Any violation is one :class:`~tracker.errors.StorageError` line, raised before
anything is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from tracker.errors import StorageError
from tracker.store import ACTIVE, STATUSES, MetricPoint, Trial

FORMAT = 1
MAX_PATH = 1024  # bytes (UTF-8) of a file's path inside the trial directory
MAX_NAME = 255  # bytes of one path component (the limit of common file systems)
MAX_DEPTH = 32  # directories a file may be nested in
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
TRIAL_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}\Z")
# fields that name a process or its lease: never taken from a manifest
RUNTIME_FIELDS = ("owner", "handle", "pid", "heartbeat", "lease", "stop_requested")
# nor from its extra, with the names handles had there ("remote" before they got their own field)
RUNTIME_EXTRA = (*RUNTIME_FIELDS, "remote", "runner_pid", "runner_start", "pgid", "detached")
TAMPERED = "the backup may have been tampered with; nothing was written"


def object_key(sha: str) -> str:
    return f"objects/{sha[:2]}/{sha}"


def manifest_key(trial_id: str) -> str:
    return f"trials/{trial_id}.json"


@dataclass(frozen=True)
class FileEntry:
    """A trial file in a manifest."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: a record safe to import and files safe to write."""

    trial: Trial
    metrics: list[MetricPoint]
    environment: dict[str, Any] | None
    files: list[FileEntry]


def encode(project: str, trial: Trial, metrics: list[MetricPoint], environment: dict[str, Any] | None,
           files: list[FileEntry]) -> bytes:
    """The manifest of a trial, as stored."""
    return json.dumps({
        "format": FORMAT,
        "project": project,
        "trial": trial.as_dict(),
        "metrics": [asdict(p) for p in metrics],
        "environment": environment,
        "files": [asdict(f) for f in files],
    }, sort_keys=True, indent=1).encode()


def decode(body: bytes, trial_id: str, where: str) -> Manifest:
    """Parse and check the manifest of ``trial_id`` read from ``where`` (see the module docstring)."""
    what = f"the manifest of trial {trial_id} in {where}"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"{what} is not valid JSON", hint=TAMPERED) from exc
    if (not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), list)
            or not isinstance(data.get("trial"), dict)):
        raise StorageError(f"{what} is not a tracker manifest", hint=TAMPERED)
    if data["trial"].get("id") != trial_id:
        raise StorageError(f"{what} describes trial {_show(data['trial'].get('id'))}", hint=TAMPERED)
    files = [_entry(f, what) for f in data["files"]]
    check_paths([f.path for f in files], what)
    return Manifest(_record(data["trial"], what), _metrics(data.get("metrics"), what),
                    _environment(data.get("environment"), what), files)


def _entry(raw: Any, what: str) -> FileEntry:
    if not isinstance(raw, dict) or set(raw) != {"path", "size", "sha256"}:
        raise StorageError(f"{what} has a malformed file entry", hint=TAMPERED)
    entry = FileEntry(**raw)
    if (not isinstance(entry.path, str) or type(entry.size) is not int or entry.size < 0
            or not isinstance(entry.sha256, str) or not SHA256_RE.match(entry.sha256)):
        raise StorageError(f"{what} lists {_show(entry.path)} with an invalid size or sha256", hint=TAMPERED)
    return entry


def path_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file of a trial directory, or None when it can."""
    if (not name or "\0" in name or "\\" in name or name.startswith("/") or PurePosixPath(name).is_absolute()
            or (len(name) > 1 and name[1] == ":") or any(p in ("..", ".", "") for p in name.split("/"))):
        return "the path would leave the target directory"
    parts = name.split("/")
    if len(name.encode(errors="surrogatepass")) > MAX_PATH:
        return f"the path is longer than {MAX_PATH} bytes"
    if any(len(p.encode(errors="surrogatepass")) > MAX_NAME for p in parts):
        return f"a name in the path is longer than {MAX_NAME} bytes"
    if len(parts) - 1 > MAX_DEPTH:
        return f"the path is nested more than {MAX_DEPTH} directories deep"
    return None


def check_paths(names: list[str], what: str) -> None:
    """Refuse a list of paths that cannot all be written into one directory, naming the first culprit."""
    for name in names:
        problem = path_problem(name)
        if problem:
            raise StorageError(f"refusing to restore {_show(name)} from {what}: {problem}", hint=TAMPERED)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise StorageError(f"{what} lists {_show(name)} twice", hint=TAMPERED)
        seen.add(name)
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in seen:
                raise StorageError(f"{what} lists {_show(parent)} both as a file and as a directory",
                                   hint=TAMPERED)


def _record(raw: dict[str, Any], what: str) -> Trial:
    """The trial record as it may be imported: typed, final, owning no process."""
    from pydantic import TypeAdapter, ValidationError

    if not isinstance(raw.get("id"), str) or not TRIAL_ID_RE.match(raw["id"]):
        raise StorageError(f"{what} has an invalid trial id {_show(raw.get('id'))}", hint=TAMPERED)
    status = raw.get("status")
    if status not in STATUSES:
        raise StorageError(f"{what} gives the trial an unknown status {_show(status)}", hint=TAMPERED)
    record = {k: v for k, v in raw.items() if k not in RUNTIME_FIELDS}
    if isinstance(record.get("extra"), dict):
        record["extra"] = {k: v for k, v in record["extra"].items() if k not in RUNTIME_EXTRA}
    try:
        trial = TypeAdapter(Trial).validate_python(record)
    except ValidationError as exc:
        raise StorageError(f"{what} has an invalid trial record: {_first(exc)}", hint=TAMPERED) from None
    if trial.status in ACTIVE:
        trial = replace(trial, status="lost", error=f"restored from a copy made while it was {trial.status}")
    return trial


def _metrics(raw: Any, what: str) -> list[MetricPoint]:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(list[MetricPoint]).validate_python(raw if raw is not None else [])
    except ValidationError as exc:
        raise StorageError(f"{what} has invalid metrics: {_first(exc)}", hint=TAMPERED) from None


def _environment(raw: Any, what: str) -> dict[str, Any] | None:
    if raw is not None and not isinstance(raw, dict):
        raise StorageError(f"{what} has an invalid environment (expected a mapping)", hint=TAMPERED)
    return raw


def _first(exc: Any) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"


def _show(value: Any) -> str:
    """A value from a manifest, quoted and cut short for a one-line message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
