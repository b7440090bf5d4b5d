"""Run trials as local subprocesses, ``parallel`` at a time.

Each trial runs in its own process group (so Ctrl-C stops its children too),
its stdout/stderr are written to the trial directory and streamed to the
reporter line by line. Ctrl-C / SIGTERM: running trials are stopped and marked
cancelled, trials not yet started are marked cancelled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import IO

from tracker.errors import ExecutionError
from tracker.execution import lifecycle, outputs
from tracker.execution.base import BaseExecutor, Batch, Reporter
from tracker.execution.launch import build
from tracker.store import Trial, now

GRACE_SECONDS = 5.0


class LocalExecutor(BaseExecutor):
    """Runs trials on this machine."""

    name = "local"

    def __init__(self, parallel: int = 1) -> None:
        if parallel < 1:
            raise ExecutionError(f"--parallel must be at least 1, got {parallel}")
        self.parallel = parallel
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def run(self, batch: Batch, reporter: Reporter) -> None:
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="trial")
        futures: dict[Future[None], Trial] = {}
        try:
            for trial in batch.trials:
                futures[pool.submit(self._run_one, batch, trial, reporter)] = trial
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()
        except BaseException:
            batch.cancel.set()
            self._stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            for trial in batch.trials:  # never started: cancelled, re-runnable with 'trials reset'
                batch.project.store.transition(trial.id, ["queued"], status="cancelled",
                                               finished=now(), error="cancelled before it started")
            raise
        pool.shutdown(wait=True)

    def _stop_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)

    def _run_one(self, batch: Batch, trial: Trial, reporter: Reporter) -> None:
        if batch.cancel.is_set():
            return
        project, config = batch.project, batch.config
        directory = project.paths.trial_dir(trial.id)
        launch = build(trial, config, directory, project.root)
        if not lifecycle.start(project.store, trial):
            return
        started = time.monotonic()
        reporter.started(project.store.get(trial.id))
        exit_code: int | None = None
        cancelled = timed_out = False
        try:
            with open(directory / outputs.STDOUT, "wb") as out, open(directory / outputs.STDERR, "wb") as err:
                try:
                    proc = subprocess.Popen(
                        launch.argv, cwd=project.root, env={**os.environ, **launch.env},
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
                except OSError as exc:
                    err.write(f"cannot start {launch.argv[0]!r}: {exc.strerror}\n".encode())
                    exit_code = 127
                else:
                    project.store.update(trial.id, pid=proc.pid, extra={
                        **project.store.get(trial.id).extra, "pid_start": lifecycle.proc_start(proc.pid)})
                    with self._lock:
                        self._procs[trial.id] = proc
                    tees = [_tee(proc.stdout, out, "stdout", trial, reporter),
                            _tee(proc.stderr, err, "stderr", trial, reporter)]
                    try:
                        exit_code = proc.wait(timeout=launch.timeout)
                    except subprocess.TimeoutExpired:
                        timed_out = True
                        _signal_group(proc, signal.SIGTERM)
                        try:
                            proc.wait(timeout=GRACE_SECONDS)
                        except subprocess.TimeoutExpired:
                            _signal_group(proc, signal.SIGKILL)
                        exit_code = proc.wait()
                        err.flush()
                    for t in tees:
                        t.join()
                    with self._lock:
                        self._procs.pop(trial.id, None)
                    cancelled = batch.cancel.is_set()
                if timed_out:
                    err.write(f"\ntracker: stopped after the timeout of {launch.timeout:g} s\n".encode())
        finally:
            final = lifecycle.finalize(project, config, trial.id, exit_code=exit_code,
                                       duration=lifecycle.elapsed(started), cancelled=cancelled)
            reporter.finished(final)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _tee(pipe: IO[bytes] | None, sink: IO[bytes], stream: str, trial: Trial,
         reporter: Reporter) -> threading.Thread:
    def pump() -> None:
        assert pipe is not None
        for raw in iter(pipe.readline, b""):
            sink.write(raw)
            sink.flush()
            reporter.output(trial, stream, raw.decode(errors="replace").rstrip("\n"))
        pipe.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread
