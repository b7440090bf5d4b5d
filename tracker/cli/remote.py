"""``tracker remote``: named SSH hosts and the trials running on them."""

from __future__ import annotations

import typer

from tracker.cli._common import COMMIT_OPTION, JSON_OPTION, emit_json, emit_table, fmt_time, info, project, tracked_edit

app = typer.Typer(help="Named SSH hosts: add, check, trust, and the trials running on them.",
                  no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Name to use with --remote, e.g. gpu1."),
    host: str = typer.Option(None, "--host", help="Address or ~/.ssh/config alias (default: NAME as an alias)."),
    user: str = typer.Option(None, "--user", help="Login user."),
    port: int = typer.Option(None, "--port", help="SSH port."),
    key: str = typer.Option(None, "--key", help="Private key file (keys and ssh-agent only; no passwords)."),
    workdir: str = typer.Option(None, "--workdir", help="Base directory on the remote (default ~/tracker)."),
    python: str = typer.Option(None, "--python", help="Python interpreter on the remote (default python3)."),
    slots: int = typer.Option(None, "--slots", help="Trials at once on this host."),
    gpus: str = typer.Option(None, "--gpus", help="GPU ids, one per slot: 0,1."),
    setup: list[str] = typer.Option(None, "--setup", help="Set-up command for the environment (repeatable)."),
    env: list[str] = typer.Option(None, "--env", metavar="NAME=VALUE",
                             help="Environment variable for trials (repeatable)."),
    ssh_config: str = typer.Option(None, "--ssh-config", help="OpenSSH config file holding the Host entry."),
    known_hosts: str = typer.Option(None, "--known-hosts", help="Extra known_hosts file."),
    force: bool = typer.Option(False, "--force", help="Replace an existing remote of that name."),
    commit: bool = COMMIT_OPTION,
) -> None:
    """Add a named remote to tracker.yaml.

    Example: tracker remote add gpu1 --host 10.0.0.5 --user me --slots 2 --gpus 0,1
    """
    from tracker.errors import UsageError
    from tracker.remote.control import add_remote

    try:
        gpu_ids = [int(g) for g in gpus.split(",") if g.strip()] if gpus else None
    except ValueError as exc:
        raise UsageError(f"--gpus {gpus!r}: expected comma-separated integers like 0,1") from exc
    env_vars = {}
    for item in env or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--env {item!r}: expected NAME=VALUE")
        env_vars[k] = v
    options = {"host": host, "user": user, "port": port, "key": key, "workdir": workdir, "python": python,
               "slots": slots, "gpus": gpu_ids, "setup": setup, "env": env_vars, "ssh_config": ssh_config,
               "known_hosts": known_hosts}
    proj = project()
    with tracked_edit(proj, f"tracker: add remote {name}", commit=commit) as written:
        add_remote(proj, name, options, force=force)
        written.append(proj.paths.config)
        info(f"added remote {name}; next: 'tracker remote trust {name}' (first time) "
             f"and 'tracker remote check {name}'")


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List the remotes in tracker.yaml."""
    remotes = project().config.hosts()
    if as_json:
        emit_json({name: cfg.model_dump() for name, cfg in remotes.items()})
        return
    emit_table([(name, cfg.host or f"(alias {name})", cfg.user or "", cfg.port or "", cfg.workdir, cfg.slots,
                 ",".join(map(str, cfg.gpus))) for name, cfg in remotes.items()],
               ["name", "host", "user", "port", "workdir", "slots", "gpus"], keep={"name", "port", "slots"})


@app.command("remove")
def remove(name: str = typer.Argument(..., help="Remote name.")) -> None:
    """Remove a remote from tracker.yaml (nothing on the host is deleted)."""
    from tracker.remote.control import remove_remote

    remove_remote(project(), name)
    info(f"removed remote {name}")


@app.command("check")
def check(name: str = typer.Argument(..., help="Remote name."), as_json: bool = JSON_OPTION) -> None:
    """Connect and report python, venv, rsync, free disk and GPUs; say what is wrong."""
    from tracker.remote.control import check as run_check

    checks = run_check(project(), name)
    if as_json:
        emit_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        emit_table([(c.name, "ok" if c.ok else "PROBLEM", c.detail) for c in checks], ["check", "result", "detail"],
                   keep={"check", "result"})
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command("trust")
def trust(
    name: str = typer.Argument(..., help="Remote name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Trust the shown fingerprint without asking."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different known key (host reinstalled)."),
) -> None:
    """Show the remote's host-key fingerprint and record it in known_hosts."""
    import sys

    from tracker.remote.control import trust as do_trust

    def confirm(question: str) -> bool:
        info(question)
        if yes:
            return True
        if not sys.stdin.isatty():
            from tracker.errors import UsageError

            raise UsageError("confirm the fingerprint on a terminal, or pass --yes after checking it")
        return typer.confirm("Trust this key?", default=False)

    fp, where = do_trust(project(), name, confirm=confirm, replace=replace)
    info(f"{name}: {fp} ({where})")


@app.command("status")
def status(as_json: bool = JSON_OPTION) -> None:
    """What runs where: running remote trials and what their hosts report."""
    from tracker.remote.control import status as remote_status

    rows = remote_status(project())
    if as_json:
        emit_json([r.as_dict() for r in rows])
        return
    if not rows:
        info("no trials are running on remotes")
        return
    emit_table([(r.trial.id, r.trial.experiment, r.host, r.state, fmt_time(r.trial.started)) for r in rows],
               ["trial", "experiment", "host", "remote", "started"], keep={"trial", "experiment", "started"})


def _attach(follow: bool, ids: list[str] | None) -> None:
    from tracker.cli.progress import ConsoleReporter
    from tracker.remote.control import attach

    reporter = ConsoleReporter(stream=follow)
    try:
        final = attach(project(), reporter, ids, follow=follow)
    finally:
        reporter.close()
    done = [t for t in final if t.status != "running"]
    info(f"{len(done)} trial(s) finished, {len(final) - len(done)} still running")
    if any(t.status in ("failed", "lost") for t in done):
        raise typer.Exit(1)


@app.command("attach")
def attach(ids: list[str] = typer.Argument(None, metavar="TRIALS",
                                           help="Trial ids (default: every running remote trial).")) -> None:
    """Re-attach to remote trials (after a dropped connection): stream logs until they finish."""
    _attach(True, ids)


@app.command("sync")
def sync_(ids: list[str] = typer.Argument(None, metavar="TRIALS",
                                          help="Trial ids (default: every running remote trial).")) -> None:
    """One pass over remote trials: pull logs and results, finalize finished ones, mark dead ones lost."""
    _attach(False, ids)
