"""Code and trial-directory sync between this machine and a remote.

Code goes to ``<project>/code/<code id>`` (one directory per commit or dirty
snapshot). The file list is ``git ls-files`` (tracked + untracked, minus
.gitignore and .trackerignore); ``.git`` is never copied. With rsync on both
ends a sync is a few SFTP requests (is the directory there, what to copy against)
and one rsync over SSH, whose remote command also puts the new directory in place.
It copies into a spare hard-linked copy of the latest code directory, made in the
background after each sync, or else uses ``--link-dest`` to it: unchanged files
are hard links and move no data either way. Otherwise an SFTP delta runs against
a sha256 manifest. A code directory that is already complete is not touched at
all: an unchanged re-sync moves 0 bytes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import re
import shlex
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.errors import RemoteError
from tracker.hashing import sha256_file
from tracker.remote.connection import translated
from tracker.remote.hosts import RemoteHost
from tracker.remote.workspace import Workspace

SYNCED = ".tracker-synced"
IGNORE_FILE = ".trackerignore"


@dataclass(frozen=True)
class SyncResult:
    """What a sync did."""

    path: str
    method: str  # "rsync", "sftp" or "unchanged"
    files: int
    bytes_sent: int
    seconds: float


def _patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(name: str, patterns: list[str]) -> bool:
    """Whether a relative path matches a .trackerignore pattern (gitignore-style globs).

    ``*.ipynb`` matches at any depth, ``data/`` matches a directory anywhere,
    ``/big`` or ``a/b`` are anchored at the project root; ``!`` re-includes.
    """
    parts = name.split("/")
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        is_dir = pattern.endswith("/")
        pattern = pattern.strip("/") if is_dir else pattern.lstrip("/")
        anchored = "/" in pattern or raw.lstrip("!").startswith("/")
        if anchored:
            depth = pattern.count("/") + 1
            candidates = ["/".join(parts[:depth])] if len(parts) > depth or not is_dir else []
            hit = any(fnmatch.fnmatchcase(c, pattern) for c in candidates) or (
                not is_dir and fnmatch.fnmatchcase(name, pattern))
        else:
            segments = parts[:-1] if is_dir else parts
            hit = any(fnmatch.fnmatchcase(seg, pattern) for seg in segments)
        if hit:
            result = not negate
    return result


def file_list(root: Path) -> list[str]:
    """Project files to sync: tracked and untracked, minus .gitignore'd, .trackerignore'd and .tracker/."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=root, capture_output=True)
    if proc.returncode != 0:
        raise RemoteError(f"cannot list the project's files: {proc.stderr.decode().strip()}")
    patterns = _patterns(root)
    names = dict.fromkeys(n for n in proc.stdout.decode().split("\0") if n)
    return [n for n in names if not n.startswith(".tracker/") and (root / n).is_file()
            and not ignored(n, patterns)]


def ssh_command(host: RemoteHost) -> list[str]:
    """The OpenSSH client command for rsync's -e, with the same host-key checking."""
    cmd = ["ssh"]
    if host.ssh_config:
        cmd += ["-F", host.ssh_config]
    cmd += ["-p", str(host.port), "-l", host.user, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if host.known_hosts:
        cmd += ["-o", "UserKnownHostsFile=" + " ".join(host.known_hosts)]
    for key in host.key_files:
        cmd += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if host.proxy_jump:
        cmd += ["-J", host.proxy_jump]
    return cmd


_PROGRESS2 = re.compile(rb"^\s*([\d,.]+)\s+\d+%")


def _number(text: bytes | str) -> int:
    raw = text.decode() if isinstance(text, bytes) else text
    return int(raw.replace(",", "").replace(".", ""))


def _rsync(host: RemoteHost, args: list[str], files: list[str] | None = None,
           progress: Callable[[int], None] | None = None,
           finish: tuple[str, str, list[str] | None] | None = None) -> int:
    """Run rsync over SSH; return the bytes of file data it sent or received.

    With ``progress``, rsync's ``--info=progress2`` totals are passed on as they come. With
    ``finish=(dest, tmp, stale)`` the remote side first deletes ``stale`` (paths under ``tmp``; all
    of ``tmp`` when None), and once rsync is done puts ``tmp`` in place as ``dest`` (see ``_FINISH``).
    """
    extra = ["--info=progress2", "--no-inc-recursive"] if progress else []
    if finish:
        dest, tmp, stale = finish
        remove = f"rm -rf {shlex.quote(tmp)} && " if stale is None else \
            f"(cd {shlex.quote(tmp)} && rm -f -- {shlex.join(stale)}) && " if stale else ""
        extra.append(f"--rsync-path={remove}sh -c {shlex.quote(_FINISH)} sh {shlex.quote(dest)} {shlex.quote(tmp)}")
    output = bytearray()
    with subprocess.Popen(["rsync", "-s", "--stats", *extra, "-e", shlex.join(ssh_command(host)), *args],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        if files is not None:
            proc.stdin.write("\0".join(files).encode())
        proc.stdin.close()
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            output += chunk
            if progress:
                for piece in reversed(re.split(rb"[\r\n]", bytes(chunk))):
                    match = _PROGRESS2.match(piece)
                    if match:
                        progress(_number(match.group(1)))
                        break
        err = proc.stderr.read()
    if proc.returncode != 0:
        raise RemoteError(f"rsync to {host.name} failed (exit {proc.returncode}): "
                          f"{err.decode(errors='replace').strip()[-400:]}")
    text = output.decode(errors="replace")
    found = re.search(r"Literal data: ([\d,.]+)", text) or re.search(r"Total transferred file size: ([\d,.]+)", text)
    return _number(found.group(1)) if found else 0


LARGE_SYNC = (10_000_000, 500)  # bytes, files: above either, progress is reported
SPARE = ".spare"  # under code/: a hard-linked copy of the latest code directory, made in the background
LISTING = ".tracker-files"  # in the spare: its files, NUL-separated (what to delete from it)
MAX_STALE = 100_000  # bytes of names to delete from the spare that fit the remote command line
NO_RSYNC = "tracker: no rsync on this host"

# Run by rsync's remote shell in place of rsync (no extra round trip): delete what the spare has and
# the new code lacks (given before it), run rsync, put the directory in place, then make the next spare
# off the critical path (hard links cost more than the copy itself)
_FINISH = rf"""
d=$1 t=$2 r=$(dirname "$1"); shift 2
command -v rsync >/dev/null 2>&1 || {{ echo "{NO_RSYNC}" >&2; exit 127; }}
rsync "$@" || exit $?
rm -f "$t/{LISTING}"; touch "$t/{SYNCED}" || exit 1
if [ -f "$d/{SYNCED}" ]; then rm -rf "$t"; exit 0; fi  # another sync of the same code finished first
find "$t" -depth -mindepth 1 -type d -empty -delete 2>/dev/null  # left by files deleted from the spare
rm -rf "$d" && mv "$t" "$d" && touch "$d" || exit 1  # the newest directory is the next one's basis
s="$r/{SPARE}.$$"
nohup sh -c 'cp -al "$1" "$2" && cd "$2" && find . ! -type d ! -name {SYNCED} ! -name {LISTING} -print0 > {LISTING} &&
  {{ [ -e "$3" ] && rm -rf "$2" || mv "$2" "$3"; }}' sh "$d" "$s" "$r/{SPARE}" </dev/null >/dev/null 2>&1 &
"""


@dataclass(frozen=True)
class _Basis:
    """What a sync copies against, found over SFTP (no remote shell): nothing when the directory is
    complete already, else the spare moved into place (with its files) and the latest directory."""

    unchanged: bool
    previous: str = ""  # the newest code directory's name ("" if none)
    spare: list[str] | None = None  # the files of the spare now at the temporary path, if it took one
    wipe: bool = False  # the temporary path holds a spare whose files are unknown: start afresh


def _basis(ws: Workspace, dest: str, tmp: str, take_spare: bool) -> _Basis:
    root = posixpath.dirname(dest)
    sftp = ws.conn.sftp()
    with translated(ws.host, "preparing the code directory"):
        try:
            with contextlib.suppress(OSError):
                sftp.stat(posixpath.join(dest, SYNCED))
                return _Basis(True)
            makedirs(sftp, root)
            spare, taken = None, False
            if take_spare:
                with contextlib.suppress(OSError):
                    sftp.rename(posixpath.join(root, SPARE), tmp)
                    taken = True
                    with sftp.open(posixpath.join(tmp, LISTING)) as f:
                        raw = f.read().decode(errors="surrogateescape")
                    spare = [n[2:] for n in raw.split("\0") if n.startswith("./")]
            if not taken:
                sftp.mkdir(tmp)
            dirs = [e for e in sftp.listdir_attr(root) if stat.S_ISDIR(e.st_mode or 0)
                    and not e.filename.startswith(".") and ".tmp" not in e.filename]
            previous = max(dirs, key=lambda e: e.st_mtime or 0).filename if dirs else ""
            return _Basis(False, previous, spare, wipe=taken and spare is None)
        finally:
            sftp.close()


def sync_code(ws: Workspace, root: Path, code_id: str, *, use_rsync: bool | None = None,
              progress: Callable[[int, int], None] | None = None) -> SyncResult:
    """Make ``<project>/code/<code_id>`` on the remote hold the project's files.

    With rsync this is a few SFTP requests and one rsync: the copy starts from a spare
    hard-linked copy of the latest code directory when one is ready (rsync then sends and
    writes only what changed, and what is gone is deleted first) or else from ``--link-dest``
    to it, and rsync's remote command puts the directory in place and makes the next spare in
    the background. ``progress(done, total)`` is called with bytes for large syncs.
    """
    start = time.monotonic()
    dest = ws.code_dir(code_id)
    tmp = f"{dest}.tmp{uuid.uuid4().hex[:8]}"  # one per sync: two syncs of one commit never share it
    if use_rsync is not False and shutil.which("rsync") is None:
        use_rsync = False
    basis = _basis(ws, dest, tmp, take_spare=use_rsync is not False)
    if basis.unchanged:
        return SyncResult(dest, "unchanged", 0, 0, round(time.monotonic() - start, 3))
    files = file_list(root)
    total = sum((root / f).stat().st_size for f in files)
    report = None
    if progress and (total > LARGE_SYNC[0] or len(files) > LARGE_SYNC[1]):
        def report(done: int) -> None:
            progress(min(done, total), total)
    code_root = posixpath.dirname(dest)
    previous = posixpath.join(code_root, basis.previous) if basis.previous else None
    method = "rsync"
    if use_rsync is not False:
        stale = sorted(set(basis.spare) - set(files)) if basis.spare is not None else []
        wipe = basis.wipe or len(shlex.join(stale)) > MAX_STALE  # then a fresh copy, linked to the latest
        link = [f"--link-dest={previous}"] if previous and (basis.spare is None or wipe) else []
        try:
            sent = _rsync(ws.host, ["-a", "--from0", "--files-from=-", *link, f"{root}/",
                                    f"{ws.host.hostname}:{tmp}/"], files, report,
                          finish=(dest, tmp, None if wipe else stale))
        except RemoteError as exc:
            if use_rsync or NO_RSYNC not in str(exc):
                raise
            ws.conn.run(f"rm -rf {shlex.quote(tmp)} && mkdir -p {shlex.quote(tmp)}")  # the spare may be there
            use_rsync = False
    if use_rsync is False:
        sent = _sftp_delta(ws, root, files, previous, tmp, report)
        q = shlex.quote
        ws.conn.run(f"touch {q(posixpath.join(tmp, SYNCED))} && rm -rf {q(dest)} && mv {q(tmp)} {q(dest)}")
        method = "sftp"
    if progress and report:
        progress(total, total)
    return SyncResult(dest, method, len(files), sent, round(time.monotonic() - start, 3))


def _sftp_delta(ws: Workspace, root: Path, files: list[str], previous: str | None, dest: str,
                progress: Callable[[int], None] | None = None) -> int:
    """Upload only files whose sha256 differs from the previous code directory; link the rest."""
    remote = ws.call("manifest", previous) if previous else {}
    same, changed = [], []
    for name in files:
        path = root / name
        entry = remote.get(name)
        if entry and entry[0] == path.stat().st_size and entry[1] == sha256_file(path):
            same.append(name)
        else:
            changed.append(name)
    if same and previous:
        ws.call("link-from", previous, dest, stdin="\0".join(same).encode())
    linked = sum((root / name).stat().st_size for name in same)
    if progress:
        progress(linked)
    sent = 0
    sftp = ws.conn.sftp()
    with translated(ws.host, "uploading code"):
        try:
            made: set[str] = set()
            for name in changed:
                target = posixpath.join(dest, name)
                makedirs(sftp, posixpath.dirname(target), made)
                sftp.put(str(root / name), target)
                sftp.chmod(target, stat.S_IMODE((root / name).stat().st_mode))
                sent += (root / name).stat().st_size
                if progress:
                    progress(linked + sent)
        finally:
            sftp.close()
    return sent


def makedirs(sftp: Any, path: str, made: set[str] | None = None) -> None:
    """``mkdir -p`` over SFTP (``made`` remembers directories known to exist)."""
    made = set() if made is None else made
    if path in made or path in ("", "/"):
        return
    makedirs(sftp, posixpath.dirname(path), made)
    try:
        sftp.stat(path)
    except OSError:
        try:
            sftp.mkdir(path)
        except OSError as exc:  # fine if another slot made it meanwhile
            try:
                sftp.stat(path)
            except OSError:
                raise exc from None
    made.add(path)


def pull_dir(ws: Workspace, remote_dir: str, local_dir: Path, *, use_rsync: bool = False) -> int:
    """Copy a remote directory (a trial's outputs) into ``local_dir``; return bytes received.

    SFTP over the open connection by default (a trial directory is small and a new
    OpenSSH connection for rsync costs more than the copy); files already here with
    the same size and mtime are skipped.
    """
    local_dir.mkdir(parents=True, exist_ok=True)
    if use_rsync:
        return _rsync(ws.host, ["-a", f"{ws.host.hostname}:{remote_dir}/", f"{local_dir}/"])
    received = 0
    sftp = ws.conn.sftp()
    with translated(ws.host, f"copying {remote_dir} back"):
        try:
            stack = [("", remote_dir)]
            while stack:
                rel, path = stack.pop()
                for entry in sftp.listdir_attr(path):
                    child_rel = posixpath.join(rel, entry.filename)
                    if stat.S_ISDIR(entry.st_mode or 0):
                        (local_dir / child_rel).mkdir(parents=True, exist_ok=True)
                        stack.append((child_rel, posixpath.join(path, entry.filename)))
                    elif stat.S_ISREG(entry.st_mode or 0):
                        local = local_dir / child_rel
                        if local.exists() and local.stat().st_size == entry.st_size and \
                                int(local.stat().st_mtime) == entry.st_mtime:
                            continue
                        sftp.get(posixpath.join(path, entry.filename), str(local))
                        if entry.st_mtime is not None:
                            os.utime(local, (entry.st_atime or entry.st_mtime, entry.st_mtime))
                        received += entry.st_size or 0
        finally:
            sftp.close()
    return received
