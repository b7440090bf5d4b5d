"""``tracker create``: a project from a cookiecutter template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tracker.cli._common import JSON_OPTION, emit_json, info

if TYPE_CHECKING:
    from tracker.adopt import InitResult
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


def init(
    directory: Path = typer.Argument(Path("."), help="The directory of existing code (default: here)."),
    commit: bool = typer.Option(False, "--commit", help="Commit the files tracker writes (and only them)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make existing code a tracker project, in place: tracker.yaml, .tracker/ ignored, one experiment.

    The experiment is suggested from the scripts found (train.py first): its argparse flags
    with defaults become params. The project's venv is switched on when requirements.txt or
    pyproject.toml exists. A directory that is not a git repository becomes one. An existing
    tracker.yaml is never overwritten.

    Example: cd my-code && tracker init && tracker run train --seeds 1
    """
    from tracker.adopt import init_project

    result = init_project(directory, commit=commit)
    if as_json:
        emit_json({"path": str(result.root), "written": [str(p) for p in result.written],
                   "initialized_git": result.initialized_git, "ignored_state": result.ignored_state,
                   "venv_from": result.venv_from, "experiment": result.experiment, "script": result.script,
                   "params": result.params, "left_out": result.left_out, "commit": result.commit})
        return
    for line in init_summary(result):
        info(line)


def init_summary(result: InitResult) -> list[str]:
    """What ``tracker init`` did and what to do next, one line each."""
    from tracker.yamlio import display_path

    lines = []
    if result.initialized_git:
        lines.append(f"{result.root} was not a git repository: ran 'git init' (trials are tied to commits; "
                     "commit your code: git add -A && git commit -m 'initial code')")
    lines.append("wrote " + ", ".join(display_path(p) for p in result.written))
    if result.ignored_state:
        lines.append(".gitignore now ignores .tracker/ (tracker's store, trial directories and venvs)")
    if result.venv_from:
        lines.append(f"local trials run in the project's venv, built from {result.venv_from} on the first run "
                     "(environment.venv in tracker.yaml)")
    if result.experiment:
        shown = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "none found"
        lines.append(f"experiment {result.experiment!r} runs {result.script}; params: {shown}")
        if result.left_out:
            lines.append(f"not made params: {', '.join(result.left_out)} (switches, positional or without a "
                         f"default; add them to experiments/{result.experiment}.yaml if needed)")
    else:
        lines.append("no script to suggest an experiment for: add one with "
                     "'tracker experiments create NAME --command \"python SCRIPT.py\"'")
    if result.commit:
        lines.append(f"committed them ({result.commit[:8]} tracker: init)")
    name = result.experiment or "NAME"
    lines.append(f"next: tracker run {name} --seeds 1 --dry-run, then tracker run {name}")
    return lines
