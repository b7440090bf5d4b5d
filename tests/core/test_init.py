"""``tracker init``: adopt a repository that existed before tracker, then run it end to end."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tests.core.test_code import existing_repo
from tracker.project import Project


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = existing_repo(tmp_path / "legacy")
    monkeypatch.chdir(root)
    return root


def test_init_then_run_end_to_end(legacy: Path) -> None:
    code, _, err = cli("run", "train")
    assert code != 0 and "tracker init" in err  # the way in is named where users hit the wall
    code, _, err = cli("init")
    assert code == 0, err
    assert "experiment 'train' runs train.py; params: lr=0.1" in err and "--no-test" in err
    text = (legacy / "tracker.yaml").read_text()
    assert text.startswith("# tracker project settings") and "code:" in text and "max_file_size: 1MiB" in text
    assert ".tracker/" in (legacy / ".gitignore").read_text().splitlines()
    assert "__pycache__/" in (legacy / ".gitignore").read_text()  # the user's lines are kept
    config = Project.load(legacy).config
    assert config.name == "legacy"
    code, _, err = cli("run", "train", "--seeds", "2")
    assert code == 0, err
    trials = Project.load(legacy).store.list_trials()
    assert [t.status for t in trials] == ["completed", "completed"]
    assert all(t.params == {"lr": 0.1} and "val/acc" in t.metrics for t in trials)
    assert "--seed=" in " ".join(trials[0].command) or trials[0].seed is not None
    assert git(legacy, "status", "--porcelain", "--", ".tracker") == ""  # the store is ignored
    code, _, err = cli("run", "train", "--seeds", "2")  # same code: done
    assert code == 0 and "nothing to run" in err


def test_init_refuses_an_existing_tracker_yaml(legacy: Path) -> None:
    (legacy / "tracker.yaml").write_text("name: mine\n")
    code, _, err = cli("init")
    assert code == 2 and "tracker.yaml already exists" in err
    assert (legacy / "tracker.yaml").read_text() == "name: mine\n"


def test_init_in_a_directory_that_is_not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "main.py").write_text(textwrap.dedent("""
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--depth", type=int, default=4)
        p.add_argument("data")
        if __name__ == "__main__":
            print(p.parse_args())
    """))
    (root / "requirements.txt").write_text("numpy\n")
    monkeypatch.chdir(root)
    code, _, err = cli("init", "--commit")
    assert code == 0, err
    assert "was not a git repository: ran 'git init'" in err
    assert (root / ".git").is_dir()
    committed = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == [".gitignore", "experiments/main.yaml", "tracker.yaml"]  # only its own files
    config = Project.load(root).config
    assert config.environment.venv and config.environment.requirements == ["requirements.txt"]
    experiment = (root / "experiments/main.yaml").read_text()
    assert "params: {depth: 4}" in experiment and "seed_flag: null" in experiment  # main.py takes no --seed


def test_init_with_pyproject_and_no_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "2024"  # a directory name YAML would read as a number
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'pkg'\nversion = '0'\n")
    git(root, "init", "-q")
    monkeypatch.chdir(root)
    code, _, err = cli("init")
    assert code == 0, err
    assert "no script to suggest an experiment for" in err
    config = Project.load(root).config
    assert config.name == "2024"
    assert config.environment.venv and config.environment.requirements is None
    assert not (root / "experiments").exists()


@pytest.mark.parametrize(("ignore", "kept"), [(".tracker\n", True), ("/.tracker/\n", True), ("*.db\n", False)])
def test_init_ignores_the_whole_state_once(legacy: Path, ignore: str, kept: bool) -> None:
    (legacy / ".gitignore").write_text(ignore)  # *.db covers the store, not the trial directories
    code, _, err = cli("init")
    assert code == 0, err
    assert ((legacy / ".gitignore").read_text() == ignore) is kept
    assert git(legacy, "check-ignore", ".tracker/trials/x/stdout.log").strip()
