#!/usr/bin/env python3
"""Print docs/cli.md: every tracker command's --help, generated (``make docs``).

tests/core/test_docs.py fails when docs/cli.md is out of date.
"""

from __future__ import annotations

import os


def reference() -> str:
    """The markdown CLI reference."""
    os.environ["COLUMNS"] = "100"
    os.environ["TERM"] = "dumb"
    os.environ["NO_COLOR"] = "1"
    import typer.main
    from typer.testing import CliRunner

    from tracker.cli import app

    runner = CliRunner()
    parts = ["# CLI reference", "",
             "Generated from each command's `--help` by `make docs`; do not edit by hand.", ""]

    def walk(cmd, path):
        yield path, cmd
        for name in sorted(getattr(cmd, "commands", {})):
            yield from walk(cmd.commands[name], [*path, name])

    for path, _ in walk(typer.main.get_command(app), []):
        text = runner.invoke(app, [*path, "--help"], prog_name="tracker", terminal_width=100,
                             color=False).stdout
        title = " ".join(["tracker", *path])
        body = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
        parts += [f"## {title}", "", "```", body, "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
