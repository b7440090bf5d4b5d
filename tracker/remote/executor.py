"""The SSH executor: sync code, build the venv once, start detached, poll, stop, pull back.

Trials are spread over the remotes' slots (``slots:``; with ``gpus:`` each slot
gets its own ``CUDA_VISIBLE_DEVICES``). Each trial runs under the runner
(:mod:`tracker.execution.runner`, copied to the host), detached from the SSH
session, so it survives a dropped connection or a killed client; ``tracker
remote attach`` picks it up again. The runner enforces the timeout and the grace
period and ends the trial's descendants there, exactly as it does locally. A
host that fails mid-run is dropped: the other hosts carry on, its trials end
lost and can be re-attached or re-run with ``tracker trials reset``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from tracker.api import METRICS_FILE
from tracker.config import RemoteConfig
from tracker.errors import HostKeyError, RemoteError, UsageError
from tracker.execution import outputs
from tracker.execution.base import BaseExecutor, Job, Poll, Reporter
from tracker.execution.launch import build
from tracker.project import Project
from tracker.remote import connection, hosts, sync
from tracker.remote.workspace import RemoteEnv, Workspace
from tracker.store import Trial

if TYPE_CHECKING:
    from tracker.execution.targets import Target

POLL_SECONDS = (0.1, 0.5)  # first poll interval (logs, exit record: SFTP reads), doubling up to the second
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


@dataclass
class _Slot:
    run: HostRun
    gpu: int | None


@dataclass
class _Watch:
    """What the executor keeps per remote trial between polls."""

    ws: Workspace
    tail: _Tail
    sftp: Any = None
    lost_since: float | None = None
    next_check: float = 0.0
    pid: int | None = None
    slot: _Slot | None = None
    unreachable: bool = False


class SSHExecutor(BaseExecutor):
    """Runs trials on named remotes (``remotes=["gpu1", "gpu2"]``); any remote trial can be polled and stopped."""

    name = "ssh"
    options = RemoteConfig

    @classmethod
    def from_target(cls, project: Project, target: Target, **run: Any) -> SSHExecutor:
        """The hosts the target names (``parallel`` and ``venv`` do not apply: a host has its slots and its env)."""
        if not target.entries:
            raise UsageError("an ssh target needs its hosts", hint="name them: --target gpu1,gpu2 (or --remote)")
        return cls(project, remotes=list(target.entries))

    def __init__(self, project: Project, remotes: list[str] | None = None, **options: Any) -> None:
        super().__init__(project)
        if options:
            raise UsageError(f"the ssh executor takes no option {sorted(options)[0]!r}")
        names = list(remotes or [])
        if len(set(names)) != len(names):
            raise UsageError(f"--remote names a host twice: {','.join(names)}")
        self.hosts = [hosts.resolve(project, n) for n in names]
        self.free: list[_Slot] = []
        self.watches: dict[str, _Watch] = {}
        self._workspaces: dict[str, Workspace] = {}
        self._pause = POLL_SECONDS[0]

    # ------------------------------------------------------------------ preparing hosts

    @property
    def capacity(self) -> int:
        return len(self.free) + sum(1 for w in self.watches.values() if w.slot and not w.slot.run.dead)

    def _prepare_host(self, host: hosts.RemoteHost, reporter: Reporter, code: str) -> HostRun:
        ws = workspace(self.project, host)
        result = sync.sync_code(ws, self.project.root, code,
                                progress=lambda done, total: reporter.progress(f"sync to {host.name}", done, total))
        if result.method == "unchanged":
            reporter.message(f"{host.name}: code {code} already there")
        else:
            reporter.message(f"{host.name}: synced {result.files} files ({result.bytes_sent:,} bytes) "
                             f"with {result.method} in {result.seconds:.1f}s")
        env = ws.ensure_env(self.project.root, result.path, reporter.message)
        self._workspaces[host.name] = ws
        return HostRun(host, ws, result.path, env)

    def prepare(self, jobs: list[Job], reporter: Reporter) -> None:
        """Sync the code and build the environment on every remote at once; drop those that fail."""
        if not self.hosts:
            raise UsageError("--remote needs at least one remote name")
        prepared: list[HostRun] = []
        errors: dict[str, Exception] = {}
        code = code_id(self.project, jobs[0].trial)

        def prepare(host: hosts.RemoteHost) -> None:
            try:
                prepared.append(self._prepare_host(host, reporter, code))
            except (RemoteError, OSError) as exc:
                errors[host.name] = exc

        threads = [threading.Thread(target=prepare, args=(h,), daemon=True) for h in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, exc in errors.items():
            if isinstance(exc, HostKeyError):
                raise exc
            reporter.message(f"{name}: skipped: {exc}")
        if not prepared:
            first = next(iter(errors.values()))
            raise first if isinstance(first, RemoteError) else RemoteError(str(first))
        order = {h.name: i for i, h in enumerate(self.hosts)}
        for run in sorted(prepared, key=lambda r: order[r.host.name]):
            cfg = run.host.config
            self.free += [_Slot(run, gpu) for gpu in (cfg.gpus[: cfg.slots] or [None] * cfg.slots)]

    # ------------------------------------------------------------------ the four verbs

    def submit(self, job: Job, reporter: Reporter) -> dict[str, Any]:
        """Start the trial on the next free slot; a host that fails here is dropped and the next one tried."""
        last: RemoteError | None = None
        while self.free:
            slot = self.free.pop(0)
            if slot.run.dead:
                continue
            try:
                handle = self._start(job, slot)
            except RemoteError as exc:
                self._drop(slot.run, reporter, exc)
                last = exc
                continue
            self._pause = POLL_SECONDS[0]
            return handle
        raise RemoteError("no remote left to run it (all failed)" + (f"; last: {last.message}" if last else ""))

    def _drop(self, run: HostRun, reporter: Reporter, exc: Exception) -> None:
        if not run.dead:
            run.dead = True
            reporter.message(f"{run.host.name}: dropped from this run: {exc}")
        self.free = [s for s in self.free if s.run is not run]

    def _start(self, job: Job, slot: _Slot) -> dict[str, Any]:
        trial, run = job.trial, slot.run
        if not run.ws.conn.alive:  # the host closed the connection since it was prepared: one new try
            run.ws.conn = connection.connect(run.host)
        remote_dir = run.ws.trial_dir(trial.id)
        launch = build(trial, job.config, PurePosixPath(remote_dir), PurePosixPath(run.code_dir))
        argv = list(launch.argv)
        if PurePosixPath(argv[0]).name.startswith("python"):
            argv[0] = run.env.python
        env = {**launch.env, **run.host.config.env, "VIRTUAL_ENV": run.env.path}
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
        spec = {"argv": argv, "env": env, "cwd": run.code_dir, "trial_dir": remote_dir,
                "path_prefix": f"{run.env.path}/bin", "timeout": launch.timeout, "grace": job.grace,
                "keep": list(launch.params_files)}
        files = {"spec.json": json.dumps(spec), **launch.params_files}
        sftp = run.ws.conn.sftp()
        try:
            with connection.translated(run.host, f"writing the spec of trial {trial.id}"):
                sync.makedirs(sftp, remote_dir)
                for name, content in files.items():
                    with sftp.open(f"{remote_dir}/{name}", "w") as fh:
                        fh.write(content)
        finally:
            sftp.close()
        answer = run.ws.call("start", f"{remote_dir}/spec.json")
        if answer.get("error"):
            raise RemoteError(f"{run.host.name}: could not start trial {trial.id}: {answer['error']}")
        handle = {"host": run.host.name, "dir": remote_dir, "code_dir": run.code_dir, "gpu": slot.gpu,
                  "detached": True}
        self.watches[trial.id] = _Watch(run.ws, _Tail(self.project, trial.id, run.host, remote_dir),
                                        pid=answer.get("pid"), slot=slot)
        return handle

    def _watch(self, trial: Trial) -> _Watch:
        """The watch of a trial this executor started, or a new one from its handle (re-attach, stop)."""
        watch = self.watches.get(trial.id)
        if watch is None:
            name = trial.handle["host"]
            ws = self._workspaces.get(name)
            if ws is None:
                ws = self._workspaces[name] = workspace(self.project, hosts.resolve(self.project, name))
            watch = self.watches[trial.id] = _Watch(ws, _Tail(self.project, trial.id, ws.host, trial.handle["dir"]),
                                                    pid=trial.pid)
        return watch

    def poll(self, trial: Trial) -> Poll:
        """A few SFTP reads (new log bytes, the exit record); the runner is asked whether the
        process lives every ``LIVENESS_SECONDS``; contact lost for ``RECONNECT_SECONDS`` is ``gone``."""
        watch = self._watch(trial)
        host = watch.ws.host
        try:
            if watch.sftp is None:
                watch.sftp = watch.ws.conn.sftp()
            record = watch.tail.pull(watch.sftp)
            state: dict[str, Any] = {"exit": record, "alive": True, "heartbeat_age": 0.0}
            if record is None and time.monotonic() >= watch.next_check:
                state = watch.ws.call("status", trial.handle["dir"], timeout=60)
                watch.next_check = time.monotonic() + LIVENESS_SECONDS
            watch.lost_since = None
        except RemoteError as exc:
            _close_sftp(watch)
            watch.lost_since = watch.lost_since or time.monotonic()
            if time.monotonic() - watch.lost_since > RECONNECT_SECONDS:
                watch.unreachable = True
                if watch.slot:
                    watch.slot.run.dead = True
                    self.free = [s for s in self.free if s.run is not watch.slot.run]
                return Poll("gone", pid=watch.pid, detail=f"lost contact with {host.name}: {exc}; if the host "
                                                          "comes back, 'tracker remote attach' collects the result")
            with contextlib.suppress(RemoteError):
                connection.drop(host)
                watch.ws.conn = connection.connect(host)
            return Poll("running", pid=watch.pid)
        record = state.get("exit")
        if record:
            return Poll("exited", exit_code=record.get("exit_code"), reason=record.get("reason") or None,
                        pid=watch.pid, duration=record.get("duration"))
        age = state.get("heartbeat_age")
        if not state.get("alive") and (age is None or age > STALE_SECONDS):
            return Poll("gone", pid=watch.pid, detail=f"the remote process on {host.name} died without an exit code")
        return Poll("running", pid=watch.pid)

    def stop(self, trial: Trial, grace: float) -> None:
        """Ask the trial's runner on its host to stop it (TERM, KILL after ``grace``, descendants too)."""
        self._watch(trial).ws.call("stop", trial.handle["dir"], str(grace))

    def collect(self, trial: Trial) -> None:
        """Copy the trial's remote directory back (only what changed); nothing from a host out of reach."""
        watch = self._watch(trial)
        if not watch.unreachable:
            sync.pull_dir(watch.ws, trial.handle["dir"], self.project.paths.trial_dir(trial.id))

    def release(self, trial: Trial) -> None:
        watch = self.watches.pop(trial.id, None)
        if watch is None:
            return
        _close_sftp(watch)
        if watch.slot and not watch.slot.run.dead:
            self.free.append(watch.slot)

    def close(self) -> None:
        """Close the SFTP sessions of trials still watched (the SSH connections stay pooled)."""
        for watch in self.watches.values():
            _close_sftp(watch)
        self.watches.clear()

    def wait(self, timeout: float) -> None:
        """Poll quickly after a start (0.1 s), then back off to 0.5 s."""
        time.sleep(min(timeout, self._pause))
        self._pause = min(self._pause * 2, POLL_SECONDS[1])


def _close_sftp(watch: _Watch) -> None:
    """Close a watch's SFTP session (each one holds a channel of the host's session limit)."""
    if watch.sftp is not None:
        with contextlib.suppress(Exception):
            watch.sftp.close()
        watch.sftp = None


class _Tail:
    """Appends new bytes of the remote logs and metrics to the local ones."""

    def __init__(self, project: Project, trial_id: str, host: hosts.RemoteHost, remote_dir: str) -> None:
        self.local = project.paths.trial_dir(trial_id)
        self.host = host
        self.local.mkdir(parents=True, exist_ok=True)
        self.remote_dir = remote_dir

    def pull(self, sftp: Any) -> dict[str, Any] | None:
        """Fetch what the remote logs gained since the last call; return the exit record once written.

        RemoteError if the link fails; OSError if the local copy cannot be written (a full disk).
        """
        for name in (outputs.STDOUT, outputs.STDERR, METRICS_FILE):
            local = self.local / name
            offset = local.stat().st_size if local.exists() else 0
            with connection.translated(self.host, "reading the trial's logs"):
                try:
                    with sftp.open(f"{self.remote_dir}/{name}", "rb") as fh:
                        fh.seek(offset)
                        data = fh.read()
                except FileNotFoundError:
                    continue
            if data:
                try:
                    with open(local, "ab") as out:
                        out.write(data)
                except OSError as exc:
                    raise OSError(exc.errno, exc.strerror, str(local)) from exc
        with connection.translated(self.host, "reading the trial's exit record"):
            try:
                with sftp.open(f"{self.remote_dir}/exit.json", "rb") as fh:
                    text = fh.read().strip()
                return json.loads(text) if text else None
            except (FileNotFoundError, ValueError):  # still running
                return None
