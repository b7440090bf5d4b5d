"""``tracker worker``: claim queued trials from the store and run them on this machine.

A worker registers itself in the store, then loops: it claims the oldest queued trial of
its queue (atomically, so two workers never get the same one), gets its code ready, and
runs it through the same driver and local executor as ``tracker run`` (live metrics,
stop requests, timeouts, deliverables), ``slots`` at a time. While it runs trials it
renews their heartbeat and its own; a worker that dies (kill -9, a machine gone) stops
renewing, so its trials become ``lost`` after their lease and go back to the queue
while they have attempts left, with the error kept on the trial.

The code: a trial made on the commit (and uncommitted patch) this checkout has runs here;
one made on other code runs in a work tree of its own, ``.tracker/worktrees/COMMIT-PATCH``,
exported from its commit with its patch applied (both from the store). A commit this
checkout does not have is refused with the fix (``git fetch``). The experiment's settings
come from the store as the submitter resolved them.

Ctrl-C or SIGTERM (a SLURM preemption) stops the running trials and puts them back in the
queue; a trial stopped by ``tracker trials stop`` ends ``cancelled``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker import experiments, gitinfo, venvs
from tracker.config import ExperimentConfig
from tracker.errors import GitError, TrackerError, UsageError
from tracker.execution import lifecycle
from tracker.execution.base import Reporter
from tracker.execution.driver import Driver
from tracker.execution.launch import build
from tracker.execution.local import LocalExecutor
from tracker.execution.targets import launcher_here
from tracker.launch import record_environment, sigterm_as_interrupt
from tracker.names import check_name
from tracker.project import Project
from tracker.queue.submit import DEFAULT_QUEUE
from tracker.store import Trial, Worker, now

STOPPED = "the worker running it stopped (Ctrl-C, SIGTERM or a SLURM preemption)"
"""The stop request a worker records on its running trials when it is stopped: they are requeued."""
WORKTREES = "worktrees"


@dataclass(frozen=True)
class WorkerOptions:
    """What ``tracker worker`` was asked to do."""

    queue: str = DEFAULT_QUEUE
    slots: int = 1  # trials at a time
    max_trials: int | None = None  # exit after claiming this many
    idle_exit: float | None = None  # exit after this many seconds with nothing to do (0: once the queue is empty)
    poll: float = 1.0  # seconds between looks at an empty queue


@dataclass(frozen=True)
class WorkerResult:
    """What a worker did: the trials it claimed (in order) and those it put back when stopped."""

    worker_id: str
    trials: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)


class WorkerExecutor(LocalExecutor):
    """The local executor, running each trial in the checkout its code is in, with the worker in its handle."""

    def __init__(self, project: Project, code_dirs: dict[str, Path], handle: dict[str, Any], **options: Any) -> None:
        super().__init__(project, **options)
        self.code_dirs = code_dirs
        self.handle = handle

    def code_dir(self, trial: Trial) -> Path:
        return self.code_dirs.get(trial.id, self.project.root)

    def submit(self, job: Any, reporter: Reporter) -> dict[str, Any]:
        return {**super().submit(job, reporter), **self.handle}


class _Code:
    """The checkout each claimed trial runs in (this one, or a work tree of the trial's own code)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        here = gitinfo.capture(project.root, project.config.code)
        self.commit = here.commit
        self.patch = hashlib.sha256(here.patch).hexdigest() if here.dirty and here.patch else None

    def directory(self, trial: Trial) -> Path:
        wanted = trial.extra.get("patch_sha256")
        if trial.commit == self.commit and wanted == self.patch:
            return self.project.root
        if not trial.commit:
            raise UsageError(f"trial {trial.id} records no commit, so no worker can check its code out")
        dest = self.project.paths.state / WORKTREES / f"{trial.commit[:12]}-{(wanted or 'clean')[:12]}"
        if dest.is_dir():
            return dest
        store = self.project.store
        patch = store.blob(wanted) if wanted else b""
        if wanted and patch is None:
            raise UsageError(f"the code patch of trial {trial.id} is missing from the store")
        scratch = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        patch_file = scratch.with_suffix(".patch")
        try:
            scratch.parent.mkdir(parents=True, exist_ok=True)
            patch_file.write_bytes(patch or b"")
            try:
                gitinfo.checkout(self.project.root, scratch, trial.commit, trial.snapshot if wanted else None,
                                 patch_file if wanted else None)
            except GitError as exc:
                raise GitError(f"this worker cannot run trial {trial.id}: {exc.message}",
                               hint=f"run 'git fetch' in {self.project.root} (the trial was made on "
                                    f"{trial.commit[:12]}{' + a patch' if wanted else ''})") from exc
            with contextlib.suppress(OSError):  # another worker of this checkout made it first: use theirs
                scratch.rename(dest)
        finally:
            patch_file.unlink(missing_ok=True)
            shutil.rmtree(scratch, ignore_errors=True)
        return dest


class _Worker:
    """One ``tracker worker`` run (see the module docstring)."""

    def __init__(self, project: Project, options: WorkerOptions, reporter: Reporter) -> None:
        self.project = project
        self.store = project.store
        self.options = options
        self.reporter = reporter
        self.id = uuid.uuid4().hex[:12]
        self.owner = {**lifecycle.owner(), "worker": self.id}
        self.code = _Code(project)
        self.venv = venvs.prepare(project, reporter)
        self.code_dirs: dict[str, Path] = {}
        self.configs: dict[str, ExperimentConfig] = {}
        self.env_ids: dict[tuple[str, ...], str] = {}
        self.claimed: list[str] = []
        self.done = 0
        self.backend, self.job = launcher_here(project) or (None, {})
        self.in_job = {self.backend.name: self.job} if self.backend else {}  # e.g. {"slurm": {"job_id": ...}}
        handle = {"worker": self.id, "queue": options.queue, **self.in_job}
        executor = WorkerExecutor(project, self.code_dirs, handle, parallel=options.slots, venv=self.venv)
        self.driver = Driver(project, executor, reporter, owner=self.owner, config_of=self.config_of,
                             on_end=self._ended)
        self.driver.interrupt_reason = STOPPED

    # ------------------------------------------------------------------ a trial's code and settings

    def config_of(self, trial: Trial) -> ExperimentConfig:
        """The experiment settings the trial was submitted with (kept in the store), else its file here."""
        sha = trial.extra.get("config_sha256")
        key = sha or f"file:{trial.experiment}"
        if key not in self.configs:
            data = self.store.blob(sha) if sha else None
            self.configs[key] = (ExperimentConfig.model_validate(json.loads(data)) if data is not None
                                 else experiments.load(self.project, trial.experiment))
        return self.configs[key]

    def _ready(self, trial: Trial) -> None:
        """Get a claimed trial's code, directory and environment record ready on this machine."""
        from tracker.trials import clear_outputs

        root = self.code.directory(trial)
        config = self.config_of(trial)
        directory = self.project.paths.trial_dir(trial.id)
        clear_outputs(directory)  # an earlier attempt on this machine
        sha = trial.extra.get("patch_sha256")
        patch = (self.store.blob(sha) or b"") if sha else b""
        lifecycle.prepare_dir(self.project, trial, patch, build(trial, config, directory, root))
        self.code_dirs[trial.id] = root
        argv = tuple(config.command_argv())
        if argv not in self.env_ids:
            self.env_ids[argv] = record_environment(self.project, list(argv), self.venv)
        if trial.env_id != self.env_ids[argv]:
            self.store.update(trial.id, env_id=self.env_ids[argv])

    # ------------------------------------------------------------------ the loop

    def feed(self) -> Iterator[Trial | None]:
        """Claimed trials for the driver: the next one whenever a slot is free; waits while idle."""
        options = self.options
        idle_since = time.monotonic()
        next_expiry = 0.0
        while options.max_trials is None or len(self.claimed) < options.max_trials:
            clock = time.monotonic()
            if clock >= next_expiry:  # trials of dead workers go back to the queue (any worker does this)
                self.expire()
                next_expiry = clock + min(self.driver.lease / 2, 10.0)
            got = self.store.claim(options.queue, self.owner, lease=self.driver.lease)
            if got:
                trial = got[0]
                self.claimed.append(trial.id)
                try:
                    self._ready(trial)
                except (TrackerError, OSError) as exc:
                    self.store.transition(trial.id, "failed", expected=["running"], finished=now(),
                                          error=f"could not start on {socket.gethostname()}: {exc}")
                    self.store.requeue(trial.id, expected=["failed"])  # another worker may have its code
                    raise
                idle_since = time.monotonic()
                yield trial  # as claimed: running, ours
                continue
            if self._search():
                continue  # a distributed optimization queued its next configuration: claim a seed of it
            if self.driver.running:
                idle_since = time.monotonic()
                yield None  # the driver polls its trials and asks again
                continue
            if options.idle_exit is not None and time.monotonic() - idle_since >= options.idle_exit:
                return
            time.sleep(options.poll)

    def _search(self) -> bool:
        """Nothing queued: ask the optimizations this queue serves for their next configuration."""
        from tracker.search import distributed

        return any(distributed.ask(self.project, record)
                   for record in distributed.searches(self.project, self.options.queue))

    def expire(self) -> None:
        """Expire trials whose owner's lease ran out, and at once those of a dead worker of this machine."""
        self.store.expire()
        dead = [t.id for t in self.store.list_trials(status=["running"], queue=self.options.queue)
                if t.owner.get("worker") != self.id and lifecycle.owner_dead(t.owner)]
        if dead:
            self.store.expire(at=float("inf"), ids=dead, reason="the worker running this trial died")

    def _ended(self, trial: Trial) -> None:
        self.done += 1
        self.code_dirs.pop(trial.id, None)
        target = trial.extra.get("backup_to") or self.config_of(trial).backup
        if target and trial.status == "completed":  # as 'tracker run' does: --backup-to, else the experiment's
            from tracker.storage.backup import backup_completed

            backup_completed(self.project, target, [trial], self.reporter)
        if trial.extra.get("optimization"):
            from tracker.search import distributed

            distributed.settle(self.project, trial)
        if self.backend:
            with contextlib.suppress(OSError, TrackerError):
                self.backend.trial_ended(trial)

    @contextlib.contextmanager
    def registered(self) -> Iterator[None]:
        """Be listed in the store (``tracker queue status``) with a heartbeat, until the block ends."""
        lease = self.driver.lease
        self.store.register_worker(Worker(
            self.id, self.options.queue, socket.gethostname(), os.getpid(), self.options.slots, now(), time.time(),
            lease, info={"commit": self.code.commit, "root": str(self.project.root), "python": sys.version.split()[0],
                         **self.in_job}))
        try:
            with lifecycle.renewing(min(lease / 4, 15.0), lambda: self.store.worker_beat(
                    self.id, running=list(self.driver.running), done=self.done), "tracker-worker-heartbeat"):
                yield
        finally:
            with contextlib.suppress(TrackerError):
                self.store.worker_beat(self.id, running=[], done=self.done)
                self.store.end_worker(self.id)

    def run(self) -> WorkerResult:
        requeued: list[str] = []
        with self.registered():
            try:
                with sigterm_as_interrupt():
                    self.driver.run(self.feed())
            except KeyboardInterrupt:
                requeued = self.requeue_stopped()
                if self.backend and requeued:
                    self.backend.requeued(requeued)
            except BaseException:
                self.requeue_stopped()
                raise
        return WorkerResult(self.id, list(self.claimed), requeued)

    def requeue_stopped(self) -> list[str]:
        """Put back in the queue the trials this worker stopped because it was stopped itself."""
        back = []
        for trial in self.store.list_trials(ids=self.claimed, status=["cancelled", "lost"]):
            if trial.stop_requested == STOPPED and self.store.requeue(trial.id):
                back.append(trial.id)
        return back


def run_worker(project: Project, options: WorkerOptions, reporter: Reporter | None = None) -> WorkerResult:
    """Claim and run queued trials of ``options.queue`` until told to stop; see the module docstring."""
    check_name("queue", options.queue)
    if options.slots < 1:
        raise UsageError(f"--slots must be at least 1, got {options.slots}")
    if options.max_trials is not None and options.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {options.max_trials}")
    if options.idle_exit is not None and options.idle_exit < 0:
        raise UsageError(f"--idle-exit must be 0 or more seconds, got {options.idle_exit:g}")
    return _Worker(project, options, reporter or Reporter()).run()
