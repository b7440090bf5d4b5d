"""``tracker queue status``: what waits, runs and ended in each queue, and the workers pulling from it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tracker.project import Project
from tracker.store import Worker


@dataclass(frozen=True)
class QueueStatus:
    """Trial counts per queue and experiment, and the workers (running and lost; stopped ones with ``everyone``)."""

    counts: dict[str, dict[str, dict[str, int]]]  # {queue: {experiment: {status: n}}}
    workers: list[Worker]
    at: float  # when it was read (epoch seconds): a worker's heartbeat age is at - heartbeat

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"queues": self.counts,
                "workers": [{**w.as_dict(), "heartbeat_age": None if w.heartbeat is None
                             else round(self.at - w.heartbeat, 1)} for w in self.workers]}


def queue_status(project: Project, queue: str | None = None, *, everyone: bool = False) -> QueueStatus:
    """Counts and workers of ``queue`` (default: every queue).

    Opening the store expires what nobody runs any more, so a trial of a dead worker
    shows as queued again (or lost, once out of attempts).
    """
    store = project.store
    at = time.time()
    counts = store.queue_counts()
    if queue is not None:
        counts = {queue: counts.get(queue, {})}
    workers = [w for w in store.workers(queue=queue, at=at) if everyone or w.status != "stopped"]
    return QueueStatus(counts, workers, at)
