"""Adding storage targets to tracker.yaml, validated by their backend."""

from __future__ import annotations

from typing import Any

from tracker.errors import UsageError
from tracker.project import Project
from tracker.storage.registry import validate_options


def add_target(project: Project, name: str, kind: str, options: dict[str, Any], *, force: bool = False) -> None:
    """Write ``storage.NAME`` to tracker.yaml after the backend has validated its options.

    A credential among the options is written as given, with a TrackerWarning saying how
    to keep it out of the file (``${VAR}`` references, the cloud's credential chain).
    """
    from tracker import secrets

    project.check_new_entry("storage", name, "storage target", force=force)
    data = {k: v for k, v in options.items() if v is not None}
    validated = validate_options(kind, data, f"storage target {name}")
    if kind == "ssh" and validated.remote not in project.config.hosts():
        raise UsageError(f"remote {validated.remote!r} is not in tracker.yaml",
                         hint=f"add it first: tracker remote add {validated.remote} --host ...")
    project.set_section("storage", name, {"type": kind, **data})
    secrets.warn_literal({name: {"type": kind, **data}})
