"""Executors by name: ``local`` and ``ssh`` built in, more through the ``tracker.executors`` entry points.

A trial records the name of the executor that ran it, so re-runs, stops and
re-attaches find the right one::

    executor = open_executor(project, "ssh", remotes=["gpu1", "gpu2"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker.errors import ExecutionError
from tracker.execution.base import BaseExecutor
from tracker.plugins import Registry

if TYPE_CHECKING:
    from tracker.project import Project

BUILTIN = {
    "local": "tracker.execution.local:LocalExecutor",
    "ssh": "tracker.remote.executor:SSHExecutor",
}
ENTRY_POINT_GROUP = "tracker.executors"
executors: Registry[BaseExecutor] = Registry("executor", BaseExecutor, ENTRY_POINT_GROUP, BUILTIN, ExecutionError)
"""``executors.register(name, "module:Class")``, ``executors.names()``, ``executors.get(name)``."""


def open_executor(project: Project, name: str, **options: Any) -> BaseExecutor:
    """An executor ``name`` for ``project`` built with ``options`` (e.g. ``parallel``, ``remotes``)."""
    return executors.get(name)(project, **options)
