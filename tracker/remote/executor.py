"""Run trials on SSH remotes: sync code, build the venv once, start detached, watch, pull back.

Trials are spread over the remotes' slots (``slots:``; with ``gpus:`` each slot
gets its own ``CUDA_VISIBLE_DEVICES``). Each trial runs under the remote
runner, detached from the SSH session, so it survives a dropped connection or a
killed client; ``tracker remote attach`` picks it up again. A host that fails
mid-run is dropped: the other hosts carry on, its trials end lost or failed and
can be re-run with ``tracker trials reset``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from tracker import experiments
from tracker.config import ExperimentConfig
from tracker.errors import HostKeyError, NotFoundError, RemoteError, UsageError
from tracker.execution import lifecycle, outputs
from tracker.execution.base import BaseExecutor, Batch, Reporter
from tracker.execution.launch import build
from tracker.project import Project
from tracker.remote import connection, hosts, sync
from tracker.remote.workspace import RemoteEnv, Workspace
from tracker.store import Trial, now

POLL_SECONDS = (0.1, 0.5)  # first poll interval (logs, exit code: SFTP reads), doubling up to the second
LIVENESS_SECONDS = 5.0  # how often the runner is asked whether the process still runs
STALE_SECONDS = 30.0  # no heartbeat for this long and no process: the trial is lost
RECONNECT_SECONDS = 20.0


@dataclass
class HostRun:
    """A remote prepared for this run."""

    host: hosts.RemoteHost
    ws: Workspace
    code_dir: str
    env: RemoteEnv
    dead: bool = False


def remote_name(project: Project) -> str:
    """The project's directory name on remotes."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", project.name) or "project"


def workspace(project: Project, host: hosts.RemoteHost) -> Workspace:
    """A connected workspace for ``project`` on ``host``."""
    return Workspace(connection.connect(host), host, remote_name(project))


def code_id(project: Project, trial: Trial) -> str:
    """Name of the trial's code directory on remotes: its git tree id.

    Content-addressed, so the same files (a re-run from an unchanged dirty tree, whose
    snapshot commit is new each time) find their directory already there.
    """
    from tracker.gitinfo import git

    ref = trial.snapshot or trial.commit
    if not ref:
        raise UsageError("remote runs need the project in git", hint="run 'git init' and commit your code")
    return git(project.root, "rev-parse", f"{ref}^{{tree}}").strip()[:12]


def experiment_config(project: Project, trial: Trial) -> ExperimentConfig:
    """The trial's experiment settings (deliverables), or a minimal one if the file is gone."""
    try:
        return experiments.load(project, trial.experiment)
    except NotFoundError:
        return ExperimentConfig(command=trial.command or ["?"])


class SSHExecutor(BaseExecutor):
    """Runs a batch on one or more named remotes."""

    name = "ssh"

    def __init__(self, project: Project, names: list[str]) -> None:
        if not names:
            raise UsageError("--remote needs at least one remote name")
        if len(set(names)) != len(names):
            raise UsageError(f"--remote names a host twice: {','.join(names)}")
        self.hosts = [hosts.resolve(project, n) for n in names]

    def _prepare(self, batch: Batch, host: hosts.RemoteHost, reporter: Reporter, code_id: str) -> HostRun:
        ws = workspace(batch.project, host)
        result = sync.sync_code(ws, batch.project.root, code_id,
                                progress=lambda done, total: reporter.progress(f"sync to {host.name}", done, total))
        if result.method == "unchanged":
            reporter.message(f"{host.name}: code {code_id} already there")
        else:
            reporter.message(f"{host.name}: synced {result.files} files ({result.bytes_sent:,} bytes) "
                             f"with {result.method} in {result.seconds:.1f}s")
        env = ws.ensure_env(batch.project.root, result.path, reporter.message)
        return HostRun(host, ws, result.path, env)

    def run(self, batch: Batch, reporter: Reporter) -> None:
        prepared: list[HostRun] = []
        errors: dict[str, Exception] = {}
        code = code_id(batch.project, batch.trials[0])

        def prepare(host: hosts.RemoteHost) -> None:
            try:
                prepared.append(self._prepare(batch, host, reporter, code))
            except (RemoteError, OSError) as exc:
                errors[host.name] = exc

        threads = [threading.Thread(target=prepare, args=(h,), daemon=True) for h in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, exc in errors.items():
            if isinstance(exc, HostKeyError):
                self._fail_all(batch, f"{name}: {exc}")
                raise exc
            reporter.message(f"{name}: skipped: {exc}")
        if not prepared:
            self._fail_all(batch, "no remote could be prepared")
            first = next(iter(errors.values()))
            raise first if isinstance(first, RemoteError) else RemoteError(str(first))
        todo: queue.Queue[Trial] = queue.Queue()
        for trial in batch.trials:
            todo.put(trial)
        slots = [threading.Thread(target=self._slot, args=(batch, h, gpu, todo, reporter), daemon=True)
                 for h in sorted(prepared, key=lambda h: self.hosts.index(h.host))
                 for gpu in (h.host.config.gpus[: h.host.config.slots] or [None] * h.host.config.slots)]
        try:
            for t in slots:
                t.start()
            while any(t.is_alive() for t in slots):
                for t in slots:
                    t.join(timeout=0.2)
        except BaseException:
            batch.cancel.set()
            for t in slots:
                t.join()
            raise
        finally:
            while not todo.empty():
                trial = todo.get()
                if batch.cancel.is_set():
                    batch.project.store.transition(trial.id, ["queued"], status="cancelled", finished=now(),
                                                   error="cancelled before it started")
                else:
                    batch.project.store.transition(trial.id, ["queued"], status="failed", finished=now(),
                                                   error="no remote left to run it (all failed)")

    def _fail_all(self, batch: Batch, reason: str) -> None:
        for trial in batch.trials:
            batch.project.store.transition(trial.id, ["queued"], status="failed", finished=now(), error=reason)

    def _slot(self, batch: Batch, run: HostRun, gpu: int | None, todo: queue.Queue[Trial],
              reporter: Reporter) -> None:
        while not batch.cancel.is_set() and not run.dead:
            try:
                trial = todo.get_nowait()
            except queue.Empty:
                return
            try:
                self._run_trial(batch, run, trial, gpu, reporter)
            except RemoteError as exc:
                run.dead = True
                reporter.message(f"{run.host.name}: dropped from this run: {exc}")
                self._settle(batch, trial, todo, f"lost contact with {run.host.name}: {exc}; if the host comes "
                                                 f"back, 'tracker remote attach' collects the result")
            except Exception as exc:  # never leave a trial running because of a bug here
                run.dead = True
                reporter.message(f"{run.host.name}: unexpected {type(exc).__name__}: {exc}")
                self._settle(batch, trial, todo, f"unexpected {type(exc).__name__}: {exc}")

    @staticmethod
    def _settle(batch: Batch, trial: Trial, todo: queue.Queue[Trial], reason: str) -> None:
        """After a host failed: hand a trial it never started to another host, else mark it lost."""
        status = batch.project.store.get(trial.id).status
        if status == "queued":
            todo.put(trial)
        elif status == "running":
            lifecycle.finalize(batch.project, batch.config, trial.id, exit_code=None,
                               duration=run_seconds(batch.project.store.get(trial.id)), lost=reason)

    def _run_trial(self, batch: Batch, run: HostRun, trial: Trial, gpu: int | None, reporter: Reporter) -> None:
        project, config = batch.project, batch.config
        remote_dir = run.ws.trial_dir(trial.id)
        launch = build(trial, config, PurePosixPath(remote_dir), PurePosixPath(run.code_dir))
        argv = list(launch.argv)
        if PurePosixPath(argv[0]).name.startswith("python"):
            argv[0] = run.env.python
        env = {**launch.env, **run.host.config.env, "VIRTUAL_ENV": run.env.path}
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        spec = {"argv": argv, "env": env, "cwd": run.code_dir, "trial_dir": remote_dir,
                "path_prefix": f"{run.env.path}/bin"}
        files = {"spec.json": json.dumps(spec)}
        if launch.params_file:
            files[launch.params_file[0]] = launch.params_file[1]
        sftp = run.ws.conn.sftp()
        try:
            with connection.translated(run.host, f"writing the spec of trial {trial.id}"):
                sync.makedirs(sftp, remote_dir)
                for name, content in files.items():
                    with sftp.open(f"{remote_dir}/{name}", "w") as fh:
                        fh.write(content)
        finally:
            sftp.close()
        remote = {"host": run.host.name, "dir": remote_dir, "code_dir": run.code_dir, "gpu": gpu}
        if not lifecycle.start(project.store, trial, host=run.host.name, extra={"remote": remote}):
            return
        answer = run.ws.call("start", f"{remote_dir}/spec.json")
        if answer.get("error"):
            raise RemoteError(f"{run.host.name}: could not start trial {trial.id}: {answer['error']}")
        project.store.update(trial.id, pid=answer.get("pid"))
        reporter.started(project.store.get(trial.id))
        reporter.finished(watch(project, config, trial.id, run.ws, reporter, batch.cancel))


def run_seconds(trial: Trial) -> float | None:
    """Seconds since the trial started (None if it never did)."""
    if not trial.started:
        return None
    started = datetime.fromisoformat(trial.started.replace("Z", "+00:00"))
    return round((datetime.now(timezone.utc) - started).total_seconds(), 3)


class _Tail:
    """Appends new bytes of the remote logs to the local ones, line by line to the reporter."""

    def __init__(self, project: Project, trial: Trial, host: hosts.RemoteHost, remote_dir: str,
                 reporter: Reporter) -> None:
        self.local = project.paths.trial_dir(trial.id)
        self.host = host
        self.local.mkdir(parents=True, exist_ok=True)
        self.trial = trial
        self.remote_dir = remote_dir
        self.reporter = reporter
        self.partial = {"stdout": "", "stderr": ""}

    def pull(self, sftp: Any) -> int | None:
        """Fetch what the remote logs gained since the last call; return the exit code once written.

        RemoteError if the link fails.
        """
        with connection.translated(self.host, "reading the trial's logs"):
            self._pull(sftp)
            try:
                with sftp.open(f"{self.remote_dir}/exit_code", "rb") as fh:
                    return int(fh.read().strip())
            except (FileNotFoundError, ValueError):  # still running
                return None

    def _pull(self, sftp: Any) -> None:
        for stream, name in (("stdout", outputs.STDOUT), ("stderr", outputs.STDERR)):
            local = self.local / name
            offset = local.stat().st_size if local.exists() else 0
            try:
                with sftp.open(f"{self.remote_dir}/{name}", "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            with open(local, "ab") as out:
                out.write(data)
            text = self.partial[stream] + data.decode(errors="replace")
            *lines, self.partial[stream] = text.split("\n")
            for line in lines:
                self.reporter.output(self.trial, stream, line)


def watch(project: Project, config: ExperimentConfig, trial_id: str, ws: Workspace, reporter: Reporter,
          cancel: threading.Event | None = None, *, check_now: bool = False) -> Trial:
    """Follow a remote trial until it ends; pull its directory back and finalize it.

    Each poll is a few SFTP reads (new log bytes, the exit code file); the runner is
    asked about the process itself every ``LIVENESS_SECONDS`` (and first at once with
    ``check_now``, when re-attaching).
    """
    store = project.store
    trial = store.get(trial_id)
    remote_dir = trial.extra["remote"]["dir"]
    tail = _Tail(project, trial, ws.host, remote_dir, reporter)
    sftp = None
    stopping = False
    lost_since: float | None = None
    pause = POLL_SECONDS[0]
    next_check = 0.0 if check_now else time.monotonic() + LIVENESS_SECONDS
    while True:
        try:
            if sftp is None:
                sftp = ws.conn.sftp()
            code = tail.pull(sftp)
            state: dict[str, Any] = {"exit_code": code, "alive": True, "heartbeat_age": 0.0}
            if code is None and time.monotonic() >= next_check:
                state = ws.call("status", remote_dir, timeout=60)
                next_check = time.monotonic() + LIVENESS_SECONDS
            lost_since = None
        except RemoteError as exc:
            sftp = None
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > RECONNECT_SECONDS:
                return lifecycle.finalize(project, config, trial_id, exit_code=None, duration=run_seconds(trial),
                                          lost=f"lost contact with {ws.host.name}: {exc}; if the host comes "
                                               f"back, 'tracker remote attach' collects the result")
            time.sleep(2)
            try:
                connection.drop(ws.host)
                ws.conn = connection.connect(ws.host)
            except RemoteError:
                pass
            continue
        if state.get("exit_code") is not None:
            break
        age = state.get("heartbeat_age")
        if not state.get("alive") and (age is None or age > STALE_SECONDS):
            pull_quietly(ws, remote_dir, project, trial_id)
            return lifecycle.finalize(project, config, trial_id, exit_code=None, duration=run_seconds(trial),
                                      lost=f"the remote process on {ws.host.name} died without an exit code")
        if cancel is not None and cancel.is_set() and not stopping:
            stopping = True
            ws.call("stop", remote_dir)
        time.sleep(pause)
        pause = min(pause * 2, POLL_SECONDS[1])
    if sftp is not None:
        sftp.close()
    sync.pull_dir(ws, remote_dir, project.paths.trial_dir(trial_id))
    return lifecycle.finalize(project, config, trial_id, exit_code=int(state["exit_code"]),
                              duration=run_seconds(trial), cancelled=stopping)


def pull_quietly(ws: Workspace, remote_dir: str, project: Project, trial_id: str) -> None:
    """Copy what is left of a trial's remote directory back, if the host answers."""
    with contextlib.suppress(RemoteError):
        sync.pull_dir(ws, remote_dir, project.paths.trial_dir(trial_id))
