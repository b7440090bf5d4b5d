"""Managing remotes and the trials on them: add, check, trust, status, sync, attach, stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracker.config import RemoteConfig, validate_data
from tracker.errors import HostKeyError, RemoteError, UsageError
from tracker.execution.base import Reporter
from tracker.project import Project
from tracker.remote import connection, hosts
from tracker.remote.executor import workspace
from tracker.store import Trial
from tracker.yamlio import display_path


def add_remote(project: Project, name: str, options: dict[str, Any], *, force: bool = False) -> RemoteConfig:
    """Write ``remotes.NAME`` in tracker.yaml (validated)."""
    project.check_new_entry("remotes", name, "remote", force=force)
    data = {k: v for k, v in options.items() if v not in (None, [], {})}
    config = validate_data(data, RemoteConfig, f"remote {name}", {})
    project.set_section("remotes", name, config.model_dump(exclude_defaults=True))
    return config


def remove_remote(project: Project, name: str) -> None:
    """Delete ``remotes.NAME`` from tracker.yaml."""
    project.set_section("remotes", name, None)


@dataclass(frozen=True)
class Check:
    """One line of ``tracker remote check``."""

    name: str
    ok: bool
    detail: str


_PROBE = r"""
import json, os, platform, shutil, subprocess, sys
workdir = os.path.expanduser(sys.argv[1])
probe = workdir
while not os.path.exists(probe):
    probe = os.path.dirname(probe) or "/"
usage = shutil.disk_usage(probe)
gpus = []
if shutil.which("nvidia-smi"):
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout
    gpus = [line.strip() for line in out.splitlines() if line.strip()]
import importlib.util
print(json.dumps({"python": platform.python_version(), "venv": importlib.util.find_spec("venv") is not None,
                  "rsync": shutil.which("rsync") is not None, "free": usage.free, "writable": os.access(probe, os.W_OK),
                  "gpus": gpus}))
"""


def check(project: Project, name: str) -> list[Check]:
    """Connect to a remote and report what it has: python, venv, rsync, free disk, GPUs."""
    import json

    host = hosts.resolve(project, name)
    via = f" via {host.proxy_jump}" if host.proxy_jump else ""
    checks = [Check("address", True, f"{host.user}@{host.address}{via}")]
    try:
        conn = connection.connect(host)
    except RemoteError as exc:
        return [*checks, Check("connect", False, str(exc))]
    checks.append(Check("connect", True, "host key verified, key authentication ok"))
    python = host.config.python
    result = conn.run([python, "-c", _PROBE, host.config.workdir], check=False)
    if result.code != 0:
        return [*checks, Check("python", False, f"{python!r} failed: {(result.err or result.out).strip()[-200:]}; "
                                                "install Python 3 or set 'python:' for this remote")]
    info = json.loads(result.out.strip().splitlines()[-1])
    major, minor = (int(x) for x in info["python"].split(".")[:2])
    checks += [
        Check("python", (major, minor) >= (3, 8), f"{python} is Python {info['python']}"
              + ("" if (major, minor) >= (3, 8) else " (3.8 or newer needed)")),
        Check("venv", info["venv"], "venv module present" if info["venv"] else "no venv module: install python3-venv"),
        Check("rsync", True, "present: code syncs with rsync" if info["rsync"]
              else "absent: code syncs over SFTP (slower; install rsync for faster syncs)"),
        Check("disk", info["free"] > 1 << 30 and info["writable"],
              f"{info['free'] / 2**30:.1f} GiB free at {host.config.workdir}"
              + ("" if info["writable"] else " (not writable!)")),
        Check("gpus", True, ", ".join(info["gpus"]) if info["gpus"] else "none found (no nvidia-smi)"),
    ]
    return checks


def trust(project: Project, name: str, *, confirm: Callable[[str], bool], replace: bool = False) -> tuple[str, str]:
    """Show the host's key fingerprint, and record it in known_hosts if ``confirm`` agrees.

    Returns (fingerprint, known_hosts file).
    """
    host = hosts.resolve(project, name)
    key = connection.scan_key(host)
    fp = connection.fingerprint(key)
    known = connection.known_key(host)
    if known is not None and known == key:
        return fp, "already trusted"
    if known is not None and not replace:
        raise HostKeyError(f"known_hosts has a DIFFERENT key for {name} ({host.address}); offered key is {fp}",
                           hint="pass --replace only if you know the host was reinstalled")
    if not confirm(f"{name} ({host.address}) offers {key.get_name()} key {fp}. Trust it?"):
        raise UsageError("not trusted; nothing was changed")
    path = connection.trust(host, key, replace=replace)
    return fp, display_path(path)


def remote_trials(project: Project, statuses: tuple[str, ...] = ("running",)) -> list[Trial]:
    """Trials that ran on remotes with these statuses."""
    trials = project.store.list_trials(status=list(statuses))
    return [t for t in trials if t.executor == "ssh" and t.handle.get("dir")]


@dataclass(frozen=True)
class RemoteTrialState:
    """A trial on a remote as ``tracker remote status`` shows it."""

    trial: Trial
    host: str
    state: str  # running, finished, dead, unreachable

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.trial.id, "experiment": self.trial.experiment, "host": self.host,
                "status": self.trial.status, "remote_state": self.state, "started": self.trial.started}


def _remote_state(project: Project, trial: Trial) -> dict[str, Any]:
    ws = workspace(project, hosts.resolve(project, trial.handle["host"]))
    return ws.call("status", trial.handle["dir"], timeout=30)


def status(project: Project) -> list[RemoteTrialState]:
    """What runs where, as the remotes report it (running trials in the store)."""
    out = []
    for trial in remote_trials(project):
        try:
            state = _remote_state(project, trial)
            label = "finished" if state.get("exit") else ("running" if state.get("alive") else "dead")
        except RemoteError:
            label = "unreachable"
        out.append(RemoteTrialState(trial, trial.handle["host"], label))
    return out


def attach(project: Project, reporter: Reporter | None = None, ids: list[str] | None = None,
           *, follow: bool = True) -> list[Trial]:
    """Re-attach to remote trials: pull logs and outputs, finalize finished ones, mark dead ones lost.

    With ``follow`` this process becomes their owner and waits for running ones to finish
    (``tracker remote attach``); without, it makes one pass (``tracker remote sync``) and
    leaves running ones as they are. Trials marked lost (a host was unreachable, or their
    client died) are picked up again when their runner turns out to be alive or finished.
    """
    from tracker.execution.driver import Driver
    from tracker.execution.registry import open_executor

    reporter = reporter or Reporter()
    store = project.store
    trials = [store.get(i) for i in ids] if ids else remote_trials(project, ("running", "lost"))
    driver = Driver(project, open_executor(project, "ssh"), reporter)
    for trial in trials:
        if not trial.handle.get("dir"):
            continue
        try:
            state = _remote_state(project, trial)
        except RemoteError as exc:
            reporter.message(f"{trial.id}: {trial.handle['host']} is unreachable: {exc}")
            continue
        if trial.status == "lost":
            if not state.get("exit") and not state.get("alive"):
                continue  # really gone
            if not store.transition(trial.id, "running", expected=["lost"], finished=None, error=None,
                                    event="re-attached"):
                continue
            trial = store.get(trial.id)
        elif trial.status != "running":
            continue
        driver.adopt(trial, claim=follow or bool(state.get("exit")))
    watched = list(driver.running)
    if follow:
        driver.run([])
    else:
        driver.tick()  # one pass: ended ones are finalized, running ones stream what they printed
        for trial_id in list(driver.running):
            driver.executor.release(driver.running.pop(trial_id).trial)
        driver.executor.close()
    return [store.get(t) for t in watched]
