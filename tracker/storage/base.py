"""The storage interface every backup backend implements.

Backends implement five primitives on keys relative to the target's prefix:
``put_file``, ``get_file``, ``info``, ``list`` and ``delete``. Everything else
(bytes helpers, the probe used by ``tracker storage check``) is derived here.
Uploads must be atomic: an object appears under its key only once complete.
Backends that write through a temporary name use :func:`temp_name` and remove
leftovers of killed writers with :func:`temp_is_stale`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tracker.errors import MissingDependencyError

Progress = Callable[[int], None]  # called with the number of bytes just transferred

TEMP_DIR = ".tracker-tmp"  # where directory backends write before renaming into place
TEMP_PREFIX = "tracker-tmp"
TEMP_STALE_AFTER = 24 * 3600.0  # seconds without a write after which anyone's temporary file is abandoned


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object: its key (relative to the prefix) and size in bytes."""

    key: str
    size: int


class StorageOptions(BaseModel):
    """Options every backend accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    prefix: str = "tracker"
    multipart_threshold: int = 64 * 1024 * 1024  # bytes; larger files use multipart/resumable uploads
    chunk_size: int = 16 * 1024 * 1024  # part size of multipart/resumable uploads


def require(module: str, package: str, extra: str) -> Any:
    """Import an optional SDK, or fail with "pip install 'seedtracker[extra]'" advice."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra) from exc


class BaseStorage(ABC):
    """A place to keep backups. Subclasses set ``Options`` and implement the primitives."""

    Options: ClassVar[type[StorageOptions]] = StorageOptions

    def __init__(self, name: str, options: StorageOptions, project: Any = None) -> None:
        self.name = name
        self.options = options
        self.project = project

    def key(self, key: str) -> str:
        """The full object name of ``key`` (with the target's prefix)."""
        prefix = self.options.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    def strip(self, name: str) -> str:
        """The key of a full object name."""
        prefix = self.options.prefix.strip("/")
        return name[len(prefix) + 1:] if prefix and name.startswith(prefix + "/") else name

    @abstractmethod
    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Upload ``path`` as ``key``, atomically (multipart above ``multipart_threshold``)."""

    @abstractmethod
    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        """Download ``key`` into the file ``dest``."""

    @abstractmethod
    def info(self, key: str) -> ObjectInfo | None:
        """The object's size, or None when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if it is already gone)."""

    def describe(self) -> str:
        """Where the target points, for messages (never credentials)."""
        return f"{self.options.type} target {self.name}"

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections and sessions; the target opens them again if used later."""

    # ----------------------------------------------------------------- derived

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def put_bytes(self, key: str, data: bytes) -> None:
        with _scratch() as path:
            path.write_bytes(data)
            self.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        with _scratch() as path:
            self.get_file(key, path)
            return path.read_bytes()

    def probe(self) -> list[tuple[str, bool, str]]:
        """Steps of ``tracker storage check``: list, write, read back, delete a probe object."""
        steps: list[tuple[str, bool, str]] = []
        key = f"_tracker_probe/{os.getpid()}-{os.urandom(4).hex()}"
        payload = b"tracker storage check\n"
        for step, action in (
            ("list", lambda: next(iter(self.list("objects/")), None)),
            ("write", lambda: self.put_bytes(key, payload)),
            ("read", lambda: self.get_bytes(key) == payload or (_ for _ in ()).throw(
                OSError("read back different bytes"))),
            ("delete", lambda: self.delete(key)),
        ):
            try:
                action()
            except Exception as exc:  # every backend error becomes a failed step with its message
                steps.append((step, False, str(exc)))
                break
            steps.append((step, True, "ok"))
        return steps


def temp_name() -> str:
    """A unique temporary name that says who writes it: ``tracker-tmp_HOST_BOOT_PID_START_RANDOM``.

    The writer's host, boot, pid and process start time let the next writer remove the
    leftovers of a killed one on the same machine at once (:func:`temp_is_stale`).
    """
    from tracker.execution.lifecycle import boot_id, proc_start

    pid = os.getpid()
    return "_".join((TEMP_PREFIX, _host(), (boot_id() or "-")[:8], str(pid), str(proc_start(pid) or 0),
                     os.urandom(4).hex()))


def temp_is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether a temporary file named by :func:`temp_name` was abandoned by its writer.

    Stale when its writer is a process of this machine that is gone (or from an earlier
    boot), or when nobody wrote to it for ``TEMP_STALE_AFTER`` seconds (writers on other
    machines). Names not made by :func:`temp_name` are never stale: they are not ours.
    """
    from tracker.execution.lifecycle import boot_id, proc_start

    parts = name.split("_")
    if len(parts) != 6 or parts[0] != TEMP_PREFIX or not parts[3].isdigit() or not parts[4].isdigit():
        return False
    if (now if now is not None else time.time()) - mtime > TEMP_STALE_AFTER:
        return True
    if parts[1] != _host():
        return False
    if parts[2] != (boot_id() or "-")[:8]:
        return True
    return str(proc_start(int(parts[3])) or 0) != parts[4]


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "-"


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="tracker-obj-")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
