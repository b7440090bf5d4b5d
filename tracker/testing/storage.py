"""The storage-backend contract: one suite every backup target passes, built-in or plug-in.

A backend is tested by subclassing :class:`StorageContract` (or :class:`CloudContract` for a
bucket service with credentials, :class:`DirectoryContract` for a directory tree written
through temporary files) and giving the ``target`` fixture: the backend's options as they
would stand under ``storage:`` in tracker.yaml. The suite makes a real project in a temporary
directory, runs real trials, and backs them up, lists, verifies and restores them through the
backend, its CLI commands included. Run it against the backend's real service or emulator::

    # tests/test_mystore.py of a plug-in registered in the ``tracker.storage`` entry-point group
    import pytest
    from tracker.testing.storage import CloudContract

    class TestMyStore(CloudContract):
        @pytest.fixture
        def target(self, my_server):
            return {"type": "mystore", "bucket": my_server.new_bucket(), "multipart_threshold": 2**20}

        def break_credentials(self, monkeypatch):
            monkeypatch.delenv("MYSTORE_TOKEN")

        def missing_bucket(self, target):
            return {**target, "bucket": "no-such-bucket"}

tracker's own tests run it for local, SSH, S3 (moto), Azure (Azurite), GCS (an emulator) and B2
(b2sdk's simulator): ``tests/storage/test_backends.py``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tracker.errors import StorageError
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment
from tracker.storage import backup as bk
from tracker.storage.registry import open_target

TRAIN = textwrap.dedent("""\
    import argparse, json, os, pathlib, random
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng, loss = random.Random(a.seed), 1.0
    for step in range(3):
        loss *= 1 - a.lr * rng.random()
        print(f"step: {step} train/loss: {loss:.6f}")
    out = pathlib.Path(os.environ["TRACKER_TRIAL_DIR"])
    (out / "model.json").write_text(json.dumps({"lr": a.lr, "seed": a.seed}))
    """)


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity (the suite's projects are its own)."""
    return subprocess.run(["git", "-c", "user.name=tracker tests", "-c", "user.email=tests@tracker.invalid",
                           "-c", "commit.gpgsign=false", *args],
                          cwd=root, check=True, capture_output=True, text=True).stdout


def make_project(root: Path) -> Path:
    """A committed git repository that is a tracker project with a 'base' experiment (two trials)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "tracker.yaml").write_text("name: demo\nseeds: [11, 22, 33]\nmaster_seed: 1\n")
    (root / ".gitignore").write_text(".tracker/\n")
    (root / "experiments").mkdir(exist_ok=True)
    (root / "experiments" / "base.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\ngrid: {{lr: [0.1, 0.5]}}\nseeds: 1\n"
        "deliverables:\n  - {path: model.json, check: contains_keys, keys: [lr, seed]}\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def unique(prefix: str) -> str:
    """A fresh bucket, container or directory name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


MiB = 1024 * 1024


class Interrupted(Exception):
    """Raised from a progress callback to cut a transfer short."""


class StorageContract:
    """Subclasses provide ``target`` (storage options) and may override the hooks."""

    large_size = 6 * MiB  # above the multipart threshold the subclasses configure

    @pytest.fixture
    def target(self, *args: Any) -> dict[str, Any]:
        """The backend's options (``type`` and the rest), as under ``storage:`` in tracker.yaml."""
        raise NotImplementedError

    @pytest.fixture
    def project_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A fresh committed project; the current directory is its root."""
        root = make_project(tmp_path / "proj")
        monkeypatch.chdir(root)
        return root

    @pytest.fixture
    def project(self, project_dir: Path, target: dict[str, Any]) -> Project:
        """The project with the backend as storage target ``t`` and two completed trials."""
        project = Project.load(project_dir)
        project.set_section("storage", "t", target)
        git(project_dir, "commit", "-qam", "storage target")
        result = run_experiment(Project.load(project_dir), "base", RunOptions())
        assert all(t.status == "completed" for t in result.trials)
        return Project.load(project_dir)

    def assert_multipart(self, storage: Any, key: str) -> None:
        """Backend-specific evidence that a large upload used the multipart/resumable path."""

    # ------------------------------------------------------------------ tests

    def test_primitives(self, project: Project) -> None:
        storage = open_target(project, "t")
        assert storage.info("x/none") is None
        storage.put_bytes("x/a.txt", b"hello")
        assert storage.get_bytes("x/a.txt") == b"hello"
        assert storage.info("x/a.txt").size == 5
        assert [o.key for o in storage.list("x/")] == ["x/a.txt"]
        storage.delete("x/a.txt")
        storage.delete("x/a.txt")  # deleting twice is fine
        assert storage.info("x/a.txt") is None
        assert all(ok for _, ok, _ in storage.probe())

    def test_round_trip_rebackup_and_verify(self, project: Project, tmp_path: Path) -> None:
        trials = project.store.list_trials()
        first = bk.backup(project, "t", experiment=["base"])
        assert sorted(first.trials) == sorted(t.id for t in trials) and first.bytes_uploaded > 0
        again = bk.backup(project, "t", experiment=["base"])
        assert again.bytes_uploaded == 0 and again.uploaded == 0
        assert again.bytes_skipped == first.bytes_uploaded + first.bytes_skipped
        listed = bk.list_backups(project, "t")
        assert sorted(r["id"] for r in listed) == sorted(t.id for t in trials)
        assert bk.verify(project, "t").ok
        dest = tmp_path / "restored"
        result = bk.restore(project, trials[0].id[:8], "t", dest)
        assert result.trial_id == trials[0].id and not result.imported
        original = project.paths.trial_dir(trials[0].id)
        for path in original.rglob("*"):
            if path.is_file():
                assert (dest / path.relative_to(original)).read_bytes() == path.read_bytes()

    def test_many_files_round_trip(self, project: Project, tmp_path: Path) -> None:
        trial = project.store.list_trials()[0]
        many = project.paths.trial_dir(trial.id) / "many"
        many.mkdir()
        for i in range(50):  # more transfers at once than sshd's default MaxSessions (10)
            (many / f"f{i:02d}.txt").write_text(f"file {i}\n")
        result = bk.backup(project, "t", [trial.id], include=["many/*"])
        assert result.files == 50 and result.uploaded == 50
        assert bk.restore(project, trial.id, "t", tmp_path / "r").files == 50
        assert sorted(p.name for p in (tmp_path / "r" / "many").iterdir()) == sorted(p.name for p in many.iterdir())
        assert bk.verify(project, "t").ok

    def test_large_file_uses_multipart_and_round_trips(self, project: Project, tmp_path: Path) -> None:
        trial = project.store.list_trials()[0]
        big = project.paths.trial_dir(trial.id) / "weights.bin"
        big.write_bytes(os.urandom(self.large_size))
        result = bk.backup(project, "t", [trial.id], include=["*.bin"])
        assert result.files == 1 and result.bytes_uploaded == self.large_size
        storage = open_target(project, "t")
        sha = bk.sha256_file(big)
        self.assert_multipart(storage, storage.key(bk.object_key(sha)))
        restored = bk.restore(project, trial.id, "t", tmp_path / "r")
        assert (tmp_path / "r" / "weights.bin").read_bytes() == big.read_bytes() and restored.files == 1

    def test_restore_into_a_fresh_clone(self, project: Project, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        trial = project.store.list_trials()[0]
        bk.backup(project, "t", all_=True)
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", str(project.root), str(clone)], check=True)
        monkeypatch.chdir(clone)
        assert Project.load(clone).store.list_trials() == []
        result = invoke("restore", trial.id[:8], "--from", "t", "--json")
        assert result.exit_code == 0, result.stderr
        restored = json.loads(result.stdout)
        fresh = Project.load(clone)
        assert restored["imported"] and restored["directory"] == str(fresh.paths.trial_dir(trial.id).resolve())
        back = fresh.store.get(trial.id)
        assert fresh.store.environment(back.env_id)["python"] == project.store.environment(trial.env_id)["python"]
        assert (back.params, back.seed, back.commit, back.status) == (trial.params, trial.seed, trial.commit,
                                                                       trial.status)
        assert back.metrics == trial.metrics
        assert [p.value for p in fresh.store.metrics(trial.id, "train/loss")] == \
            [p.value for p in project.store.metrics(trial.id, "train/loss")]
        assert (fresh.paths.trial_dir(trial.id) / "model.json").read_text() == \
            (project.paths.trial_dir(trial.id) / "model.json").read_text()

    # s3transfer leaves the file handle of an aborted upload to the garbage collector
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    def test_interrupted_backup_resumes(self, project: Project, tmp_path: Path) -> None:
        trial = project.store.list_trials()[0]
        big = project.paths.trial_dir(trial.id) / "weights.bin"
        big.write_bytes(os.urandom(self.large_size))
        total = sum(p.stat().st_size for p in project.paths.trial_dir(trial.id).rglob("*") if p.is_file())

        def cut(_n: int) -> None:  # the connection drops during the first transfer
            raise Interrupted

        with pytest.raises((Interrupted, StorageError)):
            bk.backup(project, "t", [trial.id], include=["*.bin"], progress=cut)
        gc.collect()  # any handle an SDK dropped is reported here, not in a later test
        storage = open_target(project, "t")
        assert not storage.exists(bk.manifest_key(trial.id))
        stored = storage.info(bk.object_key(bk.sha256_file(big)))
        assert stored is None or stored.size == self.large_size  # never a partial object under its final name
        resumed = bk.backup(project, "t", [trial.id])
        assert resumed.bytes_uploaded == total - (stored.size if stored else 0)
        assert bk.verify(project, "t", [trial.id]).ok

    def test_tampered_object_is_detected(self, project: Project, tmp_path: Path) -> None:
        trial = project.store.list_trials()[0]
        bk.backup(project, "t", [trial.id])
        sha = bk.sha256_file(project.paths.trial_dir(trial.id) / "model.json")
        storage = open_target(project, "t")
        storage.put_bytes(bk.object_key(sha), b'{"lr": 999}')
        result = bk.verify(project, "t")
        assert not result.ok and result.corrupt == [(trial.id, "model.json")]
        with pytest.raises(StorageError, match="corrupt"):
            bk.restore(project, trial.id, "t", tmp_path / "r")
        assert not (tmp_path / "r" / "model.json").exists()
        storage.delete(bk.object_key(sha))
        assert bk.verify(project, "t").missing == [(trial.id, "model.json")]
        cli = invoke("backup", "verify", "--from", "t")
        assert cli.exit_code == 1 and "MISSING" in cli.stderr

    @pytest.mark.parametrize("evil", ["../../evil.txt", "/tmp/evil-abs.txt", "a/../../evil.txt", "C:/evil"])
    def test_malicious_manifest_is_refused(self, project: Project, tmp_path: Path, evil: str) -> None:
        storage = open_target(project, "t")
        payload = b"owned"
        sha = __import__("hashlib").sha256(payload).hexdigest()
        storage.put_bytes(bk.object_key(sha), payload)
        record = project.store.list_trials()[0].as_dict() | {"id": "badbadbadbad"}
        manifest = {"format": 1, "project": "x", "trial": record, "metrics": [],
                    "files": [{"path": evil, "size": len(payload), "sha256": sha}]}
        storage.put_bytes(bk.manifest_key("badbadbadbad"), json.dumps(manifest).encode())
        dest = tmp_path / "deep" / "er" / "dest"
        with pytest.raises(StorageError, match="refusing to restore"):
            bk.restore(project, "badbadbadbad", "t", dest)
        assert not list(tmp_path.rglob("evil*")) and not Path("/tmp/evil-abs.txt").exists()

    def test_run_backs_up_each_completed_trial(self, project: Project) -> None:
        result = run_experiment(project, "base", RunOptions(backup_to="t", seeds=[99]))
        ids = {t.id for t in result.trials}
        stored = {r["id"] for r in bk.list_backups(project, "t")}
        assert ids <= stored


class CloudContract(StorageContract):
    """Cloud backends also have credentials and buckets that can be missing."""

    def break_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        raise NotImplementedError

    def missing_bucket(self, target: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def test_missing_credentials_are_a_clear_error(self, project: Project,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        self.break_credentials(monkeypatch)
        result = invoke("backup", "--to", "t", "--all")
        assert result.exit_code == 1 and "credentials" in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1

    def test_missing_bucket_is_a_clear_error(self, project: Project, target: dict[str, Any]) -> None:
        project.set_section("storage", "gone", self.missing_bucket(target))
        result = invoke("backup", "--to", "gone", "--all")
        assert result.exit_code == 1 and "does not exist" in result.stderr, result.stderr
        check = invoke("storage", "check", "gone")
        assert check.exit_code == 1 and "does not exist" in check.stdout


class DirectoryContract(StorageContract):
    """Backends that keep files in a directory tree (local, SSH) write through temporary files."""

    def local_root(self, storage: Any) -> Path:
        """Where the target's files can be seen on this machine."""
        raise NotImplementedError

    def test_a_killed_backup_leaves_nothing_behind_after_the_next(self, project: Project) -> None:
        root = self.local_root(open_target(project, "t"))
        trial = project.store.list_trials()[0]
        (project.paths.trial_dir(trial.id) / "weights.bin").write_bytes(os.urandom(96 * MiB))
        backup = subprocess.Popen([sys.executable, "-m", "tracker", "backup", "--to", "t", trial.id],
                                  cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60

        def leftovers() -> list[Path]:  # anything but a complete object or manifest
            return [p for p in root.rglob("*") if not p.is_dir() and not (
                (p.parent.parent.name == "objects" and len(p.name) == 64) or p.parent.name == "trials")]

        def size(path: Path) -> int:
            try:
                return path.stat().st_size
            except FileNotFoundError:  # renamed into place meanwhile
                return 0

        while not any(size(p) > MiB for p in leftovers()) and time.monotonic() < deadline:
            assert backup.poll() is None, "the backup ended before it could be killed"
            time.sleep(0.005)
        backup.kill()  # kill -9 in the middle of the upload
        backup.wait()
        assert leftovers(), "the killed upload left no temporary file: the test proves nothing"
        bk.backup(project, "t", [trial.id])
        assert leftovers() == []
        assert bk.verify(project, "t").ok



def invoke(*args: str) -> Any:
    """Run tracker's command line in this process; the result has exit_code, stdout and stderr."""
    from typer.testing import CliRunner

    from tracker.cli import app

    return CliRunner().invoke(app, list(args))
