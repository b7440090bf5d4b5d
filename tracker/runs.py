"""``tracker run``: expand an experiment into trials, record the code, run them.

This is the library entry point the CLI calls; tests call it directly::

    result = run_experiment(Project.find(), "baseline", RunOptions(seed_count=3))
    print([t.status for t in result.trials])
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracker import environment, experiments, gitinfo
from tracker.errors import UsageError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.execution.driver import drive
from tracker.execution.launch import build
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.store import Trial, now


@dataclass(frozen=True)
class RunOptions:
    """What ``tracker run`` was asked to do."""

    seeds: list[int] = field(default_factory=list)
    seed_count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    parallel: int | None = None
    dry_run: bool = False
    remote: list[str] = field(default_factory=list)
    backup_to: str | None = None


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: its trials (final), or the plan of a dry run."""

    run_id: str | None
    experiment: str
    specs: list[TrialSpec]
    trials: list[Trial]
    dry_run: bool = False

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status != "completed"]


def new_id() -> str:
    """A new trial id: 12 hex digits (type any unique prefix to refer to it)."""
    return uuid.uuid4().hex[:12]


def plan(project: Project, name: str, options: RunOptions) -> tuple[Any, list[TrialSpec]]:
    """Load the experiment and expand it into trial specs (nothing is written but seeds)."""
    config = experiments.load(project, name)
    specs = experiments.expand(project, name, config, seeds=options.seeds,
                               seed_count=options.seed_count, params=options.params,
                               grid=options.grid)
    return config, specs


def make_executor(project: Project, options: RunOptions) -> BaseExecutor:
    """The executor for a run: local, or SSH when remotes are named."""
    from tracker.execution.registry import open_executor

    if options.remote:
        return open_executor(project, "ssh", remotes=options.remote)
    return open_executor(project, "local", parallel=options.parallel)


def create_trials(project: Project, name: str, config: Any, specs: list[TrialSpec],
                  code: gitinfo.CodeState, env_id: str, executor: str) -> tuple[str, list[Trial]]:
    """Insert queued trials for ``specs``, owned by this process, and prepare their directories."""
    run_id = new_id()
    created = now()
    me = lifecycle.owner()
    beat = time.time()
    lease = project.config.defaults.lease
    trials = [
        Trial(id=new_id(), experiment=name, status="queued", seed=s.seed, params=s.params,
              created=created, run_id=run_id, command=config.command_argv(), phase=s.phase,
              commit=code.commit, branch=code.branch, dirty=code.dirty, snapshot=code.snapshot,
              executor=executor, env_id=env_id, owner=me, heartbeat=beat, lease=lease,
              extra={"code_patch_redacted": list(code.redacted)} if code.redacted else {})
        for s in specs
    ]
    project.store.add_trials(trials)
    if code.snapshot:
        gitinfo.pin(project.root, [t.id for t in trials], code.snapshot)
    for trial in trials:
        launch = build(trial, config, project.paths.trial_dir(trial.id), project.root)
        lifecycle.prepare_dir(project, trial, code.patch, launch)
    return run_id, trials


def run_experiment(project: Project, name: str, options: RunOptions,
                   reporter: Reporter | None = None, executor: BaseExecutor | None = None) -> RunResult:
    """Run experiment ``name`` as ``options`` say; return its trials in their final state."""
    reporter = reporter or Reporter()
    config, specs = plan(project, name, options)
    if options.dry_run:
        return RunResult(None, name, specs, [], dry_run=True)
    if not specs:
        raise UsageError(f"experiment {name!r} expands to no trials")
    backup_to = options.backup_to or config.backup
    if backup_to and backup_to not in project.config.storage:
        raise UsageError(f"no storage target {backup_to!r} for --backup-to",
                         hint="see 'tracker storage list'")
    executor = executor or make_executor(project, options)
    lifecycle.reconcile(project)
    code = gitinfo.capture(project.root)
    if code.dirty and len(code.patch) > gitinfo.LARGE_PATCH:
        reporter.message(f"warning: uncommitted changes are {len(code.patch) / 2**20:.0f} MiB; "
                         "they are saved with every trial (commit large files or ignore them)")
    if code.redacted:
        reporter.message(f"warning: the uncommitted tracker.yaml holds credentials ({', '.join(code.redacted)}); "
                         "they are masked as *** in the code.patch saved with each trial and its backups "
                         "(use ${VAR} references instead, see docs/backup.md)")
    env = environment.capture(config.command_argv(), project.paths.state / "environments.json")
    env_id = environment.env_id(env)
    store = project.store
    store.save_environment(env_id, env)
    store.save_experiment(name, config.model_dump(mode="json"), experiments.config_hash(config))
    run_id, trials = create_trials(project, name, config, specs, code, env_id, executor.name)
    with _sigterm_as_interrupt():
        drive(project, executor, trials, reporter)
    final = store.list_trials(run_id=run_id)
    if backup_to:
        from tracker.storage.backup import backup_completed

        backup_completed(project, backup_to, [t for t in final if t.status == "completed"], reporter)
    return RunResult(run_id, name, specs, final)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while trials run, so both cancel cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def rerun_queued(project: Project, trial_ids: list[str], reporter: Reporter | None = None,
                 parallel: int | None = None, remote: list[str] | None = None) -> list[Trial]:
    """Run queued trials again (after ``trials reset``), each with its recorded params and seed.

    Trials run against the current checkout, locally or on ``remote`` hosts, and are
    recorded where they actually ran; the commit they originally ran on is kept in the
    record's history, and a note is given when the code has moved on.
    """
    reporter = reporter or Reporter()
    store = project.store
    trials = [store.get(t) for t in trial_ids]
    code = gitinfo.capture(project.root)
    for t in trials:
        if t.status != "queued":
            raise UsageError(f"trial {t.id} is {t.status}, not queued")
        if (t.commit, t.snapshot) != (code.commit, code.snapshot):
            reporter.message(f"note: trial {t.id} was made at {(t.commit or '?')[:8]}; "
                             f"it now runs on {(code.commit or '?')[:8]}{'*' if code.dirty else ''}")
            store.update(t.id, commit=code.commit, branch=code.branch, dirty=code.dirty,
                         snapshot=code.snapshot, event=f"re-run on {(code.commit or '?')[:8]}")
            if code.snapshot:
                gitinfo.pin(project.root, [t.id], code.snapshot)
    executor = make_executor(project, RunOptions(parallel=parallel, remote=remote or []))
    with _sigterm_as_interrupt():
        drive(project, executor, [store.get(t.id) for t in trials], reporter)
    return [store.get(t.id) for t in trials]
