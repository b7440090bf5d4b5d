"""A tracker project on disk: its paths, its tracker.yaml and its store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.config import ProjectConfig, validate_data
from tracker.errors import ConfigError
from tracker.paths import ProjectPaths, find_root
from tracker.yamlio import LineMap, atomic_write, dump_yaml, load_yaml
from tracker.yamlio import display_path as _display

PROJECT_HEADER = """\
# tracker project settings (see docs/configuration.md).
#   seeds / master_seed: the preset seed list every experiment draws from
#   defaults:            seeds per run and parallel trials when a run does not say
#   remotes:             named SSH hosts   (tracker remote add NAME --host ...)
#   storage:             backup targets    (tracker storage add NAME --type s3 ...)
#   environment:         venv: true runs local trials in the project's own venv, built from
#                        requirements.txt on the first run and reused until it changes
"""


@dataclass
class Project:
    """An opened project. ``Project.find()`` walks up from the current directory."""

    paths: ProjectPaths
    config: ProjectConfig
    lines: LineMap = field(default_factory=dict)

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """Open the project containing ``start`` (default: the current directory)."""
        return cls.load(find_root(start))

    @classmethod
    def load(cls, root: Path) -> Project:
        """Open the project whose tracker.yaml is in ``root``."""
        paths = ProjectPaths(root.resolve())
        data, lines = load_yaml(paths.config)
        config = validate_data(data, ProjectConfig, _display(paths.config), lines)
        return cls(paths, config, lines)

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def name(self) -> str:
        return self.config.name or self.root.name

    def store_url(self) -> tuple[str, str]:
        """The store's URL and where it came from: ``TRACKER_STORE`` (also what ``tracker --store URL``
        sets), else tracker.yaml ``store:`` (``${VAR}`` taken from the environment), else the default.

        The environment wins so one command, a worker or a CI job can point a project at another
        store without editing the file everyone shares.
        """
        import os

        if os.environ.get("TRACKER_STORE"):
            url, source = os.environ["TRACKER_STORE"], "TRACKER_STORE"
        elif self.config.store:
            from tracker.secrets import expand

            url = expand({"store": self.config.store}, "tracker.yaml", self.lines, self.paths.config)["store"]
            source = "tracker.yaml"
        else:
            return f"sqlite:///{self.paths.db}", "default"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            url = f"sqlite:///{self.root / url[len('sqlite:///'):]}"  # relative to the project
        return url, source

    @cached_property
    def store(self):  # -> BaseStore (imported lazily: sqlite3 is not needed for --help)
        """The project's store, opened on first use. Opening it expires what nobody runs any more
        (:func:`tracker.execution.lifecycle.reconcile`), so every command sees trial states as they
        are; that is the one write reading the store makes, and when nothing is due it is one query."""
        from tracker.execution.lifecycle import reconcile
        from tracker.store import open_store

        store = open_store(self.store_url()[0])
        reconcile(store)
        return store

    def reload(self) -> None:
        """Read tracker.yaml again (another process may have changed it)."""
        fresh = Project.load(self.root)
        self.config, self.lines = fresh.config, fresh.lines

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the project's lock (other tracker processes wait) for a read-modify-write of tracker.yaml.

        The lock is on the project directory itself, so it leaves no file behind.
        """
        import fcntl

        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def raw(self) -> dict[str, Any]:
        """tracker.yaml as plain data (to edit and save)."""
        data, _ = load_yaml(self.paths.config)
        return dict(data or {})

    def save_raw(self, data: dict[str, Any]) -> None:
        """Validate and write tracker.yaml atomically; reload ``self.config``."""
        config = validate_data(data, ProjectConfig, _display(self.paths.config), {})
        atomic_write(self.paths.config, PROJECT_HEADER + dump_yaml(data))
        self.config = config
        _, self.lines = load_yaml(self.paths.config)

    def set_section(self, key: str, name: str, value: dict[str, Any] | None) -> None:
        """Add/replace (or with None remove) ``key.name`` in tracker.yaml, e.g. remotes.gpu1."""
        data = self.raw()
        section = dict(data.get(key) or {})
        if value is None:
            if name not in section:
                raise ConfigError(f"no {key[:-1] if key.endswith('s') else key} named {name!r}",
                                  path=_display(self.paths.config))
            section.pop(name)
        else:
            section[name] = value
        if section:
            data[key] = section
        else:  # the last one removed: no empty 'remotes: {}' left behind
            data.pop(key, None)
        self.save_raw(data)

    def check_new_entry(self, key: str, name: str, label: str, *, force: bool = False) -> None:
        """Refuse an invalid ``name`` for a new ``key.name`` entry, or one that exists (unless ``force``)."""
        from tracker.errors import UsageError
        from tracker.names import check_name

        check_name(label, name)
        if name in (getattr(self.config, key) or {}) and not force:
            raise UsageError(f"{label} {name!r} already exists", hint="remove it first or pass --force")

    def line(self, *key: Any) -> int | None:
        """Line of a key path in tracker.yaml (for error messages)."""
        return self.lines.get(tuple(key))
