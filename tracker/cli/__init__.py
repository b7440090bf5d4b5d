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
from typer.core import TyperGroup

from tracker.cli import backup, create, experiments, remote, run, seeds, status, storage, trials


class _TrackerGroup(TyperGroup):
    """The root command group: the one place errors become messages and exit codes.

    TrackerError -> its one-line message and exit code (2 usage/config, 1 failure);
    Ctrl-C -> 130 after trials were cancelled; anything else -> a one-line report
    (the traceback only with --debug). Click's own usage errors exit 2. A TrackerWarning
    is one ``warning:`` line. Credentials are masked in all of these (tracker.secrets.redact).
    """

    def invoke(self, ctx: typer.Context) -> object:
        import warnings

        from tracker.errors import TrackerError, TrackerWarning
        from tracker.secrets import redact

        def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
            if issubclass(category, TrackerWarning):
                typer.echo(f"warning: {redact(str(message))}", err=True)
            else:
                shown(message, category, *args, **kwargs)  # type: ignore[arg-type]

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default", TrackerWarning)
                shown, warnings.showwarning = warnings.showwarning, show
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except TrackerError as exc:
            if os.environ.get("TRACKER_DEBUG"):
                raise
            typer.echo(f"error: {redact(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("tracker: interrupted; running trials were cancelled "
                       "(run them again with 'tracker trials reset --run')", err=True)
            ctx.exit(130)
        except Exception as exc:
            if os.environ.get("TRACKER_DEBUG"):
                raise
            typer.echo(f"error: unexpected {type(exc).__name__}: {redact(str(exc))} "
                       "(re-run with --debug for the traceback and report it)", err=True)
            ctx.exit(1)


app = typer.Typer(
    name="tracker",
    cls=_TrackerGroup,
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
    """Console-script entry point."""
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        os.environ["TRACKER_DEBUG"] = "1"
    app(args=argv, prog_name="tracker")
