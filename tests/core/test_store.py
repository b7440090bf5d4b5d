"""The SQLite store: migrations, concurrency-safe transitions, listing at scale."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tracker.errors import NotFoundError, StoreError, UsageError
from tracker.store import MetricPoint, SQLiteStore, Trial, now


def trial(i: int, **kw: object) -> Trial:
    return Trial(id=f"{i:012x}", experiment=kw.pop("experiment", "e"), status=kw.pop("status", "queued"),
                 seed=i % 5, params={"lr": 0.1 * (i % 3), "n": i}, created=now(), **kw)


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    SQLiteStore.open(path).close()
    SQLiteStore.open(path).close()
    names = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM schema_migrations")]
    assert names == ["0001_initial", "0002_file_hashes", "0003_lifecycle", "0004_tags_notes", "0005_fingerprints",
                     "0006_optimizations", "0007_metric_values", "0008_queue", "0009_test_uses"]


def test_newer_store_is_refused_not_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    SQLiteStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'now')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer tracker"):
        SQLiteStore.open(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    path.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore.open(path)


def test_prefix_lookup_and_ambiguity() -> None:
    store = SQLiteStore.memory()
    store.add_trials([Trial(id="abc111", experiment="e", status="queued", seed=1, params={}, created=now()),
                      Trial(id="abc222", experiment="e", status="queued", seed=2, params={}, created=now())])
    assert store.get("abc1").id == "abc111"
    with pytest.raises(UsageError, match="ambiguous"):
        store.get("abc")
    with pytest.raises(NotFoundError):
        store.get("zzz")


def test_transition_only_from_expected_status() -> None:
    store = SQLiteStore.memory()
    store.add_trials([trial(1)])
    assert store.transition(trial(1).id, "running", expected=["queued"])
    assert not store.transition(trial(1).id, "running", expected=["queued"])
    assert [e.message for e in store.events(trial(1).id)] == ["queued", "running"]


def test_metrics_summary_is_last_value() -> None:
    store = SQLiteStore.memory()
    store.add_trials([trial(1)])
    store.append_metrics(trial(1).id, [MetricPoint("loss", 1.0, 0), MetricPoint("loss", 0.5, 1)])
    assert store.get(trial(1).id).metrics == {"loss": 0.5}
    store.append_metrics(trial(1).id, [MetricPoint("acc", 0.9)], replace=True)
    assert store.get(trial(1).id).metrics == {"acc": 0.9}
    assert [p.name for p in store.metrics(trial(1).id)] == ["acc"]


def test_listing_100k_trials_is_one_fast_query(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "big.db")
    store.add_trials(trial(i, experiment=f"e{i % 4}", status="completed",
                           metrics={"val/acc": i / 1e5}) for i in range(100_000))
    statements: list[str] = []
    store.dialect.conn.set_trace_callback(statements.append)  # timing belongs to benchmarks/ (bench_cli.py)
    rows = store.list_trials()
    filtered = store.list_trials(experiment="e1", params={"lr": 0.0})
    store.dialect.conn.set_trace_callback(None)
    assert len(statements) == 2, statements  # one query per listing, however many trials
    assert len(rows) == 100_000
    assert all(t.experiment == "e1" and t.params["lr"] == 0.0 for t in filtered)
    assert len(filtered) == len([i for i in range(100_000) if i % 4 == 1 and i % 3 == 0])


def test_old_store_fixture_is_upgraded_in_place(tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "store-0001.db", path)
    store = SQLiteStore.open(path)
    trial = store.get("0ld0ld")
    assert (trial.seed, trial.params, trial.metrics) == (7, {"lr": 0.1}, {"val/acc": 0.9})
    assert store.list_trials(params={"lr": 0.1})[0].id == trial.id
    assert store.migrations() == ["0001_initial", "0002_file_hashes", "0003_lifecycle", "0004_tags_notes",
                                  "0005_fingerprints", "0006_optimizations", "0007_metric_values", "0008_queue",
                                  "0009_test_uses"]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "file_hashes" not in tables  # machine-local: moved out of the store
