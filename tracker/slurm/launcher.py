"""SLURM as a target type (``type: slurm``, ``--slurm``): the launcher over tracker.slurm's modules.

``launch`` is :func:`~tracker.slurm.submit.submit_run`; the questions about a trial's job are
:mod:`~tracker.slurm.control`'s, those of a worker inside a task :mod:`~tracker.slurm.task`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracker.execution.targets import BaseLauncher, Launched
from tracker.slurm import control, submit, task

if TYPE_CHECKING:
    from tracker.execution.base import Reporter
    from tracker.runs import RunOptions
    from tracker.store import Trial


class SlurmLauncher(BaseLauncher):
    """Job arrays of ``tracker worker`` tasks (docs/slurm.md)."""

    name = "slurm"
    options = submit.SlurmOptions

    def launch(self, names: Sequence[str], run: RunOptions, *, max_attempts: int | None = None,
               reporter: Reporter | None = None) -> Launched:
        assert isinstance(self.settings, submit.SlurmOptions)
        result = submit.submit_run(self.project, names, run, self.settings, max_attempts=max_attempts,
                                   reporter=reporter)
        plan = result.plan
        per = plan.trials_per_task if plan else 1
        if run.dry_run:
            shape = (f"{len(plan.arrays)} array(s) of {', '.join(map(str, plan.arrays))} task(s), {per} trial(s) "
                     "per task") if plan and plan.arrays else "no array"
            return Launched(result.run_id, result.queue, result.trials, result.skipped, result.specs,
                            plan={"arrays": plan.arrays if plan else [], "trials_per_task": per,
                                  "limits": list(result.notes)},
                            summary=shape, notes=("cluster limits: " + "; ".join(result.notes),))
        jobs = ", ".join(f"{j} ({n} task{'s' if n > 1 else ''})" for j, n in result.arrays)
        return Launched(result.run_id, result.queue, result.trials, result.skipped, result.specs, result.arrays,
                        plan={"arrays": [{"job_id": j, "tasks": n} for j, n in result.arrays],
                              "trials_per_task": per},
                        summary=f"SLURM array job(s) {jobs}, {per} trial(s) per task", directory=result.directory,
                        follow=f"follow them with 'tracker queue status -Q {result.queue}'; task output in "
                               f"{result.directory}")

    def job(self, trial: Trial) -> str | None:
        ids = trial.handle.get("slurm") or {}
        if "array_task_id" in ids:
            return f"task {ids['array_job_id']}_{ids['array_task_id']}"
        return f"job {ids['job_id']}" if ids.get("job_id") else None

    def state(self, trial: Trial) -> str | None:
        return control.state(self.project, trial)

    def stop(self, trial: Trial) -> bool:
        return control.stop_task(self.project, trial)

    def cancelled(self, trial: Trial) -> None:
        if trial.queue:
            control.trim(self.project, trial.queue)

    @classmethod
    def current_job(cls) -> dict[str, Any] | None:
        return task.describe() if os.environ.get("SLURM_JOB_ID") else None

    def trial_ended(self, trial: Trial) -> None:
        task.collect_log(self.project, trial.id)

    def requeued(self, trial_ids: Sequence[str]) -> list[str]:
        return task.after_requeue(self.project, trial_ids)
