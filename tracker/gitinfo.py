"""The code a trial ran: commit, branch, dirty flag, patch and snapshot ref.

What counts as code is decided in :mod:`tracker.codeset`: the tracked files plus the
untracked source files. A dirty tree is recorded without touching the user's branch,
index or work tree: a temporary index is filled with the tracked files and those
untracked files, written as a tree, and committed with ``commit-tree`` under
``refs/tracker/trials/<id>``. The patch against HEAD is saved beside the trial
too, so the code can be rebuilt even where the ref is gone. Credentials in the
patch of tracker.yaml are masked (``***``, see :mod:`tracker.secrets`): the patch
travels with the trial into backups.

git is called directly (not through GitPython): it is what GitPython does
anyway, and the direct call costs a few milliseconds per run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.errors import ConfigError, GitError, ProjectError

if TYPE_CHECKING:
    from tracker.codeset import LeftOut
    from tracker.config import CodeConfig

SNAPSHOT_REF = "refs/tracker/trials"
LARGE_PATCH = 20 * 1024 * 1024
_IDENTITY = ["-c", "user.name=tracker", "-c", "user.email=tracker@localhost"]


@dataclass(frozen=True)
class CodeState:
    """The code a run starts from."""

    commit: str | None
    branch: str | None
    dirty: bool
    snapshot: str | None  # commit holding the dirty tree (None when clean)
    patch: bytes  # `git diff --binary HEAD` incl. the untracked code ('' when clean), credentials masked
    redacted: tuple[str, ...] = ()  # where the patch had credentials (storage.s3.endpoint_url, ...)
    left_out: tuple[LeftOut, ...] = ()  # untracked files not taken as code (see tracker.codeset)


def git(root: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
        check: bool = True) -> str:
    """Run git in ``root``; return stdout. Failures become GitError."""
    if shutil.which("git") is None:
        raise GitError("git is not installed", hint="install git and retry")
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, input=input,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc.stdout.decode(errors="replace")


def repo_root(path: Path) -> Path | None:
    """The top of the git work tree containing ``path``, or None."""
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True)
    return Path(proc.stdout.decode().strip()) if proc.returncode == 0 else None


def require_repo(path: Path) -> Path:
    """Like :func:`repo_root` but raises a clear ProjectError outside a repository."""
    top = repo_root(path)
    if top is None:
        raise ProjectError(
            f"{path} is not inside a git repository; trials are tied to commits",
            hint="run 'git init && git add -A && git commit -m init' first",
        )
    return top


def committer_args(root: Path) -> list[str]:
    """Fallback identity for commits git would otherwise refuse to make."""
    has_name = git(root, "config", "user.name", check=False).strip()
    has_mail = git(root, "config", "user.email", check=False).strip()
    return [] if has_name and has_mail else _IDENTITY


def _code_spec(path: Path, state: Path) -> list[str]:
    """Pathspecs, from ``path``, for the whole repository but tracker's state directory."""
    spec = [":/"]
    inside = os.path.relpath(state.resolve(), path.resolve())
    if not inside.startswith(".."):  # TRACKER_HOME may put the state outside the project
        spec.append(f":(exclude){inside}")
    return spec


def _status(path: Path, state: Path) -> tuple[str | None, str | None, list[str], list[str]] | None:
    """(HEAD, branch, changed tracked paths, untracked entries) from one ``git status`` call over the
    whole repository, tracker's state directory left out; None outside a repository.

    Paths are repository-relative; untracked directories come as one entry ending in "/"
    (``--untracked-files=normal``).
    """
    if shutil.which("git") is None:
        raise GitError("git is not installed", hint="install git and retry")
    proc = subprocess.run(["git", "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=normal",
                           "--", *_code_spec(path, state)], cwd=path, capture_output=True)
    if proc.returncode != 0:
        return None
    head = branch = None
    changed: list[str] = []
    untracked: list[str] = []
    entries = iter(proc.stdout.decode(errors="surrogateescape").split("\0"))
    for entry in entries:
        if entry.startswith("# branch.oid "):
            oid = entry.split()[2]
            head = None if oid == "(initial)" else oid
        elif entry.startswith("# branch.head "):
            name = entry.split(" ", 2)[2]
            branch = None if name == "(detached)" else name
        elif entry.startswith("? "):
            untracked.append(entry[2:])
        elif entry.startswith("1 "):
            changed.append(entry.split(" ", 8)[8])
        elif entry.startswith("2 "):
            changed += [entry.split(" ", 9)[9], next(entries, "")]  # a rename: both paths
        elif entry.startswith("u "):
            changed.append(entry.split(" ", 10)[10])
    return head, branch, changed, untracked


def _expand(top: Path, dirs: list[str]) -> list[str]:
    """The untracked, not ignored files under the repository-relative directories ``dirs``."""
    out = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard", "--", *dirs], cwd=top,
                         capture_output=True, env={**os.environ, "GIT_LITERAL_PATHSPECS": "1"}).stdout
    return [p for p in out.decode(errors="surrogateescape").split("\0") if p]


def capture(path: Path, rules: CodeConfig | None = None) -> CodeState:
    """Record the code at ``path``: HEAD, branch, and a snapshot of a dirty tree.

    The code is what git tracks plus the untracked files :mod:`tracker.codeset` takes as
    source under ``rules`` (tracker.yaml ``code:``; default rules when None); the rest is
    listed in ``left_out``. A clean tree costs one ``git status``; a dirty one is
    snapshotted without touching the user's index, branch or work tree.
    """
    from tracker import codeset

    if rules is None:
        from tracker.config import CodeConfig

        rules = CodeConfig()
    state = _status(path, codeset.state_of(path))
    if state is None:
        require_repo(path)  # raises the clear "not inside a git repository" error
        raise GitError(f"git status failed in {path}")
    head, branch, changed, untracked = state
    if not changed and not untracked and head:
        return CodeState(head, branch, False, None, b"")
    top = require_repo(path)
    chosen = codeset.select(top, path, rules, codeset.state_of(path), untracked, lambda d: _expand(top, d))
    left_out = chosen.left_out
    if not changed and not chosen.code and head:
        return CodeState(head, branch, False, None, b"", left_out=left_out)
    with tempfile.TemporaryDirectory(prefix="tracker-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if head:
            git(top, "read-tree", head, env=env)
        listed = "\0".join([*changed, *chosen.code]).encode(errors="surrogateescape")
        git(top, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul",
            env={**env, "GIT_LITERAL_PATHSPECS": "1"}, input=listed)
        tree = git(top, "write-tree", env=env).strip()
        head_tree = git(top, "rev-parse", f"{head}^{{tree}}").strip() if head else None
        if tree == head_tree:
            return CodeState(head, branch, False, None, b"", left_out=left_out)
        patch = b""
        if head:
            patch = subprocess.run(["git", "diff", "--cached", "--binary", head],
                                   cwd=top, capture_output=True, env={**os.environ, **env}).stdout
        parents = ["-p", head] if head else []
        snapshot = git(top, *committer_args(top), "commit-tree", tree, *parents,
                       "-m", "tracker snapshot of uncommitted changes").strip()
    patch, redacted = redact_patch(patch, top, path / "tracker.yaml")
    return CodeState(head, branch, True, snapshot, patch, redacted, left_out)


def changed_files(root: Path, before: str, after: str) -> list[str] | None:
    """The files that differ between two code versions (commits or snapshots), tracker's state left out,
    or None when one is gone."""
    from tracker.codeset import state_of

    proc = subprocess.run(["git", "diff", "--name-only", "-z", "--no-renames", before, after, "--",
                           *_code_spec(root, state_of(root))], cwd=root, capture_output=True)
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.decode(errors="replace").split("\0") if p]


def redact_patch(patch: bytes, top: Path, config: Path) -> tuple[bytes, tuple[str, ...]]:
    """``patch`` with the credentials of ``config`` (tracker.yaml) masked, and where they were.

    Every line of the file's diff goes through :func:`tracker.secrets.redact`, and the
    credential values its ``storage:`` section holds now are masked wherever they occur in it.
    """
    from tracker import secrets
    from tracker.yamlio import load_yaml

    try:
        rel = config.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return patch, ()
    text = patch.decode(errors="surrogateescape")
    header = f"diff --git a/{rel} b/{rel}\n"
    if text.startswith(header):
        start = 0
    else:
        start = text.find("\n" + header) + 1
        if not start:
            return patch, ()
    end = text.find("\ndiff --git ", start + len(header))
    end = len(text) if end < 0 else end + 1
    try:
        data, _ = load_yaml(config)
    except (ConfigError, OSError):  # an unreadable tracker.yaml still gets the pattern-based masking
        data = None
    storage = data.get("storage") if isinstance(data, dict) and isinstance(data.get("storage"), dict) else {}
    values = sorted({v for t in storage.values() if isinstance(t, dict) for v in secrets.secret_values(t)},
                    key=len, reverse=True)
    section = text[start:end]
    masked = secrets.redact(section)
    for value in values:
        masked = masked.replace(value, secrets.MASK)
    if masked == section:
        return patch, ()
    where = tuple(loc for loc, _ in secrets.literal_secrets(storage)) or (rel,)
    return (text[:start] + masked + text[end:]).encode(errors="surrogateescape"), where


def pin(root: Path, trial_ids: list[str], snapshot: str) -> None:
    """Keep ``snapshot`` reachable under refs/tracker/trials/<id> for each trial (one git call)."""
    if trial_ids:
        commands = "".join(f"update {SNAPSHOT_REF}/{t} {snapshot}\n" for t in trial_ids)
        git(root, "update-ref", "--stdin", input=commands.encode())


def unpin(root: Path, trial_id: str) -> None:
    """Drop a trial's snapshot ref (when the trial is deleted)."""
    git(root, "update-ref", "-d", f"{SNAPSHOT_REF}/{trial_id}", check=False)


def checkout(root: Path, dest: Path, commit: str | None, snapshot: str | None,
             patch_file: Path | None) -> str:
    """Write the code a trial ran into ``dest``; return how it was rebuilt.

    Prefers the snapshot commit; falls back to ``commit`` plus the saved patch.
    """
    if dest.exists() and any(dest.iterdir()):
        raise ProjectError(f"{dest} is not empty", hint="choose a new or empty directory with --to")
    dest.mkdir(parents=True, exist_ok=True)
    source = None
    if snapshot and git(root, "cat-file", "-t", snapshot, check=False).strip() == "commit":
        source, how = snapshot, f"snapshot {snapshot[:12]}"
    elif commit and git(root, "cat-file", "-t", commit, check=False).strip() == "commit":
        source, how = commit, f"commit {commit[:12]}"
    else:
        raise GitError(f"commit {commit or '?'} is not in this repository",
                       hint="fetch the branch it was made on, then retry")
    archive = subprocess.run(["git", "archive", "--format=tar", source], cwd=root,
                             capture_output=True)
    if archive.returncode != 0:
        raise GitError(f"git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    if source == commit and snapshot and patch_file and patch_file.is_file() and patch_file.stat().st_size:
        # the ceiling keeps git from applying the patch to a repository around dest
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch_file.resolve())],
                              cwd=dest, capture_output=True,
                              env={**os.environ, "GIT_CEILING_DIRECTORIES": str(dest.resolve().parent)})
        if proc.returncode != 0:
            raise GitError(f"the saved patch does not apply: {proc.stderr.decode().strip()}")
        how += " + saved patch"
    return how


@dataclass(frozen=True)
class EditOutcome:
    """What git sees after tracker wrote some of the project's files (see :func:`after_edit`)."""

    changed: list[Path]  # those of the files that differed from HEAD after the edit
    commit: str | None  # the commit now holding exactly them, when one was asked for


def after_edit(root: Path, paths: Sequence[Path], message: str, *, commit: bool = False) -> EditOutcome:
    """After tracker wrote ``paths``: commit exactly them, or report which now differ from HEAD.

    A work tree that differs from HEAD marks the next trials dirty, so the caller
    tells the user. With ``commit``, only ``paths`` are committed (``git commit
    --only``): changes the user has staged stay staged and uncommitted. Outside a
    git repository nothing differs, and ``commit`` raises ProjectError.

    Example: ``after_edit(root, [root / "tracker.yaml"], "tracker: add remote gpu1", commit=True)``
    """
    top = require_repo(root) if commit else repo_root(root)
    if top is None or not paths:
        return EditOutcome([], None)
    specs = [str(Path(p).resolve()) for p in paths]
    listed = git(top, "status", "--porcelain", "-z", "--untracked-files=all", "--", *specs)
    differing = {entry[3:] for entry in listed.split("\0") if len(entry) > 3}
    changed = [p for p, spec in zip(paths, specs, strict=True)
               if Path(spec).relative_to(top.resolve()).as_posix() in differing]
    if not changed or not commit:
        return EditOutcome(changed, None)
    wanted = [str(Path(p).resolve()) for p in changed]
    git(top, "add", "--", *wanted)
    git(top, *committer_args(top), "commit", "--quiet", "--only", "-m", message, "--", *wanted)
    return EditOutcome(changed, git(top, "rev-parse", "HEAD").strip())
