"""``tracker experiments``: create, list and show experiment files."""

from __future__ import annotations

import typer

from tracker.cli._common import (
    COMMIT_OPTION,
    JSON_OPTION,
    emit_json,
    emit_table,
    info,
    parse_assignments,
    project,
    tracked_edit,
)

app = typer.Typer(help="Create, list and show experiments (experiments/NAME.yaml).",
                  no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Experiment name (becomes experiments/NAME.yaml)."),
    base: str = typer.Option(None, "--from", help="Copy the settings of experiment OTHER."),
    param: list[str] = typer.Option(None, "--param", "-p", metavar="NAME=VALUE",
                               help="Fixed parameter (repeatable)."),
    command: str = typer.Option(None, "--command", help="The command to run, e.g. 'python train.py'."),
    description: str = typer.Option(None, "--description", "-d", help="What the experiment is for."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    commit: bool = COMMIT_OPTION,
) -> None:
    """Write experiments/NAME.yaml with every key explained in comments.

    The command's --help is read (15 s at most) to write 'seed_flag: null' for a script
    without --seed and 'booleans: bare' for one with store_true switches.

    Example: tracker experiments create high-lr --from baseline --param lr=0.5
    """
    from tracker import experiments

    proj = project()
    with tracked_edit(proj, f"tracker: add experiment {name}", commit=commit) as written:
        created = experiments.create(proj, name, base=base, params=parse_assignments(param, "--param"),
                                     command=command, description=description, force=force)
        written.append(created.path)
        info(f"wrote {created.path}")
    for note in created.notes:
        info(note)


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List experiments with their command, grid size and seeds.

    An invalid file is listed with its error (and a warning on stderr); the others
    are listed as usual and the exit status stays 0.
    """
    from tracker import experiments

    items = experiments.list_experiments(project())
    for bad in (i for i in items if i.error):
        info(f"warning: {bad.error}")
    if as_json:
        emit_json([{"name": i.name, "path": str(i.path), "description": i.config.description if i.config else None,
                    "combinations": i.grid_size, "seeds": i.config.training_seeds if i.config else None,
                    "command": i.config.command if i.config else None, "error": i.error} for i in items])
        return
    rows = []
    for i in items:
        if i.config is None:
            rows.append((i.name, f"INVALID: {i.error}", "", "", ""))
            continue
        command = i.config.command
        rows.append((i.name, i.config.description, i.grid_size,
                     "default" if i.config.training_seeds is None else i.config.training_seeds,
                     command if isinstance(command, str) else " ".join(command)))
    emit_table(rows, ["name", "description", "combinations", "seeds", "command"],
               keep={"name", "combinations", "seeds"})


@app.command("show")
def show(name: str = typer.Argument(..., help="Experiment name."), as_json: bool = JSON_OPTION) -> None:
    """Show an experiment's resolved settings and how many trials it expands to."""
    from tracker import experiments
    from tracker.yamlio import dump_yaml

    proj = project()
    config = experiments.load(proj, name)
    data = config.model_dump(mode="json", exclude_defaults=True)
    specs = experiments.expand(proj, name, config)
    if as_json:
        emit_json({"name": name, "config": config.model_dump(mode="json"), "trials": len(specs),
                   "seeds": sorted({s.seed for s in specs}, key=[s.seed for s in specs].index)})
        return
    typer.echo(dump_yaml(data).rstrip())
    typer.echo(f"# expands to {len(specs)} trials "
               f"({experiments.grid_size(config)} combinations x {len({s.seed for s in specs})} seeds)")
