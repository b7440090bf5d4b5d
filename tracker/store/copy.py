"""``tracker store migrate`` and ``tracker store info``: copy a store into another, say what a store holds.

The copy is row for row (a trial keeps its id, status, events, metric history and
timestamps), between any two SQL stores tracker ships (SQLite and PostgreSQL, either
way). It goes in batches, one transaction per batch, so an interrupted copy leaves
whole trials only; running it again copies only what the target lacks (records whose
id is already there are skipped and counted). Queued or running trials are refused:
their owners would keep writing to the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tracker.errors import UsageError
from tracker.store.base import BaseStore

BATCH = 500
# each trial's rows in the tables that hang off it, in insertion order (its events, its metric curve)
_CHILDREN = {
    "params": ("trial_id, name, value", None),
    "tags": ("trial_id, name", None),
    "metrics": ("trial_id, name, step, value, phase, ts", "insertion"),
    "artifacts": ("trial_id, path, size, sha256", None),
    "events": ("trial_id, ts, kind, message", "id"),
}
# tables copied whole, keyed by their first column, in an order that satisfies the foreign keys
_KEYED = {
    "experiments": "name, config, config_hash, updated",
    "environments": "id, data",
    "optimizations": "id, experiment, strategy, settings, status, created, finished, error, owner, commit_sha",
    "blobs": "sha256, data, size",
    "test_uses": "id, key, experiment, params, commit_sha, run_id, at",
}


@dataclass
class CopyResult:
    """What ``tracker store migrate`` did, per kind of record: how many it copied, how many were there already."""

    target: str  # the target's URL, password masked
    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "copied": self.copied, "skipped": self.skipped}


class _Side:
    """One store seen as SQL: its placeholder, its insertion-order column, queries and transactions."""

    def __init__(self, store: BaseStore) -> None:
        from tracker.store.postgres import PostgresStore
        from tracker.store.sqlite import SQLiteStore

        if not isinstance(store, SQLiteStore | PostgresStore):
            raise UsageError(f"tracker store migrate copies between SQLite and PostgreSQL stores, not "
                             f"{type(store).__name__}")
        self.store = store
        self.pg = isinstance(store, PostgresStore)
        self.order = "seq" if self.pg else "rowid"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def query(self, text: str, args: Sequence[Any] = ()) -> list[Any]:
        return self.store._query(self.sql(text), args)  # type: ignore[attr-defined]

    @contextmanager
    def writing(self) -> Iterator[Callable[[str, Sequence[Sequence[Any]]], None]]:
        with self.store.transaction() as c:  # type: ignore[attr-defined]
            yield lambda text, rows: c.executemany(self.sql(text), rows) if rows else None


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def copy_store(source: BaseStore, target: BaseStore, *, batch: int = BATCH,
               progress: Callable[[int, int], None] | None = None) -> CopyResult:
    """Copy every experiment, environment, optimization (with its configurations), blob and trial (with
    its params, tags, metrics, artifacts and events) of ``source`` that ``target`` lacks.

    ``progress(done, total)`` is called after each batch of trials.
    """
    from tracker.secrets import redact
    from tracker.store.sqlite import _COLUMNS

    if source.url == target.url:
        raise UsageError("the target is the store itself", hint="give another store's URL to --to")
    active = source.list_trials(status=["queued", "running"], limit=3)
    if active:
        n = source.count(status=["queued", "running"])
        raise UsageError(f"the store has {n} queued or running trial(s) ({', '.join(t.id for t in active)}"
                         f"{', ...' if n > len(active) else ''}): their owners would keep writing to it",
                         hint="wait for them to end, or stop them with 'tracker trials stop', then migrate")
    src, dst = _Side(source), _Side(target)
    result = CopyResult(redact(target.url))
    for table, columns in _KEYED.items():
        have = {r[0] for r in dst.query(f"SELECT {columns.split(',')[0]} FROM {table}")}
        every = src.query(f"SELECT {columns} FROM {table} ORDER BY 1")
        rows = [r for r in every if r[0] not in have]
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            with dst.writing() as write:
                write(f"INSERT INTO {table} ({columns}) VALUES ({_marks(len(chunk[0]))})", chunk)
                if table == "optimizations":
                    ids = [r[0] for r in chunk]
                    conf = ("optimization_id, number, params, state, created, value, seed_values, step, error, "
                            "finished")
                    write(f"INSERT INTO configurations ({conf}) VALUES ({_marks(10)})",
                          src.query(f"SELECT {conf} FROM configurations WHERE optimization_id IN "
                                    f"({_marks(len(ids))}) ORDER BY optimization_id, number", ids))
        result.copied[table], result.skipped[table] = len(rows), len(every) - len(rows)

    ids = [r[0] for r in src.query(f"SELECT id FROM trials ORDER BY created, {src.order}")]
    copied = skipped = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        have = {r[0] for r in dst.query(f"SELECT id FROM trials WHERE id IN ({_marks(len(chunk))})", chunk)}
        new = [i for i in chunk if i not in have]
        skipped += len(have)
        if new:
            marks = _marks(len(new))
            rows = src.query(f"SELECT {', '.join(_COLUMNS)} FROM trials WHERE id IN ({marks}) "
                             f"ORDER BY created, {src.order}", new)
            with dst.writing() as write:
                write(f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({_marks(len(_COLUMNS))})", rows)
                for table, (columns, order) in _CHILDREN.items():
                    write(f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns.count(',') + 1)})",
                          src.query(f"SELECT {columns} FROM {table} WHERE trial_id IN ({marks})"
                                    + (f" ORDER BY {src.order if order == 'insertion' else order}" if order else ""),
                                    new))
            copied += len(new)
        if progress:
            progress(start + len(chunk), len(ids))
    result.copied["trials"], result.skipped["trials"] = copied, skipped
    return result


def store_info(store: BaseStore) -> dict[str, Any]:
    """What ``tracker store info`` shows: the URL (password masked), backend, migrations, trials by status."""
    from tracker.secrets import redact

    by_status: dict[str, int] = {}
    for counts in store.count_by_status().values():
        for status, n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
    scheme = store.url.split("://", 1)[0].split("+", 1)[0].lower()
    return {"url": redact(store.url), "backend": "postgresql" if scheme in ("postgresql", "postgres") else scheme,
            "migrations": store.migrations(), "trials": sum(by_status.values()), "by_status": by_status}
