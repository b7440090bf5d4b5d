"""``tracker seeds``: the project's preset seed list."""

from __future__ import annotations

import typer

from tracker.cli._common import COMMIT_OPTION, JSON_OPTION, emit_json, info, project, tracked_edit

app = typer.Typer(help="Generate and show the preset seeds every experiment uses.",
                  no_args_is_help=True)


@app.command("generate")
def generate(
    count: int = typer.Argument(10, help="How many seeds."),
    master_seed: int = typer.Option(None, "--master-seed", help="Master seed (same list every time)."),
    extend: bool = typer.Option(False, "--extend", help="Keep the current master seed, grow the list."),
    force: bool = typer.Option(False, "--force", help="Replace an existing list with a different one."),
    commit: bool = COMMIT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write COUNT preset seeds drawn from a master seed into tracker.yaml.

    Example: tracker seeds generate 10 --master-seed 2024
    """
    from tracker.errors import UsageError
    from tracker.experiments import write_seeds

    proj = project()
    unchanged = master_seed is not None and master_seed == proj.config.master_seed
    if proj.config.seeds and not (extend or force or unchanged):
        raise UsageError("tracker.yaml already has preset seeds; changing them breaks pairing "
                         "with earlier trials", hint="pass --extend to grow the list, or --force")
    with tracked_edit(proj, f"tracker: generate {count} preset seeds", commit=commit) as written:
        master, values = write_seeds(proj, count, master_seed, extend=extend)
        written.append(proj.paths.config)
        if not as_json:
            info(f"wrote {len(values)} seeds (master seed {master}) to tracker.yaml")
    if as_json:
        emit_json({"master_seed": master, "seeds": values})
    else:
        typer.echo(" ".join(map(str, values)))


@app.command("show")
def show(as_json: bool = JSON_OPTION) -> None:
    """Print the preset seeds and their master seed."""
    proj = project()
    if as_json:
        emit_json({"master_seed": proj.config.master_seed, "seeds": proj.config.seeds})
        return
    if not proj.config.seeds:
        info("no preset seeds yet; they are generated on the first run, or by 'tracker seeds generate'")
        return
    typer.echo(f"master seed {proj.config.master_seed}: " + " ".join(map(str, proj.config.seeds)))
