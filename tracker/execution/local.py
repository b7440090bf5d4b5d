"""The local executor: each trial under its own runner process on this machine.

The runner (:mod:`tracker.execution.runner`, started ahead as ``python -I -S runner.py run -``
and handed its trial on stdin, so its start-up overlaps the previous trial)
owns the trial's processes: it writes their output into the trial directory, ends
descendants that detached, enforces the timeout and the grace period, and stops
the trial if this process dies (kill -9 included), so nothing is left behind.
The driver wakes as soon as a runner exits (a pidfd per runner where Linux has it).

With ``parallel`` > 1 and GPUs present (``CUDA_VISIBLE_DEVICES`` if set, else nvidia-smi), each
slot gets one GPU through ``CUDA_VISIBLE_DEVICES``, as remote slots do; with fewer GPUs than
slots they are shared round-robin (slot i gets GPU i mod n). A single slot sees every GPU.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracker.errors import ExecutionError, UsageError
from tracker.execution.base import BaseExecutor, Job, Poll, Reporter
from tracker.execution.launch import build
from tracker.execution.lifecycle import boot_id, exit_record, proc_start, read_pids
from tracker.project import Project
from tracker.store import Trial
from tracker.venvs import ProjectEnv

# runner.py is imported, not run as a script, so its cached bytecode is used (about 8 ms less
# per trial); its directory goes last on sys.path, so it shadows nothing of the standard library
_LAUNCH = (f"import sys; sys.path.append({str(Path(__file__).parent)!r}); from runner import main; "
           "sys.exit(main(sys.argv[1:]))")


def _runner_alive(handle: dict[str, Any]) -> bool:
    """Whether a local trial's runner, as its handle records it, still runs on this machine."""
    return (handle.get("host") == socket.gethostname() and handle.get("boot") == boot_id()
            and handle.get("runner_start") is not None
            and proc_start(handle.get("runner_pid") or 0) == handle["runner_start"])


class LocalOptions(BaseModel):
    """A ``type: local`` target's options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parallel: int | None = Field(default=None, ge=1)  # trials at once (default: defaults.parallel)


class LocalExecutor(BaseExecutor):
    """Runs trials on this machine, ``parallel`` at a time, in ``venv`` when given (its ``python`` first on
    PATH); ``gpus`` (ids) are spread over the slots (default: found on first need, see the module docstring)."""

    name = "local"
    options = LocalOptions
    uses_project_venv = True

    def __init__(self, project: Project, parallel: int | None = None, venv: ProjectEnv | None = None,
                 gpus: list[str] | None = None,
                 **options: Any) -> None:
        super().__init__(project)
        if options:
            raise UsageError(f"the local executor takes no option {sorted(options)[0]!r}")
        parallel = parallel or project.config.defaults.parallel
        if parallel < 1:
            raise ExecutionError(f"--parallel must be at least 1, got {parallel}")
        self.parallel = parallel
        self.variables = venv.variables() if venv else {}  # an experiment's env: may still override them
        self.gpus = None if gpus is None else [str(g) for g in gpus]
        self._slots: dict[str, int] = {}  # trial id -> the slot it runs in
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pidfds: dict[str, int] = {}
        self._stopped: set[str] = set()  # trials whose runner this executor sent TERM
        self._spare: subprocess.Popen[bytes] | None = None

    @property
    def capacity(self) -> int:
        return self.parallel

    def _spawn(self) -> subprocess.Popen[bytes]:
        """A runner waiting on stdin for its trial (``runner.py run -``)."""
        try:
            return subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCH, "run", "-"], cwd=self.project.root,
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise ExecutionError(f"cannot start the trial runner: {exc}") from exc

    def submit(self, job: Job, reporter: Reporter) -> dict[str, Any]:
        """Hand the trial to a runner started ahead (its start-up overlaps the previous trial)."""
        trial = job.trial
        directory = self.project.paths.trial_dir(trial.id)
        directory.mkdir(parents=True, exist_ok=True)
        root = self.code_dir(trial)
        launch = build(trial, job.config, directory, root)
        slot, gpu = self._slot()
        variables = dict(launch.env)
        if gpu is not None and "CUDA_VISIBLE_DEVICES" not in job.config.env:  # the experiment's own setting wins
            variables["CUDA_VISIBLE_DEVICES"] = gpu
        proc, self._spare = (self._spare or self._spawn()), None
        env = [f"{k}={v}" for k, v in {**self.variables, **variables}.items()]
        spec = [str(directory), str(launch.timeout or 0), str(job.grace), str(root), str(len(env)),
                *env, *launch.argv]
        try:
            assert proc.stdin is not None
            proc.stdin.write("\0".join(spec).encode("utf-8", "surrogateescape"))
            proc.stdin.close()
        except OSError as exc:
            proc.kill()
            proc.wait()
            raise ExecutionError(f"the trial runner did not take the trial: {exc}") from exc
        self._procs[trial.id] = proc
        self._slots[trial.id] = slot
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):  # an old kernel: wait() polls instead
                self._pidfds[trial.id] = os.pidfd_open(proc.pid)
        self._spare = self._spawn()  # for the next trial
        return {"host": socket.gethostname(), "boot": boot_id(), "runner_pid": proc.pid,
                "runner_start": proc_start(proc.pid), "dir": str(directory), "gpu": gpu}

    def code_dir(self, trial: Trial) -> Path:
        """The checkout a trial runs in (a queue worker runs a trial made on other code in a work tree)."""
        return self.project.root

    def _slot(self) -> tuple[int, str | None]:
        """The lowest free slot and its GPU (None: one slot, or no GPU)."""
        used = set(self._slots.values())
        slot = next(i for i in range(len(used) + 1) if i not in used)
        if self.parallel == 1:
            return slot, None
        if self.gpus is None:
            from tracker.environment import gpu_ids

            self.gpus = gpu_ids()
        return slot, self.gpus[slot % len(self.gpus)] if self.gpus else None

    def poll(self, trial: Trial) -> Poll:
        proc = self._procs.get(trial.id)
        directory = self.project.paths.trial_dir(trial.id)
        pid = read_pids(directory).get("pid")
        if proc is None:  # started by another tracker process: its record says where the runner is
            if _runner_alive(trial.handle):
                return Poll("running", pid=pid)
            code = None
        else:
            code = proc.poll()
            if code is None:
                return Poll("running", pid=pid)
        record = exit_record(directory)
        if record is None and code == -signal.SIGTERM and trial.id in self._stopped:
            # our TERM came before the runner set up its handler, so it started no script: a clean stop
            return Poll("exited", reason="stopped", pid=pid)
        if record is None:
            err = (proc.stderr.read().decode(errors="replace").strip()[-500:] if proc and proc.stderr else "")
            return Poll("gone", pid=pid, detail=f"the trial's runner ended (exit code {code}) before the "
                                                f"trial did{': ' + err if err else ''}")
        return Poll("exited", exit_code=record.get("exit_code"), reason=record.get("reason") or None,
                    pid=pid, duration=record.get("duration"))

    def stop(self, trial: Trial, grace: float) -> None:
        """SIGTERM to the runner, which ends the trial's processes (KILL after its grace period).

        A runner started by another tracker process is signalled only if its recorded pid is
        still that very process on this machine (same boot, same start time).
        """
        proc = self._procs.get(trial.id)
        if proc is not None:
            if proc.poll() is None:
                self._stopped.add(trial.id)
                proc.send_signal(signal.SIGTERM)
        elif _runner_alive(trial.handle):
            with contextlib.suppress(OSError):
                os.kill(trial.handle["runner_pid"], signal.SIGTERM)

    def collect(self, trial: Trial) -> None:
        """Nothing to bring home: the trial wrote into its local directory."""

    def release(self, trial: Trial) -> None:
        self._forget(trial.id)

    def _forget(self, trial_id: str) -> None:
        self._slots.pop(trial_id, None)
        self._stopped.discard(trial_id)
        proc = self._procs.pop(trial_id, None)
        if proc is not None:
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        fd = self._pidfds.pop(trial_id, None)
        if fd is not None:
            os.close(fd)

    def wait(self, timeout: float) -> None:
        """Sleep until a runner exits, at most ``timeout`` s."""
        if self._pidfds and len(self._pidfds) == len(self._procs):
            select.select(list(self._pidfds.values()), [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05) if self._procs else timeout)

    def close(self) -> None:
        """Stop whatever still runs (the driver normally ended it all) and forget it."""
        if self._spare is not None:  # an empty stdin: the waiting runner exits at once
            spare, self._spare = self._spare, None
            with contextlib.suppress(OSError):
                spare.stdin.close()  # type: ignore[union-attr]
            spare.wait()
            if spare.stderr:
                spare.stderr.close()
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for trial_id in list(self._procs):
            self._forget(trial_id)
