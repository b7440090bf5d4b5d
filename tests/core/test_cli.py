"""The CLI surface: experiments, seeds, trials, status, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import cli
from tracker.cli import app
from tracker.errors import NotFoundError

runner = CliRunner()


@pytest.mark.parametrize(("text", "line", "words"), [
    ("command: x\ngrdi: {lr: [1]}\n", 2, ["unknown key 'grdi'", "grid"]),
    ("command: x\nseeds: abc\n", 2, ["seeds must be an integer or a list of integers", "'abc'"]),
    ("command: x\nsearch:\n  lr: {type: loguniform, low: 0, high: 1}\n", 3, ["low > 0"]),
    ("command: x\nsearch:\n  lr: {type: int, low: 5, high: 1}\n", 3, ["low <= high"]),
    ("command: x\nparams: {lr: 0.1\n", 3, ["invalid YAML"]),
    ("params: {a: 1}\n", None, ["missing required key 'command'"]),
])
def test_bad_experiment_file_is_one_line_exit_2(project_dir: Path, text: str, line: int | None,
                                                 words: list[str]) -> None:
    (project_dir / "experiments/bad.yaml").write_text(text)
    code, _out, err = cli("run", "bad")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    where = f"experiments/bad.yaml:{line}:" if line else "experiments/bad.yaml:"
    assert err.startswith(f"error: {where}")
    for w in words:
        assert w in err


def test_bad_project_file_names_tracker_yaml(project_dir: Path) -> None:
    (project_dir / "tracker.yaml").write_text("seeds: [1, 1]\ndefaults: {parallel: 0}\n")
    code, _, err = cli("status")
    assert code == 2 and err.startswith("error: tracker.yaml:1: seeds")


def test_experiments_create_list_show(project_dir: Path) -> None:
    code, _, err = cli("experiments", "create", "fast", "--from", "base", "--param", "lr=0.05",
                       "--param", "epochs=1", "-d", "quick check")
    assert code == 0, err
    text = (project_dir / "experiments/fast.yaml").read_text()
    assert text.count("\n# ") > 10  # every key is explained
    from tracker.config import ExperimentConfig, load_model

    config = load_model(project_dir / "experiments/fast.yaml", ExperimentConfig)
    assert config.params == {"epochs": 1, "lr": 0.05} and config.grid == {}
    assert config.seeds == 2 and config.description == "quick check"
    code, out, _ = cli("experiments", "list", "--json")
    assert {e["name"]: e["combinations"] for e in json.loads(out)} == {"base": 2, "fast": 1}
    code, out, _ = cli("experiments", "show", "base", "--json")
    assert json.loads(out)["trials"] == 4 and json.loads(out)["seeds"] == [11, 22]
    code, _, err = cli("experiments", "create", "fast")
    assert code == 2 and "already exists" in err
    code, _, err = cli("experiments", "create", "x", "--from", "nope")
    assert code == 2 and "no experiment 'nope'" in err


def test_new_experiment_without_base_uses_project_command(project_dir: Path) -> None:
    assert cli("experiments", "create", "fresh")[0] == 0
    from tracker.config import ExperimentConfig, load_model

    config = load_model(project_dir / "experiments/fresh.yaml", ExperimentConfig)
    assert config.command == [sys.executable, "train.py"]


def test_seeds_generate_is_reproducible_and_guarded(project_dir: Path) -> None:
    code, _, err = cli("seeds", "generate", "5", "--master-seed", "7")
    assert code == 2 and "already has preset seeds" in err
    assert cli("seeds", "generate", "5", "--master-seed", "7", "--force")[0] == 0
    first = json.loads(cli("seeds", "show", "--json")[1])
    assert first["master_seed"] == 7 and len(first["seeds"]) == 5
    assert cli("seeds", "generate", "8", "--extend")[0] == 0
    grown = json.loads(cli("seeds", "show", "--json")[1])
    assert grown["seeds"][:5] == first["seeds"] and len(grown["seeds"]) == 8
    # the run with no seed uses the first presets
    code, out, _ = cli("run", "base", "--dry-run", "--json")
    assert sorted({t["seed"] for t in json.loads(out)}) == sorted(first["seeds"][:2])


def test_run_then_list_filters_and_formats(project_dir: Path) -> None:
    code, out, err = cli("run", "base", "--quiet")
    assert code == 0, err
    assert "completed" in out
    code, out, _ = cli("trials", "list", "--json")
    trials = json.loads(out)
    assert len(trials) == 4
    for key in ("id", "experiment", "status", "seed", "params", "metrics", "commit", "dirty",
                "host", "started", "finished"):
        assert key in trials[0]
    code, out, _ = cli("trials", "list", "-p", "lr=0.5", "--json")
    assert {t["params"]["lr"] for t in json.loads(out)} == {0.5}
    code, out, _ = cli("trials", "list", "--status", "failed", "--json")
    assert json.loads(out) == []
    code, out, _ = cli("trials", "list", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and rows[0]["experiment"] == "base"
    code, out, _ = cli("trials", "list", "--limit", "1", "--json")
    assert [t["id"] for t in json.loads(out)] == [trials[-1]["id"]]
    code, _, err = cli("trials", "list", "--status", "bogus")
    assert code == 2 and "unknown status" in err


def test_show_logs_delete_reset_and_status(project_dir: Path) -> None:
    assert cli("run", "base", "--seed", "1", "-p", "lr=0.1", "-p", "fail=1", "-q")[0] == 1
    trial = json.loads(cli("trials", "list", "--json")[1])[0]
    tid = trial["id"]
    code, out, _ = cli("trials", "show", tid[:6], "--json")
    detail = json.loads(out)
    assert detail["status"] == "failed" and detail["exit_code"] == 3
    assert [p["step"] for p in detail["metric_series"]["train/loss"]] == [0, 1, 2]
    assert detail["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "numpy" in detail["environment"]["packages"]
    assert [e["message"] for e in detail["events"]] == ["queued", "running", "failed"]
    code, out, _ = cli("trials", "show", tid)
    assert "exit code 3" in out and "seed        1" in out
    assert "val/acc: " in cli("trials", "logs", tid)[1]
    assert "something broke" in cli("trials", "logs", tid, "--stderr")[1]
    assert cli("trials", "logs", tid, "--follow")[1].count("train/loss") == 3
    code, out, _ = cli("status", "--json")
    assert json.loads(out)["counts"] == {"base": {"failed": 1}}
    code, _, err = cli("trials", "reset", tid, "--run")
    assert code == 1 and "0/1 completed" in err  # still fails: same params
    project_file = project_dir / "train.py"
    project_file.write_text(project_file.read_text().replace("if a.fail:", "if False:"))
    code, _, err = cli("trials", "reset", "--run")
    assert code == 0 and "1/1 completed" in err, err
    after = json.loads(cli("trials", "show", tid, "--json")[1])
    assert after["status"] == "completed" and after["dirty"] is True
    code, _, err = cli("trials", "delete", tid)
    assert code == 2 and "--yes" in err
    assert cli("trials", "delete", tid, "--yes")[0] == 0
    assert not (project_dir / ".tracker/trials" / tid).exists()
    assert json.loads(cli("trials", "list", "--json")[1]) == []
    assert cli("trials", "show", tid)[0] == 2


def test_tags_and_notes_from_file_run_and_later(project_dir: Path) -> None:
    base = project_dir / "experiments/base.yaml"
    base.write_text(base.read_text() + "tags: [sweep, lr-study]\n")
    code, out, err = cli("run", "base", "--quiet", "--json", "--tag", "v2", "--tag", "sweep")
    assert code == 0, err
    ran = json.loads(out)
    assert [t["tags"] for t in ran] == [["sweep", "lr-study", "v2"]] * 4  # every trial record, each tag once
    first, second = ran[0]["id"], ran[1]["id"]
    code, _, err = cli("trials", "tag", first[:6], "best", "paper/fig:2")
    assert code == 0 and "best, paper/fig:2" in err
    assert cli("trials", "tag", second, "best")[0] == 0
    assert cli("trials", "tag", first, "--remove", "sweep", "v2")[0] == 0
    code, _, err = cli("trials", "note", first, "diverged after epoch 3:\nlr too high")
    assert code == 0 and "note saved" in err
    listed = json.loads(cli("trials", "list", "--tag", "best", "--json")[1])
    assert [(t["id"], t["tags"]) for t in listed] == [
        (first, ["lr-study", "best", "paper/fig:2"]), (second, ["sweep", "lr-study", "v2", "best"])]
    assert listed[0]["note"] == "diverged after epoch 3:\nlr too high" and listed[1]["note"] is None
    assert [t["id"] for t in json.loads(cli("trials", "list", "-t", "best", "-t", "v2", "--json")[1])] == [second]
    assert json.loads(cli("trials", "list", "--tag", "nothing", "--json")[1]) == []
    rows = list(csv.DictReader(io.StringIO(cli("trials", "list", "--tag", "best", "--csv")[1])))
    assert [r["tags"] for r in rows] == ["lr-study,best,paper/fig:2", "sweep,lr-study,v2,best"]
    code, out, _ = cli("trials", "show", first)
    assert "tags        lr-study, best, paper/fig:2" in out
    assert "note        diverged after epoch 3:\n            lr too high" in out
    detail = json.loads(cli("trials", "show", first, "--json")[1])
    assert detail["tags"] == ["lr-study", "best", "paper/fig:2"] and detail["note"].startswith("diverged")
    assert "tags +best +paper/fig:2" in [e["message"] for e in detail["events"]]
    assert cli("trials", "note", first, "")[0] == 0 and json.loads(cli("trials", "show", first, "--json")[1])[
        "note"] is None
    # bad tags: one line, exit 2, nothing run or changed
    for args in (("run", "base", "--tag", "two words"), ("trials", "tag", first, "a,b"),
                 ("trials", "list", "--tag", "")):
        code, _, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and "invalid tag" in err, (args, err)
    assert len(json.loads(cli("trials", "list", "--json")[1])) == 4
    base.write_text(base.read_text().replace("tags: [sweep, lr-study]", "tags: [ok, 'not ok']"))
    code, _, err = cli("run", "base")
    assert code == 2 and err.startswith("error: experiments/base.yaml:") and "invalid tag 'not ok'" in err


def test_checkout_cli(project_dir: Path, tmp_path: Path) -> None:
    cli("run", "base", "--seed", "1", "-p", "lr=0.1", "-q")
    tid = json.loads(cli("trials", "list", "--json")[1])[0]["id"]
    code, _, err = cli("checkout", tid, "--to", str(tmp_path / "code"))
    assert code == 0, err
    assert (tmp_path / "code/train.py").read_text() == (project_dir / "train.py").read_text()
    code, _, err = cli("checkout", tid, "--to", str(tmp_path / "code"))
    assert code == 2 and "not empty" in err


def test_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("trials", "list")
    assert code == 2 and "not inside a tracker project" in err and "tracker create" in err


def test_every_command_has_help() -> None:
    import typer.main

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, cmd in walk(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert (cmd.help or "").strip(), f"command {' '.join(path)} has no help text"


def test_cli_startup_imports_no_heavy_modules() -> None:
    import subprocess

    code = ("import sys; import tracker.cli; heavy = {'pydantic', 'yaml', 'paramiko', 'boto3', "
            "'sqlite3', 'psycopg', 'cookiecutter', 'git', 'optuna', 'fabric', 'rich.table'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_imports_no_command_module_and_lists_every_command() -> None:
    import subprocess

    code = ("import sys; from tracker.cli import main; sys.argv = ['tracker', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('tracker.cli.')\n"
            "             and not m.startswith('tracker.cli._')), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]"  # no command module imported, no command's options built
    from tracker.cli import COMMANDS

    assert all(f" {name} " in out.stdout for name in COMMANDS)


def test_every_commands_summary_is_its_helps_first_paragraph() -> None:
    import inspect

    import typer.main

    from tracker.cli import COMMANDS

    root = typer.main.get_command(app)
    assert list(root.list_commands(None)) == list(COMMANDS)
    for name, lazy in COMMANDS.items():
        built = root.commands[name]  # imported and built now
        assert inspect.cleandoc(built.help or "").split("\n\n")[0].replace("\\[", "[") == lazy.summary, name


def test_global_options_work_after_the_command(project_dir: Path, tmp_path: Path) -> None:
    assert cli("run", "base", "--seed", "1", "-p", "lr=0.1", "-q")[0] == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    here = json.loads(cli("trials", "list", "--json")[1])
    assert len(here) == 1
    for args in (("--store", other, "trials", "list", "--json"), ("trials", "list", "--json", "--store", other),
                 ("trials", "--store", other, "list", "--json"), ("trials", "list", f"--store={other}", "--json")):
        code, out, err = cli(*args)
        assert code == 0, (args, err)
        assert json.loads(out) == [], args  # the other store, empty
    assert json.loads(cli("trials", "list", "--json", "--debug")[1]) == here
    with pytest.raises(NotFoundError):  # --debug after the command: the traceback, not the one-line error
        cli("trials", "show", "nope", "--debug")
    code, _, err = cli("trials", "show", "nope")  # for that command only
    assert code != 0 and err.startswith("error: no trial 'nope'")
    code, _, err = cli("trials", "list", "--store", "nowhere")
    assert code == 2 and "Invalid value for '--store'" in err
    code, _, err = cli("trials", "list", "--help")
    assert code == 0 and "--store" not in cli("trials", "list", "--help")[1]  # shown once, in tracker --help
    assert "--store" in cli("--help")[1] and "--store" in cli("worker", "--help")[1]  # worker's own


def test_run_tag_tags_the_trials_it_skipped(project_dir: Path) -> None:
    code, out, err = cli("run", "base", "-p", "lr=0.1", "--seed", "1", "--json", "-q")
    assert code == 0, err
    done = json.loads(out)[0]["id"]
    code, out, err = cli("run", "base", "-p", "lr=0.1", "--seed", "1", "--seed", "2", "--tag", "study", "--json", "-q")
    assert code == 0, err
    tagged = json.loads(cli("trials", "list", "--tag", "study", "--json")[1])
    assert done in [t["id"] for t in tagged] and len(tagged) == 2  # the skipped trial belongs to the study
def test_a_reset_trial_waits_for_reset_run_and_stop_cancels_it(project_dir: Path) -> None:
    """A plain reset leaves trials queued: the reset's message says how to run them, a later
    ``reset --run`` runs them, and ``trials stop`` cancels one that waits."""
    assert cli("run", "base", "--seed", "1", "-p", "fail=1", "-q")[0] == 1
    first, second = (t["id"] for t in json.loads(cli("trials", "list", "--json")[1]))
    code, _, err = cli("trials", "reset")
    assert code == 0 and "reset 2 trial(s)" in err
    assert "2 waiting: run them with 'tracker trials reset --run'" in err and "tracker trials stop" in err
    code, _, err = cli("trials", "stop", second)
    assert code == 0 and f"trial {second} is cancelled" in err
    train = project_dir / "train.py"
    train.write_text(train.read_text().replace("if a.fail:", "if False:"))
    code, _, err = cli("trials", "reset", "--run")  # the waiting one and the cancelled one
    assert code == 0 and "reset 2 trial(s)" in err and "2/2 completed" in err, err
    statuses = {t["id"]: t["status"] for t in json.loads(cli("trials", "list", "--json")[1])}
    assert statuses == {first: "completed", second: "completed"}


def test_a_reset_queue_trial_goes_back_to_its_workers(project_dir: Path) -> None:
    assert cli("queue", "submit", "base", "--seeds", "1", "-p", "fail=1", "-p", "lr=0.1", "-Q", "gpu")[0] == 0
    code, _, err = cli("worker", "--queue", "gpu", "--idle-exit", "0")
    assert "ran 1 trial(s)" in err, err
    [trial] = json.loads(cli("trials", "list", "--json")[1])
    assert trial["status"] == "failed"
    code, _, err = cli("trials", "reset")
    assert code == 0 and "1 back in queue gpu: a worker runs them (tracker worker --queue gpu)" in err, err
    code, _, err = cli("worker", "--queue", "gpu", "--idle-exit", "0")
    assert "ran 1 trial(s)" in err, err
