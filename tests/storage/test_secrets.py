"""Credentials in tracker.yaml: masked wherever tracker shows or saves text, warned about, ${VAR} instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import git
from tracker.cli import app
from tracker.errors import ConfigError, TrackerWarning
from tracker.project import Project
from tracker.secrets import redact
from tracker.storage import backup as bk
from tracker.storage.registry import open_target

runner = CliRunner()
PASSWORD = "SuperSecret123"
KEY = "K3yOfTheB2Account"
TARGETS = f"""\
storage:
  leaky:
    type: s3
    bucket: models
    endpoint_url: http://minio:{PASSWORD}@127.0.0.1:1
  keyed:
    type: b2
    bucket: models
    application_key: {KEY}
"""


@pytest.fixture
def leaky(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose tracker.yaml holds an S3 password (unreachable endpoint) and a B2 key."""
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_MAX_ATTEMPTS": "1",
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write(TARGETS)
    return project_dir


def test_storage_list_masks_credentials_and_warns(leaky: Path) -> None:
    for args in (["storage", "list"], ["storage", "list", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and PASSWORD not in result.output and KEY not in result.output
    shown = json.loads(runner.invoke(app, ["storage", "list", "--json"]).stdout)
    assert shown["leaky"]["endpoint_url"] == "http://minio:***@127.0.0.1:1"
    assert shown["keyed"]["application_key"] == "***"
    warning = runner.invoke(app, ["storage", "list"]).stderr
    assert warning.count("\n") == 1 and warning.startswith("warning: tracker.yaml holds credentials in ")
    assert "storage.leaky.endpoint_url, storage.keyed.application_key" in warning
    assert "${VAR}" in warning and "AWS_SECRET_ACCESS_KEY" in warning and "B2_APPLICATION_KEY" in warning


def test_errors_and_checks_mask_credentials(leaky: Path) -> None:
    assert runner.invoke(app, ["run", "base", "-q", "--seed", "1", "-p", "lr=0.1"]).exit_code == 0
    failed = runner.invoke(app, ["backup", "--to", "leaky", "--all"])
    assert failed.exit_code == 1 and "cannot reach the S3 endpoint" in failed.stderr
    assert "http://minio:***@127.0.0.1:1" in failed.stderr and PASSWORD not in failed.output
    check = runner.invoke(app, ["storage", "check", "leaky", "--json"])
    assert check.exit_code == 1 and "minio:***@" in check.stdout and PASSWORD not in check.output
    with pytest.warns(TrackerWarning, match="storage.leaky.endpoint_url"):
        storage = open_target(Project.find(), "leaky")
    with pytest.raises(Exception) as caught:
        storage.info("x")
    assert PASSWORD in str(caught.value) and PASSWORD not in redact(str(caught.value))  # masked at the edge


def test_storage_add_warns_about_a_credential(project_dir: Path) -> None:
    added = runner.invoke(app, ["storage", "add", "m", "--type", "s3", "--bucket", "b",
                                "--endpoint-url", f"https://minio:{PASSWORD}@127.0.0.1:9000"])
    assert added.exit_code == 0 and PASSWORD not in added.output
    assert "warning: tracker.yaml holds credentials in storage.m.endpoint_url" in added.stderr
    safe = runner.invoke(app, ["storage", "add", "n", "--type", "s3", "--bucket", "b",
                               "--endpoint-url", "https://minio:${MINIO_PASSWORD}@127.0.0.1:9000"])
    assert safe.exit_code == 0 and "warning" not in safe.stderr
    assert json.loads(runner.invoke(app, ["storage", "list", "--json"]).stdout)["n"]["endpoint_url"] == \
        "https://minio:${MINIO_PASSWORD}@127.0.0.1:9000"


def test_env_references_in_storage_options(project_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write("storage:\n  disk:\n    type: local\n    path: ${BACKUP_ROOT}/tracker-backups\n")
    assert runner.invoke(app, ["run", "base", "-q", "--seed", "1", "-p", "lr=0.1"]).exit_code == 0
    unset = runner.invoke(app, ["backup", "--to", "disk", "--all"])
    assert unset.exit_code == 2 and unset.stderr.count("\n") == 1
    assert unset.stderr.startswith("error: tracker.yaml:7: storage.disk.path refers to ${BACKUP_ROOT}, which is "
                                   "not set") and "export BACKUP_ROOT=" in unset.stderr
    monkeypatch.setenv("BACKUP_ROOT", str(tmp_path / "mnt"))
    done = runner.invoke(app, ["backup", "--to", "disk", "--all", "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["uploaded"] > 0
    assert list((tmp_path / "mnt" / "tracker-backups").rglob("trials/*.json"))
    assert not list(project_dir.glob("$*"))
    monkeypatch.delenv("BACKUP_ROOT")
    with pytest.raises(ConfigError, match="refers to"):
        open_target(Project.find(), "disk")


def test_code_patch_masks_credentials_of_a_dirty_tracker_yaml(leaky: Path, tmp_path: Path) -> None:
    with open(leaky / "tracker.yaml", "a") as fh:  # and a target that is safe to back up to
        fh.write(f"  disk: {{type: local, path: {tmp_path / 'bk'}}}\n")
    (leaky / "train.py").write_text((leaky / "train.py").read_text() + "\n# tweak\n")
    run = runner.invoke(app, ["run", "base", "-q", "--seed", "1", "-p", "lr=0.1"])
    assert run.exit_code == 0, run.stderr
    assert "warning: the uncommitted tracker.yaml holds credentials (storage.leaky.endpoint_url, " \
           "storage.keyed.application_key); they are masked as *** in the code.patch" in run.stderr
    project = Project.find()
    trial = project.store.list_trials()[0]
    assert trial.extra["code_patch_redacted"] == ["storage.leaky.endpoint_url", "storage.keyed.application_key"]
    patch = (project.paths.trial_dir(trial.id) / "code.patch").read_text()
    assert PASSWORD not in patch and KEY not in patch and "# tweak" in patch
    assert "\n+    endpoint_url: http://minio:***@127.0.0.1:1\n" in patch and "\n+    application_key: ***\n" in patch
    bk.backup(project, "disk", all_=True)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "bk").rglob("*") if p.is_file())
    assert b"code.patch" in stored and PASSWORD.encode() not in stored and KEY.encode() not in stored
    git(leaky, "update-ref", "-d", f"refs/tracker/trials/{trial.id}")  # as in another clone: commit + patch
    git(leaky, "gc", "-q", "--prune=now")
    out = runner.invoke(app, ["checkout", trial.id, "--to", str(tmp_path / "code")])
    assert out.exit_code == 0 and "saved patch" in out.output, out.output
    rebuilt = (tmp_path / "code" / "tracker.yaml").read_text()
    assert "endpoint_url: http://minio:***@127.0.0.1:1" in rebuilt and PASSWORD not in rebuilt
    assert (tmp_path / "code" / "train.py").read_text().endswith("# tweak\n")


@pytest.mark.parametrize(("text", "shown"), [
    ("http://minio:pw123@host:9000/b", "http://minio:***@host:9000/b"),
    ("https://ghp_0123456789abcdefghij@github.com/x", "https://***@github.com/x"),
    ("ssh://git@github.com/x", "ssh://git@github.com/x"),
    ("https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=abc%2Bdef%3D&se=2030",
     "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=***&se=2030"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Signature=f00&X-Amz-Security-Token=bar",
     "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&X-Amz-Security-Token=***"),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9v+YmFy==;EndpointSuffix=core.windows.net",
     "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=core.windows.net"),
    ("    secret_access_key: wJalrXUtnFEMI", "    secret_access_key: ***"),
    ('s3: {type: s3, aws_session_token: "a b c", bucket: b}', 's3: {type: s3, aws_session_token: "***", bucket: b}'),
    ("application_key=K005abc sas_token: 'sv=1&sig=2'", "application_key=*** sas_token: '***'"),
    ("connection_string_env: AZURE_CONN", "connection_string_env: AZURE_CONN"),
    ("password: ${DB_PASSWORD}", "password: ${DB_PASSWORD}"),
    ("tokenizer: bpe", "tokenizer: bpe"),
])
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_gcs_credentials_json_written_into_a_target_are_masked(project_dir: Path) -> None:
    creds = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv\n", "client_email": "a@b"}
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write("storage:\n  g:\n    type: gcs\n    bucket: b\n    credentials: " + json.dumps(creds) + "\n")
    result = runner.invoke(app, ["storage", "list", "--json"])
    assert json.loads(result.stdout)["g"]["credentials"] == "***" and "MIIEv" not in result.output
    assert "storage.g.credentials" in result.stderr and "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr
