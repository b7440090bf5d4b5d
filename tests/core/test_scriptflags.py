"""Scripts as real projects write them: argparse with store_true switches and no --seed, run unchanged."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli, git
from tracker.scriptflags import parse_usage

# an unchanged scikit-learn-style script: a store_true switch, no --seed, a required choice
SCRIPT = textwrap.dedent(
    """\
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--n-estimators", type=int, default=10)
    p.add_argument("--early-stop", action="store_true", help="stop when the validation loss rises")
    p.add_argument("--split", choices=["val", "test"], default="val")
    a = p.parse_args()
    print(f"val/acc: {0.5 + a.n_estimators / 100 + (0.1 if a.early_stop else 0):.3f}")
    """)


@pytest.fixture
def real_script(project_dir: Path) -> Path:
    (project_dir / "boost.py").write_text(SCRIPT)
    git(project_dir, "add", "-A")
    git(project_dir, "commit", "-qm", "add boost.py")
    return project_dir


def test_usage_of_argparse_names_switches_and_valued_options() -> None:
    usage = ("usage: boost.py [-h] [--n-estimators N_ESTIMATORS] [--early-stop]\n"
             "                [--split {val,test}] --out OUT\n\noptions:\n  --early-stop  stop early\n")
    flags = parse_usage(usage)
    assert flags is not None and flags.options == {"help": False, "n-estimators": True, "early-stop": False,
                                                   "split": True, "out": True}
    assert flags.switches == ["early-stop"]
    assert parse_usage("Usage of ./prog: -x int\n") is None


def test_create_detects_no_seed_and_switches_and_the_script_runs_unchanged(real_script: Path) -> None:
    code, _, err = cli("experiments", "create", "boost", "--command", f"{sys.executable} boost.py",
                       "-p", "early-stop=true", "-p", "n-estimators=20")
    assert code == 0, err
    assert "takes no --seed: wrote 'seed_flag: null'" in err
    text = (real_script / "experiments/boost.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["seed_flag"] is None and data["booleans"] == "bare"
    assert "--help shows no --seed" in text and "switches (--early-stop)" in text
    code, out, err = cli("run", "boost", "--seeds", "2", "--json", "-q")
    assert code == 0, err
    trials = json.loads(out)
    assert [t["metrics"]["val/acc"] for t in trials] == [0.8, 0.8]  # --early-stop given as a bare switch
    code, out, err = cli("run", "boost", "--seeds", "1", "-p", "early-stop=false", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)[0]["metrics"]["val/acc"] == 0.7  # false: the switch is left out


def test_create_warns_of_a_param_the_script_does_not_take(real_script: Path) -> None:
    code, _, err = cli("experiments", "create", "boost", "--command", f"{sys.executable} boost.py", "-p", "depth=3")
    assert code == 0 and "the script's --help shows no --depth" in err


def test_create_never_fails_on_a_script_without_help(project_dir: Path) -> None:
    (project_dir / "odd.py").write_text("import argparse, sys\nsys.exit(4)\n")
    code, _, err = cli("experiments", "create", "odd", "--command", f"{sys.executable} odd.py")
    assert code == 0, err
    assert yaml.safe_load((project_dir / "experiments/odd.yaml").read_text())["seed_flag"] == "seed"


def test_create_never_runs_a_script_that_does_not_use_argparse(project_dir: Path) -> None:
    (project_dir / "plain.py").write_text("open('ran', 'w').write('trained')\n")  # --help would train
    assert cli("experiments", "create", "plain", "--command", f"{sys.executable} plain.py")[0] == 0
    assert not (project_dir / "ran").exists()


@pytest.mark.parametrize(("setting", "param", "words"), [
    ("seed_flag: seed\n", [], ["the script refused --seed=11", "set 'seed_flag: null' in experiments/boost.yaml"]),
    ("seed_flag: null\n", ["-p", "early-stop=true"],
     ["the script refused --early-stop=true", "--early-stop is a switch", "'booleans: bare'"]),
    ("seed_flag: null\n", ["-p", "depth=3"], ["the script refused --depth=3", "it has no --depth"]),
])
def test_a_refused_flag_is_named_with_the_setting_that_maps_it(real_script: Path, setting: str, param: list[str],
                                                               words: list[str]) -> None:
    (real_script / "experiments/boost.yaml").write_text(f"command: [{sys.executable!r}, boost.py]\n{setting}")
    code, _, err = cli("run", "boost", "--seeds", "1", *param)
    assert code == 1
    for w in words:
        assert w in err, err
    [trial] = json.loads(cli("trials", "list", "--json")[1])
    assert words[0] in json.loads(cli("trials", "show", trial["id"], "--json")[1])["error"]
