"""What the CLI prints: help, --version, pipes closed early, tables on terminals and in pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import cli
from tracker.cli import app

runner = CliRunner()


def commands() -> list[list[str]]:
    import typer.main

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_version_prints_and_exits_zero() -> None:
    from tracker import __version__

    code, out, err = cli("--version")
    assert (code, out) == (0, f"tracker {__version__}\n"), err


def test_help_uses_conventional_placeholders_and_shows_text_literally() -> None:
    for path in commands():
        out = runner.invoke(app, [*path, "--help"], terminal_width=200).stdout
        assert not re.search(r"<(bool|str|int|float|list\[\w+\]|Path)>", out), (path, out)
        assert not re.search(r"(?<!\$)\{\w+\}", out), (path, out)  # ${VAR} is literal help text
    out = runner.invoke(app, ["run", "--help"], terminal_width=200).stdout
    assert "Usage: tracker run [OPTIONS] EXPERIMENT" in out
    assert "Grid over values: 'NAME=[v1,v2]'" in out
    assert re.search(r"--seeds\s+-n\s+INTEGER\s+Use the first N", out)
    assert re.search(r"--dry-run\s+List the trials", out)
    out = runner.invoke(app, ["trials", "delete", "--help"], terminal_width=200).stdout
    assert "Usage: tracker trials delete [OPTIONS] TRIALS..." in out
    out = runner.invoke(app, ["trials", "list", "--help"], terminal_width=200).stdout
    assert re.search(r"--param\s+-p\s+NAME=VALUE", out)


def test_the_cli_reference_shows_the_grid_values() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs/cli.md").read_text()
    assert "NAME=[v1,v2]" in text and "<bool>" not in text


def into_closed_pipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run tracker with stdout a pipe whose reader has already gone (``tracker ... | head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "tracker", *args], cwd=cwd, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [
    ["trials", "list"], ["status"], ["backup", "list", "--from", "disk"], ["experiments", "list"],
])
def test_a_closed_pipe_ends_quietly_with_141(project_dir: Path, tmp_path: Path, args: list[str]) -> None:
    assert cli("storage", "add", "disk", "--type", "local", "--path", str(tmp_path / "backups"))[0] == 0
    proc = into_closed_pipe(*args, cwd=project_dir)
    assert (proc.returncode, proc.stderr) == (141, ""), proc.stderr


# --------------------------------------------------------------------------- experiments list


def test_an_invalid_experiment_is_listed_with_its_error(project_dir: Path) -> None:
    import json

    (project_dir / "experiments/bad.yaml").write_text("command: x\ngrdi: {lr: [1]}\n")
    code, out, err = cli("experiments", "list", "--json")
    assert code == 0, err
    listed = {e["name"]: e for e in json.loads(out)}
    assert listed["base"]["combinations"] == 2 and listed["base"]["error"] is None
    assert listed["bad"]["error"].startswith("experiments/bad.yaml:2: unknown key 'grdi'")
    assert listed["bad"]["combinations"] is None
    assert err.startswith("warning: experiments/bad.yaml:2: unknown key 'grdi'")
    code, out, err = cli("experiments", "list")
    rows = dict(line.split("\t", 1) for line in out.splitlines())
    assert code == 0 and rows["bad"].startswith("INVALID: experiments/bad.yaml:2") and "base" in rows


# --------------------------------------------------------------------------- trial tables

EXPERIMENT = f"""\
command: [{sys.executable!r}, train.py]
params: {{epochs: 3, note: "tab\\there\\nnewline"}}
grid: {{lr: [0.1, 0.5]}}
seeds: 2
objective: {{metric: val/acc, goal: max}}
"""
METRICS = '''print(f"train/acc: {1 - loss:.6f}")
print(f"train/f1: 0.25")
print(f"val/acc: {1 - loss:.6f}")
print(f"test/acc: {1 - loss / 2:.6f}")'''


@pytest.fixture
def ran(project_dir: Path) -> list[str]:
    """Four completed trials whose objective (val/acc) is their fourth metric; returns their ids."""
    import json

    (project_dir / "experiments/base.yaml").write_text(EXPERIMENT)
    script = project_dir / "train.py"
    script.write_text(script.read_text().replace('print(f"val/acc: {1 - loss:.6f}")', METRICS))
    code, _, err = cli("run", "base", "-q")
    assert code == 0, err
    return [t["id"] for t in json.loads(cli("trials", "list", "--json")[1])]


def run_tty(*args: str, cwd: Path, columns: int) -> tuple[int, str, str]:
    """Run tracker on a real pseudo-terminal ``columns`` wide; return (exit code, stdout, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=cwd, stdout=follower,
                            stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    _, err_bytes = proc.communicate(timeout=60)
    os.close(leader)
    err = err_bytes.decode()
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r\n", "\n")
    return proc.returncode, out, err


def test_terminal_table_at_80_columns_fits_and_leads_with_the_objective(project_dir: Path, ran: list[str]) -> None:
    code, out, err = run_tty("trials", "list", cwd=project_dir, columns=80)
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), out
    for trial_id in ran:  # whole ids, each at the start of its row
        assert sum(line.startswith(trial_id + " ") for line in lines) == 1, out
    rows = [line for line in lines if line[:12] in ran]
    assert all(re.search(r"\s(val/acc=[\d.]+)\s", line) for line in rows), out  # the objective leads
    assert out.count("test/acc=") == 4, out  # every metric is shown, wrapped
    # params cut, on one line, the one that varies (lr) first: on the old code "epochs=3 note=…" hid it
    assert all(re.search(r"\slr=0\.[15] epochs=3 \S*…\s", line) for line in rows), out
    assert "left out to fit the terminal" in err and "--columns" in err


def test_terminal_table_on_a_wide_terminal_shows_every_column_on_one_line(project_dir: Path,
                                                                         ran: list[str]) -> None:
    code, out, err = run_tty("trials", "list", cwd=project_dir, columns=250)
    assert code == 0 and err == "", err
    lines = out.rstrip("\n").splitlines()
    assert lines[0].split() == ["id", "experiment", "status", "seed", "params", "metrics", "step", "commit",
                                "host", "started", "duration"]
    assert len(lines) == 1 + len(ran)
    for line in lines[1:]:
        assert "note=tab\\there\\nnewline" in line, line
        metrics = line[lines[0].index("metrics"):]
        assert metrics.startswith("val/acc="), line


def test_columns_choose_what_the_table_shows(project_dir: Path, ran: list[str]) -> None:
    code, out, err = run_tty("trials", "list", "--columns", "id,seed,lr,val/acc,test/acc", cwd=project_dir,
                             columns=80)
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert lines[0].split() == ["id", "seed", "lr", "val/acc", "test/acc"] and len(lines) == 5
    code, out, _ = cli("trials", "list", "--columns", "id,params.lr,metrics.val/acc,status")
    header, *rows = [line.split("\t") for line in out.splitlines()]
    assert header == ["id", "params.lr", "metrics.val/acc", "status"]
    assert [r[0] for r in rows] == ran and {r[1] for r in rows} == {"0.1", "0.5"} and {r[3] for r in rows} == {
        "completed"}
    code, _, err = cli("trials", "list", "--columns", "id,val/ac")
    assert code == 2 and "unknown column 'val/ac'" in err and "val/acc" in err
    code, _, err = cli("trials", "list", "--columns", "id", "--json")
    assert code == 2 and "--columns" in err


def test_piped_tables_keep_one_line_per_trial(project_dir: Path, ran: list[str]) -> None:
    import csv
    import io

    code, out, _ = cli("trials", "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + len(ran)
    header = lines[0].split("\t")
    notes = {line.split("\t")[header.index("params.note")] for line in lines[1:]}
    assert notes == {"tab\\there\\nnewline"}
    code, out, _ = cli("trials", "list", "--csv")
    assert {row["params.note"] for row in csv.DictReader(io.StringIO(out))} == {"tab\there\nnewline"}


def test_run_summary_shows_overrides_and_the_objective_first(project_dir: Path, ran: list[str]) -> None:
    code, out, err = cli("run", "base", "-q", "-p", "lr=0.3", "--seed", "5")
    assert code == 0, err
    header, row = [line.split("\t") for line in out.splitlines()]
    summary = dict(zip(header, row, strict=True))
    assert summary["params"] == "lr=0.3" and summary["metrics"].startswith("val/acc=")
