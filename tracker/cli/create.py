"""``tracker create``: a project from a cookiecutter template."""

from __future__ import annotations

from pathlib import Path

import typer

from tracker.cli._common import JSON_OPTION, emit_json, info


def create(
    conf: Path = typer.Argument(..., help="conf.yaml: template, checkout, directory, output_dir, context."),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt, even on a terminal."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a project from any cookiecutter template described in CONF.

    Example conf.yaml:

        template: default          # or gh:owner/repo, a git URL, a path, a .zip
        context: {project_name: Cart Pole}

    Then: tracker create conf.yaml
    """
    import sys

    from tracker.create import create_project

    result = create_project(conf, interactive=not no_input and sys.stdin.isatty())
    if as_json:
        emit_json(result.as_dict())
        return
    info(f"created {result.path}" + (f" (git commit {result.commit[:8]})" if result.commit else ""))
    info(f"next: cd {result.path} && tracker experiments list")
