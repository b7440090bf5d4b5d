"""``tracker run``: expand experiments into trials, record the code, run them.

This is the library entry point the CLI calls; tests call it directly::

    result = run_experiments(Project.find(), ["baseline"], RunOptions(seed_count=3))
    print([t.status for t in result.trials])

A run checks everything it can before it writes anything (the experiments exist, the
options fit them, the project is in git), so a run refused at the start leaves nothing
behind. Trials already completed with the same params, seed, code and experiment
settings are skipped unless ``rerun`` is set: each trial carries a fingerprint of those
(``extra["fingerprint"]``), found again with one indexed query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker import codeset, environment, experiments, gitinfo, venvs
from tracker.config import ExperimentConfig, check_tags
from tracker.errors import GitError, ProjectError, TrackerError, UsageError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.execution.driver import Driver
from tracker.execution.launch import build
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.store import Trial, now

DEFAULT_MAX_FAILURES = 3
"""A run stops starting trials after this many failed the same way before any completed."""


@dataclass(frozen=True)
class RunOptions:
    """What ``tracker run`` was asked to do (the same for every experiment of the run)."""

    seeds: list[int] = field(default_factory=list)
    seed_count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    parallel: int | None = None
    dry_run: bool = False
    remote: list[str] = field(default_factory=list)
    backup_to: str | None = None
    rerun: bool = False  # run trials again even if one with the same fingerprint completed
    max_failures: int = DEFAULT_MAX_FAILURES  # 0: never stop early
    tags: list[str] = field(default_factory=list)  # on top of the experiment file's tags


@dataclass(frozen=True)
class Plan:
    """What a run will do: its experiments, the trials to run and the completed ones it skips."""

    configs: dict[str, ExperimentConfig]
    specs: list[TrialSpec]
    skipped: list[Trial]
    code: gitinfo.CodeState | None  # None only for a dry run outside git
    reasons: list[str | None] = field(default_factory=list)  # per spec: why a trial done before runs again


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: its trials (final), or the plan of a dry run."""

    run_id: str | None
    experiments: list[str]
    specs: list[TrialSpec]
    trials: list[Trial]
    skipped: list[Trial] = field(default_factory=list)
    dry_run: bool = False
    stopped: str | None = None  # why the run started no more trials (see --max-failures)
    reasons: list[str | None] = field(default_factory=list)  # per spec: why a trial done before runs again

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status != "completed"]


def new_id() -> str:
    """A new trial id: 12 hex digits (type any unique prefix to refer to it)."""
    return uuid.uuid4().hex[:12]


def fingerprint(experiment: str, params: dict[str, Any], seed: int | None, code: gitinfo.CodeState,
                config: ExperimentConfig) -> str | None:
    """What makes two trials the same: experiment, params, seed, code and experiment settings.

    The code is the commit plus a hash of the uncommitted changes (a dirty tree with another
    patch is other code); the settings are the experiment file's effective config. None
    when the code cannot be named (no commit yet).
    """
    if not code.commit:
        return None
    patch = hashlib.sha256(code.patch).hexdigest() if code.dirty else None
    blob = json.dumps([experiment, params, seed, code.commit, patch, experiments.config_hash(config)],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def unknown_params(name: str, config: ExperimentConfig, options: RunOptions) -> list[str]:
    """Warnings for ``--param``/``--grid`` names the experiment does not know (scripts may take
    others, so these are warnings: a typo such as ``lrr`` is the usual cause)."""
    known = set(config.params) | set(config.grid) | set(config.search)
    out = []
    for flag, names in (("--param", options.params), ("--grid", options.grid)):
        for param in names:
            if param not in known:
                listed = ", ".join(sorted(known)) or "none"
                out.append(f"warning: {flag} {param} is not among the params, grid or search keys of "
                           f"experiment {name!r} ({listed}); it is passed to the script anyway")
    return out


def plan(project: Project, names: Sequence[str], options: RunOptions, reporter: Reporter | None = None) -> Plan:
    """Check the experiments and options, record nothing but seeds, and expand them into trial specs.

    Unknown experiments, a bad ``--backup-to`` and (for a real run) a project outside git fail
    here, before anything is written. Trials already completed with the same fingerprint
    are left out (``skipped``) unless ``options.rerun``.
    """
    reporter = reporter or Reporter()
    names = list(dict.fromkeys(names))
    check_tags(options.tags)
    if not names:
        raise UsageError("name at least one experiment to run", hint="see 'tracker experiments list'")
    configs = {name: experiments.load(project, name) for name in names}  # every name, before any work
    _check_max_failures(options.max_failures)
    for name, config in configs.items():
        target = options.backup_to or config.backup
        if target and target not in project.config.storage:
            where = "--backup-to" if options.backup_to else f"'backup:' of experiment {name!r}"
            raise UsageError(f"no storage target {target!r} for {where}", hint="see 'tracker storage list'")
        for warning in unknown_params(name, config, options):
            reporter.message(warning)
    try:
        code: gitinfo.CodeState | None = gitinfo.capture(project.root, project.config.code)
    except (ProjectError, GitError):
        if not options.dry_run:
            raise
        code = None  # a dry run lists the trials anyway; nothing can be skipped without code
    if code is not None and (line := codeset.left_out_line(code.left_out)):
        reporter.message(line)
    specs: list[TrialSpec] = []
    for name, config in configs.items():
        expanded = experiments.expand(project, name, config, seeds=options.seeds, seed_count=options.seed_count,
                                      params=options.params, grid=options.grid)
        if not expanded:
            raise UsageError(f"experiment {name!r} expands to no trials")
        specs += expanded
    skipped: list[Trial] = []
    reasons: list[str | None] = []
    if code is not None and not options.rerun:
        prints = [fingerprint(s.experiment, s.params, s.seed, code, configs[s.experiment]) for s in specs]
        done = {t.extra["fingerprint"]: t for t in project.store.list_trials(fingerprints=[p for p in prints if p])
                if t.status == "completed"}
        skipped = [done[p] for p in prints if p in done]
        specs = [s for s, p in zip(specs, prints, strict=True) if p not in done]
        reasons = codeset.why_run_again(project, specs, code)
    return Plan(configs, specs, skipped, code, reasons)


def _check_max_failures(value: int) -> None:
    if value < 0:
        raise UsageError(f"--max-failures must be 0 (never stop early) or more, got {value}")


def make_executor(project: Project, options: RunOptions, venv: venvs.ProjectEnv | None = None) -> BaseExecutor:
    """The executor for a run: local (in ``venv`` when given), or SSH when remotes are named."""
    from tracker.execution.registry import open_executor

    if options.remote:
        return open_executor(project, "ssh", remotes=options.remote)
    return open_executor(project, "local", parallel=options.parallel, venv=venv)


def in_venv(project: Project, options: RunOptions, executor: BaseExecutor,
             reporter: Reporter) -> tuple[BaseExecutor, venvs.ProjectEnv | None]:
    """The executor to use and the project's venv (built on first need) when tracker.yaml switches
    it on for a local run; remotes build their own environment, so they keep ``executor``."""
    venv = None if options.remote else venvs.prepare(project, reporter)
    return (make_executor(project, options, venv) if venv else executor), venv


def record_environment(project: Project, argv: list[str], venv: venvs.ProjectEnv | None) -> str:
    """Capture and store the environment ``argv`` runs in (in ``venv`` when given); return its id."""
    env = environment.capture(argv, project.paths.state / "environments.json",
                              path=venv.variables()["PATH"] if venv else None)
    if venv:
        env["venv"] = venv.describe()
    env_id = environment.env_id(env)
    project.store.save_environment(env_id, env)
    return env_id


def create_trials(project: Project, specs: list[TrialSpec], configs: dict[str, ExperimentConfig],
                  code: gitinfo.CodeState, env_ids: dict[str, str], executor: str,
                  tags: Sequence[str] = (), *, run_id: str | None = None,
                  extra: dict[str, Any] | None = None, queue: str | None = None,
                  max_attempts: int = 1) -> tuple[str, list[Trial]]:
    """Insert queued trials for ``specs`` (one run), owned by this process, and prepare their directories.

    Every trial gets its experiment file's ``tags`` plus ``tags`` (the run's ``--tag``), and
    ``extra`` in its record (an optimization's id and configuration number). With ``queue``
    they wait there for ``tracker worker`` instead, owned by nobody, with what a worker on
    another machine needs kept in the store: the code patch and the experiment's settings
    (``extra.patch_sha256``, ``extra.config_sha256``).
    """
    run_id = run_id or new_id()
    created = now()
    me: dict[str, Any] = {} if queue else lifecycle.owner()
    beat = None if queue else time.time()
    lease = project.config.defaults.lease
    shared: dict[str, dict[str, Any]] = {name: {} for name in configs}
    if queue:
        patch = {"patch_sha256": project.store.put_blob(code.patch)} if code.patch else {}
        for name, config in configs.items():
            blob = json.dumps(config.model_dump(mode="json", exclude_unset=True), sort_keys=True).encode()
            shared[name] = {**patch, "config_sha256": project.store.put_blob(blob)}
    evaluation = {name: {"validate": experiments.evaluation_seeds(
                      project, name, config, "validate", [s.seed for s in specs if s.experiment == name])}
                  for name, config in configs.items() if "validate" in config.phases}
    trials = []
    for s in specs:
        config = configs[s.experiment]
        own = {**(extra or {}), **s.extra}
        key = None  # only training trials are skipped when done before (a test is never re-used)
        if s.phase == "train":
            key = fingerprint(s.experiment, s.params, s.seed, code, config)
            if s.experiment in evaluation:
                own["eval_seeds"] = evaluation[s.experiment]
        trials.append(Trial(
            id=new_id(), experiment=s.experiment, status="queued", seed=s.seed, params=s.params,
            created=created, run_id=run_id, command=config.phase(s.phase).argv(config.command), phase=s.phase,
            commit=code.commit, branch=code.branch, dirty=code.dirty, snapshot=code.snapshot,
            executor=executor, env_id=env_ids[s.experiment], owner=me, heartbeat=beat, lease=lease,
            extra={**own, **shared[s.experiment], **({"fingerprint": key} if key else {}),
                   **({"code_patch_redacted": list(code.redacted)} if code.redacted else {})},
            tags=list(dict.fromkeys([*config.tags, *tags])), queue=queue, max_attempts=max_attempts))
    project.store.add_trials(trials)
    if code.snapshot:
        gitinfo.pin(project.root, [t.id for t in trials], code.snapshot)
    if queue:  # the worker that claims a trial makes its directory; making it here would race that worker
        return run_id, trials
    for trial in trials:
        launch = build(trial, configs[trial.experiment], project.paths.trial_dir(trial.id), project.root)
        lifecycle.prepare_dir(project, trial, code.patch, launch)
    return run_id, trials


def run_experiments(project: Project, names: Sequence[str], options: RunOptions,
                    reporter: Reporter | None = None, executor: BaseExecutor | None = None) -> RunResult:
    """Run the experiments ``names`` as ``options`` say, as one run; return its trials in their final state.

    Local trials run in the project's venv when tracker.yaml switches it on (built before any
    trial is created, so a build that fails leaves no trial behind). An ``executor`` given
    here is used as it is.
    """
    reporter = reporter or Reporter()
    names = list(dict.fromkeys(names))
    given = executor
    if not options.dry_run:
        executor = executor or make_executor(project, options)  # a bad --remote or --parallel fails here
    planned = plan(project, names, options, reporter)
    if options.dry_run:
        return RunResult(None, names, planned.specs, [], planned.skipped, dry_run=True, reasons=planned.reasons)
    if planned.skipped and planned.specs:  # with nothing left to run, the result says it
        reporter.message(f"skipped {len(planned.skipped)} trial(s) already completed with the same params, seed, "
                         "code and experiment settings (--rerun runs them again)")
    if not planned.specs:
        return RunResult(None, names, [], [], planned.skipped)
    assert executor is not None and planned.code is not None
    code = planned.code
    venv = None
    if given is None:
        executor, venv = in_venv(project, options, executor, reporter)
    lifecycle.reconcile(project)
    if code.dirty and len(code.patch) > gitinfo.LARGE_PATCH:
        reporter.message(f"warning: uncommitted changes are {len(code.patch) / 2**20:.0f} MiB; "
                         "they are saved with every trial (commit large files or ignore them)")
    if code.redacted:
        reporter.message(f"warning: the uncommitted tracker.yaml holds credentials ({', '.join(code.redacted)}); "
                         "they are masked as *** in the code.patch saved with each trial and its backups "
                         "(use ${VAR} references instead, see docs/backup.md)")
    store = project.store
    env_ids = {}
    for name, config in planned.configs.items():
        env_ids[name] = record_environment(project, config.command_argv(), venv)
        store.save_experiment(name, config.model_dump(mode="json"), experiments.config_hash(config))
    run_id, trials = create_trials(project, planned.specs, planned.configs, code, env_ids, executor.name,
                                   options.tags)
    driver = Driver(project, executor, reporter, max_failures=options.max_failures)
    with sigterm_as_interrupt():
        driver.drive(trials)
    final = store.list_trials(run_id=run_id)
    _backup(project, planned.configs, options, final, reporter)
    return RunResult(run_id, names, planned.specs, final, planned.skipped, stopped=driver.stopped,
                     reasons=planned.reasons)


def run_experiment(project: Project, name: str, options: RunOptions, reporter: Reporter | None = None,
                   executor: BaseExecutor | None = None) -> RunResult:
    """Run one experiment (see :func:`run_experiments`)."""
    return run_experiments(project, [name], options, reporter, executor)


def _backup(project: Project, configs: dict[str, ExperimentConfig], options: RunOptions, trials: list[Trial],
            reporter: Reporter) -> None:
    """Back up the completed trials, each to ``--backup-to`` or its experiment's ``backup:``."""
    targets: dict[str, list[Trial]] = {}
    for t in trials:
        target = options.backup_to or configs[t.experiment].backup
        if target and t.status == "completed":
            targets.setdefault(target, []).append(t)
    if targets:
        from tracker.storage.backup import backup_completed

        for target, completed in targets.items():
            backup_completed(project, target, completed, reporter)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
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
                 parallel: int | None = None, remote: list[str] | None = None,
                 max_failures: int = DEFAULT_MAX_FAILURES) -> RunResult:
    """Run queued trials again (after ``trials reset``), each with its recorded params and seed.

    Trials run against the current checkout and environment (the project's venv for local
    trials when tracker.yaml asks for it), locally or on ``remote`` hosts, and are recorded
    where and in what they actually ran; the commit they originally ran on is kept in the
    record's history, and a note is given when the code has moved on. Their fingerprints
    follow the code and experiment settings they now run with. If the venv cannot be built
    the trials end ``cancelled`` with the reason (they never started).
    """
    reporter = reporter or Reporter()
    _check_max_failures(max_failures)
    store = project.store
    trials = [store.get(t) for t in trial_ids]
    options = RunOptions(parallel=parallel, remote=remote or [])
    executor = make_executor(project, options)  # a bad --remote or --parallel fails here
    code = gitinfo.capture(project.root, project.config.code)
    for t in trials:
        if t.status != "queued":
            raise UsageError(f"trial {t.id} is {t.status}, not queued")
    try:
        executor, venv = in_venv(project, options, executor, reporter)
    except TrackerError as exc:
        for t in trials:
            store.transition(t.id, "cancelled", expected=["queued"], finished=now(), error=f"not started: {exc}")
        raise
    env_ids: dict[tuple[str, ...], str] = {}
    configs: dict[str, ExperimentConfig] = {}
    for t in trials:
        command = tuple(t.command)
        if command not in env_ids:
            env_ids[command] = record_environment(project, t.command, venv)
        if t.env_id != env_ids[command]:
            store.update(t.id, env_id=env_ids[command])
        if (t.commit, t.snapshot) != (code.commit, code.snapshot):
            reporter.message(f"note: trial {t.id} was made at {(t.commit or '?')[:8]}; "
                             f"it now runs on {(code.commit or '?')[:8]}{'*' if code.dirty else ''}")
            store.update(t.id, commit=code.commit, branch=code.branch, dirty=code.dirty,
                         snapshot=code.snapshot, event=f"re-run on {(code.commit or '?')[:8]}")
            if code.snapshot:
                gitinfo.pin(project.root, [t.id], code.snapshot)
        if t.experiment not in configs:
            with contextlib.suppress(UsageError):  # an experiment file since deleted: the driver copes
                configs[t.experiment] = experiments.load(project, t.experiment)
        key = fingerprint(t.experiment, t.params, t.seed, code, configs[t.experiment]) \
            if t.experiment in configs else None
        if key != t.extra.get("fingerprint"):
            store.merge_extra(t.id, {"fingerprint": key})
    driver = Driver(project, executor, reporter, max_failures=max_failures)
    with sigterm_as_interrupt():
        final = driver.drive([store.get(t.id) for t in trials])
    return RunResult(None, list(dict.fromkeys(t.experiment for t in trials)), [], final, stopped=driver.stopped)
