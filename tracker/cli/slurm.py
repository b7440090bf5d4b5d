"""``--slurm`` and its resource flags: aliases of ``--target slurm`` and of a slurm target's options."""

from __future__ import annotations

from typing import Any

import typer

SLURM = typer.Option(False, "--slurm", help="Submit the trials to SLURM as job arrays of workers (docs/slurm.md); "
                     "the same as --target slurm. Prints the array job ids.")
PARTITION = typer.Option(None, "--partition", help="With a SLURM target: the partition the tasks run in.")
TIME = typer.Option(None, "--time", help="With a SLURM target: time limit per task, so per trial (e.g. 2:00:00).")
GPUS = typer.Option(None, "--gpus", help="With a SLURM target: GPUs per task (1, a100:2).")
CPUS = typer.Option(None, "--cpus", help="With a SLURM target: CPUs per task.")
MEM = typer.Option(None, "--mem", help="With a SLURM target: memory per task (16G).")
ARRAY_PARALLEL = typer.Option(None, "--array-parallel", help="With a SLURM target: at most K tasks at once (%K).")

FLAGS = {"--partition": "partition", "--time": "time", "--gpus": "gpus", "--cpus": "cpus", "--mem": "mem",
         "--array-parallel": "array_parallel"}


def with_resources(proj: Any, target: Any, flags: dict[str, Any]) -> Any:
    """``target`` with the resource flags given (``{"--time": "1:00:00"}``) over its options; they apply
    to a SLURM target only."""
    from tracker.errors import UsageError
    from tracker.execution.targets import resolve

    given = {FLAGS[flag]: value for flag, value in flags.items() if value is not None}
    if given and target.type != "slurm":
        first = next(flag for flag, value in flags.items() if value is not None)
        raise UsageError(f"{first} applies to SLURM runs", hint="add --slurm, or --target NAME of a slurm target")
    return resolve(proj, target.name, given) if given else target
