"""The ``tracker`` command: a thin Typer layer over the library.

Each command group lives in its own module; this one names them (COMMANDS) and is the
single place where errors become messages and exit codes (docs/errors.md). Only typer is
imported at start-up so ``tracker --help`` stays fast: a command's module is imported, and
its options built, only when that command runs or shows its help (tracker.cli._lazy), and
every command imports the library it needs when it runs. The global options (--store,
--debug) work before or after the command's name.

Exit codes: 0 success, 1 failure, 2 bad usage/config/input, 130 interrupted,
141 the reader of stdout went away (``tracker trials list | head -1``), as for
any tool killed by SIGPIPE.
"""

from __future__ import annotations

import os
import sys

import typer

from tracker.cli._help import conventional_help
from tracker.cli._lazy import Lazy, LazyGroup

BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for `git log | head -1`'s git
DEBUG = "tracker.debug"  # in a command's ctx.meta: --debug was given


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


# name: where the command lives and the first paragraph of its help (tests/core/test_cli.py checks both)
COMMANDS = {
    "create": Lazy("create", "create", "Create a project from any cookiecutter template described in CONF."),
    "init": Lazy("create", "init", "Make existing code a tracker project, in place: tracker.yaml, .tracker/ ignored, "
                 "one experiment."),
    "run": Lazy("run", "run", "Run EXPERIMENTS: fixed params x grid x seeds, each trial tied to the current commit."),
    "test": Lazy("run", "test", "Run the test phase of the configuration validation chose, once per training seed."),
    "status": Lazy("status", "status",
                   "One-screen overview: trials per experiment and status, what runs, the latest trials."),
    "checkout": Lazy("status", "checkout", "Write the exact code a trial ran (its commit plus uncommitted changes) "
                     "into a directory."),
    "worker": Lazy("queue", "worker", "Claim queued trials from the store and run them here, until stopped "
                   "(Ctrl-C puts its trials back)."),
    "restore": Lazy("backup", "restore", "Restore a trial from a backup, all or nothing: every file is downloaded "
                    "and verified by sha256\nbefore any is moved into place, and its record is added if the store "
                    "lacks it. Local files that\ndiffer from the backup are kept unless --force; identical ones "
                    "are not downloaded again."),
    "export": Lazy("results", "export", "Write one row per trial, params and metrics flattened (params.NAME, "
                   "metrics.NAME), to a file."),
    "sql": Lazy("results", "sql", "Run a read-only SQL query over the store (tables: trials, params, metrics, "
                "tags, ...)."),
    "compare": Lazy("results", "compare", "Compare configurations over seeds: mean, std, median, IQM and a 95% CI "
                    "per row, best first,\nthen every row against the best (paired t-test on shared seeds, else "
                    "Welch; Holm-corrected)."),
    "diff": Lazy("results", "diff", "Show what differs between two trials or two experiments; only differences "
                 "are printed."),
    "report": Lazy("results", "report", "One self-contained HTML page (opens offline, safe to send): summary, the "
                   "comparison over seeds,\nlearning curves, comparison plots, every trial's code version, and the "
                   "test results apart."),
    "experiments": Lazy("experiments", "app", "Create, list and show experiments (experiments/NAME.yaml)."),
    "seeds": Lazy("seeds", "app", "Generate and show the preset seeds every experiment uses."),
    "trials": Lazy("trials", "app", "List, inspect, tag, delete and reset trials."),
    "optimize": Lazy("optimize", "app",
                     "Search an experiment's space (grid, random, tpe, gp, hyperband, bohb) over seeds."),
    "queue": Lazy("queue", "app", "Queue trials in the store for workers on any machine (see also 'tracker worker')."),
    "remote": Lazy("remote", "app", "Named SSH hosts: add, check, trust, and the trials running on them."),
    "storage": Lazy("storage", "app",
                    "Backup targets: S3, Azure Blob, Google Cloud Storage, Backblaze B2, SSH, local."),
    "backup": Lazy("backup", "app", "Back up trials to a storage target: tracker backup --to NAME [TRIAL...] "
                   "[--experiment E] [--all] [--include GLOB] [--dry-run] [--json]. Also: tracker backup list "
                   "--from NAME, tracker backup verify --from NAME."),
    "store": Lazy("store", "app", "The trial store: where it is, what it holds, moving it (tracker store info, "
                  "tracker store migrate --to URL)."),
}


class _TrackerGroup(LazyGroup):
    """The root command group: the one place errors become messages and exit codes.

    TrackerError -> its one-line message and exit code (2 usage/config, 1 failure);
    Ctrl-C -> 130 after trials were cancelled; the reader of stdout gone -> 141,
    silently; anything else -> a one-line report (the traceback only with
    --debug). Click's own usage errors exit 2. A TrackerWarning is one ``warning:``
    line. Credentials are masked in all of these (tracker.secrets.redact).
    """

    lazy = COMMANDS
    global_options = ("debug", "store")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._help_names = self.context_settings.get("help_option_names", ["--help"])
        conventional_help(self, self._help_names, deep=False)  # each command when it is built

    def prepare(self, command: object) -> None:
        conventional_help(command, self._help_names)

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
            if os.environ.get("TRACKER_DEBUG") or ctx.meta.get(DEBUG):
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
            if os.environ.get("TRACKER_DEBUG") or ctx.meta.get(DEBUG):
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


def _use_debug(ctx: typer.Context, value: bool) -> None:
    """``--debug``: tracebacks for this command's errors (the contexts of one command share ``meta``)."""
    if value:
        ctx.meta[DEBUG] = True


def _use_store(ctx: typer.Context, store: str | None) -> None:
    """``--store URL``: TRACKER_STORE for this command (what Project.store_url reads; trials inherit it)."""
    if store is None:
        return
    if "://" not in store:
        raise typer.BadParameter("a store URL like sqlite:///path/to/tracker.db or "
                                 "postgresql://user@host/db", param_hint="'--store'")
    before = os.environ.get("TRACKER_STORE")
    os.environ["TRACKER_STORE"] = store

    def restore() -> None:  # for the rest of this process (a library caller, tests), as before
        if before is None:
            os.environ.pop("TRACKER_STORE", None)
        else:
            os.environ["TRACKER_STORE"] = before

    ctx.call_on_close(restore)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", callback=_use_debug, help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
    store: str = typer.Option(None, "--store", metavar="URL", callback=_use_store,
                              help="The store to use (sqlite:///path or postgresql://user@host/db): wins over "
                                   "TRACKER_STORE, which wins over tracker.yaml store:."),
) -> None:
    """The global options: their callbacks apply them, wherever they are given (_TrackerGroup.global_options)."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        os.environ["TRACKER_DEBUG"] = "1"
    app(args=argv, prog_name="tracker")
