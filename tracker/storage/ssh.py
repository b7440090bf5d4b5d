"""Backups on an SSH host named in ``remotes:`` (SFTP, host keys verified as for remote runs)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.errors import RemoteError, StorageError
from tracker.storage.base import BaseStorage, ObjectInfo, Progress, StorageOptions


class SSHOptions(StorageOptions):
    """``{type: ssh, remote: gpu1, path: /backups}``"""

    remote: str
    path: str


class SSHStorage(BaseStorage):
    """Objects as files under ``path/prefix`` on a named remote, written via a temp name + rename."""

    Options = SSHOptions
    options: SSHOptions

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

    def _sftp(self) -> Any:
        return self._conn.sftp()

    def _mkdirs(self, sftp: Any, path: str) -> None:
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

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        dest = posixpath.join(self.root, key)
        tmp = f"{dest}.{os.getpid()}-{os.urandom(4).hex()}.tmp"  # unique: concurrent backups never share one
        sftp = self._sftp()
        try:
            self._mkdirs(sftp, posixpath.dirname(dest))
            seen = [0]

            def callback(done: int, total: int) -> None:
                if progress:
                    progress(done - seen[0])
                seen[0] = done

            sftp.put(str(path), tmp, callback=callback)
            sftp.posix_rename(tmp, dest)
        except (OSError, RemoteError) as exc:
            raise StorageError(f"cannot write {dest} on {self.options.remote}: {exc}") from exc
        finally:
            sftp.close()

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        sftp = self._sftp()
        try:
            sftp.get(posixpath.join(self.root, key), str(dest))
        except FileNotFoundError as exc:
            raise StorageError(f"{key} is not in {self.describe()}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.options.remote}: {exc}") from exc
        finally:
            sftp.close()
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        sftp = self._sftp()
        try:
            return ObjectInfo(key, sftp.stat(posixpath.join(self.root, key)).st_size or 0)
        except FileNotFoundError:
            return None
        finally:
            sftp.close()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        sftp = self._sftp()
        try:
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
                        stack.append(full)
                    elif not entry.filename.endswith(".tmp"):
                        key = posixpath.relpath(full, self.root)
                        if key.startswith(prefix):
                            yield ObjectInfo(key, entry.st_size or 0)
        finally:
            sftp.close()

    def delete(self, key: str) -> None:
        sftp = self._sftp()
        try:
            sftp.remove(posixpath.join(self.root, key))
        except FileNotFoundError:
            pass
        finally:
            sftp.close()
