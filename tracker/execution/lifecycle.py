"""A trial's life in the store: prepared, owned, ended, or found lost.

Statuses change only through the store's transition table (see
:mod:`tracker.store.models`); this module decides *which* final status a trial
gets from what its executor saw, and writes it with everything else the trial
produced (metrics, artifacts, record) in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.config import ExperimentConfig
from tracker.execution import outputs
from tracker.execution.launch import Launch, phases_of
from tracker.scriptflags import refusal_hint
from tracker.store import BaseStore, MetricPoint, Trial, now

if TYPE_CHECKING:
    from tracker.project import Project

RECORD_FILE = "trial.json"
PATCH_FILE = "code.patch"
EXIT_FILE = "exit.json"
PID_FILE = "pid.json"


def write_record(project: Project, trial: Trial) -> None:
    """Write the trial's record (params, seed, commit, metrics...) into its directory."""
    from tracker.yamlio import atomic_write

    directory = project.paths.trial_dir(trial.id)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / RECORD_FILE, json.dumps(trial.as_dict(), indent=2, sort_keys=True))


def prepare_dir(project: Project, trial: Trial, patch: bytes, launch: Launch) -> Path:
    """Create the trial directory with its record, code patch and params files."""
    directory = project.paths.trial_dir(trial.id)
    directory.mkdir(parents=True, exist_ok=True)
    if patch:
        (directory / PATCH_FILE).write_bytes(patch)
    for name, content in launch.params_files.items():
        (directory / name).write_text(content)
    write_record(project, trial)
    return directory


# ---------------------------------------------------------------------------- processes on this machine


def proc_start(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks (guards against reused pids), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


_BOOT: list[str | None] = []


def boot_id() -> str | None:
    """This machine's boot id (pids and start times are only comparable within one boot)."""
    if not _BOOT:
        try:
            _BOOT.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        except OSError:
            _BOOT.append(None)
    return _BOOT[0]


def owner() -> dict[str, Any]:
    """Who this process is, as recorded on the trials it drives."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": proc_start(pid), "boot": boot_id()}


def owner_dead(record: dict[str, Any]) -> bool:
    """True only when ``record`` names a process of this machine and boot that is provably gone."""
    if not record or record.get("host") != socket.gethostname() or record.get("boot") != boot_id():
        return False
    if record.get("boot") is None or record.get("start") is None:
        return False
    return proc_start(int(record["pid"])) != record["start"]


def owner_alive(trial: Trial) -> bool:
    """Whether someone still drives ``trial``: a fresh heartbeat from an owner not provably dead."""
    if not trial.owner or trial.heartbeat is None or owner_dead(trial.owner):
        return False
    return trial.heartbeat + (trial.lease or 60) >= time.time()


@contextlib.contextmanager
def renewing(interval: float, renew: Callable[[], None], name: str) -> Iterator[None]:
    """Call ``renew`` every ``interval`` s in a thread of its own while the block runs (a heartbeat).

    A store that is busy for a moment raises TrackerError: that renewal is skipped, the next
    one will do. The thread dies with the process (kill -9, SIGSTOP), as a heartbeat should.
    """
    from tracker.errors import TrackerError

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(TrackerError):
                renew()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def read_pids(directory: Path) -> dict[str, Any]:
    """The runner's pid.json in a local trial directory, or {}."""
    try:
        return json.loads((directory / PID_FILE).read_text())
    except (OSError, ValueError):
        return {}


def exit_record(directory: Path) -> dict[str, Any] | None:
    """The runner's exit.json once written, else None."""
    try:
        text = (directory / EXIT_FILE).read_text().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def io_fault(exc: OSError, path: object = None) -> str:
    """A failed write of tracker's own (a log, a record) as the one line a trial's error shows."""
    import errno

    where = path or exc.filename or "a trial file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"disk full while writing {where}"
    return f"cannot write {where}: {exc.strerror or exc}"


# ---------------------------------------------------------------------------- expiry


def reconcile(store: BaseStore) -> tuple[list[str], list[str]]:
    """Expire what nobody runs any more: the one write reading the store makes.

    Run once by :attr:`tracker.project.Project.store` when a command opens its store, never
    by hand. Running trials whose heartbeat is older than their lease become ``lost``, queued
    ones of a dead run ``cancelled``. A trial whose owner is a process of this machine that is
    provably gone is expired at once instead of after its lease. Nothing is signalled: a
    trial's runner stops its script by itself when its owner dies.
    """
    lost, cancelled = store.expire()
    # a detached trial (an SSH runner) outlives its client: only its lease says when it is lost
    dead = [t.id for t in store.list_trials(status=["queued", "running"], owned=True)
            if owner_dead(t.owner) and not t.handle.get("detached")]
    if dead:
        more_lost, more_cancelled = store.expire(at=math.inf, ids=dead, reason="the tracker process running "
                                                 "this trial died")
        lost += more_lost
        cancelled += more_cancelled
    return lost, cancelled


def cancel_unstarted(store: BaseStore, trial_ids: Iterable[str], reason: str) -> list[str]:
    """End the trials of ``trial_ids`` that are still queued (they never started) ``cancelled``
    with ``reason`` as their error; return those it ended. One a worker claimed meanwhile is
    left alone (it runs, and stops the way a running trial does)."""
    return [i for i in trial_ids
            if store.transition(i, "cancelled", expected=["queued"], finished=now(), error=reason)]


# ---------------------------------------------------------------------------- the end of a trial


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, as its driver saw it."""

    exit_code: int | None
    reason: str | None = None  # from the runner: stopped, timeout, orphaned, or a fault text
    gone: str | None = None  # no exit record: why the trial is lost
    timeout: float | None = None


def decide(project: Project, config: ExperimentConfig, trial: Trial, outcome: Outcome) -> tuple[str, str | None,
                                                                                              dict[str, Any]]:
    """(status, error, extra) for a trial that ended as ``outcome`` says."""
    directory = project.paths.trial_dir(trial.id)
    stop = trial.stop_requested
    reason = outcome.reason
    extra: dict[str, Any] = {}
    if outcome.gone:
        return "lost", outcome.gone, extra
    if reason and reason not in ("stopped", "timeout", "orphaned"):
        return "failed", reason, extra  # a fault of tracker's own I/O (disk full)
    if reason == "timeout":
        return "failed", f"timed out after {outcome.timeout or config.timeout or 0:g} s", extra
    if stop and stop.startswith("pruned"):
        if outcome.exit_code == 0 and reason is None:  # the script ended on its own before the prune reached it
            stop = None  # so its result stands
        else:
            step = re.match(r"pruned at step (-?\d+)", stop)  # also "pruned at step 4 (with its configuration)"
            extra["pruned_step"] = int(step.group(1)) if step else None
            return "pruned", stop, extra
    if stop or reason == "stopped":
        return "cancelled", stop or "cancelled", extra
    if reason == "orphaned":
        return "lost", "the tracker process running this trial died", extra
    if outcome.exit_code != 0:
        tail = outputs.tail(directory / outputs.STDERR) or outputs.tail(directory / outputs.STDOUT)
        hint = refusal_hint(tail, config, f"experiments/{trial.experiment}.yaml")
        if hint:
            extra["hint"] = hint
        return "failed", f"exit code {outcome.exit_code}" + (f": {hint}" if hint else "") + \
            (f"\n{tail}" if tail else ""), extra
    problems = outputs.check_deliverables(directory, config.deliverables if trial.phase == "train" else [])
    for phase in phases_of(trial, config):
        problems += outputs.check_deliverables(directory, config.phase(phase).deliverables, phase)
    return ("failed", "; ".join(problems), extra) if problems else ("completed", None, extra)


def last_error_line(project: Project, trial: Trial) -> str:
    """The last line a failed trial wrote to stderr, else the last line of its error."""
    line = outputs.tail(project.paths.trial_dir(trial.id) / outputs.STDERR, 1).strip()
    return line or ((trial.error or "").strip().splitlines() or [""])[-1].strip()


def failure_signature(project: Project, trial: Trial) -> tuple[int | None, str]:
    """What makes two failures "the same": the exit code and the last error line, with the
    trial's own id and directory and every number masked (seeds, sizes, timings differ)."""
    line = last_error_line(project, trial)
    line = line.replace(str(project.paths.trial_dir(trial.id)), "<dir>").replace(trial.id, "<id>")
    return trial.exit_code, " ".join(re.sub(r"0x[0-9a-fA-F]+|\d+", "N", line).split())


def finalize(project: Project, config: ExperimentConfig, trial_id: str, outcome: Outcome,
             points: list[MetricPoint], *, replace_metrics: bool = False, duration: float | None = None,
             pid: int | None = None) -> Trial:
    """Give a running trial its final status, with its last metrics, artifacts and record, in one transaction."""
    store = project.store
    trial = store.get(trial_id)
    directory = project.paths.trial_dir(trial_id)
    status, error, extra = decide(project, config, trial, outcome)
    captured = outputs.autologged(directory)
    if captured:
        extra["autolog"] = captured
    artifacts = outputs.scan_artifacts(directory) if directory.is_dir() else []
    fields = {"finished": now(), "duration": duration if duration is not None else run_seconds(trial),
              "exit_code": outcome.exit_code, "error": error}
    if pid:
        fields["pid"] = pid
    for _ in range(2):
        if store.finalize(trial_id, status, metrics=points, replace_metrics=replace_metrics,
                          artifacts=artifacts, extra=extra, **fields):
            break
        if store.get(trial_id).status != "lost":
            break
        # expired while its owner was slow (a suspended laptop): the owner has the real result
        store.transition(trial_id, "running", expected=["lost"], event="its owner was alive after all")
    final = store.get(trial_id)
    with contextlib.suppress(OSError):  # a convenience copy of the store's record: a full disk must not stop us
        write_record(project, final)
    return final


def run_seconds(trial: Trial) -> float | None:
    """Seconds since the trial started (None if it never did)."""
    if not trial.started:
        return None
    from datetime import datetime, timezone

    started = datetime.fromisoformat(trial.started.replace("Z", "+00:00"))
    return round((datetime.now(timezone.utc) - started).total_seconds(), 3)


def elapsed(start: float) -> float:
    """Seconds since ``start`` (a time.monotonic() reading), rounded to ms."""
    return round(time.monotonic() - start, 3)
