"""tracker's own edits of tracked files: names it accepts, file modes it keeps, what git sees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import cli, git


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_rewrites_keep_the_file_mode_and_new_files_follow_the_umask(project_dir: Path, umask_022: None) -> None:
    config = project_dir / "tracker.yaml"
    config.chmod(0o664)
    assert cli("seeds", "generate", "4", "--master-seed", "3", "--force")[0] == 0
    assert cli("remote", "add", "gpu1", "--host", "10.0.0.5")[0] == 0
    assert mode(config) == 0o664
    assert cli("experiments", "create", "fresh")[0] == 0
    assert mode(project_dir / "experiments/fresh.yaml") == 0o644
    (project_dir / "experiments/fresh.yaml").chmod(0o600)
    assert cli("experiments", "create", "fresh", "--force", "-d", "again")[0] == 0
    assert mode(project_dir / "experiments/fresh.yaml") == 0o600


@pytest.mark.parametrize("args", [
    ["remote", "add", "gpu1\n", "--host", "10.0.0.5"],
    ["remote", "add", "gpu\x1b1", "--host", "10.0.0.5"],
    ["experiments", "create", "fast\n"],
    ["experiments", "create", "--", "-fast"],
])
def test_names_with_newlines_or_control_characters_are_refused(project_dir: Path, args: list[str]) -> None:
    before = (project_dir / "tracker.yaml").read_text()
    code, _, err = cli(*args)
    assert code == 2 and "invalid" in err and "name" in err and err.count("\n") == 1, err
    assert (project_dir / "tracker.yaml").read_text() == before
    assert sorted(p.name for p in (project_dir / "experiments").iterdir()) == ["base.yaml"]


@pytest.mark.parametrize(("text", "line"), [
    ('remotes:\n  "gpu1\\n": {host: 10.0.0.5}\n', 2),
    ('storage:\n  "s3\\n": {type: local, path: /tmp}\n', 2),
])
def test_tracker_yaml_refuses_a_name_with_a_trailing_newline(project_dir: Path, text: str, line: int) -> None:
    (project_dir / "tracker.yaml").write_text("name: demo\n" + text)
    code, _, err = cli("status")
    assert code == 2 and err.startswith("error: tracker.yaml:") and "invalid name" in err and "\\n" in err, err


def test_experiment_param_name_with_a_trailing_newline_is_refused(project_dir: Path) -> None:
    (project_dir / "experiments/base.yaml").write_text('command: x\nparams: {"lr\\n": 1}\n')
    code, _, err = cli("experiments", "show", "base")
    assert code == 2 and "invalid parameter name" in err, err


# --------------------------------------------------------------------------- --commit


def staged(root: Path) -> list[str]:
    return git(root, "diff", "--cached", "--name-only").split()


def changed(root: Path) -> list[str]:
    return [line[3:] for line in git(root, "status", "--porcelain", "--untracked-files=all").splitlines()]


@pytest.fixture
def busy_project(project_dir: Path) -> Path:
    """A project where the user has other work staged and unstaged."""
    (project_dir / "train.py").write_text((project_dir / "train.py").read_text() + "# staged edit\n")
    (project_dir / "notes.txt").write_text("mine\n")
    git(project_dir, "add", "train.py", "notes.txt")
    (project_dir / "README").write_text("unstaged, untracked\n")
    return project_dir


@pytest.mark.parametrize(("args", "written", "message"), [
    (["remote", "add", "gpu1", "--host", "10.0.0.5"], "tracker.yaml", "remote gpu1"),
    (["storage", "add", "disk", "--type", "local", "--path", "/tmp/backups"], "tracker.yaml", "storage target disk"),
    (["seeds", "generate", "6", "--master-seed", "9", "--force"], "tracker.yaml", "6 preset seeds"),
    (["experiments", "create", "fast", "-p", "lr=0.05"], "experiments/fast.yaml", "experiment fast"),
])
def test_commit_commits_exactly_what_tracker_wrote(busy_project: Path, args: list[str], written: str,
                                                   message: str) -> None:
    head = git(busy_project, "rev-parse", "HEAD").strip()
    code, _, err = cli(*args, "--commit")
    assert code == 0, err
    assert f"committed {written}" in err
    assert git(busy_project, "rev-parse", "HEAD~1").strip() == head
    assert git(busy_project, "show", "--name-only", "--format=%s", "HEAD").split("\n")[0].endswith(message)
    assert git(busy_project, "show", "--name-only", "--format=", "HEAD").split() == [written]
    # the user's own work is exactly as it was: still staged, still uncommitted
    assert staged(busy_project) == ["notes.txt", "train.py"]
    assert sorted(changed(busy_project)) == ["README", "notes.txt", "train.py"]


@pytest.mark.parametrize(("args", "written"), [
    (["remote", "add", "gpu1", "--host", "10.0.0.5"], "tracker.yaml"),
    (["seeds", "generate", "6", "--master-seed", "9", "--force"], "tracker.yaml"),
    (["experiments", "create", "fast"], "experiments/fast.yaml"),
])
def test_without_commit_the_user_is_told_the_tree_now_differs(project_dir: Path, args: list[str],
                                                              written: str) -> None:
    code, _, err = cli(*args)
    assert code == 0, err
    assert written in err and "dirty" in err and "--commit" in err, err
    assert changed(project_dir) == [written]
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "by hand")
    code, _, err = cli(*args, "--force")  # the same content again: nothing differs
    assert code == 0 and "dirty" not in err, err


def test_commit_outside_a_git_repository_is_a_clear_error(project_dir: Path) -> None:
    import shutil

    shutil.rmtree(project_dir / ".git")
    code, _, err = cli("remote", "add", "gpu1", "--host", "10.0.0.5", "--commit")
    assert code == 2 and "not inside a git repository" in err, err
    code, _, err = cli("remote", "add", "gpu2", "--host", "10.0.0.6")
    assert code == 0 and "dirty" not in err, err
