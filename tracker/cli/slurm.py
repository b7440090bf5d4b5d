"""``tracker run --slurm``: the options and the report (the library is tracker.slurm.submit)."""

from __future__ import annotations

from typing import Any

import typer

from tracker.cli._common import emit_json, emit_table, fmt_params, info

PARTITION = typer.Option(None, "--partition", help="With --slurm: the partition the tasks run in.")
TIME = typer.Option(None, "--time", help="With --slurm: time limit per task, so per trial (e.g. 2:00:00).")
GPUS = typer.Option(None, "--gpus", help="With --slurm: GPUs per task (1, a100:2).")
CPUS = typer.Option(None, "--cpus", help="With --slurm: CPUs per task.")
MEM = typer.Option(None, "--mem", help="With --slurm: memory per task (16G).")
ARRAY_PARALLEL = typer.Option(None, "--array-parallel", help="With --slurm: at most K tasks at once (%K).")


def submit_and_report(proj: Any, experiments: list[str], options: Any, slurm: Any, max_attempts: int | None,
                      as_json: bool) -> None:
    """Queue the trials and submit the arrays (:func:`tracker.slurm.submit.submit_run`); say what was submitted."""
    from tracker.slurm.submit import submit_run

    result = submit_run(proj, experiments, options, slurm, max_attempts=max_attempts)
    plan = result.plan
    shape = (f"{len(plan.arrays)} array(s) of {', '.join(map(str, plan.arrays))} task(s), "
             f"{plan.trials_per_task} trial(s) per task") if plan and plan.arrays else "no array"
    if options.dry_run:
        if as_json:
            emit_json({"trials": [{"experiment": s.experiment, "seed": s.seed, "params": s.params}
                                  for s in result.specs], "skipped": [t.id for t in result.skipped],
                       "arrays": plan.arrays if plan else [], "trials_per_task": plan.trials_per_task if plan else 1,
                       "limits": list(result.notes)})
            return
        emit_table([(i + 1, s.experiment, s.seed, fmt_params(s.params)) for i, s in enumerate(result.specs)],
                   ["#", "experiment", "seed", "params"],
                   title=f"{len(result.specs)} trials would run as {shape}, {len(result.skipped)} skipped")
        info("cluster limits: " + "; ".join(result.notes))
        return
    if as_json:
        emit_json({"run_id": result.run_id, "queue": result.queue,
                   "arrays": [{"job_id": j, "tasks": n} for j, n in result.arrays],
                   "trials_per_task": plan.trials_per_task if plan else 1,
                   "queued": [t.summary() for t in result.trials], "skipped": [t.id for t in result.skipped]})
        return
    if result.skipped:
        info(f"skipped {len(result.skipped)} trial(s) already completed, queued or running with the same params, "
             "seed, code and settings (--rerun runs them again)")
    if not result.arrays:
        info("nothing submitted")
        return
    info(f"submitted {len(result.trials)} trial(s) of run {result.run_id} as SLURM array job(s) "
         + ", ".join(f"{j} ({n} task{'s' if n > 1 else ''})" for j, n in result.arrays)
         + f", {plan.trials_per_task if plan else 1} trial(s) per task; queue {result.queue}")
    info(f"follow them with 'tracker queue status -Q {result.queue}'; task output in {result.directory}")
    typer.echo(" ".join(j for j, _ in result.arrays))
