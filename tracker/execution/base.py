"""The executor interface: where a batch of prepared trials runs.

An executor takes trials already in the store (status ``queued``), starts each
with :func:`tracker.execution.lifecycle.start`, and ends each with
:func:`~tracker.execution.lifecycle.finalize`, so local, SSH (and later queue
and SLURM) trials end up as the same record.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracker.config import ExperimentConfig
    from tracker.project import Project
    from tracker.store import Trial


class Reporter:
    """Receives progress from executors; the CLI renders it, the library ignores it."""

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


@dataclass
class Batch:
    """Trials of one run, with what an executor needs to launch them."""

    project: Project
    config: ExperimentConfig
    trials: list[Trial]
    cancel: threading.Event = field(default_factory=threading.Event)


class BaseExecutor(ABC):
    """Runs the trials of a batch somewhere."""

    name: str = "base"

    @abstractmethod
    def run(self, batch: Batch, reporter: Reporter) -> None:
        """Run every trial of ``batch``; return when all are final or ``batch.cancel`` is set.

        Must leave no trial it started in ``running`` when it returns.
        """
