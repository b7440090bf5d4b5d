"""Restore refuses backups that would write outside the target directory or lie about themselves."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import git
from tracker.cli import app
from tracker.errors import NotFoundError, StorageError, UsageError
from tracker.execution.lifecycle import boot_id, proc_start
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment
from tracker.storage import backup as bk
from tracker.storage.base import temp_name
from tracker.storage.registry import open_target
from tracker.store import Trial

PAYLOAD = b"owned"
SHA = hashlib.sha256(PAYLOAD).hexdigest()
runner = CliRunner()


@pytest.fixture
def project(project_dir: Path, tmp_path: Path) -> Project:
    project = Project.load(project_dir)
    project.set_section("storage", "t", {"type": "local", "path": str(tmp_path / "backups")})
    git(project_dir, "commit", "-qam", "storage target")
    run_experiment(Project.load(project_dir), "base", RunOptions(seeds=[1]))
    return Project.load(project_dir)


def plant(project: Project, trial_id: str, files: list[dict[str, Any]], record_id: str | None = None, *,
          fields: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Store a hand-made manifest (and the payload object) as an attacker with write access could."""
    storage = open_target(project, "t")
    storage.put_bytes(bk.object_key(SHA), PAYLOAD)
    record = project.store.list_trials()[0].as_dict() | {"id": record_id or trial_id} | (fields or {})
    manifest = {"format": 1, "project": "x", "trial": record, "metrics": [], "files": files} | (extra or {})
    storage.put_bytes(bk.manifest_key(trial_id), json.dumps(manifest).encode())


def test_symlink_in_the_target_directory_is_refused(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    (dest / "link.txt").symlink_to(outside / "target.txt")
    for name in ("sub/evil.txt", "link.txt"):
        plant(project, "symsymsym001", [{"path": name, "size": len(PAYLOAD), "sha256": SHA}])
        with pytest.raises(StorageError, match="symlink"):
            bk.restore(project, "symsymsym001", "t", dest)
    assert list(outside.iterdir()) == []


def test_every_path_is_checked_before_anything_is_written(project: Project, tmp_path: Path) -> None:
    good = {"path": "model.bin", "size": len(PAYLOAD), "sha256": SHA}
    plant(project, "mixmixmix001", [good, {"path": "../evil.txt", "size": len(PAYLOAD), "sha256": SHA}])
    with pytest.raises(StorageError, match="refusing to restore"):
        bk.restore(project, "mixmixmix001", "t", tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("entry", [
    {"path": "a.bin", "size": 5, "sha256": "../../../../etc/passwd"},
    {"path": "a.bin", "size": -1, "sha256": SHA},
    {"path": 7, "size": 5, "sha256": SHA},
    {"path": "a.bin", "size": 5},
])
def test_malformed_entries_are_refused(project: Project, tmp_path: Path, entry: dict[str, Any]) -> None:
    plant(project, "badentry0001", [entry])
    with pytest.raises(StorageError, match="tampered"):
        bk.restore(project, "badentry0001", "t", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_manifest_naming_another_trial_is_refused(project: Project, tmp_path: Path) -> None:
    plant(project, "aaaaaaaaaaaa", [{"path": "m.bin", "size": len(PAYLOAD), "sha256": SHA}], record_id="bbbbbbbbbbbb")
    with pytest.raises(StorageError, match="describes trial 'bbbbbbbbbbbb'"):
        bk.restore(project, "aaaaaaaaaaaa", "t", tmp_path / "dest")


# ---------------------------------------------------------------------------- all or nothing


@pytest.fixture
def backed_up(project: Project) -> Trial:
    """A trial with several files (a.txt ... e.txt beside its outputs), backed up to target t."""
    trial = project.store.list_trials()[0]
    for name in "abcde":
        (project.paths.trial_dir(trial.id) / f"{name}.txt").write_text(f"{name}\n" * 100)
    bk.backup(project, "t", [trial.id])
    return trial


def corrupt(project: Project, trial: Trial, name: str) -> None:
    """Replace the stored object of one file with other bytes (bit rot, or an attacker)."""
    sha = bk.sha256_file(project.paths.trial_dir(trial.id) / name)
    open_target(project, "t").put_bytes(bk.object_key(sha), b"rotten")


def test_one_corrupt_object_writes_nothing(project: Project, backed_up: Trial, tmp_path: Path) -> None:
    corrupt(project, backed_up, "e.txt")  # the last file: every other one would be written first, one by one
    with pytest.raises(StorageError, match=r"e\.txt .* is corrupt.*nothing was restored"):
        bk.restore(project, backed_up.id, "t", tmp_path / "new" / "dest")
    assert not (tmp_path / "new").exists()
    partial = tmp_path / "partial"  # an existing directory holding some of the files: they stay, nothing is added
    partial.mkdir()
    (partial / "a.txt").write_text("a\n" * 100)
    with pytest.raises(StorageError, match="corrupt"):
        bk.restore(project, backed_up.id, "t", partial)
    assert [p.name for p in partial.iterdir()] == ["a.txt"]


def test_in_place_restore_keeps_local_changes_without_force(project: Project, backed_up: Trial) -> None:
    directory = project.paths.trial_dir(backed_up.id)
    (directory / "b.txt").write_text("my edit\n")
    (directory / "c.txt").unlink()
    with pytest.raises(UsageError, match=r"overwrite 1 local file\(s\) that differ.*b\.txt.*--force"):
        bk.restore(project, backed_up.id, "t")
    assert (directory / "b.txt").read_text() == "my edit\n" and not (directory / "c.txt").exists()
    same = len(list(directory.rglob("*"))) - 1  # every file but b.txt is identical to the backup
    result = bk.restore(project, backed_up.id, "t", force=True)
    assert (directory / "b.txt").read_text() == "b\n" * 100 and (directory / "c.txt").read_text() == "c\n" * 100
    assert result.overwritten == ["b.txt"] and result.unchanged == same
    assert result.bytes == 2 * 200  # only b.txt and c.txt were downloaded
    again = bk.restore(project, backed_up.id, "t")  # everything identical now: nothing to do, nothing refused
    assert again.bytes == 0 and again.unchanged == again.files


def test_cli_restore_refuses_to_overwrite_and_says_how(project: Project, backed_up: Trial) -> None:
    (project.paths.trial_dir(backed_up.id) / "a.txt").write_text("mine\n")
    result = runner.invoke(app, ["restore", backed_up.id, "--from", "t"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--force" in result.stderr
    forced = runner.invoke(app, ["restore", backed_up.id, "--from", "t", "--force"])
    assert forced.exit_code == 0 and "overwrote 1 local file(s)" in forced.stderr
    assert (project.paths.trial_dir(backed_up.id) / "a.txt").read_text() == "a\n" * 100


def test_an_interrupted_restore_leaves_no_partial_files(project: Project, backed_up: Trial, tmp_path: Path) -> None:
    calls = []

    def cut(_n: int) -> None:  # Ctrl-C while the third object downloads
        calls.append(_n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "notes.md").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        bk.restore(project, backed_up.id, "t", dest, progress=cut)
    assert [p.name for p in dest.iterdir()] == ["notes.md"]


def test_a_killed_restore_leaves_its_staging_directory_to_the_next_one(project: Project, backed_up: Trial,
                                                                      tmp_path: Path) -> None:
    killed = subprocess.Popen(["sleep", "60"])  # stands for a restore killed with kill -9
    started = proc_start(killed.pid)
    killed.kill()
    killed.wait()
    mine = temp_name()
    dead = bk.STAGING_PREFIX + mine.replace(f"_{os.getpid()}_{proc_start(os.getpid())}_",
                                            f"_{killed.pid}_{started}_")
    dest = tmp_path / "dest"
    (dest / dead).mkdir(parents=True)
    (dest / dead / "half-downloaded").write_bytes(b"x" * 10)
    live = dest / (bk.STAGING_PREFIX + temp_name())  # a restore still running (this process): left alone
    live.mkdir()
    bk.restore(project, backed_up.id, "t", dest)
    assert not (dest / dead).exists() and live.exists()
    (project.paths.trial_dir(backed_up.id) / dead).mkdir()
    (project.paths.trial_dir(backed_up.id) / dead / "half").write_bytes(b"x")
    assert not [e for _, e in bk.trial_files(project, backed_up) if bk.STAGING_PREFIX in e.path]  # never backed up


# ---------------------------------------------------------------------------- the record


def test_a_tampered_running_record_signals_nothing(project: Project, tmp_path: Path) -> None:
    """status: running with the pid, handle and owner of a live process group: every command leaves it alone."""
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        me = {"host": socket.gethostname(), "boot": boot_id(), "pid": victim.pid, "start": proc_start(victim.pid)}
        handle = {**me, "runner_pid": victim.pid, "runner_start": proc_start(victim.pid),
                  "dir": str(tmp_path), "detached": True}
        record = {"status": "running", "pid": victim.pid, "owner": me, "handle": handle, "heartbeat": time.time(),
                  "lease": 1e9, "executor": "local", "stop_requested": None, "finished": None,
                  "extra": {"remote": {"host": "gpu1", "dir": str(tmp_path), "pid": victim.pid},
                            "runner_pid": victim.pid, "autolog": {"lr": "0.1"}}}
        plant(project, "evilevil0001", [{"path": "model.bin", "size": len(PAYLOAD), "sha256": SHA}], fields=record)
        listed = json.loads(runner.invoke(app, ["backup", "list", "--from", "t", "--json"]).stdout)
        assert {r["id"]: r["status"] for r in listed}["evilevil0001"] == "lost"
        restored = runner.invoke(app, ["restore", "evilevil", "--from", "t"])
        assert restored.exit_code == 0, restored.stderr
        for args in (["status"], ["trials", "list", "--json"], ["trials", "show", "evilevil"],
                     ["trials", "stop", "evilevil"]):
            runner.invoke(app, args)
            assert victim.poll() is None, f"'tracker {' '.join(args)}' signalled the process"
        back = Project.load(project.root).store.get("evilevil0001")
        assert back.status == "lost" and "running" in (back.error or "")
        assert (back.pid, back.owner, back.handle, back.heartbeat, back.lease) == (None, {}, {}, None, None)
        assert back.extra == {"autolog": {"lr": "0.1"}}
        stop = runner.invoke(app, ["trials", "stop", "evilevil"])
        assert stop.exit_code == 2 and "is lost, not running" in stop.stderr
    finally:
        victim.kill()
        victim.wait()


_LONG = "x" * 300
_MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("duplicate", {"files": [{"path": "m.bin"}, {"path": "m.bin"}]}, "lists 'm.bin' twice"),
    ("clash", {"files": [{"path": "m"}, {"path": "m/inner.bin"}]}, "'m' both as a file and as a directory"),
    ("long name", {"files": [{"path": f"d/{_LONG}"}]}, "longer than 255 bytes"),
    ("long path", {"files": [{"path": "/".join(["y" * 200] * 6)}]}, "longer than 1024 bytes"),
    ("deep", {"files": [{"path": "d/" * 40 + "m.bin"}]}, "more than 32 directories deep"),
    ("params", {"trial": {"params": "lr=1"}}, "invalid trial record: params: Input should be a valid dictionary"),
    ("status", {"trial": {"status": "owned"}}, "unknown status 'owned'"),
    ("missing field", {"trial": {"created": None, "experiment": None}}, "invalid trial record"),
    ("metrics", {"metrics": [{"name": "loss"}]}, "invalid metrics: 0.value: Field required"),
    ("environment", {"environment": ["python"]}, "invalid environment"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in _MALFORMED], ids=[c[0] for c in _MALFORMED])
def test_malformed_manifests_are_one_line_errors_and_import_nothing(project: Project, tmp_path: Path,
                                                                    change: dict[str, Any], message: str) -> None:
    files = [{"size": len(PAYLOAD), "sha256": SHA, **f} for f in change.get("files", [{"path": "ok.bin"}])]
    plant(project, "malformed001", files, fields=change.get("trial", {}),
          extra={k: v for k, v in change.items() if k in ("metrics", "environment")})
    result = runner.invoke(app, ["restore", "malformed001", "--from", "t", "--to", str(tmp_path / "dest")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "unexpected" not in result.stderr
    assert not (tmp_path / "dest").exists()
    with pytest.raises(NotFoundError):
        Project.load(project.root).store.get("malformed001")


def test_restoring_onto_a_file_is_one_line(project: Project, backed_up: Trial, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.txt").mkdir()  # a directory where the backup has a file
    for dest, message in ((tmp_path / "taken", "it is a file"), (tmp_path / "dest", "'a.txt' into")):
        result = runner.invoke(app, ["restore", backed_up.id, "--from", "t", "--to", str(dest)])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr
        assert "unexpected" not in result.stderr
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["a.txt"]
