"""File hashing shared by execution, remote sync and backup, and the machine-local hash cache.

The cache maps a path (with its size and mtime) to its sha256, so unchanged files
are not re-read. It describes files on this machine, so it lives in the project's
state directory (``.tracker/hashes.db``), never in the trial store, which may be
shared by many machines.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """{path: (size, mtime_ns, sha256)} in a small SQLite file; a broken cache is simply rebuilt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                     "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)")
        return conn

    def lookup(self, paths: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        """Cached (size, mtime_ns, sha256) of the paths hashed before."""
        out: dict[str, tuple[int, int, str]] = {}
        try:
            conn = self._connect()
        except sqlite3.Error:
            return out
        with conn:
            for start in range(0, len(paths), 500):
                chunk = list(paths[start:start + 500])
                rows = conn.execute(f"SELECT path, size, mtime_ns, sha256 FROM file_hashes "
                                    f"WHERE path IN ({', '.join('?' * len(chunk))})", chunk)
                out.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        conn.close()
        return out

    def remember(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """Save (path, size, mtime_ns, sha256) rows; a cache that cannot be written is skipped."""
        try:
            conn = self._connect()
            with conn:
                conn.executemany("INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, sha256) "
                                 "VALUES (?, ?, ?, ?)", list(rows))
            conn.close()
        except sqlite3.Error:
            pass
