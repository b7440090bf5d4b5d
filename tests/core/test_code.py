"""What counts as a trial's code, on a repository that existed before tracker.

The repository is written the way real projects are: a committed argparse script that
saves its model into the working directory, a checkpoint and notes left untracked, and
no ``.tracker/`` in .gitignore.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tracker import codeset, gitinfo
from tracker.project import Project

SCRIPT = textwrap.dedent("""
    import argparse, pickle
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-test", action="store_true")
    a = p.parse_args()
    with open("model.pkl", "wb") as fh:  # into the working directory, as real scripts do
        pickle.dump({"lr": a.lr, "seed": a.seed, "weights": [0.0] * 50}, fh)
    print(f"val/acc: {1 - a.lr / (a.seed + 2):.4f}")
""")


def existing_repo(root: Path) -> Path:
    """A repository with history that knows nothing of tracker, plus untracked leftovers."""
    root.mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "model code")
    (root / "train.py").write_text(SCRIPT + "\n# tuned\n")
    git(root, "commit", "-qam", "tune")
    (root / "checkpoint.pt").write_bytes(bytes(range(256)) * (5 * 1024 * 1024 // 256))  # 5 MiB
    (root / "notes.txt").write_text("try a lower lr\n")
    return root


def adopt(root: Path, code: str = "") -> Path:
    """tracker.yaml and one experiment written by hand (no .gitignore change)."""
    (root / "tracker.yaml").write_text(f"name: legacy\nseeds: [1, 2, 3]\nmaster_seed: 1\n{code}")
    (root / "experiments").mkdir()
    (root / "experiments/train.yaml").write_text(f"command: [{sys.executable!r}, train.py]\nparams: {{lr: 0.1}}\n")
    return root


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = adopt(existing_repo(tmp_path / "legacy"))
    monkeypatch.chdir(root)
    return root


def tree(root: Path, commit: str) -> list[str]:
    return git(root, "ls-tree", "-r", "--name-only", commit).split()


def only_trial(root: Path):
    trials = Project.load(root).store.list_trials()
    assert len(trials) == 1
    return trials[0]


def test_untracked_checkpoint_and_trackers_own_state_are_not_code(legacy: Path) -> None:
    code, _, err = cli("run", "train", "--seeds", "1")
    assert code == 0, err
    trial = only_trial(legacy)
    assert trial.status == "completed" and trial.dirty
    patch = (legacy / ".tracker/trials" / trial.id / "code.patch").read_bytes()
    assert b"notes.txt" in patch and b"checkpoint.pt" not in patch
    assert len(patch) < 20_000  # was 5 MB of checkpoint plus the store, trial directories, ...
    files = tree(legacy, trial.snapshot)
    assert "notes.txt" in files and "tracker.yaml" in files and "experiments/train.yaml" in files
    assert "checkpoint.pt" not in files and not [f for f in files if f.startswith(".tracker/")]
    # one line, once, names what was left out and how to take it as code
    lines = [line for line in err.splitlines() if "left out of the trials' code" in line]
    assert len(lines) == 1
    assert "checkpoint.pt (5 MiB > max_file_size 1 MiB)" in lines[0] and "code: include:" in lines[0]


def test_a_model_written_into_the_working_directory_does_not_make_the_code_new(legacy: Path) -> None:
    assert cli("run", "train", "--seeds", "2")[0] == 0
    assert (legacy / "model.pkl").is_file()
    code, _, err = cli("run", "train", "--seeds", "2")
    assert code == 0, err
    assert "nothing to run: all 2 trial(s)" in err
    assert "model.pkl (binary)" in err  # named as left out, not taken as code


def test_tracker_outputs_in_the_project_root_never_make_trials_dirty(legacy: Path) -> None:
    git(legacy, "add", "-A")
    git(legacy, "commit", "-qm", "adopt")  # checkpoint and notes committed: a clean tree
    assert cli("run", "train", "--seeds", "1")[0] == 0
    code, _, err = cli("export", "--to", "results.csv")
    assert code == 0 and "results.csv is inside the project; it is left out of trials' code" in err
    code, _, err = cli("report", "--metric", "val/acc", "--out", "report.html")
    assert code == 0 and (legacy / "report.html").is_file()
    code, _, err = cli("checkout", only_trial(legacy).id, "--to", "exact")
    assert code == 0 and (legacy / "exact/train.py").is_file()
    assert gitinfo.capture(legacy).dirty is False
    code, _, err = cli("run", "train", "--seeds", "1")
    assert code == 0 and "nothing to run" in err
    assert "results.csv" not in err and "report.html" not in err  # tracker's own outputs are not worth a line


def test_outputs_default_to_the_state_directory(legacy: Path) -> None:
    assert cli("run", "train", "--seeds", "1")[0] == 0
    code, _, err = cli("export")
    assert code == 0 and (legacy / ".tracker/exports/all.csv").is_file(), err
    code, _, err = cli("report", "train", "--metric", "val/acc")
    assert code == 0, err
    assert (legacy / ".tracker/reports/train.html").is_file()
    trial = only_trial(legacy)
    code, _, _ = cli("checkout", trial.id)
    assert code == 0 and (legacy / ".tracker/checkouts" / trial.id / "notes.txt").is_file()


def test_code_section_include_exclude_and_max_file_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = existing_repo(tmp_path / "r")
    (root / "data").mkdir()
    (root / "data/table.csv").write_text("a,b\n" + "1,2\n" * 400_000)  # 1.5 MiB of text
    (root / "lookup.bin").write_bytes(b"\0\1\2")
    adopt(root, "code:\n  include: [lookup.bin]\n  exclude: [notes.txt]\n  max_file_size: 2MiB\n")
    monkeypatch.chdir(root)
    project = Project.load(root)
    code = gitinfo.capture(root, project.config.code)
    files = tree(root, code.snapshot)
    assert "lookup.bin" in files and "data/table.csv" in files
    assert "notes.txt" not in files and "checkpoint.pt" not in files
    default = gitinfo.capture(root)
    assert "data/table.csv" not in tree(root, default.snapshot)
    assert {x.path: x.why for x in default.left_out}["data/table.csv"].endswith("> max_file_size 1 MiB")


@pytest.mark.parametrize(("section", "said"), [
    ("code:\n  max_file_size: lots\n", "tracker.yaml:5"),
    ("code:\n  exclude: [/etc/passwd]\n", "tracker.yaml:5"),
    ("code:\n  includes: [a]\n", "tracker.yaml:5"),
])
def test_code_section_is_validated_with_file_and_line(legacy: Path, section: str, said: str) -> None:
    (legacy / "tracker.yaml").write_text(f"name: legacy\nseeds: [1, 2, 3]\nmaster_seed: 1\n{section}")
    code, _, err = cli("run", "train", "--seeds", "1")
    assert code == 2 and said in err and "Traceback" not in err


def test_dry_run_and_summary_say_why_a_done_trial_runs_again(legacy: Path) -> None:
    assert cli("run", "train", "--seeds", "1")[0] == 0
    (legacy / "notes.txt").write_text("try a higher lr\n")
    code, out, _ = cli("run", "train", "--seeds", "1", "--dry-run")
    assert code == 0 and "run: code changed: notes.txt" in out
    code, out, _ = cli("run", "train", "--seeds", "1", "--dry-run", "--json")
    assert '"reason": "code changed: notes.txt"' in out
    code, _, err = cli("run", "train", "--seeds", "1")
    assert code == 0 and "ran 1 trial(s) completed before, not skipped: code changed: notes.txt" in err
    (legacy / "experiments/train.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nparams: {{lr: 0.1}}\ntimeout: 60\n")
    git(legacy, "add", "-A")  # .tracker/ is not ignored: its files are committed, yet never code
    git(legacy, "commit", "-qm", "settle")
    assert cli("run", "train", "--seeds", "1")[0] == 0
    (legacy / "experiments/train.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nparams: {{lr: 0.1}}\ntimeout: 90\n")
    code, out, _ = cli("run", "train", "--seeds", "1", "--dry-run")
    assert "run: code changed: experiments/train.yaml" in out


def test_venvs_and_caches_are_never_code_nor_named(tmp_path: Path) -> None:
    root = existing_repo(tmp_path / "r")
    (root / "env").mkdir()
    (root / "env/pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "env/site.py").write_text("x = 1\n")
    (root / "pkg/__pycache__").mkdir(parents=True)
    (root / "pkg/__pycache__/m.py").write_text("x = 1\n")
    (root / "pkg/m.py").write_text("x = 1\n")
    code = gitinfo.capture(root)
    files = tree(root, code.snapshot)
    assert "pkg/m.py" in files and not [f for f in files if f.startswith(("env/", "pkg/__pycache__"))]
    line = codeset.left_out_line(code.left_out)
    assert line is not None and "checkpoint.pt" in line and "env/" not in line and "__pycache__" not in line


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("*.csv", "data/raw/a.csv", True),
    ("data", "data/raw/a.csv", True),
    ("data/", "data/raw/a.csv", True),
    ("data/*.csv", "data/a.csv", True),
    ("raw/*.csv", "data/raw/a.csv", False),
    ("notes.txt", "notes.txt", True),
    ("notes", "notes.txt", False),
])
def test_patterns(pattern: str, path: str, hit: bool) -> None:
    assert codeset.matches(pattern, path) is hit


def test_optimize_names_what_it_left_out_once(legacy: Path) -> None:
    (legacy / "experiments/train.yaml").write_text(
        f"command: [{sys.executable!r}, train.py]\nsearch: {{lr: {{type: uniform, low: 0.01, high: 0.5}}}}\n"
        "objective: {metric: val/acc, goal: max}\n")
    code, _, err = cli("optimize", "train", "--strategy", "random", "--trials", "2", "--seeds", "1")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "left out of the trials' code" in line]
    assert len(lines) == 1 and "checkpoint.pt" in lines[0]
