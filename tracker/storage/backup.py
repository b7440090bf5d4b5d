"""Backup, restore, list and verify trials on a storage target.

Layout under the target's prefix::

    objects/<sha256[:2]>/<sha256>     file contents, content-addressed
    trials/<trial id>.json            the manifest: the trial record, its metrics,
                                      and every file's path, size and sha256

A file already stored (same hash) is never uploaded again, so backing up
unchanged trials uploads 0 bytes. The manifest is written last: an interrupted
backup leaves no manifest, and the next run uploads only what is missing.

A restore is all or nothing: the manifest is checked (:mod:`tracker.storage.manifest`),
every object is downloaded into a staging directory inside the destination and
verified, and only then are the files renamed into place. A local file that differs
from the backup is never overwritten without ``force``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tracker.errors import NotFoundError, StorageError, UsageError
from tracker.hashing import HashCache, sha256_file
from tracker.project import Project
from tracker.storage.base import BaseStorage, temp_is_stale, temp_name
from tracker.storage.manifest import (
    TAMPERED,
    TRIAL_ID_RE,
    FileEntry,
    Manifest,
    decode,
    encode,
    manifest_key,
    object_key,
    path_problem,
)
from tracker.storage.registry import open_target
from tracker.store import FINISHED, Trial, now

WORKERS = 8
INDEX_THRESHOLD = 64
STAGING_PREFIX = ".tracker-restore-"  # + temp_name(): a restore's downloads, inside the destination
Progress = Callable[[int], None]


@contextlib.contextmanager
def _opened(project: Project, target: str, storage: BaseStorage | None) -> Iterator[BaseStorage]:
    """``storage`` if given, else the target ``target`` opened here and closed afterwards."""
    if storage is not None:
        yield storage
        return
    opened = open_target(project, target)
    try:
        yield opened
    finally:
        opened.close()


@dataclass(frozen=True)
class BackupResult:
    """What ``tracker backup`` did (or, with dry_run, would do)."""

    target: str
    trials: list[str]
    files: int
    uploaded: int
    bytes_uploaded: int
    bytes_skipped: int
    seconds: float
    dry_run: bool = False
    skipped_trials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RestoreResult:
    """What ``tracker restore`` wrote."""

    trial_id: str
    directory: Path
    files: int  # files in the backup
    bytes: int  # bytes downloaded
    imported: bool  # the trial record was added to the local store
    unchanged: int = 0  # files already present with the same content (not downloaded)
    overwritten: list[str] = field(default_factory=list)  # local files that differed (only with force)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "directory": str(self.directory)}


@dataclass(frozen=True)
class VerifyResult:
    """What ``tracker backup verify`` found."""

    trials: int
    objects: int
    missing: list[tuple[str, str]]  # (trial id, path)
    corrupt: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# ---------------------------------------------------------------------------- backup


def select_trials(project: Project, refs: Iterable[str] = (), *, experiment: list[str] | None = None,
                  all_: bool = False) -> list[Trial]:
    """Trials to back up: the named ones, an experiment's, or all finished ones."""
    store = project.store
    refs = list(refs)
    if refs:
        return [store.get(r) for r in refs]
    if experiment or all_:
        return store.list_trials(experiment=experiment or None, status=sorted(FINISHED))
    raise UsageError("say what to back up: trial ids, --experiment NAME or --all")


def _listing(project: Project, trial: Trial, include: list[str] | None) -> list[tuple[Path, str]]:
    """(path, relative name) of a trial's files, filtered by ``include`` globs."""
    directory = project.paths.trial_dir(trial.id)
    out = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(STAGING_PREFIX):  # what a killed restore left (removed by the next restore)
            continue
        if include and not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat) for pat in include):
            continue
        out.append((path, rel))
    return out


class _Hasher:
    """sha256 of files, cached on this machine by path, size and mtime (unchanged files are not re-read)."""

    def __init__(self, project: Project, paths: list[Path]) -> None:
        self.hashes = HashCache(project.paths.hash_cache)
        self.cache = self.hashes.lookup([str(p) for p in paths])
        self.fresh: list[tuple[str, int, int, str]] = []
        self.lock = threading.Lock()

    def entry(self, path: Path, rel: str) -> FileEntry:
        st = path.stat()
        hit = self.cache.get(str(path))
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return FileEntry(rel, st.st_size, hit[2])
        sha = sha256_file(path)
        with self.lock:
            self.fresh.append((str(path), st.st_size, st.st_mtime_ns, sha))
        return FileEntry(rel, st.st_size, sha)

    def save(self) -> None:
        if self.fresh:
            self.hashes.remember(self.fresh)
            self.fresh = []


def trial_files(project: Project, trial: Trial, include: list[str] | None = None) -> list[tuple[Path, FileEntry]]:
    """Every file of a trial's directory with its sha256."""
    listing = _listing(project, trial, include)
    hasher = _Hasher(project, [p for p, _ in listing])
    out = [(path, hasher.entry(path, rel)) for path, rel in listing]
    hasher.save()
    return out


def manifest(project: Project, trial: Trial, files: list[FileEntry]) -> bytes:
    """The manifest of a trial: record, metrics and files."""
    store = project.store
    return encode(project.name, trial, store.metrics(trial.id),
                  store.environment(trial.env_id) if trial.env_id else None, files)


def backup(project: Project, target: str, refs: Iterable[str] = (), *, experiment: list[str] | None = None,
           all_: bool = False, include: list[str] | None = None, dry_run: bool = False,
           progress: Progress | None = None, storage: BaseStorage | None = None) -> BackupResult:
    """Back up trials to storage target ``target``; return what was uploaded and skipped.

    Each worker hashes a file (or takes its cached hash), skips it when the object
    is already stored, else uploads it; the trial's manifest is written last.
    """
    start = time.monotonic()
    trials = select_trials(project, refs, experiment=experiment, all_=all_)
    with _opened(project, target, storage) as opened:
        return _backup(project, target, opened, trials, include, dry_run, progress, start)


def _backup(project: Project, target: str, storage: BaseStorage, trials: list[Trial], include: list[str] | None,
            dry_run: bool, progress: Progress | None, start: float) -> BackupResult:
    busy = [t.id for t in trials if t.status in ("running", "queued")]
    trials = [t for t in trials if t.status not in ("running", "queued")]
    counts = {"uploaded": 0, "bytes_up": 0, "skipped": 0, "files": 0}
    claimed: set[str] = set()
    lock = threading.Lock()
    listings = [_listing(project, t, include) for t in trials]
    # many files: one listing of the object index (1 request per 1,000 objects) beats a HEAD per file
    known = ({PurePosixPath(o.key).name: o.size for o in storage.list("objects/")}
             if sum(map(len, listings)) > INDEX_THRESHOLD else None)

    def process(hasher: _Hasher, path: Path, rel: str) -> FileEntry:
        entry = hasher.entry(path, rel)
        with lock:
            first = entry.sha256 not in claimed
            claimed.add(entry.sha256)
        if not first:
            stored_size = entry.size
        elif known is not None:
            stored_size = known.get(entry.sha256)
        else:
            info = storage.info(object_key(entry.sha256))
            stored_size = info.size if info else None
        if stored_size == entry.size:
            with lock:
                counts["skipped"] += entry.size
            if progress:
                progress(entry.size)
            return entry
        if dry_run:
            if progress:
                progress(entry.size)
        else:
            storage.put_file(object_key(entry.sha256), path, progress)
        with lock:
            counts["uploaded"] += 1
            counts["bytes_up"] += entry.size
        return entry

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for trial, listing in zip(trials, listings, strict=True):
            hasher = _Hasher(project, [p for p, _ in listing])
            entries = list(pool.map(lambda item, h=hasher: process(h, *item), listing))
            hasher.save()
            counts["files"] += len(entries)
            if dry_run:
                continue
            body = manifest(project, trial, entries)
            key = manifest_key(trial.id)
            stored = storage.info(key)
            if stored is None or stored.size != len(body) or storage.get_bytes(key) != body:
                storage.put_bytes(key, body)
            project.store.add_event(trial.id, "backup", f"backed up to {target}")
    return BackupResult(target, [t.id for t in trials], counts["files"], counts["uploaded"], counts["bytes_up"],
                        counts["skipped"], round(time.monotonic() - start, 3), dry_run, busy)


def planned_bytes(project: Project, refs: Iterable[str] = (), *, experiment: list[str] | None = None,
                  all_: bool = False, include: list[str] | None = None) -> int:
    """Total size of what a backup looks at (for progress bars)."""
    trials = [t for t in select_trials(project, refs, experiment=experiment, all_=all_)
              if t.status not in ("running", "queued")]
    return sum(e.size for t in trials for _, e in trial_files(project, t, include))


def backup_completed(project: Project, target: str, trials: list[Trial], reporter: Any) -> BackupResult | None:
    """Back up the completed trials of a run (``--backup-to``); a failure is reported, not raised."""
    if not trials:
        return None
    try:
        result = backup(project, target, [t.id for t in trials])
    except (StorageError, UsageError, NotFoundError) as exc:
        from tracker.secrets import redact

        reporter.message(f"backup to {target} failed: {redact(str(exc))} (the trials are fine; run "
                         f"'tracker backup --to {target} --all' later)")
        return None
    reporter.message(f"backed up {len(result.trials)} trial(s) to {target}: {result.uploaded} new objects, "
                     f"{result.bytes_uploaded:,} bytes uploaded, {result.bytes_skipped:,} already there")
    return result


# ---------------------------------------------------------------------------- restore


def load_manifest(storage: BaseStorage, trial_id: str) -> Manifest:
    """The checked manifest of a stored trial (one StorageError line if it is unusable)."""
    return decode(storage.get_bytes(manifest_key(trial_id)), trial_id, storage.describe())


def resolve_trial(storage: BaseStorage, ref: str) -> str:
    """The full id of a backed-up trial from an id or unique prefix."""
    if not TRIAL_ID_RE.match(ref):
        raise UsageError(f"invalid trial id {ref!r}", hint="trial ids are letters and digits")
    ids = sorted({PurePosixPath(o.key).stem for o in storage.list(f"trials/{ref}") if o.key.endswith(".json")})
    if not ids:
        raise NotFoundError(f"trial {ref!r} is not in {storage.describe()}",
                            hint=f"see 'tracker backup list --from {storage.name}'")
    if len(ids) > 1 and ref not in ids:
        raise UsageError(f"trial id {ref!r} is ambiguous in {storage.describe()} ({', '.join(ids[:3])}, ...)")
    return ref if ref in ids else ids[0]


def safe_path(root: Path, name: str) -> Path:
    """``root / name`` for a manifest path, refusing anything that could escape ``root``."""
    problem = path_problem(name)
    if problem:
        raise StorageError(f"refusing to restore {name!r}: {problem}", hint=TAMPERED)
    path = root / name
    current = root
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise StorageError(f"refusing to restore {name!r}: {current} is a symlink", hint=TAMPERED)
    if path.is_symlink():
        raise StorageError(f"refusing to restore {name!r}: it is a symlink in the target directory", hint=TAMPERED)
    return path


def restore(project: Project, ref: str, target: str, dest: Path | None = None, *, force: bool = False,
            progress: Progress | None = None, storage: BaseStorage | None = None) -> RestoreResult:
    """Restore a trial's files and, if the store lacks it, its record; all or nothing.

    Every object is downloaded and verified (size and sha256) in a staging directory
    inside ``dest`` before any file is moved into place. A local file that differs
    from the backup is a UsageError unless ``force``; identical files are kept and not
    downloaded. The record is imported with a final status and without any process
    information (see :mod:`tracker.storage.manifest`).

    Example: ``restore(Project.find(), "3f2a9c", "s3")``
    """
    with _opened(project, target, storage) as opened:
        trial_id = resolve_trial(opened, ref)
        loaded = load_manifest(opened, trial_id)
        root = (dest or project.paths.trial_dir(trial_id)).resolve()
        wanted, unchanged, changed = _plan(root, loaded.files, force)
        total = _write_all(opened, root, trial_id, wanted, progress)
    imported = _import_record(project, loaded)
    return RestoreResult(trial_id, root, len(loaded.files), total, imported, unchanged, changed)


def _plan(root: Path, entries: list[FileEntry], force: bool) -> tuple[list[tuple[Path, FileEntry]], int, list[str]]:
    """(files to write, how many are already there, local files that differ); refuses what must not be touched."""
    wanted: list[tuple[Path, FileEntry]] = []
    unchanged = 0
    changed: list[str] = []
    if root.exists() and not root.is_dir():
        raise UsageError(f"cannot restore into {root}: it is a file", hint="choose a directory with --to")
    for entry in entries:
        path = safe_path(root, entry.path)
        for parent in PurePosixPath(entry.path).parents:
            if str(parent) != "." and (root / parent).exists() and not (root / parent).is_dir():
                raise UsageError(f"cannot restore {entry.path!r} into {root}: {root / parent} is a file here",
                                 hint="move it away, or restore into another directory with --to")
        if path.is_dir():
            raise UsageError(f"cannot restore {entry.path!r} into {root}: it is a directory here",
                             hint="move it away, or restore into another directory with --to")
        if path.exists():
            if path.stat().st_size == entry.size and sha256_file(path) == entry.sha256:
                unchanged += 1
                continue
            changed.append(entry.path)
        wanted.append((path, entry))
    if changed and not force:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise UsageError(f"restoring would overwrite {len(changed)} local file(s) that differ from the backup "
                         f"in {root}: {shown}",
                         hint="pass --force to replace them, or restore into another directory with --to")
    return wanted, unchanged, changed


def _write_all(storage: BaseStorage, root: Path, trial_id: str, wanted: list[tuple[Path, FileEntry]],
               progress: Progress | None) -> int:
    """Download and verify every object into a staging directory, then move the files into place."""
    if not wanted:
        return 0
    top = root  # the outermost directory this restore creates (removed again if it fails)
    while not top.parent.exists():
        top = top.parent
    created = not root.exists()
    stage = root / (STAGING_PREFIX + temp_name())
    try:
        root.mkdir(parents=True, exist_ok=True)
        _sweep_staging(root)
        stage.mkdir()
        staged: dict[str, Path] = {}  # sha256 -> its verified download
        moves: list[tuple[Path, Path]] = []  # (staged file, destination)
        for index, (path, entry) in enumerate(wanted):
            if entry.sha256 in staged:  # the same content under another name: a copy, made before any move
                part = stage / str(index)
                shutil.copyfile(staged[entry.sha256], part)
            else:
                part = staged[entry.sha256] = stage / entry.sha256
                storage.get_file(object_key(entry.sha256), part, progress)
                if part.stat().st_size != entry.size or sha256_file(part) != entry.sha256:
                    raise StorageError(f"{entry.path} of trial {trial_id} is corrupt in {storage.describe()} "
                                       "(its sha256 does not match the manifest); nothing was restored",
                                       hint=f"run 'tracker backup verify --from {storage.name}'")
            moves.append((part, path))
        for part, path in moves:  # every byte is verified: only renames within one file system remain
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, path)
    except BaseException as exc:
        shutil.rmtree(top if created else stage, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot restore trial {trial_id} into {root}: {exc.strerror or exc}",
                               hint="check that it is writable and has space; nothing was restored"
                               if created else "check that it is writable and has space") from exc
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return sum(e.size for _, e in wanted)


def _sweep_staging(root: Path) -> None:
    """Remove the staging directories killed restores left in ``root``."""
    for entry in os.scandir(root):
        name = entry.name
        if name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                if temp_is_stale(name[len(STAGING_PREFIX):], entry.stat(follow_symlinks=False).st_mtime):
                    shutil.rmtree(entry.path)


def _import_record(project: Project, loaded: Manifest) -> bool:
    """Add the manifest's record to the store unless the store has the trial already."""
    store = project.store
    trial = loaded.trial
    try:
        store.get(trial.id)
        return False
    except NotFoundError:
        pass
    if trial.env_id and store.environment(trial.env_id) is None:
        if loaded.environment:
            store.save_environment(trial.env_id, loaded.environment)
        else:
            trial = Trial(**{**trial.as_dict(), "env_id": None})
    store.import_trial(trial, loaded.metrics, [(f.path, f.size, f.sha256) for f in loaded.files])
    store.add_event(trial.id, "restore", f"restored from backup at {now()}")
    return True


# ---------------------------------------------------------------------------- list & verify


def list_backups(project: Project, target: str, *, storage: BaseStorage | None = None) -> list[dict[str, Any]]:
    """Trials stored in a target, with their files and sizes."""
    out = []
    with _opened(project, target, storage) as opened:
        for obj in opened.list("trials/"):
            if not obj.key.endswith(".json"):
                continue
            loaded = load_manifest(opened, PurePosixPath(obj.key).stem)
            trial = loaded.trial
            out.append({"id": trial.id, "experiment": trial.experiment, "status": trial.status, "seed": trial.seed,
                        "files": len(loaded.files), "bytes": sum(f.size for f in loaded.files),
                        "finished": trial.finished})
    return sorted(out, key=lambda r: (r["finished"] or "", r["id"]))


def verify(project: Project, target: str, refs: Iterable[str] = (), *,
           storage: BaseStorage | None = None) -> VerifyResult:
    """Re-hash every stored object the manifests name; report missing and corrupt ones."""
    with _opened(project, target, storage) as opened:
        return _verify(opened, list(refs))


def _verify(storage: BaseStorage, refs: list[str]) -> VerifyResult:
    ids = [resolve_trial(storage, r) for r in refs] if refs else [
        PurePosixPath(o.key).stem for o in storage.list("trials/") if o.key.endswith(".json")]
    checked: dict[str, str] = {}  # sha -> "ok" | "missing" | "corrupt"
    missing: list[tuple[str, str]] = []
    corrupt: list[tuple[str, str]] = []
    for trial_id in ids:
        for f in load_manifest(storage, trial_id).files:
            if f.sha256 not in checked:
                checked[f.sha256] = _check_object(storage, f.sha256, f.size)
            if checked[f.sha256] == "missing":
                missing.append((trial_id, f.path))
            elif checked[f.sha256] == "corrupt":
                corrupt.append((trial_id, f.path))
    return VerifyResult(len(ids), len(checked), missing, corrupt)


def _check_object(storage: BaseStorage, sha: str, size: int) -> str:
    if storage.info(object_key(sha)) is None:
        return "missing"
    fd, name = tempfile.mkstemp(prefix="tracker-verify-")
    os.close(fd)
    try:
        storage.get_file(object_key(sha), Path(name))
        ok = Path(name).stat().st_size == size and sha256_file(Path(name)) == sha
    finally:
        Path(name).unlink(missing_ok=True)
    return "ok" if ok else "corrupt"
