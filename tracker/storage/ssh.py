"""Backups on an SSH host named in ``remotes:`` (SFTP, host keys verified as for remote runs).

All transfers share the one pooled SSH connection to the host and at most
``SESSIONS`` SFTP sessions, each used by one thread at a time: sshd allows only
``MaxSessions`` (10 by default) channels per connection, and the connection may
also carry a run's sessions.
"""

from __future__ import annotations

import contextlib
import posixpath
import stat
import threading
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.errors import RemoteError, StorageError
from tracker.storage.base import TEMP_DIR, BaseStorage, ObjectInfo, Progress, StorageOptions, temp_is_stale, temp_name

SESSIONS = 4  # SFTP sessions per target; backup workers beyond this wait for a free one


class SSHOptions(StorageOptions):
    """``{type: ssh, remote: gpu1, path: /backups}``"""

    remote: str
    path: str


class SSHStorage(BaseStorage):
    """Objects as files under ``path/prefix`` on a named remote, written to ``.tracker-tmp/`` then renamed."""

    Options = SSHOptions
    options: SSHOptions

    def __init__(self, name: str, options: StorageOptions, project: Any = None) -> None:
        super().__init__(name, options, project)
        self._idle: list[Any] = []
        self._opened = 0
        self._free = threading.Condition()
        self._swept = False
        self._dirs: set[str] = set()  # directories known to exist

    @cached_property
    def _conn(self) -> Any:
        from tracker.remote import connection, hosts

        return connection.connect(hosts.resolve(self.project, self.options.remote))

    @cached_property
    def root(self) -> str:
        base = self._conn.expand(self.options.path)
        prefix = self.options.prefix.strip("/")
        return posixpath.join(base, prefix) if prefix else base

    def describe(self) -> str:
        return f"ssh target {self.name} ({self.options.remote}:{self.options.path})"

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """An SFTP session of the pool, for this thread alone while the block runs."""
        with self._free:
            while not self._idle and self._opened >= SESSIONS:
                self._free.wait()
            sftp = self._idle.pop() if self._idle else None
            if sftp is None:
                self._opened += 1
        import paramiko

        try:
            if sftp is None:
                sftp = self._conn.sftp()
            yield sftp
        except (RemoteError, paramiko.SSHException, EOFError, OSError) as exc:
            raise StorageError(f"cannot use {self.describe()}: {exc or type(exc).__name__}") from exc
        finally:
            with self._free:
                if sftp is not None and not sftp.get_channel().closed:
                    self._idle.append(sftp)
                else:
                    self._opened -= 1
                self._free.notify()

    def close(self) -> None:
        """Close the idle SFTP sessions (the SSH connection stays pooled for this process)."""
        with self._free:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
        for sftp in idle:
            sftp.close()

    def _mkdirs(self, sftp: Any, path: str) -> None:
        if path in self._dirs:
            return
        parts = []
        while path not in ("", "/"):
            try:
                sftp.stat(path)
                break
            except OSError:
                parts.append(path)
                path = posixpath.dirname(path)
        for part in reversed(parts):
            try:
                sftp.mkdir(part)
            except OSError:
                sftp.stat(part)  # made meanwhile by a parallel upload: fine; else the error stands
        self._dirs.add(path)

    def _sweep(self, sftp: Any, temps: str, mine: str) -> None:
        """Remove what killed writers left in the temp directory (once per target object).

        Ages are measured on the server's clock: against the mtime of our own new temp file.
        """
        self._swept = True
        with sftp.open(mine, "wb"):
            pass
        now = sftp.stat(mine).st_mtime or time.time()
        for entry in sftp.listdir_attr(temps):
            if temp_is_stale(entry.filename, entry.st_mtime or now, now):
                with contextlib.suppress(OSError):
                    sftp.remove(posixpath.join(temps, entry.filename))

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        dest = posixpath.join(self.root, key)
        temps = posixpath.join(self.root, TEMP_DIR)
        tmp = posixpath.join(temps, temp_name())
        with self._session() as sftp:
            try:
                self._mkdirs(sftp, temps)
                self._mkdirs(sftp, posixpath.dirname(dest))
                seen = [0]

                def callback(done: int, total: int) -> None:
                    if progress:
                        progress(done - seen[0])
                    seen[0] = done

                if not self._swept:
                    self._sweep(sftp, temps, tmp)
                sftp.put(str(path), tmp, callback=callback)
                sftp.posix_rename(tmp, dest)
            except OSError as exc:
                raise StorageError(f"cannot write {dest} on {self.options.remote}: {exc}") from exc
            finally:
                with contextlib.suppress(OSError):
                    sftp.remove(tmp)  # gone after the rename; a failed or interrupted upload's leftover

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        with self._session() as sftp:
            try:
                sftp.get(posixpath.join(self.root, key), str(dest))
            except FileNotFoundError as exc:
                raise StorageError(f"{key} is not in {self.describe()}") from exc
            except OSError as exc:
                raise StorageError(f"cannot read {key} from {self.options.remote}: {exc}") from exc
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        with self._session() as sftp:
            try:
                return ObjectInfo(key, sftp.stat(posixpath.join(self.root, key)).st_size or 0)
            except FileNotFoundError:
                return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found = []
        with self._session() as sftp:  # read everything first: the session goes back before the caller acts
            stack = [self.root]
            while stack:
                path = stack.pop()
                try:
                    entries = sftp.listdir_attr(path)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    full = posixpath.join(path, entry.filename)
                    if stat.S_ISDIR(entry.st_mode or 0):
                        if full != posixpath.join(self.root, TEMP_DIR):
                            stack.append(full)
                        continue
                    key = posixpath.relpath(full, self.root)
                    if key.startswith(prefix):
                        found.append(ObjectInfo(key, entry.st_size or 0))
        yield from found

    def delete(self, key: str) -> None:
        with self._session() as sftp, contextlib.suppress(FileNotFoundError):
            sftp.remove(posixpath.join(self.root, key))
