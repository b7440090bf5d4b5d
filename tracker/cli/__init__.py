"""The ``tracker`` command: a thin Typer layer over the library.

Each command group lives in its own module; this one composes them and is the
single place where errors become messages and exit codes (docs/errors.md).
Only typer is imported at start-up so ``tracker --help`` stays fast; every
command imports the library it needs when it runs.
"""

from __future__ import annotations

import os
import sys

import typer

from tracker.cli import backup, create, experiments, remote, run, seeds, status, storage, trials

app = typer.Typer(
    name="tracker",
    help="Experiment tracking for ML research: projects, experiments, trials over seeds, "
    "remote runs and backups.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from tracker import __version__

        typer.echo(f"tracker {__version__}")
        raise typer.Exit()
    if debug:
        os.environ["TRACKER_DEBUG"] = "1"


app.command("create")(create.create)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("checkout")(status.checkout)
app.add_typer(experiments.app, name="experiments")
app.add_typer(seeds.app, name="seeds")
app.add_typer(trials.app, name="trials")
app.add_typer(remote.app, name="remote")
app.add_typer(storage.app, name="storage")
app.add_typer(backup.app, name="backup")
app.command("restore")(backup.restore)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning errors into one line and an exit code."""
    import click

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False, prog_name="tracker")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (None, 2) else exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("tracker: interrupted; running trials were cancelled "
                   "(re-run them with 'tracker trials reset')", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        from tracker.errors import TrackerError

        if debug:
            raise
        if isinstance(exc, TrackerError):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc} "
                   "(re-run with --debug for the traceback and report it)", err=True)
        sys.exit(1)
