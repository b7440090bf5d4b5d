"""Executors by name: ``local`` and ``ssh`` built in, more through the ``tracker.executors`` entry points.

A trial records the name of the executor that ran it, so re-runs, stops and
re-attaches find the right one::

    executor = open_executor(project, "ssh", remotes=["gpu1", "gpu2"])
"""

from __future__ import annotations

from typing import Any

from tracker.errors import ExecutionError
from tracker.execution.base import BaseExecutor
from tracker.plugins import Registry
from tracker.project import Project

BUILTIN = {
    "local": "tracker.execution.local:LocalExecutor",
    "ssh": "tracker.remote.executor:SSHExecutor",
}
ENTRY_POINT_GROUP = "tracker.executors"
_registry: Registry[BaseExecutor] = Registry("executor", BaseExecutor, ENTRY_POINT_GROUP, BUILTIN, ExecutionError)


def register(name: str, target: str | type[BaseExecutor], *, replace: bool = False) -> None:
    """Register an executor class (or "module:Class") under ``name``."""
    _registry.register(name, target, replace=replace)


def names() -> list[str]:
    """Every known executor name."""
    return _registry.names()


def open_executor(project: Project, name: str, **options: Any) -> BaseExecutor:
    """An executor ``name`` for ``project`` built with ``options`` (e.g. ``parallel``, ``remotes``)."""
    return _registry.get(name)(project, **options)
