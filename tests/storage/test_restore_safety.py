"""Restore refuses backups that would write outside the target directory or lie about themselves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tracker.errors import StorageError
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment
from tracker.storage import backup as bk
from tracker.storage.registry import open_target

PAYLOAD = b"owned"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def project(project_dir: Path, tmp_path: Path) -> Project:
    project = Project.load(project_dir)
    project.set_section("storage", "t", {"type": "local", "path": str(tmp_path / "backups")})
    git(project_dir, "commit", "-qam", "storage target")
    run_experiment(Project.load(project_dir), "base", RunOptions(seeds=[1]))
    return Project.load(project_dir)


def plant(project: Project, trial_id: str, files: list[dict[str, Any]], record_id: str | None = None) -> None:
    """Store a hand-made manifest (and the payload object) as an attacker with write access could."""
    storage = open_target(project, "t")
    storage.put_bytes(bk.object_key(SHA), PAYLOAD)
    record = project.store.list_trials()[0].as_dict() | {"id": record_id or trial_id}
    manifest = {"format": 1, "project": "x", "trial": record, "metrics": [], "files": files}
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
