"""What the CLI prints: help, --version, pipes closed early, tables on terminals and in pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracker.cli import app

runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


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
        assert not re.search(r"\{\w+\}", out), (path, out)
    out = runner.invoke(app, ["run", "--help"], terminal_width=200).stdout
    assert "Usage: tracker run [OPTIONS] EXPERIMENT" in out
    assert "Grid over values: NAME=[v1,v2]." in out
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
