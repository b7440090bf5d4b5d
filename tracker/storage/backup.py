"""Backup, restore, list and verify trials on a storage target.

Layout under the target's prefix::

    objects/<sha256[:2]>/<sha256>     file contents, content-addressed
    trials/<trial id>.json            the manifest: the trial record, its metrics,
                                      and every file's path, size and sha256

A file already stored (same hash) is never uploaded again, so backing up
unchanged trials uploads 0 bytes. The manifest is written last: an interrupted
backup leaves no manifest, and the next run uploads only what is missing.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tracker.errors import NotFoundError, StorageError, UsageError
from tracker.hashing import HashCache, sha256_file
from tracker.project import Project
from tracker.storage.base import BaseStorage
from tracker.storage.registry import open_target
from tracker.store import FINISHED, MetricPoint, Trial, now

MANIFEST_FORMAT = 1
WORKERS = 8
INDEX_THRESHOLD = 64
SHA256_RE = re.compile(r"[0-9a-f]{64}")
Progress = Callable[[int], None]


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
    files: int
    bytes: int
    imported: bool  # the trial record was added to the local store

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
    return json.dumps({
        "format": MANIFEST_FORMAT,
        "project": project.name,
        "trial": trial.as_dict(),
        "metrics": [asdict(p) for p in project.store.metrics(trial.id)],
        "environment": project.store.environment(trial.env_id) if trial.env_id else None,
        "files": [asdict(f) for f in files],
    }, sort_keys=True, indent=1).encode()


def backup(project: Project, target: str, refs: Iterable[str] = (), *, experiment: list[str] | None = None,
           all_: bool = False, include: list[str] | None = None, dry_run: bool = False,
           progress: Progress | None = None, storage: BaseStorage | None = None) -> BackupResult:
    """Back up trials to storage target ``target``; return what was uploaded and skipped.

    Each worker hashes a file (or takes its cached hash), skips it when the object
    is already stored, else uploads it; the trial's manifest is written last.
    """
    start = time.monotonic()
    storage = storage or open_target(project, target)
    trials = select_trials(project, refs, experiment=experiment, all_=all_)
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
        reporter.message(f"backup to {target} failed: {exc} (the trials are fine; run 'tracker backup --to "
                         f"{target} --all' later)")
        return None
    reporter.message(f"backed up {len(result.trials)} trial(s) to {target}: {result.uploaded} new objects, "
                     f"{result.bytes_uploaded:,} bytes uploaded, {result.bytes_skipped:,} already there")
    return result


# ---------------------------------------------------------------------------- restore


def _load_manifest(storage: BaseStorage, trial_id: str) -> dict[str, Any]:
    try:
        data = json.loads(storage.get_bytes(manifest_key(trial_id)))
    except ValueError as exc:
        raise StorageError(f"the manifest of trial {trial_id} in {storage.describe()} is not valid JSON") from exc
    if (not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), list)
            or not isinstance(data.get("trial"), dict)):
        raise StorageError(f"the manifest of trial {trial_id} in {storage.describe()} is not a tracker manifest")
    if data["trial"].get("id") != trial_id:
        raise StorageError(f"the manifest of trial {trial_id} in {storage.describe()} describes trial "
                           f"{data['trial'].get('id')!r}", hint="the backup may have been tampered with")
    try:
        data["files"] = [FileEntry(**f) for f in data["files"]]
    except TypeError as exc:
        raise StorageError(f"the manifest of trial {trial_id} in {storage.describe()} has a malformed file entry",
                           hint="the backup may have been tampered with") from exc
    for entry in data["files"]:
        if (not isinstance(entry.path, str) or not isinstance(entry.size, int) or entry.size < 0
                or not isinstance(entry.sha256, str)
                or not SHA256_RE.fullmatch(entry.sha256)):
            raise StorageError(f"the manifest of trial {trial_id} in {storage.describe()} lists {entry.path!r} "
                               "with an invalid size or sha256", hint="the backup may have been tampered with")
    return data


def resolve_trial(storage: BaseStorage, ref: str) -> str:
    """The full id of a backed-up trial from an id or unique prefix."""
    if not ref or "/" in ref or ref.startswith("."):
        raise UsageError(f"invalid trial id {ref!r}")
    ids = sorted({PurePosixPath(o.key).stem for o in storage.list(f"trials/{ref}") if o.key.endswith(".json")})
    if not ids:
        raise NotFoundError(f"trial {ref!r} is not in {storage.describe()}",
                            hint=f"see 'tracker backup list --from {storage.name}'")
    if len(ids) > 1 and ref not in ids:
        raise UsageError(f"trial id {ref!r} is ambiguous in {storage.describe()} ({', '.join(ids[:3])}, ...)")
    return ref if ref in ids else ids[0]


def safe_path(root: Path, name: str) -> Path:
    """``root / name`` for a manifest path, refusing anything that could escape ``root``."""
    bad = (not name or "\0" in name or "\\" in name or name.startswith("/") or PurePosixPath(name).is_absolute()
           or (len(name) > 1 and name[1] == ":") or any(p in ("..", "") for p in name.split("/")))
    if bad:
        raise StorageError(f"refusing to restore {name!r}: the path would leave the target directory",
                           hint="the backup may have been tampered with; nothing outside it was written")
    path = root / name
    current = root
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise StorageError(f"refusing to restore {name!r}: {current} is a symlink")
    if path.is_symlink():
        raise StorageError(f"refusing to restore {name!r}: it is a symlink in the target directory")
    return path


def restore(project: Project, ref: str, target: str, dest: Path | None = None, *,
            progress: Progress | None = None, storage: BaseStorage | None = None) -> RestoreResult:
    """Download a trial's files (verified by sha256) and, if missing, its record into the store."""
    storage = storage or open_target(project, target)
    trial_id = resolve_trial(storage, ref)
    data = _load_manifest(storage, trial_id)
    entries: list[FileEntry] = data["files"]
    root = (dest or project.paths.trial_dir(trial_id)).resolve()
    targets = [(safe_path(root, e.path), e) for e in entries]  # every path checked before any write
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for path, entry in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            storage.get_file(object_key(entry.sha256), tmp, progress)
            if tmp.stat().st_size != entry.size or sha256_file(tmp) != entry.sha256:
                raise StorageError(f"{entry.path} of trial {trial_id} is corrupt in {storage.describe()} "
                                   "(its sha256 does not match the manifest)",
                                   hint=f"run 'tracker backup verify --from {storage.name}'")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        total += entry.size
    imported = _import_record(project, data)
    return RestoreResult(trial_id, root, len(entries), total, imported)


def _import_record(project: Project, data: dict[str, Any]) -> bool:
    store = project.store
    record = data["trial"]
    try:
        store.get(record["id"])
        return False
    except NotFoundError:
        pass
    fields = set(Trial.__dataclass_fields__)
    trial = Trial(**{k: v for k, v in record.items() if k in fields})
    if trial.env_id and store.environment(trial.env_id) is None:
        if data.get("environment"):
            store.save_environment(trial.env_id, data["environment"])
        else:
            trial = Trial(**{**trial.as_dict(), "env_id": None})
    points = [MetricPoint(**p) for p in data.get("metrics", [])]
    store.import_trial(trial, points, [(f.path, f.size, f.sha256) for f in data["files"]])
    store.add_event(trial.id, "restore", f"restored from backup at {now()}")
    return True


# ---------------------------------------------------------------------------- list & verify


def list_backups(project: Project, target: str, *, storage: BaseStorage | None = None) -> list[dict[str, Any]]:
    """Trials stored in a target, with their files and sizes."""
    storage = storage or open_target(project, target)
    out = []
    for obj in storage.list("trials/"):
        if not obj.key.endswith(".json"):
            continue
        data = _load_manifest(storage, PurePosixPath(obj.key).stem)
        record = data["trial"]
        out.append({"id": record["id"], "experiment": record.get("experiment"), "status": record.get("status"),
                    "seed": record.get("seed"), "files": len(data["files"]),
                    "bytes": sum(f.size for f in data["files"]), "finished": record.get("finished")})
    return sorted(out, key=lambda r: (r["finished"] or "", r["id"]))


def verify(project: Project, target: str, refs: Iterable[str] = (), *,
           storage: BaseStorage | None = None) -> VerifyResult:
    """Re-hash every stored object the manifests name; report missing and corrupt ones."""
    storage = storage or open_target(project, target)
    refs = list(refs)
    ids = [resolve_trial(storage, r) for r in refs] if refs else [
        PurePosixPath(o.key).stem for o in storage.list("trials/") if o.key.endswith(".json")]
    checked: dict[str, str] = {}  # sha -> "ok" | "missing" | "corrupt"
    missing: list[tuple[str, str]] = []
    corrupt: list[tuple[str, str]] = []
    for trial_id in ids:
        for f in _load_manifest(storage, trial_id)["files"]:
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
