"""The store contract (:mod:`tracker.testing.store`) run on SQLite and PostgreSQL, and what only one of them has.

Each store class subclasses :class:`~tracker.testing.store.StoreContract` and overrides the
``store`` fixture; the tests below it are the dialect's own (migrations, query plans, files).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import free_port
from tracker.errors import StoreError, UsageError
from tracker.store import (
    BaseStore,
    Configuration,
    MetricPoint,
    SQLiteStore,
    Trial,
    now,
    open_store,
    pg_schema,
    schema,
    stores,
)
from tracker.store.postgres import PostgresStore
from tracker.store.sql import COLUMNS, trial_row
from tracker.testing.store import StoreContract, make, optimization

FIXTURES = Path(__file__).resolve().parent.parent / "core" / "fixtures"
ALL_MIGRATIONS = ["0001_initial", "0002_file_hashes", "0003_lifecycle", "0004_tags_notes", "0005_fingerprints",
                  "0006_optimizations", "0007_metric_values", "0008_queue", "0009_test_uses"]


def _insert_old(store: SQLiteStore, trials: list[Trial], points: list[MetricPoint] = ()) -> None:
    """Write trials (and the first trial's metric points) as an older tracker did: only the columns its
    schema has (the store's own writes name today's columns)."""
    have = [r[1] for r in store.query("PRAGMA table_info(trials)")]
    at = [i for i, col in enumerate(COLUMNS) if col in have]
    with store.transaction() as c:
        for t in trials:
            row = trial_row(t)
            c.execute(f"INSERT INTO trials ({', '.join(COLUMNS[i] for i in at)}) VALUES ({', '.join('?' * len(at))})",
                      [row[i] for i in at])
            c.executemany("INSERT INTO params (trial_id, name, value) VALUES (?, ?, ?)",
                          [(t.id, k, json.dumps(v, sort_keys=True)) for k, v in t.params.items()])
        c.executemany("INSERT INTO metrics (trial_id, name, step, value) VALUES (?, ?, ?, ?)",
                      [(trials[0].id, p.name, p.step, p.value) for p in points])


class TestSQLiteStore(StoreContract):
    @pytest.fixture(params=["open", "open_store"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
        path = tmp_path / "store" / "tracker.db"
        store = SQLiteStore.open(path) if request.param == "open" else open_store(f"sqlite:///{path}")
        assert isinstance(store, SQLiteStore) and store.path == path
        yield store
        store.close()

    @contextlib.contextmanager
    def nothing_written(self, store: BaseStore) -> Iterator[None]:
        """Also at the SQLite level: no commit reached the file (another connection's data_version)."""
        assert isinstance(store, SQLiteStore) and store.path is not None
        watcher = sqlite3.connect(store.path)
        try:
            before = watcher.execute("PRAGMA data_version").fetchone()[0]
            with super().nothing_written(store):
                yield
            assert watcher.execute("PRAGMA data_version").fetchone()[0] == before, "the store was written"
        finally:
            watcher.close()

    def test_migration_names(self, store: BaseStore) -> None:
        assert store.migrations() == ALL_MIGRATIONS

    def test_the_fingerprint_lookup_is_one_indexed_query(self, store: BaseStore) -> None:
        assert isinstance(store, SQLiteStore)
        where, args = store.where(fingerprints=["fa", "fb"])
        plan = " ".join(row[3] for row in store.query(f"EXPLAIN QUERY PLAN SELECT id FROM trials{where}", args))
        assert "USING INDEX trials_fingerprint" in plan, plan

    def test_reopening_is_idempotent(self, tmp_path: Path) -> None:
        path = tmp_path / "t.db"
        for _ in range(3):
            store = SQLiteStore.open(path)
            assert store.migrations() == ALL_MIGRATIONS
            store.close()
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(ALL_MIGRATIONS)
        conn.close()

    def test_many_connections_creating_the_store_at_once(self, tmp_path: Path) -> None:
        # SQLite refuses a journal-mode switch at once while another connection creates the
        # file (no busy wait): about 1 first open in 20 failed, so try it many times
        for attempt in range(60):
            path = tmp_path / f"new{attempt}.db"
            barrier = threading.Barrier(4)
            opened: list[list[str]] = []
            errors: list[BaseException] = []

            def open_it(path: Path, barrier: threading.Barrier, opened: list[list[str]],
                        errors: list[BaseException]) -> None:
                try:
                    barrier.wait()
                    store = SQLiteStore.open(path)
                    opened.append(store.migrations())
                    store.close()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=open_it, args=(path, barrier, opened, errors)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            assert opened == [ALL_MIGRATIONS] * 4

    def test_the_0001_fixture_upgrades_in_place(self, tmp_path: Path) -> None:
        path = tmp_path / "old.db"
        shutil.copy(FIXTURES / "store-0001.db", path)
        store = SQLiteStore.open(path)
        try:
            assert store.migrations() == ALL_MIGRATIONS
            trial = store.get("0ld0ld")
            assert (trial.status, trial.seed, trial.params, trial.metrics) == (
                "completed", 7, {"lr": 0.1}, {"val/acc": 0.9})
            assert (trial.step, trial.handle, trial.owner, trial.heartbeat, trial.lease) == (None, {}, {}, None, None)
            assert (trial.tags, trial.note) == ([], None)
            assert store.list_trials(params={"lr": 0.1}) == [trial]
            store.tag([trial.id], add=["old"])
            assert store.list_trials(tags=["old"]) == [store.get(trial.id)]
            # and it works as a current store
            assert store.transition(trial.id, "queued") is False  # completed stays completed
            fresh = make("queued")
            store.add_trials([fresh])
            assert store.transition(fresh.id, "running", expected=["queued"])
        finally:
            store.close()
        conn = sqlite3.connect(path)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(trials)")}
        conn.close()
        assert "file_hashes" not in tables
        assert {"step", "handle", "owner", "beat", "lease", "stop_requested", "tags", "note"} <= columns
        assert "tags" in tables
        assert "heartbeat" not in columns
        again = SQLiteStore.open(path)  # a second open has nothing left to do
        assert again.get("0ld0ld").metrics == {"val/acc": 0.9}
        again.close()

    def test_a_0005_store_gains_the_optimization_tables_with_its_trials_intact(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "old.db"
        with monkeypatch.context() as patch:  # a store as the tracker before 'tracker optimize' made it
            patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
            old = SQLiteStore.open(path)
            assert old.migrations() == ALL_MIGRATIONS[:5]
            trials = [make("completed", metrics={"val/loss": 0.5}, extra={"fingerprint": "f1"}), make("queued")]
            _insert_old(old, trials)
            old.close()
        store = SQLiteStore.open(path)
        try:
            assert store.migrations() == ALL_MIGRATIONS
            assert store.list_trials() == trials
            assert store.list_trials(fingerprints=["f1"]) == trials[:1]
            assert store.list_optimizations() == [] and store.list_trials(optimization="abc123000001") == []
            store.add_optimization(optimization("abc123000001"))
            store.save_configuration(Configuration("abc123000001", 0, {"x": 0.3}, "running", now()))
            searched = make("queued", extra={"optimization": "abc123000001", "configuration": 0})
            store.add_trials([searched])
            assert store.list_trials(optimization="abc1") == [] and store.list_trials(
                optimization="abc123000001") == [searched]
            where, args = store.where(optimization="abc123000001")
            plan = " ".join(r[3] for r in store.query(f"EXPLAIN QUERY PLAN SELECT id FROM trials{where}", args))
            assert "USING INDEX trials_optimization" in plan, plan
        finally:
            store.close()

    def test_a_0007_store_gains_the_queue_with_its_trials_intact(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "old.db"
        with monkeypatch.context() as patch:  # a store as the tracker before the queue made it
            patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:7])
            old = SQLiteStore.open(path)
            conn = old.dialect.conn
            conn.execute("INSERT INTO trials (id, experiment, status, seed, created, metrics) VALUES "
                         "('t1', 'e', 'completed', 1, '2026-01-01T00:00:00.000Z', '{\"acc\": 0.5}')")
            conn.execute("INSERT INTO metrics (trial_id, name, step, value) VALUES ('t1', 'acc', 1, 0.5)")
            old.close()
        store = SQLiteStore.open(path)
        try:
            assert store.migrations() == ALL_MIGRATIONS
            t = store.get("t1")
            assert (t.status, t.metrics, t.queue, t.attempts, t.max_attempts, t.errors) == (
                "completed", {"acc": 0.5}, None, 0, 1, [])
            assert [p.value for p in store.metrics("t1")] == [0.5]
            store.add_trials([make("queued", queue="q")])
            assert len(store.claim("q", {"worker": "w"}, lease=5)) == 1
            plan = " ".join(r[3] for r in store.query(
                "EXPLAIN QUERY PLAN SELECT id FROM trials WHERE queue = 'q' AND status = 'queued' "
                "ORDER BY created, rowid LIMIT 1"))
            assert "trials_queued" in plan, plan
        finally:
            store.close()

    def test_a_0006_store_keeps_its_metrics_and_reads_the_best_from_the_index(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "old.db"
        with monkeypatch.context() as patch:  # a store as the tracker before 0007 made it
            patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:6])
            old = SQLiteStore.open(path)
            trial = make("completed", seed=1, metrics={"val/acc": 0.7}, step=3)
            _insert_old(old, [trial], [MetricPoint("val/acc", v, s)
                                       for s, v in [(0, 0.5), (1, 0.8), (2, 0.8), (3, 0.7)]])
            before = old.metric_rows("val/acc", experiments=["e"])
            old.close()
        store = SQLiteStore.open(path)
        try:
            assert store.migrations() == ALL_MIGRATIONS
            assert store.metric_rows("val/acc", experiments=["e"]) == before == [
                (trial.id, "e", 1, json.dumps(trial.params), 0.7, 0.8, 1)]  # the best, the first step it was reached at
            assert [p.value for p in store.metrics(trial.id, "val/acc")] == [0.5, 0.8, 0.8, 0.7]
            sql = store.query("SELECT sql FROM sqlite_master WHERE name = 'metrics_trial_value'")[0][0]
            assert "(trial_id, name, value, step)" in sql
            # every metric lookup of a comparison reads the index only, never a point's row
            plan = " ".join(r[3] for r in store.query(
                "EXPLAIN QUERY PLAN SELECT (SELECT MAX(value) FROM metrics WHERE trial_id = t.id AND name = 'a'), "
                "(SELECT step FROM metrics WHERE trial_id = t.id AND name = 'a' AND value = 1 ORDER BY step LIMIT 1) "
                "FROM trials AS t"))
            assert plan.count("COVERING INDEX metrics_trial_value") == 2, plan
        finally:
            store.close()

    def test_a_running_0001_trial_gets_a_handle_and_a_lease(self, tmp_path: Path) -> None:
        path = tmp_path / "old.db"
        shutil.copy(FIXTURES / "store-0001.db", path)
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO trials (id, experiment, status, params, created, heartbeat, extra) "
                     "VALUES ('0run0run0run', 'base', 'running', '{}', '2026-11-01T00:00:01.000Z', "
                     "'2026-11-01T00:00:01.000Z', ?)",
                     (json.dumps({"remote": {"host": "gpu1", "dir": "/w/t"}, "keep": 1}),))
        conn.commit()
        conn.close()
        before = time.time()
        store = SQLiteStore.open(path)
        try:
            trial = store.get("0run")
            assert trial.handle == {"host": "gpu1", "dir": "/w/t"} and trial.extra == {"keep": 1}
            assert trial.lease == 60 and trial.heartbeat is not None and trial.heartbeat >= math.floor(before) - 1
            assert store.expire() == ([], [])  # it gets a whole lease from the upgrade...
            assert store.expire(at=time.time() + 61) == (["0run0run0run"], [])  # ...and never stays running
        finally:
            store.close()

    def test_a_store_from_a_newer_tracker_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "t.db"
        SQLiteStore.open(path).close()
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'now')")
        conn.commit()
        conn.close()
        with pytest.raises(StoreError, match="newer tracker"):
            SQLiteStore.open(path)


class DerivedReads(SQLiteStore):
    """SQLite answering the derived reads with BaseStore's defaults (what a new store gets for free)."""


for _name in ("get", "count", "count_by_status", "summaries_json", "key_names", "table", "metric_rows",
              "queue_counts", "get_optimization"):
    setattr(DerivedReads, _name, getattr(BaseStore, _name))


class TestBaseStoreDefaults(StoreContract):
    """BaseStore's derived reads pass the whole contract (on SQLite's writes)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BaseStore]:
        store = DerivedReads.open(tmp_path / "tracker.db")
        yield store
        store.close()


PG_MIGRATIONS = [name for name, _ in pg_schema.MIGRATIONS]


class TestPostgresStore(StoreContract):
    """The same contract on PostgreSQL: a fresh database per test (tests/conftest.py: pg_url)."""

    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[BaseStore]:
        store = open_store(pg_url)
        assert isinstance(store, PostgresStore) and store.url == pg_url
        self.others: list[BaseStore] = []
        yield store
        for other in [store, *self.others]:
            other.close()

    def connect(self, store: BaseStore) -> BaseStore:
        """Another connection (closed after the test: psycopg warns of connections left open)."""
        other = super().connect(store)
        self.others.append(other)
        return other

    def test_migration_names(self, store: BaseStore) -> None:
        assert store.migrations() == PG_MIGRATIONS

    def test_the_fingerprint_lookup_uses_its_index(self, store: BaseStore) -> None:
        assert isinstance(store, PostgresStore)
        store.add_trials([make("completed", extra={"fingerprint": f"f{i}"}) for i in range(50)])
        where, args = store.where(fingerprints=["f1", "f2"])
        with store.transaction() as c:
            c.execute("SET LOCAL enable_seqscan = off")  # 50 rows: the planner would rather scan
            plan = " ".join(r[0] for r in c.execute(f"EXPLAIN SELECT id FROM trials{where}", args).fetchall())
        assert "trials_fingerprint" in plan, plan

    def test_dict_order_and_text_survive_the_json_columns(self, store: BaseStore) -> None:
        trial = make("running", params={"z": 1, "a": {"y": 2, "b": [3, "x"]}, "m": None},
                     extra={"zz": 1, "aa": 2})
        store.add_trials([trial])
        store.append_metrics(trial.id, [MetricPoint("z/loss", 1.0, 0), MetricPoint("a/acc", 0.5, 0)])
        got = store.get(trial.id)
        assert list(got.params) == ["z", "a", "m"] and list(got.params["a"]) == ["y", "b"]
        assert list(got.metrics) == ["z/loss", "a/acc"] and list(got.extra) == ["zz", "aa"]
        assert list(json.loads(store.summaries_json())[0]["params"]) == ["z", "a", "m"]
        store.merge_extra(trial.id, {"aa": None, "bb": {"c": 1}})
        assert store.get(trial.id).extra == {"zz": 1, "bb": {"c": 1}}

    def test_concurrent_first_opens_migrate_once(self, pg_empty_url: str) -> None:
        opened: list[list[str]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def open_it() -> None:
            try:
                barrier.wait()
                store = open_store(pg_empty_url)
                opened.append(store.migrations())
                store.close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert opened == [PG_MIGRATIONS] * 4

    def test_a_store_from_a_newer_tracker_is_refused(self, store: BaseStore) -> None:
        with store.transaction() as c:  # type: ignore[attr-defined]
            c.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'now')")
        with pytest.raises(StoreError, match="newer tracker"):
            open_store(store.url)

    def test_a_0001_store_gains_the_queue_with_its_trials_intact(self, pg_empty_url: str) -> None:
        old = PostgresStore.from_url(pg_empty_url, upto="0001_initial")  # as the tracker before the queue made it
        try:
            assert old.migrations() == ["0001_initial"]
            trial = make("running", seed=7, params={"z": 1, "a": 2}, extra={"fingerprint": "f1"})
            columns = [c for c in COLUMNS if c not in ("queue", "attempts", "max_attempts", "errors")]
            row = dict(zip(COLUMNS, trial_row(trial), strict=True))
            with old.transaction() as c:
                c.execute(f"INSERT INTO trials ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [row[col] for col in columns])
                c.execute("INSERT INTO params (trial_id, name, value) VALUES (?, 'z', '1'), (?, 'a', '2')",
                          (trial.id, trial.id))
            old.append_metrics(trial.id, [MetricPoint("val/acc", 0.5, 0), MetricPoint("val/acc", 0.7, 1)])
            old.finalize(trial.id, "completed", exit_code=0)
        finally:
            old.close()
        store = open_store(pg_empty_url)
        assert store.migrations() == PG_MIGRATIONS
        after = store.get(trial.id)
        assert after == replace(trial, status="completed", metrics={"val/acc": 0.7}, step=1, exit_code=0)
        assert list(after.params) == ["z", "a"]
        assert (after.queue, after.attempts, after.max_attempts, after.errors) == (None, 0, 1, [])
        assert [p.value for p in store.metrics(trial.id)] == [0.5, 0.7]
        assert store.list_trials(params={"a": 2}, fingerprints=["f1"]) == [after]
        store.add_trials([queued := make("queued", queue="q")])
        assert [t.id for t in store.claim("q", {"worker": "w"}, lease=5)] == [queued.id]
        store.close()

    def test_an_unreachable_server_is_one_clear_line(self) -> None:
        port = free_port("127.0.0.1")
        with pytest.raises(StoreError) as info:
            open_store(f"postgresql://someone:s3cretpw@127.0.0.1:{port}/tracker")
        message = f"{info.value} {info.value.hint}"
        assert f"cannot reach the PostgreSQL store at 127.0.0.1:{port}/tracker: Connection refused" in message
        assert "s3cretpw" not in message and "PGPASSWORD" in message and "\n" not in str(info.value)


# ---------------------------------------------------------------------------- open_store


def test_open_store_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path / 'abs.db'}")
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "abs.db"
    assert absolute.url == f"sqlite:///{tmp_path / 'abs.db'}"
    trial = make("queued")
    absolute.add_trials([trial])
    again = open_store(absolute.url)  # its url opens the same store
    assert again.get(trial.id) == trial
    absolute.close()
    again.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel/t.db")
    assert isinstance(relative, SQLiteStore) and (tmp_path / "rel" / "t.db").exists()
    relative.close()
    upper = open_store(f"SQLite:///{tmp_path / 'abs.db'}")
    assert upper.get(trial.id) == trial
    upper.close()
    memory = open_store("sqlite:///:memory:")
    assert isinstance(memory, SQLiteStore) and memory.path is None and memory.list_trials() == []
    memory.close()


@pytest.mark.parametrize("url", ["tracker.db", "/abs/tracker.db", "://x"])
def test_open_store_without_a_scheme(url: str) -> None:
    with pytest.raises(UsageError, match="has no scheme"):
        open_store(url)


@pytest.mark.parametrize("url", ["mysql://x/y", "mongodb+srv://u@h/db"])
def test_open_store_with_an_unknown_scheme_names_the_known_ones(url: str) -> None:
    scheme = url.split("://")[0].split("+")[0]
    with pytest.raises(UsageError, match=f"no store for {scheme}://") as info:
        open_store(url)
    assert info.value.hint == f"known schemes: {', '.join(stores.names())}"
    assert {"sqlite", "postgresql", "postgres"} <= set(stores.names())


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(f"sqlite:///{path}")


def test_the_shipped_contract_stays_out_of_tracker_itself() -> None:
    code = ("import sys, tracker, tracker.store, tracker.store.sql, tracker.store.postgres; "
            "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith('tracker.testing')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert issubclass(TestSQLiteStore, StoreContract) and issubclass(TestPostgresStore, StoreContract)


def test_the_sql_stores_are_one_class_over_dialects_without_private_imports() -> None:
    import ast

    from tracker.store import SQLStore

    assert issubclass(SQLiteStore, SQLStore) and issubclass(PostgresStore, SQLStore)
    for module in ("sqlite", "postgres"):
        source = (Path(__file__).resolve().parents[2] / "tracker" / "store" / f"{module}.py").read_text()
        imported = [(node.module, alias.name) for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tracker.store")
                    for alias in node.names]
        assert not [name for _, name in imported if name.startswith("_")], imported
        assert not [m for m, _ in imported if m in ("tracker.store.sqlite", "tracker.store.postgres")], imported
