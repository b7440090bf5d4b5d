"""The executor interface: four verbs that own a trial's whole life wherever it runs.

An executor **submits** a prepared trial and returns a handle (stored with the
trial, so any later command can find it), **polls** it (running / exited with a
code / gone, bringing new log bytes home on the way), **stops** it (SIGTERM to
everything it started, SIGKILL after the grace period) and **collects** its
outputs into the local trial directory. It never changes a trial's status: the
driver (:mod:`tracker.execution.driver`) does, through the store.

Executors register by name (``local``, ``ssh``; third parties through the
``tracker.executors`` entry-point group) and are built as ``cls(project, **options)``;
as a target type (tracker.execution.targets) they declare their tracker.yaml options
(``options``, a pydantic model) and are built from a target by :meth:`BaseExecutor.from_target`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tracker.config import ExperimentConfig
    from tracker.execution.targets import Target
    from tracker.project import Project
    from tracker.store import Trial


class Reporter:
    """Receives progress from the driver; the CLI renders it, the library ignores it."""

    def planned(self, total: int) -> None:
        """How many trials the run will start (known when it is given a fixed list)."""

    def started(self, trial: Trial) -> None:
        """A trial's process started."""

    def output(self, trial: Trial, stream: str, line: str) -> None:
        """A line the trial printed (``stream`` is ``stdout`` or ``stderr``)."""

    def finished(self, trial: Trial) -> None:
        """A trial reached a final status."""

    def message(self, text: str) -> None:
        """Something worth telling the user (a host failed, a sync finished)."""

    def progress(self, label: str, done: int, total: int) -> None:
        """Bytes done of a long transfer (a large code sync); ``done == total`` ends it."""

    def status(self, label: str, text: str | None) -> None:
        """The latest step of a long task without a known size (an environment build); None ends it."""


@dataclass(frozen=True)
class Job:
    """A trial ready to start: its record, its experiment's settings and the stop grace period."""

    trial: Trial
    config: ExperimentConfig
    grace: float


@dataclass(frozen=True)
class Poll:
    """What an executor knows of a submitted trial.

    ``state``: ``running``; ``exited`` (``exit_code``, and ``reason`` when the runner ended it
    early: ``stopped``, ``timeout``, ``orphaned`` or a fault such as "disk full while
    writing ..."); or ``gone`` (no process and no exit record; ``detail`` says why).
    """

    state: str
    exit_code: int | None = None
    reason: str | None = None
    detail: str | None = None
    pid: int | None = None
    duration: float | None = None


class BaseExecutor(ABC):
    """Where trials run. Subclasses implement submit, poll, stop and collect."""

    name: ClassVar[str] = "base"
    options: ClassVar[type[BaseModel] | None] = None  # a target's options in tracker.yaml (None: none)
    uses_project_venv: ClassVar[bool] = False  # runs trials in this checkout, so in the project's venv

    def __init__(self, project: Project, **options: Any) -> None:
        self.project = project

    @classmethod
    def from_target(cls, project: Project, target: Target, **run: Any) -> BaseExecutor:
        """The executor for ``target``: built with its options and the run's own settings that are set
        (``parallel``, ``venv``), which win over the target's."""
        given = target.options.model_dump(exclude_unset=True)
        return cls(project, **{**given, **{k: v for k, v in run.items() if v is not None}})

    @property
    def capacity(self) -> int:
        """How many trials may run at once now (0: nothing more can start)."""
        return 1

    def prepare(self, jobs: list[Job], reporter: Reporter) -> None:  # noqa: B027 - optional hook
        """Get ready for these trials before the first submit (sync code, build environments)."""

    @abstractmethod
    def submit(self, job: Job, reporter: Reporter) -> dict[str, Any]:
        """Start a prepared trial; return its handle (JSON-able, stored with the trial)."""

    @abstractmethod
    def poll(self, trial: Trial) -> Poll:
        """The trial's state; new bytes of its logs and metrics reach the local trial directory."""

    @abstractmethod
    def stop(self, trial: Trial, grace: float) -> None:
        """Ask the trial to end: SIGTERM to everything it started, SIGKILL after ``grace`` s."""

    @abstractmethod
    def collect(self, trial: Trial) -> None:
        """Bring the trial's outputs into its local directory (after it ended)."""

    def release(self, trial: Trial) -> None:  # noqa: B027 - optional hook
        """The driver is done with the trial: free its slot."""

    def wait(self, timeout: float) -> None:
        """Sleep until something may have changed (a trial exited), at most ``timeout`` s."""
        time.sleep(timeout)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and processes held for the run."""
