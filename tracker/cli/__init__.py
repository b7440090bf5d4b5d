"""The ``tracker`` command: a thin Typer layer over the library.

Each command group lives in its own module; this one composes them and is the
single place where errors become messages and exit codes (docs/errors.md).
Only typer is imported at start-up so ``tracker --help`` stays fast; every
command imports the library it needs when it runs.

Exit codes: 0 success, 1 failure, 2 bad usage/config/input, 130 interrupted,
141 the reader of stdout went away (``tracker trials list | head -1``), as for
any tool killed by SIGPIPE.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from tracker.cli import (
    backup,
    create,
    experiments,
    optimize,
    queue,
    remote,
    results,
    run,
    seeds,
    status,
    storage,
    store,
    trials,
)
from tracker.cli._help import conventional_help

BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for `git log | head -1`'s git


def _reader_gone() -> bool:
    """Whether stdout is a pipe or socket whose reader has exited (``... | head -1``)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):
        return True  # cannot tell: a broken pipe at the edge is most likely ours
    poller = select.poll()
    poller.register(fd, 0)  # errors and hang-ups are always reported
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quit_quietly() -> typer.Exit:
    """Exit 141 without a word; output still buffered goes to /dev/null (the Python docs' recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return typer.Exit(BROKEN_PIPE)


class _TrackerGroup(TyperGroup):
    """The root command group: the one place errors become messages and exit codes.

    TrackerError -> its one-line message and exit code (2 usage/config, 1 failure);
    Ctrl-C -> 130 after trials were cancelled; the reader of stdout gone -> 141,
    silently; anything else -> a one-line report (the traceback only with
    --debug). Click's own usage errors exit 2. A TrackerWarning is one ``warning:``
    line. Credentials are masked in all of these (tracker.secrets.redact).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        conventional_help(self, self.context_settings.get("help_option_names", ["--help"]))

    def invoke(self, ctx: typer.Context) -> object:
        import warnings

        from tracker.errors import TrackerError, TrackerWarning

        def redact(text: str) -> str:  # its patterns are compiled only when a message needs them
            from tracker.secrets import redact

            return redact(text)

        def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
            if issubclass(category, TrackerWarning):
                typer.echo(f"warning: {redact(str(message))}", err=True)
            else:
                shown(message, category, *args, **kwargs)  # type: ignore[arg-type]

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default", TrackerWarning)
                shown, warnings.showwarning = warnings.showwarning, show
                result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return result
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
            if isinstance(exc, BrokenPipeError) and _reader_gone():
                raise _quit_quietly() from None
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


def _print_version(value: bool) -> None:
    if value:
        from tracker import __version__

        typer.echo(f"tracker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
    store: str = typer.Option(None, "--store", metavar="URL",
                              help="The store to use (sqlite:///path or postgresql://user@host/db): wins over "
                                   "TRACKER_STORE, which wins over tracker.yaml store:."),
) -> None:
    if debug:
        os.environ["TRACKER_DEBUG"] = "1"
    if store is not None:
        if "://" not in store:
            raise typer.BadParameter("a store URL like sqlite:///path/to/tracker.db or "
                                     "postgresql://user@host/db", param_hint="'--store'")
        before = os.environ.get("TRACKER_STORE")
        os.environ["TRACKER_STORE"] = store  # what Project.store_url reads; trial processes inherit it

        def restore() -> None:  # for the rest of this process (a library caller, tests), as before
            if before is None:
                os.environ.pop("TRACKER_STORE", None)
            else:
                os.environ["TRACKER_STORE"] = before

        ctx.call_on_close(restore)


app.command("create")(create.create)
app.command("init")(create.init)
app.command("run")(run.run)
app.command("test")(run.test)
app.command("status")(status.status)
app.command("checkout")(status.checkout)
app.add_typer(experiments.app, name="experiments")
app.add_typer(seeds.app, name="seeds")
app.add_typer(trials.app, name="trials")
app.add_typer(optimize.app, name="optimize")
app.add_typer(queue.app, name="queue")
app.command("worker")(queue.worker)
app.add_typer(remote.app, name="remote")
app.add_typer(storage.app, name="storage")
app.add_typer(backup.app, name="backup")
app.add_typer(store.app, name="store")
app.command("restore")(backup.restore)
app.command("export")(results.export)
app.command("sql")(results.sql)
app.command("compare")(results.compare)
app.command("diff")(results.diff)
app.command("report")(results.report)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        os.environ["TRACKER_DEBUG"] = "1"
    app(args=argv, prog_name="tracker")
