"""tracker storage / backup CLI: configuration, errors and plug-in backends."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracker.cli import app
from tracker.project import Project
from tracker.storage import registry

runner = CliRunner()


def test_add_list_check_remove(project_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["storage", "add", "disk", "--type", "local", "--path", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(runner.invoke(app, ["storage", "list", "--json"]).stdout) == {
        "disk": {"type": "local", "path": str(tmp_path / "bk")}}
    check = runner.invoke(app, ["storage", "check", "disk", "--json"])
    assert check.exit_code == 0 and [s["step"] for s in json.loads(check.stdout)] == ["list", "write", "read", "delete"]
    assert runner.invoke(app, ["storage", "add", "disk", "--type", "local", "--path", "x"]).exit_code == 2
    assert runner.invoke(app, ["storage", "remove", "disk"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["storage", "list", "--json"]).stdout) == {}


@pytest.mark.parametrize(("args", "message"), [
    (["--type", "s3"], "missing required key 'bucket'"),
    (["--type", "nosuch"], "unknown storage type 'nosuch'"),
    (["--type", "ssh", "--remote", "gpu7", "--path", "/b"], "remote 'gpu7' is not in tracker.yaml"),
    (["--type", "local", "--path", "p", "--bucket", "b"], "unknown key 'bucket'"),
])
def test_bad_targets_are_usage_errors(project_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["storage", "add", "t", *args])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_target_in_tracker_yaml_names_the_line(project_dir: Path) -> None:
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write("storage:\n  s3:\n    type: s3\n    bucket: b\n    regoin: eu\n")
    result = runner.invoke(app, ["backup", "--to", "s3", "--all"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: tracker.yaml:8: unknown key 'regoin'") and "region" in result.stderr


def test_unknown_target_and_nothing_selected(project_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["backup", "--to", "nope", "--all"])
    assert result.exit_code == 2 and "no storage target named 'nope'" in result.stderr
    runner.invoke(app, ["storage", "add", "disk", "--type", "local", "--path", str(tmp_path / "bk")])
    result = runner.invoke(app, ["backup", "--to", "disk"])
    assert result.exit_code == 2 and "--experiment NAME or --all" in result.stderr


def test_dry_run_and_json_summary(project_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["run", "base", "-q"]).exit_code == 0
    runner.invoke(app, ["storage", "add", "disk", "--type", "local", "--path", str(tmp_path / "bk")])
    dry = json.loads(runner.invoke(app, ["backup", "--to", "disk", "--all", "--dry-run", "--json"]).stdout)
    assert dry["dry_run"] and dry["uploaded"] > 0 and not (tmp_path / "bk").exists()
    trial = json.loads(runner.invoke(app, ["trials", "list", "--json"]).stdout)[0]["id"]
    real = json.loads(runner.invoke(app, ["backup", "--to", "disk", trial, "--json"]).stdout)
    assert real["trials"] == [trial] and real["bytes_uploaded"] > 0
    listed = json.loads(runner.invoke(app, ["backup", "list", "--from", "disk", "--json"]).stdout)
    assert [r["id"] for r in listed] == [trial]
    again = runner.invoke(app, ["backup", trial[:8], "--to", "disk", "--json"])  # trial ids before or after --to
    assert again.exit_code == 0 and json.loads(again.stdout)["bytes_uploaded"] == 0
    table = runner.invoke(app, ["backup", "list", "--from", "disk"])
    assert table.exit_code == 0 and trial in table.stdout
    verified = runner.invoke(app, ["backup", "verify", trial[:8], "--from", "disk", "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"]
    unknown = runner.invoke(app, ["backup", "verify", "ffffffff", "--from", "disk"])
    assert unknown.exit_code == 2 and "is not in local target disk" in unknown.stderr
    assert runner.invoke(app, ["restore", "ffffffff", "--from", "disk"]).exit_code == 2


def test_missing_extra_gives_install_advice(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write("storage:\n  s3: {type: s3, bucket: b}\n")
    assert runner.invoke(app, ["run", "base", "-q", "--seed", "1", "-p", "lr=0.1"]).exit_code == 0
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if seedtracker[s3] were not installed
    result = runner.invoke(app, ["backup", "--to", "s3", "--all"])
    assert result.exit_code == 1 and "pip install 'seedtracker[s3]'" in result.stderr


def test_third_party_backend_via_entry_point(project_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "tracker_memstore-1.0.dist-info").mkdir(parents=True)
    (site / "tracker_memstore-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tracker-memstore\nVersion: 1.0\n")
    (site / "tracker_memstore-1.0.dist-info" / "entry_points.txt").write_text(
        "[tracker.storage]\nmirror = tracker_memstore:MirrorStorage\n")
    (site / "tracker_memstore.py").write_text(textwrap.dedent("""
        from tracker.storage.local import LocalStorage

        class MirrorStorage(LocalStorage):
            '''A third-party backend: a local directory under another name.'''
    """))
    monkeypatch.syspath_prepend(str(site))
    from tracker.plugins import Registry

    monkeypatch.setattr(registry, "_registry", Registry("storage type", registry.BaseStorage,
                                                        registry.ENTRY_POINT_GROUP, registry.BUILTIN))
    assert "mirror" in registry.types()
    result = runner.invoke(app, ["storage", "add", "m", "--type", "mirror", "--path", str(tmp_path / "m")])
    assert result.exit_code == 0, result.stderr
    assert runner.invoke(app, ["run", "base", "-q", "--backup-to", "m"]).exit_code == 0
    assert len(list((tmp_path / "m").rglob("trials/*.json"))) == 4
    with pytest.raises(Exception, match="already registered"):
        registry.register("mirror", "x:Y")
    registry.register("mirror", "tracker.storage.local:LocalStorage", replace=True)
    assert registry.backend_class("mirror").__name__ == "LocalStorage"
    assert Project.find().config.storage["m"].type == "mirror"


@pytest.mark.parametrize("name", ["s3\n", "s3\r", "s\x1b[31m3", "s3\t"])
def test_storage_names_with_control_characters_are_refused(project_dir: Path, tmp_path: Path, name: str) -> None:
    before = (project_dir / "tracker.yaml").read_text()
    added = runner.invoke(app, ["storage", "add", name, "--type", "local", "--path", str(tmp_path / "bk")])
    assert added.exit_code == 2 and added.stderr.count("\n") == 1
    assert f"invalid storage target name {name!r}" in added.stderr
    assert (project_dir / "tracker.yaml").read_text() == before
    with open(project_dir / "tracker.yaml", "a") as fh:
        fh.write(f"storage:\n  {json.dumps(name)}: {{type: local, path: bk}}\n")
    listed = runner.invoke(app, ["storage", "list"])
    assert listed.exit_code == 2 and listed.stderr.count("\n") == 1
    assert listed.stderr.startswith("error: tracker.yaml:4: storage: invalid name") and repr(name) in listed.stderr
