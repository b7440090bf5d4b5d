"""The storage interface every backup backend implements.

Backends implement five primitives on keys relative to the target's prefix:
``put_file``, ``get_file``, ``info``, ``list`` and ``delete``. Everything else
(bytes helpers, the probe used by ``tracker storage check``) is derived here.
Uploads must be atomic: an object appears under its key only once complete.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tracker.errors import MissingDependencyError

Progress = Callable[[int], None]  # called with the number of bytes just transferred


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
    """Import an optional SDK, or fail with "pip install 'tracker[extra]'" advice."""
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


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="tracker-obj-")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
