"""Where a project keeps its files, in one object tests can redirect.

A project is the directory holding ``tracker.yaml``; its state lives in
``.tracker/`` (git-ignored): the SQLite store and one directory per trial.
``TRACKER_HOME`` overrides where the state goes (e.g. a scratch disk).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import ProjectError

PROJECT_FILE = "tracker.yaml"
STATE_DIR = ".tracker"


@dataclass(frozen=True)
class ProjectPaths:
    """The paths of one project."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def state(self) -> Path:
        override = os.environ.get("TRACKER_HOME")
        return Path(override) if override else self.root / STATE_DIR

    @property
    def db(self) -> Path:
        return self.state / "tracker.db"

    @property
    def hash_cache(self) -> Path:
        """sha256 cache of this machine's files (never in a shared store)."""
        return self.state / "hashes.db"

    @property
    def envs(self) -> Path:
        """The project's venvs on this machine, one directory per key (``environment: {venv: true}``)."""
        return self.state / "envs"

    @property
    def trials(self) -> Path:
        return self.state / "trials"

    def trial_dir(self, trial_id: str) -> Path:
        return self.trials / trial_id

    def experiment_file(self, name: str) -> Path:
        return self.experiments / f"{name}.yaml"


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` that holds tracker.yaml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise ProjectError(
        f"not inside a tracker project (no {PROJECT_FILE} in {here} or its parents)",
        hint="cd into a project; make existing code one with 'tracker init', or a new one with "
             "'tracker create conf.yaml'",
    )
