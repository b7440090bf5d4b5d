"""Where trials run: named targets, each of a type, and the two kinds of backend behind them.

A **target** is a name in tracker.yaml (``targets:``; ``remotes:`` holds SSH hosts) with a
``type`` and that type's options, or a type named directly (``local``, ``slurm``). Each
type is a class of one of two kinds, registered by name through :class:`~tracker.plugins.Registry`:

- an **executor** (:class:`~tracker.execution.base.BaseExecutor`; ``local``, ``ssh``, group
  ``tracker.executors``): the driver submits each trial to it and polls it to its end;
- a **launcher** (:class:`BaseLauncher`; ``slurm``, group ``tracker.launchers``): it puts the
  run's trials in a queue of the store and starts jobs of ``tracker worker`` that drain it.
  A trial it queued records the launcher's name (``trial.executor``), so ``trials show`` and
  ``trials stop`` ask it about the job that runs the trial, and a worker asks it which job
  it runs inside.

Every type declares its options as a pydantic model (``options``), which validates its
entries in tracker.yaml. Choosing a target::

    target = resolve(project, "cluster", {"time": "2:00:00"})   # tracker run --target cluster --time 2:00:00
    if target.kind == "launcher":
        launched = target.launcher(project).launch(["baseline"], RunOptions(seed_count=5))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tracker.errors import ConfigError, ExecutionError, UsageError
from tracker.execution import registry
from tracker.plugins import Registry

if TYPE_CHECKING:
    from tracker.execution.base import BaseExecutor, Reporter
    from tracker.experiments import TrialSpec
    from tracker.project import Project
    from tracker.runs import RunOptions
    from tracker.store import Trial


class TargetOptions(BaseModel):
    """Base of a target type's options: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(TargetOptions):
    """A type without options."""


@dataclass(frozen=True)
class Launched:
    """What a launcher did (or, for a dry run, would do) with a run's trials.

    ``jobs``: (job id, tasks) submitted; ``plan``: the shape of the submission, JSON-able
    (``{"arrays": [10], "trials_per_task": 1}``); ``summary``: that shape in words;
    ``notes``: what shaped it (cluster limits); ``follow``: how to watch the jobs.
    """

    run_id: str | None
    queue: str
    trials: list[Trial]
    skipped: list[Trial]
    specs: list[TrialSpec] = field(default_factory=list)
    jobs: list[tuple[str, int]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    notes: tuple[str, ...] = ()
    directory: Path | None = None
    follow: str = ""


class BaseLauncher(ABC):
    """Starts workers for a queue: ``launch`` queues a run's trials and submits the jobs that run them.

    The rest answers for trials it queued (found through :func:`backend_of`) and for the
    worker inside one of its jobs; each has a default that does nothing.
    """

    name: ClassVar[str] = "base"
    options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, project: Project, options: BaseModel | None = None) -> None:
        self.project = project
        self.settings = options if options is not None else self.options()

    @abstractmethod
    def launch(self, names: Sequence[str], run: RunOptions, *, max_attempts: int | None = None,
               reporter: Reporter | None = None) -> Launched:
        """Queue the trials of experiments ``names`` and start the jobs that run them (with
        ``run.dry_run``: plan only, writing nothing). The trials record this launcher's name."""

    def job(self, trial: Trial) -> str | None:
        """How the job that runs ``trial`` is called (``task 12_3``), None while it waits."""
        return None

    def state(self, trial: Trial) -> str | None:
        """The state of the job that runs (or will run) ``trial``, in the backend's words."""
        return None

    def stop(self, trial: Trial) -> bool:
        """End the job running ``trial`` when that job runs nothing else; True if it did."""
        return False

    def cancelled(self, trial: Trial) -> None:  # noqa: B027 - optional hook
        """A trial waiting in one of this launcher's queues was cancelled: drop jobs nobody needs."""

    @classmethod
    def current_job(cls) -> dict[str, Any] | None:
        """The job of this backend that this process runs in (its ids), None outside one."""
        return None

    def trial_ended(self, trial: Trial) -> None:  # noqa: B027 - optional hook
        """A worker inside one of this launcher's jobs ended ``trial`` (copy the job's log...)."""

    def requeued(self, trial_ids: Sequence[str]) -> list[str]:
        """The backend stopped the worker, which put ``trial_ids`` back: make sure jobs will run
        them; return the job ids submitted."""
        return []


BUILTIN_LAUNCHERS = {"slurm": "tracker.slurm.launcher:SlurmLauncher"}
LAUNCHER_GROUP = "tracker.launchers"
launchers: Registry[BaseLauncher] = Registry("launcher", BaseLauncher, LAUNCHER_GROUP, BUILTIN_LAUNCHERS,
                                             ExecutionError)
"""``launchers.register(name, "module:Class")``, ``launchers.names()``, ``launchers.get(name)``."""


def types() -> list[str]:
    """Every target type: executors and launchers, built in or from entry points."""
    return sorted({*registry.executors.names(), *launchers.names()})


def type_class(type_name: str) -> type[BaseExecutor] | type[BaseLauncher]:
    """The class of target type ``type_name`` (an executor or a launcher)."""
    if type_name in registry.executors:
        return registry.executors.get(type_name)
    if type_name in launchers:
        return launchers.get(type_name)
    raise UsageError(f"unknown target type {type_name!r}", hint=f"one of: {', '.join(types())}")


def options_model(type_name: str) -> type[BaseModel]:
    """The pydantic model of type ``type_name``'s options (ValueError for an unknown type, so that
    tracker.yaml's loader reports it at its line)."""
    try:
        cls = type_class(type_name)
    except UsageError as exc:
        raise ValueError(f"{exc.message} ({exc.hint})") from None
    return getattr(cls, "options", None) or NoOptions


@dataclass(frozen=True)
class Target:
    """A chosen place to run trials: its name(s), type and validated options."""

    name: str  # as chosen: "gpu1,gpu2", "cluster", "local"
    type: str
    options: BaseModel
    entries: tuple[str, ...] = ()  # the tracker.yaml entries it stands for (several SSH hosts)

    @property
    def kind(self) -> str:
        """``launcher`` or ``executor``."""
        return "launcher" if issubclass(type_class(self.type), BaseLauncher) else "executor"

    def launcher(self, project: Project) -> BaseLauncher:
        """The launcher of a launcher target."""
        return launchers.get(self.type)(project, self.options)

    def executor(self, project: Project, **run: Any) -> BaseExecutor:
        """The executor of an executor target, with the run's own settings (``parallel``, ``venv``)."""
        return registry.executors.get(self.type).from_target(project, self, **run)


LOCAL = "local"


def resolve(project: Project, choice: str | None = None, overrides: dict[str, Any] | None = None) -> Target:
    """The target ``choice`` names: a tracker.yaml entry (several SSH hosts separated by commas),
    else a type (``local``, ``slurm``) with default options; None is ``local``. ``overrides``
    (options from command-line flags) replace the entry's own and are validated with them."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    names = [n.strip() for n in (choice or LOCAL).split(",") if n.strip()] or [LOCAL]
    configured = project.config.all_targets()
    if len(names) > 1:
        wrong = [n for n in names if n in configured and configured[n].type != "ssh"]
        if wrong:
            raise UsageError(f"--target {choice!r}: only SSH hosts can be named together, but {wrong[0]!r} is "
                             f"{configured[wrong[0]].type}", hint="name one target of another type")
        return ssh_hosts(names)
    name = names[0]
    if name in configured:
        entry = configured[name]
        return _validated(name, entry.type, entry.options, overrides, (name,))
    if name in registry.executors or name in launchers:
        return _validated(name, name, None, overrides, ())
    raise UsageError(f"unknown target {name!r}",
                     hint=f"name one in tracker.yaml ({', '.join(sorted(configured)) or 'none yet'}) "
                          f"or a type ({', '.join(types())}); see docs/targets.md")


def ssh_hosts(names: Sequence[str]) -> Target:
    """SSH hosts named together (``--remote gpu1,gpu2``): tracker.yaml entries or ~/.ssh/config aliases."""
    return Target(",".join(names), "ssh", options_model("ssh")(), tuple(names))


def _validated(name: str, type_name: str, options: BaseModel | None, overrides: dict[str, Any],
               entries: tuple[str, ...]) -> Target:
    model = options_model(type_name)
    if options is not None and not overrides:
        return Target(name, type_name, options, entries)
    given = options.model_dump(exclude_unset=True) if options is not None else {}
    try:
        validated = model.model_validate({**given, **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise UsageError(f"target {name!r} ({type_name}) takes no option {key!r}",
                             hint=f"its options: {', '.join(model.model_fields) or 'none'}") from None
        raise ConfigError(f"target {name!r} ({type_name}): {key}: {err['msg'].removeprefix('Value error, ')}") \
            from None
    return Target(name, type_name, validated, entries)


def backend_of(project: Project, trial: Trial) -> BaseLauncher | None:
    """The launcher whose job runs (or will run) ``trial``: the one it records (as its executor, or
    in its handle, where a worker inside a job puts its ids), else the one whose queue it waits in
    (a launcher's queues are named ``<type>-<key>``). None for a trial no launcher started."""
    known = launchers.names()
    candidates = [trial.executor, *trial.handle, (trial.queue or "").partition("-")[0]]
    name = next((c for c in candidates if c in known), None)
    return launchers.get(name)(project) if name else None


def launcher_here(project: Project) -> tuple[BaseLauncher, dict[str, Any]] | None:
    """The launcher whose job this process (a worker) runs in, and that job's ids; None outside any."""
    for name in launchers.names():
        cls = launchers.get(name)
        job = cls.current_job()
        if job is not None:
            return cls(project), job
    return None
