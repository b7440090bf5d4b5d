"""The driver: one loop that runs, stops, watches and ends trials through any executor.

It is fed queued trials one at a time (a list, or a generator such as a search
that suggests its next trial when a slot frees), starts each through the
executor's ``submit``, and then every poll:

- streams what each trial printed or logged into the store (live metrics), and
  offers every intermediate value to the optional pruner, which may answer
  "stop" (the trial then ends ``pruned`` at that step);
- acts on stop requests recorded in the store (``tracker trials stop`` from any
  shell or machine);
- renews the heartbeat of every trial it owns, queued or running;
- ends exited trials with their final status, metrics and artifacts in one
  transaction.

With ``max_failures`` K, a run whose trials keep failing the same way (same exit code,
same last line of stderr) before any trial completed starts no more trials after the
K-th such failure: the ones not started end ``cancelled`` with the reason, so a typo in
a param name does not run every doomed trial.

Ctrl-C, SIGTERM or an error stop every running trial (TERM, KILL after the grace
period) and cancel the queued ones, so nothing stays queued or running.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tracker import experiments
from tracker.config import ExperimentConfig
from tracker.errors import NotFoundError, TrackerError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Job, Poll, Reporter
from tracker.execution.live import LiveOutput, gc_paused
from tracker.project import Project
from tracker.store import MetricPoint, Trial, now

Pruner = Callable[[Trial, MetricPoint], bool]
"""Called with each intermediate value (a point with a step) of a running trial; True stops it as pruned."""

POLL_SECONDS = 0.5  # how often running trials are polled (a local trial's exit wakes the loop at once)
PRUNE_POLL_SECONDS = 0.1  # with a pruner: a trial runs on at most this long after the value that stops it
STOP_CHECK_SECONDS = 1.0  # how often the store is asked for stop requests


@dataclass
class _Running:
    trial: Trial
    config: ExperimentConfig
    live: LiveOutput
    started: float = field(default_factory=time.monotonic)
    stopping: bool = False
    pid: int | None = None
    fresh: bool = False  # adopted: its first metrics replace what an earlier owner stored
    fault: str | None = None  # tracker's own I/O failed for this trial (disk full): it is stopped, then failed


class Driver:
    """Runs trials through ``executor``; see the module docstring."""

    def __init__(self, project: Project, executor: BaseExecutor, reporter: Reporter | None = None, *,
                 pruner: Pruner | None = None, max_failures: int = 0,
                 on_end: Callable[[Trial], None] | None = None, owner: dict[str, Any] | None = None,
                 config_of: Callable[[Trial], ExperimentConfig] | None = None) -> None:
        self.project = project
        self.store = project.store
        self.executor = executor
        self.reporter = reporter or Reporter()
        self.pruner = pruner
        self.on_end = on_end  # told of every trial that reached its final status (a search tells its study)
        self.poll = PRUNE_POLL_SECONDS if pruner else POLL_SECONDS
        self.lease = project.config.defaults.lease
        self.grace = project.config.defaults.grace
        self.owner = owner or lifecycle.owner()  # a worker adds its id
        self.config_of = config_of  # where a trial's settings come from (default: its experiment file)
        self.interrupt_reason = "cancelled"  # the stop request Ctrl-C or SIGTERM records on running trials
        self.running: dict[str, _Running] = {}
        self.owned: set[str] = set()
        self._configs: dict[str, ExperimentConfig] = {}
        self._beating = False
        self._next_stop_check = 0.0
        self.max_failures = max_failures  # 0: never stop early
        self._failures: dict[tuple[int | None, str], int] = {}
        self._completed = False
        self.stopped: str | None = None  # why the run started no more trials (too many identical failures)
        self._told_missing: set[str] = set()  # experiments whose missing objective was reported

    # ------------------------------------------------------------------ feeding

    def claim(self, trials: Iterable[Trial]) -> None:
        """Own these queued trials from now on (heartbeats; cancelled if this run dies)."""
        trials = list(trials)
        for trial in trials:
            if trial.owner != self.owner or trial.lease != self.lease:
                self.store.update(trial.id, owner=self.owner, lease=self.lease)
        ids = [t.id for t in trials]
        self.owned.update(ids)
        self.store.heartbeat(ids)

    @contextlib.contextmanager
    def heartbeats(self) -> Iterator[None]:
        """Renew the heartbeat of every owned trial every ``min(lease/4, 15)`` s while the block runs.

        A thread of its own, so a long code sync, environment build or slow poll never lets
        a live run's trials expire; it stops with the process (kill -9, SIGSTOP), as it should.
        """
        if self._beating:  # already beating (nested)
            yield
            return

        def beat() -> None:
            ids = tuple(self.owned)
            if ids:
                self.store.heartbeat(ids)

        self._beating = True
        try:
            with lifecycle.renewing(min(self.lease / 4, 15.0), beat, "tracker-heartbeat"):
                yield
        finally:
            self._beating = False

    def run(self, feed: Iterable[Trial | None]) -> None:
        """Run every trial ``feed`` yields (``None``: nothing now, ask again when a trial ends)."""
        with self.heartbeats():
            self._run(iter(feed))

    def _run(self, source: Iterator[Trial | None]) -> None:
        more = True
        try:
            while True:
                while more and not self.stopped and len(self.running) < self.executor.capacity:
                    try:
                        trial = next(source)
                    except StopIteration:
                        more = False
                        break
                    if trial is None:
                        break
                    self._start(trial)
                if not self.running:
                    if not more or self.stopped or self.executor.capacity == 0:
                        break
                    if not self._waiting_feed(source):
                        break
                    continue
                self.executor.wait(self.poll)
                self.tick()
            if more and not self.stopped and self.executor.capacity == 0:
                self._fail_rest(source, "no executor slot left to run it (every host failed)")
        except BaseException:
            self._stop_all(self.interrupt_reason)
            raise
        finally:
            self.end_queued(f"not started: {self.stopped}" if self.stopped
                            else "cancelled before it started")
            self.executor.close()

    def drive(self, trials: list[Trial]) -> list[Trial]:
        """Prepare the executor for a fixed list of queued trials, run them to their end; return them as stored.

        If the executor cannot get ready (a host key unknown or changed, no host reachable, a
        failed environment set-up), nothing is started: the trials end ``cancelled`` with the reason.
        """
        self.reporter.planned(len(trials))
        self.prepare(trials)
        self.run(trials)
        return self.store.list_trials(ids=[t.id for t in trials])

    def prepare(self, trials: list[Trial]) -> None:
        """Own these queued trials and get the executor ready for them (and for more like them).

        If it cannot get ready, the owned trials end ``cancelled`` with the reason and the error is raised.
        """
        self.claim(trials)
        try:
            with self.heartbeats():
                self.executor.prepare([Job(t, self.config(t), self.grace) for t in trials], self.reporter)
        except TrackerError as exc:
            self.end_queued(f"not started: {exc}")
            self.executor.close()
            raise
        except BaseException:
            self.end_queued("cancelled before it started")
            self.executor.close()
            raise

    def _waiting_feed(self, source: Iterator[Trial | None]) -> bool:
        """Nothing runs and the feed had nothing: one more ask; False when it still has nothing."""
        try:
            trial = next(source)
        except StopIteration:
            return False
        if trial is None:
            return False
        self._start(trial)
        return True

    # ------------------------------------------------------------------ one trial

    def config(self, trial: Trial) -> ExperimentConfig:
        if self.config_of is not None:
            return self.config_of(trial)
        if trial.experiment not in self._configs:
            try:
                self._configs[trial.experiment] = experiments.load(self.project, trial.experiment)
            except NotFoundError:
                self._configs[trial.experiment] = ExperimentConfig(command=trial.command or ["?"])
        return self._configs[trial.experiment]

    def _start(self, trial: Trial) -> None:
        """Submit a queued trial, or one this driver's owner claimed from a queue (already ``running``)."""
        claimed = trial.status == "running" and trial.owner == self.owner
        if claimed:
            self.owned.add(trial.id)
        elif trial.id not in self.owned:
            self.claim([trial])
        config = self.config(trial)
        try:
            handle = self.executor.submit(Job(trial, config, self.grace), self.reporter)
        except (TrackerError, OSError) as exc:
            if self.store.transition(trial.id, "failed", expected=[trial.status], finished=now(),
                                     error=f"could not start: {exc}"):
                failed = self.store.get(trial.id)
                self.reporter.finished(failed)
                self._count(failed)
            self.owned.discard(trial.id)
            return
        fields = {"executor": self.executor.name, "host": handle.get("host") or socket.gethostname(),
                  "handle": handle, "owner": self.owner, "lease": self.lease, "pid": None}
        if claimed:  # its claim made it running and ours: record where it runs
            self.store.update(trial.id, started=now(), **fields)
            started = True
        else:
            started = self.store.transition(trial.id, "running", expected=["queued"], started=now(),
                                            heartbeat=time.time(), **fields)
        if not started:  # cancelled or taken meanwhile: undo the start
            self.executor.stop(trial, 0)
            self.executor.release(trial)
            self.owned.discard(trial.id)
            return
        current = self.store.get(trial.id)
        live = LiveOutput(self.project.paths.trial_dir(trial.id), trial.phase, bool(config.phases),
                          config.output_scalars)
        self.running[trial.id] = _Running(current, config, live)
        self.reporter.started(current)

    def adopt(self, trial: Trial, *, claim: bool = True) -> None:
        """Watch a trial that is already running (re-attach, or a stop whose owner is gone).

        With ``claim`` this process becomes its owner (heartbeats); without, it only looks.
        """
        if claim:
            self.claim([trial])
            trial = self.store.get(trial.id)
        config = self.config(trial)
        live = LiveOutput(self.project.paths.trial_dir(trial.id), trial.phase, bool(config.phases),
                          config.output_scalars)
        self.running[trial.id] = _Running(trial, config, live, fresh=True)

    # ------------------------------------------------------------------ every poll

    def tick(self) -> None:
        """Poll every running trial once: output, metrics, pruning, stop requests, ends."""
        clock = time.monotonic()
        if clock >= self._next_stop_check:
            self._check_stop_requests()
            self._next_stop_check = clock + STOP_CHECK_SECONDS
        for run in list(self.running.values()):
            try:
                poll = self.executor.poll(run.trial)
                if poll.state == "running":
                    if poll.pid and poll.pid != run.pid:
                        run.pid = poll.pid
                        self.store.update(run.trial.id, pid=poll.pid)
                    self._stream(run)
                    continue
            except OSError as exc:  # our own write failed (a full disk): stop the trial, fail it
                if run.fault is None:
                    run.fault = lifecycle.io_fault(exc)
                    run.stopping = True
                    self.executor.stop(run.trial, self.grace)
                continue
            self._end(run, poll)

    def _stream(self, run: _Running, final: bool = False) -> list[MetricPoint]:
        with gc_paused():  # a burst of output is many small objects and no cycles
            printed, points = run.live.read(final)
            for stream, line in printed:
                self.reporter.output(run.trial, stream, line)
            if final:
                return points
            if points or run.fresh:
                self.store.append_metrics(run.trial.id, points, replace=run.fresh)
                run.fresh = False
        if self.pruner and not run.stopping:
            for point in points:
                if point.step is not None and self.pruner(run.trial, point):
                    self.request_stop(run, f"pruned at step {point.step}")
                    break
        return []

    def request_stop(self, run: _Running, reason: str) -> None:
        """Record why, then ask the executor to stop the trial (it ends when its process does).

        A trial whose process has already exited is left alone: the next poll ends it from its
        exit, so a stop (a prune of its configuration) never discards a finished trial's result.
        """
        if self.executor.poll(run.trial).state != "running":
            return
        self.store.request_stop(run.trial.id, reason)
        run.stopping = True
        self.executor.stop(run.trial, self.grace)

    def _check_stop_requests(self) -> None:
        if not self.running:
            return
        for trial in self.store.list_trials(ids=list(self.running)):
            run = self.running[trial.id]
            if trial.stop_requested and not run.stopping:
                run.stopping = True
                self.executor.stop(trial, self.grace)

    def _end(self, run: _Running, poll: Poll) -> None:
        trial = run.trial
        try:
            self.executor.collect(trial)
        except TrackerError as exc:
            self.reporter.message(f"{trial.id}: could not bring all outputs home: {exc}")
        try:
            points = self._stream(run, final=True)
        except OSError as exc:
            points, run.fault = [], run.fault or lifecycle.io_fault(exc)
        points += self._event_files(run, {p.name for p in points})
        outcome = lifecycle.Outcome(poll.exit_code, run.fault or poll.reason,
                                    poll.detail if poll.state == "gone" and not run.fault else None,
                                    run.config.timeout)
        with gc_paused():  # the last burst of points, stored in one transaction
            final = lifecycle.finalize(self.project, run.config, trial.id, outcome, points, replace_metrics=run.fresh,
                                       duration=poll.duration if poll.duration is not None else
                                       lifecycle.elapsed(run.started), pid=poll.pid or run.pid)
        self.executor.release(trial)
        del self.running[trial.id]
        self.owned.discard(trial.id)
        self.reporter.finished(final)
        self._missing_objective(final, run.config)
        self._count(final)

    def _event_files(self, run: _Running, printed: set[str]) -> list[MetricPoint]:
        """The scalars of the TensorBoard event files the trial wrote (``tensorboard:`` in its experiment)."""
        setting = run.config.tensorboard
        if setting is False:
            return []
        from tracker.execution import tensorboard

        root = self.project.paths.trial_dir(run.trial.id)
        root = root / setting if isinstance(setting, str) else root
        if not tensorboard.event_dirs(root):
            return []
        seen = printed | set(self.store.get(run.trial.id).metrics)  # what its output reported wins
        try:
            return tensorboard.scalars(root, run.trial.phase, bool(run.config.phases), seen)
        except (TrackerError, OSError) as exc:  # the trial's result stands without them
            self.reporter.message(f"{run.trial.id}: its TensorBoard event files were not read: {exc}")
            return []

    def _missing_objective(self, trial: Trial, config: ExperimentConfig) -> None:
        """Say once per experiment when a completed trial never reported the objective."""
        metric = config.objective.metric if config.objective else None
        if (metric is None or trial.status != "completed" or trial.phase == "test" or metric in trial.metrics
                or trial.experiment in self._told_missing):
            return
        self._told_missing.add(trial.experiment)
        seen = ", ".join(sorted(trial.metrics)) or "none"
        self.reporter.message(f"{trial.id}: the objective {metric} never appeared in its output (metrics seen: "
                              f"{seen}); docs/guide.md, 'How tracker captures metrics', lists what is read")

    def _count(self, trial: Trial) -> None:
        """Tell ``on_end``; count an ended trial towards ``max_failures``, stop starting trials when it is reached."""
        if self.on_end:
            self.on_end(trial)
        if trial.status == "completed":
            self._completed = True
        if trial.status != "failed" or self._completed or not self.max_failures or self.stopped:
            return
        signature = lifecycle.failure_signature(self.project, trial)
        n = self._failures[signature] = self._failures.get(signature, 0) + 1
        if n >= self.max_failures:
            line = lifecycle.last_error_line(self.project, trial) or "no output"
            self.stopped = (f"{n} trials failed the same way (exit code {trial.exit_code}: {line}) and none "
                            "completed, so no more were started (--max-failures 0 runs them all)")
            self.reporter.message(f"stopping early: {self.stopped}")

    # ------------------------------------------------------------------ the end of a run

    def _stop_all(self, reason: str) -> None:
        """Stop every running trial and wait (grace period + a margin) for each to end."""
        for run in self.running.values():
            if not run.stopping:
                self.store.request_stop(run.trial.id, reason)
                run.stopping = True
                try:
                    self.executor.stop(run.trial, self.grace)
                except TrackerError as exc:
                    self.reporter.message(f"{run.trial.id}: could not be stopped: {exc}")
        deadline = time.monotonic() + self.grace + 10
        while self.running and time.monotonic() < deadline:
            try:
                self.executor.wait(0.2)
                self.tick()
            except TrackerError as exc:
                self.reporter.message(f"while stopping: {exc}")
                break
        for run in list(self.running.values()):  # did not end in time: nobody will watch it now
            lifecycle.finalize(self.project, run.config, run.trial.id,
                               lifecycle.Outcome(None, gone="it did not end after being stopped"),
                               self._stream(run, final=True))
            self.executor.release(run.trial)
            del self.running[run.trial.id]

    def end_queued(self, reason: str) -> None:
        """Cancel the owned trials that never started, with ``reason``."""
        lifecycle.cancel_unstarted(self.store, sorted(self.owned - set(self.running)), reason)
        self.owned -= self.owned - set(self.running)

    def _fail_rest(self, source: Iterator[Trial | None], reason: str) -> None:
        for trial in source:
            if trial is not None:
                self.store.transition(trial.id, "failed", expected=["queued"], finished=now(), error=reason)


def adopt_and_stop(project: Project, trial: Trial) -> Trial:
    """Stop a running trial nobody drives any more, through its own executor, and end it."""
    from tracker.execution.registry import open_executor

    driver = Driver(project, open_executor(project, trial.executor))
    driver.adopt(trial)
    driver.request_stop(driver.running[trial.id], trial.stop_requested or "cancelled by the user")
    driver.run([])
    return project.store.get(trial.id)


def drive(project: Project, executor: BaseExecutor, trials: list[Trial], reporter: Reporter | None = None,
          **options: Any) -> list[Trial]:
    """Run a fixed list of queued trials to their end; return them as stored."""
    return Driver(project, executor, reporter, **options).drive(trials)
