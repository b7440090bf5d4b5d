"""One launch path: prepare where trials run, record what they run, create them, drive them.

Every command that starts trials goes through :class:`Launcher`: ``tracker run``,
``trials reset --run``, ``tracker test``, ``tracker optimize`` (here and by the workers of a
queue) and ``tracker run --queue``. The sequence is always the same::

    launcher = Launcher(project, reporter, choose=lambda venv: open_executor(project, "local", venv=venv))
    launcher.prepare()                      # the project's venv (local trials), then the executor, once
    env_ids = launcher.record(configs)      # environment and experiment settings, in the store
    trials = launcher.create(specs, configs, code, env_ids)   # queued trials, one fingerprint per spec
    launcher.drive(trials)                  # run them to their end (Ctrl-C and SIGTERM cancel cleanly)

Which executor runs the trials is the caller's choice (``choose``, built once the venv is
known, or an executor given as it is); a launcher with a ``queue`` creates trials for
``tracker worker`` instead and drives nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tracker import environment, experiments, gitinfo, venvs
from tracker.config import ExperimentConfig
from tracker.errors import TrackerError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.execution.launch import build
from tracker.experiments import TrialSpec
from tracker.project import Project
from tracker.store import Trial, now

if TYPE_CHECKING:
    from tracker.execution.driver import Driver

ExecutorChoice = Callable[["venvs.ProjectEnv | None"], BaseExecutor]
"""Builds the executor that runs a launch's trials, given the project's venv (None: none applies)."""


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


def spec_fingerprints(specs: Sequence[TrialSpec], code: gitinfo.CodeState,
                      configs: dict[str, ExperimentConfig]) -> list[str | None]:
    """The fingerprint of each training spec (None for a test trial: a test is never re-used)."""
    return [fingerprint(s.experiment, s.params, s.seed, code, configs[s.experiment]) if s.phase == "train" else None
            for s in specs]


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
                  max_attempts: int = 1, prints: Sequence[str | None] | None = None) -> tuple[str, list[Trial]]:
    """Insert queued trials for ``specs`` (one run), owned by this process, and prepare their directories.

    Every trial gets its experiment file's ``tags`` plus ``tags`` (the run's ``--tag``), and
    ``extra`` in its record (an optimization's id and configuration number). ``prints`` are
    the specs' fingerprints when the caller has them already (computed here otherwise). With
    ``queue`` they wait there for ``tracker worker`` instead, owned by nobody, with what a
    worker on another machine needs kept in the store: the code patch and the experiment's
    settings (``extra.patch_sha256``, ``extra.config_sha256``).
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
    keys = spec_fingerprints(specs, code, configs) if prints is None else prints
    trials = []
    for s, key in zip(specs, keys, strict=True):
        config = configs[s.experiment]
        own = {**(extra or {}), **s.extra}
        if s.phase == "train" and s.experiment in evaluation:
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


class Launcher:
    """Starts trials the one way every command does; see the module docstring.

    Args:
        project: the project whose store records the trials.
        reporter: told of venv builds, trials and messages.
        choose: builds the executor once the venv is known (local trials run in the project's
            venv when tracker.yaml switches it on; ``local=False`` for remotes, which build their own).
        executor: an executor to use as it is (no venv is built for it).
        queue: create the trials in this queue for ``tracker worker``; nothing is driven here.
        queued_as: the executor recorded on queued trials: the launcher that starts their workers
            (``slurm``), or ``queue`` for workers started by hand.
    """

    def __init__(self, project: Project, reporter: Reporter | None = None, *, choose: ExecutorChoice | None = None,
                 executor: BaseExecutor | None = None, local: bool = True, queue: str | None = None,
                 max_attempts: int = 1, queued_as: str = "queue") -> None:
        self.project = project
        self.reporter = reporter or Reporter()
        self.choose = choose
        self.executor = executor
        self.local = local and executor is None and queue is None
        self.queue = queue
        self.max_attempts = max_attempts
        self.queued_as = queued_as
        self.venv: venvs.ProjectEnv | None = None
        self._env_ids: dict[tuple[str, ...], str] = {}
        self._saved: set[str] = set()

    @property
    def executor_name(self) -> str:
        return self.queued_as if self.queue else self.ready().name

    def ready(self) -> BaseExecutor:
        """The prepared executor (see :meth:`prepare`)."""
        if self.executor is None:
            raise RuntimeError("Launcher.prepare() must run before trials are created or driven")
        return self.executor

    def prepare(self, on_venv_error: Callable[[TrackerError], None] | None = None) -> None:
        """Build the project's venv (local trials, when tracker.yaml asks for it), then the executor, once.

        ``on_venv_error`` is told when the venv cannot be built (e.g. to cancel trials made before),
        then the error is raised.
        """
        if self.queue or self.executor is not None:
            return
        if self.local:
            try:
                self.venv = venvs.prepare(self.project, self.reporter)
            except TrackerError as exc:
                if on_venv_error:
                    on_venv_error(exc)
                raise
        assert self.choose is not None, "a launcher needs an executor or a way to choose one"
        self.executor = self.choose(self.venv)

    def environment(self, argv: Sequence[str]) -> str:
        """The id of the environment ``argv`` runs in, recorded once per command line."""
        key = tuple(argv)
        if key not in self._env_ids:
            self._env_ids[key] = record_environment(self.project, list(argv), self.venv)
        return self._env_ids[key]

    def record(self, configs: dict[str, ExperimentConfig], phase: str = "train") -> dict[str, str]:
        """Record each experiment's environment (for its ``phase`` command) and settings; return env ids by name."""
        env_ids = {}
        for name, config in configs.items():
            env_ids[name] = self.environment(config.phase(phase).argv(config.command) if phase != "train"
                                             else config.command_argv())
            if name not in self._saved:
                self._saved.add(name)
                self.project.store.save_experiment(name, config.model_dump(mode="json"),
                                                   experiments.config_hash(config))
        return env_ids

    def create(self, specs: list[TrialSpec], configs: dict[str, ExperimentConfig], code: gitinfo.CodeState,
               env_ids: dict[str, str], tags: Sequence[str] = (), *, run_id: str | None = None,
               extra: dict[str, Any] | None = None, prints: Sequence[str | None] | None = None) -> list[Trial]:
        """Create queued trials for ``specs`` (see :func:`create_trials`), in this launcher's queue if any."""
        _, trials = create_trials(self.project, specs, configs, code, env_ids, self.executor_name, tags,
                                  run_id=run_id, extra=extra, queue=self.queue, max_attempts=self.max_attempts,
                                  prints=prints)
        return trials

    def driver(self, **options: Any) -> Driver:
        """A driver over the prepared executor (``options``: pruner, on_end, max_failures)."""
        from tracker.execution.driver import Driver

        return Driver(self.project, self.ready(), self.reporter, **options)

    def drive(self, trials: list[Trial], driver: Driver | None = None) -> list[Trial]:
        """Run a fixed list of created trials to their end; return them as stored."""
        driver = driver or self.driver()
        with sigterm_as_interrupt():
            return driver.drive(trials)

    def run(self, driver: Driver, first: Trial, feed: Iterable[Trial | None]) -> None:
        """Run the trials a feed yields (a search's next trial as slots free), ``first`` prepared up front."""
        with sigterm_as_interrupt():
            driver.prepare([first])
            driver.run(feed)
