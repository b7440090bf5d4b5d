"""``tracker create``: a project from a cookiecutter template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tracker.cli._common import JSON_OPTION, emit_json, info

if TYPE_CHECKING:
    from tracker.create import CreateResult


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
    info(_summary(result))
    info(f"next: cd {result.path} && tracker experiments list")


def _summary(result: CreateResult) -> str:
    """What was made, in words: the project and which git repository it is."""
    if result.commit is None:
        return f"updated {result.path} from the template; review and commit the changes there (git status)"
    made = f"created {result.path}, " + ("a new git repository" if result.initialized_git else "a git repository")
    made += f" (commit {result.commit[:8]})"
    if result.parent_repo is None:
        return made
    made += f"; it is a repository of its own inside the repository {result.parent_repo}"
    if not result.ignored_by_parent:
        made += ", which will list it as untracked: ignore it there, or add it as a submodule"
    return made
