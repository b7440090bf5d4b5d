"""``tracker store migrate`` and ``tracker store info``: copy a store into another, say what a store holds.

The copy is row for row (a trial keeps its id, status, events, metric history and
timestamps), between any two SQL stores tracker ships (SQLite and PostgreSQL, either
way). It goes in batches, one transaction per batch, so an interrupted copy leaves
whole trials only; running it again copies only what the target lacks (records whose
id is already there are skipped and counted). Queued or running trials are refused:
their owners would keep writing to the source.
"""

from __future__ import annotations

from collections.abc import Callable
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
_CONFIGURATIONS = "optimization_id, number, params, state, created, value, seed_values, step, error, finished"


@dataclass
class CopyResult:
    """What ``tracker store migrate`` did, per kind of record: how many it copied, how many were there already."""

    target: str  # the target's URL, password masked
    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "copied": self.copied, "skipped": self.skipped}


def copy_store(source: BaseStore, target: BaseStore, *, batch: int = BATCH,
               progress: Callable[[int, int], None] | None = None) -> CopyResult:
    """Copy every experiment, environment, optimization (with its configurations), blob and trial (with
    its params, tags, metrics, artifacts and events) of ``source`` that ``target`` lacks.

    ``progress(done, total)`` is called after each batch of trials.
    """
    from tracker.secrets import redact
    from tracker.store.sql import COLUMNS

    if source.url == target.url:
        raise UsageError("the target is the store itself", hint="give another store's URL to --to")
    active = source.list_trials(status=["queued", "running"], limit=3)
    if active:
        n = source.count(status=["queued", "running"])
        raise UsageError(f"the store has {n} queued or running trial(s) ({', '.join(t.id for t in active)}"
                         f"{', ...' if n > len(active) else ''}): their owners would keep writing to it",
                         hint="wait for them to end, or stop them with 'tracker trials stop', then migrate")
    result = CopyResult(redact(target.url))
    for table, columns in _KEYED.items():
        key = columns.split(",")[0]
        have = {r[0] for r in target.table_rows(table, key)}
        every = source.table_rows(table, columns, order=key)
        rows = [r for r in every if r[0] not in have]
        configurations = source.table_rows("configurations", _CONFIGURATIONS, order="optimization_id, number") \
            if table == "optimizations" and rows else []
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            inserts = [(table, columns, chunk)]
            if table == "optimizations":
                ids = {r[0] for r in chunk}
                inserts.append(("configurations", _CONFIGURATIONS, [r for r in configurations if r[0] in ids]))
            target.insert_rows(inserts)
        result.copied[table], result.skipped[table] = len(rows), len(every) - len(rows)

    ids = [r[0] for r in source.table_rows("trials", "id", order="created")]
    copied = skipped = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        have = {r[0] for r in target.table_rows("trials", "id", trial_ids=chunk)}
        new = [i for i in chunk if i not in have]
        skipped += len(have)
        if new:
            trials = source.table_rows("trials", ", ".join(COLUMNS), trial_ids=new, order="created")
            target.insert_rows([("trials", ", ".join(COLUMNS), trials)] + [
                (table, columns, source.table_rows(table, columns, trial_ids=new, order=order))
                for table, (columns, order) in _CHILDREN.items()])
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
