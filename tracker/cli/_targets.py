"""The option that chooses where trials run (``--target``, with ``--remote`` and ``--slurm`` as its
aliases), shared by ``run``, ``optimize`` and ``test``, and the report of a launcher's submission."""

from __future__ import annotations

from typing import Any

import typer

from tracker.cli._common import emit_json, emit_table, fmt_params, info

TARGET_OPTION = typer.Option(None, "--target", help="Where the trials run: a target of tracker.yaml (targets:, "
                             "remotes:), a type (local, slurm), or SSH hosts gpu1,gpu2 (docs/targets.md).")
REMOTE_OPTION = typer.Option(None, "--remote", "-r", help="Run on named remotes: gpu1,gpu2 (as --target gpu1,gpu2).")


def remotes(remote: str | None) -> list[str]:
    """``--remote gpu1,gpu2`` as a list of names."""
    return [r.strip() for r in remote.split(",") if r.strip()] if remote else []


def chosen(proj: Any, target: str | None, remote: str | None, slurm: bool = False) -> Any:
    """The target (:class:`tracker.execution.targets.Target`) that the options given name; at most one
    of them: ``--target NAME``, ``--remote`` (SSH hosts, also ~/.ssh/config aliases) or ``--slurm``."""
    from tracker.errors import UsageError
    from tracker.execution.targets import resolve, ssh_hosts

    given = [flag for flag, value in (("--target", target), ("--remote", remote), ("--slurm", slurm)) if value]
    if len(given) > 1:
        raise UsageError(f"{given[0]} and {given[1]} both say where the trials run", hint="give one of them")
    return ssh_hosts(remotes(remote)) if remote else resolve(proj, "slurm" if slurm else target)


def report_launched(result: Any, dry_run: bool, as_json: bool) -> None:
    """Say what a launcher submitted (:class:`tracker.execution.targets.Launched`), or would submit."""
    if dry_run:
        if as_json:
            emit_json({"trials": [{"experiment": s.experiment, "seed": s.seed, "params": s.params}
                                  for s in result.specs], "skipped": [t.id for t in result.skipped], **result.plan})
            return
        emit_table([(i + 1, s.experiment, s.seed, fmt_params(s.params)) for i, s in enumerate(result.specs)],
                   ["#", "experiment", "seed", "params"],
                   title=f"{len(result.specs)} trials would run as {result.summary}, {len(result.skipped)} skipped")
        for note in result.notes:
            info(note)
        return
    if as_json:
        emit_json({"run_id": result.run_id, "queue": result.queue, **result.plan,
                   "queued": [t.summary() for t in result.trials], "skipped": [t.id for t in result.skipped]})
        return
    if result.skipped:
        info(f"skipped {len(result.skipped)} trial(s) already completed, queued or running with the same params, "
             "seed, code and settings (--rerun runs them again)")
    if not result.jobs:
        info("nothing submitted")
        return
    info(f"submitted {len(result.trials)} trial(s) of run {result.run_id} as {result.summary}; queue {result.queue}")
    if result.follow:
        info(result.follow)
    typer.echo(" ".join(j for j, _ in result.jobs))
