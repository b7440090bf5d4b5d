"""``tracker run --queue`` / ``tracker queue submit``: put a run's trials in a queue for workers.

The trials are planned exactly as ``tracker run`` plans them (the same seeds, grid and
checks, and completed ones skipped unless ``rerun``), then written as ``queued`` rows of
``queue`` that nobody owns: a waiting trial never expires, and any ``tracker worker`` of
that queue, on any machine that reaches the store, may claim it. Trials of the same
code, params and seed already waiting or running in a queue are not queued twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tracker.errors import UsageError
from tracker.execution.base import Reporter
from tracker.experiments import TrialSpec
from tracker.launch import Launcher
from tracker.names import check_name
from tracker.project import Project
from tracker.runs import RunOptions, keep_specs, plan
from tracker.store import Trial

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class SubmitResult:
    """What a submission queued, and what it left out (completed, or already waiting in a queue)."""

    run_id: str | None
    queue: str
    specs: list[TrialSpec]
    trials: list[Trial]
    skipped: list[Trial] = field(default_factory=list)
    dry_run: bool = False


def submit(project: Project, names: Sequence[str], options: RunOptions, *, queue: str = DEFAULT_QUEUE,
           max_attempts: int | None = None, reporter: Reporter | None = None,
           executor: str = "queue") -> SubmitResult:
    """Queue the trials of experiments ``names`` as ``options`` say; see the module docstring.

    ``executor`` is recorded on the trials: the launcher that starts their workers (``slurm``), if any.

    ``max_attempts`` (default: tracker.yaml ``queue.max_attempts``) bounds how often a trial
    lost by its worker is claimed again.
    """
    reporter = reporter or Reporter()
    check_name("queue", queue)
    if options.remote or options.target or options.parallel:
        flag = "--remote" if options.remote else "--target" if options.target else "--parallel"
        raise UsageError(f"{flag} does not apply to queued trials: workers run them",
                         hint="start 'tracker worker --slots N' where they should run")
    attempts = project.config.queue.max_attempts if max_attempts is None else max_attempts
    if attempts < 1:
        raise UsageError(f"--max-attempts must be at least 1, got {attempts}")
    planned = plan(project, names, options, reporter)
    specs, prints, skipped = planned.specs, planned.prints, list(planned.skipped)
    if planned.code is not None and not options.rerun and specs:
        waiting = {t.extra["fingerprint"]: t for t in project.store.list_trials(
            fingerprints=[p for p in prints if p], status=["queued", "running"]) if t.queue}
        skipped += [waiting[p] for p in prints if p in waiting]
        specs, prints = keep_specs(specs, prints, waiting)
    if options.dry_run or not specs:
        return SubmitResult(None, queue, specs, [], skipped, dry_run=options.dry_run)
    assert planned.code is not None
    start = Launcher(project, reporter, queue=queue, max_attempts=attempts, queued_as=executor)
    env_ids = start.record(planned.configs)
    trials = start.create(specs, planned.configs, planned.code, env_ids, options.tags, prints=prints,
                          extra={"backup_to": options.backup_to} if options.backup_to else None)
    return SubmitResult(trials[0].run_id, queue, specs, trials, skipped)
