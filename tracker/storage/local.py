"""Backups in a local (or mounted) directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tracker.errors import StorageError
from tracker.storage.base import TEMP_DIR, BaseStorage, ObjectInfo, Progress, StorageOptions, temp_is_stale, temp_name


class LocalOptions(StorageOptions):
    """``{type: local, path: /mnt/backups}``"""

    path: str


class LocalStorage(BaseStorage):
    """Objects as files under ``path/prefix``; writes go to ``.tracker-tmp/`` first, then are renamed."""

    Options = LocalOptions
    options: LocalOptions
    _swept = False

    @property
    def root(self) -> Path:
        base = Path(self.options.path).expanduser()
        if not base.is_absolute() and self.project is not None:
            base = self.project.root / base
        return base / self.options.prefix.strip("/") if self.options.prefix.strip("/") else base

    def _path(self, key: str) -> Path:
        return self.root / key

    def describe(self) -> str:
        return f"local target {self.name} ({self.root})"

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        dest = self._path(key)
        tmp = self.root / TEMP_DIR / temp_name()
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self._sweep(tmp.parent)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc.strerror or exc}",
                               hint=f"check that {self.root} exists and is writable") from exc
        finally:
            tmp.unlink(missing_ok=True)  # gone after the rename; a failed or interrupted copy's leftover
        if progress:
            progress(dest.stat().st_size)

    def _sweep(self, temps: Path) -> None:
        """Remove what killed writers left in the temp directory (once per target object)."""
        if self._swept:
            return
        self._swept = True
        for entry in os.scandir(temps):
            try:
                if temp_is_stale(entry.name, entry.stat().st_mtime):
                    os.unlink(entry.path)
            except OSError:
                pass  # removed meanwhile by another writer

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError as exc:
            raise StorageError(f"{key} is not in {self.describe()}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {self._path(key)}: {exc.strerror or exc}") from exc
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for base, dirs, names in os.walk(self.root):
            if base == str(self.root) and TEMP_DIR in dirs:
                dirs.remove(TEMP_DIR)
            for name in names:
                path = Path(base) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield ObjectInfo(key, path.stat().st_size)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
