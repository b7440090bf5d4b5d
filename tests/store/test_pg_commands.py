"""The PostgreSQL store through the commands: --store, store migrate / info, tracker sql, and credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli, free_port
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment
from tracker.store import Configuration, now, open_store
from tracker.store.models import Optimization


def answers(*store: str) -> dict[str, object]:
    """What the reading commands say about the project (against ``--store URL`` when given)."""
    where = ["--store", store[0]] if store else []
    out: dict[str, object] = {}
    for name, args in {"list": ["trials", "list", "--json"],
                       "compare": ["compare", "base", "--metric", "val/acc", "--by", "lr", "--json"],
                       "status": ["status", "--json"]}.items():
        code, stdout, stderr = cli(*where, *args)
        assert code == 0, stderr
        out[name] = json.loads(stdout)
    for trial in out["list"]:  # type: ignore[union-attr]
        code, stdout, stderr = cli(*where, "trials", "show", trial["id"], "--json")
        assert code == 0, stderr
        out[trial["id"]] = json.loads(stdout)
    return out


@pytest.fixture
def ran(project_dir: Path) -> Project:
    """A project whose local store holds 4 completed trials (with metric curves), a tag, a note, an
    optimization with its configurations, and a blob."""
    project = Project.find()
    run_experiment(project, "base", RunOptions(seeds=[11, 22]))
    store = project.store
    first = store.list_trials()[0]
    store.tag([first.id], add=["best"])
    store.update(first.id, note="the one")
    store.add_optimization(Optimization("abc123000001", "base", "tpe", {"metric": "val/acc", "goal": "max"},
                                        "completed", now()))
    store.save_configuration(Configuration("abc123000001", 0, {"lr": 0.1}, "complete", now(), 0.5, {"11": 0.5}))
    store.put_blob(b"a patch\x00")
    return project


def test_migrate_into_postgres_then_every_command_answers_the_same(ran: Project, pg_empty_url: str) -> None:
    local = answers()
    assert len(local["list"]) == 4  # type: ignore[arg-type]
    code, _, stderr = cli("store", "migrate", "--to", pg_empty_url, "--batch", "3")
    assert code == 0, stderr
    assert "trials: 4 copied, 0 already there" in stderr and "blobs: 1 copied" in stderr
    assert answers(pg_empty_url) == local
    pg = open_store(pg_empty_url)
    try:
        source = ran.store
        for trial in source.list_trials():
            assert pg.metrics(trial.id) == source.metrics(trial.id) and pg.events(trial.id) == source.events(trial.id)
            assert pg.artifacts(trial.id) == source.artifacts(trial.id)
        assert pg.list_optimizations() == source.list_optimizations()
        assert pg.configurations("abc123000001") == source.configurations("abc123000001")
        assert pg.blob(source.put_blob(b"a patch\x00")) == b"a patch\x00"
        assert pg.experiment("base") == source.experiment("base")
    finally:
        pg.close()
    code, stdout, stderr = cli("store", "migrate", "--to", pg_empty_url, "--json")  # again: nothing to do
    assert code == 0, stderr
    assert json.loads(stdout)["copied"] == {"experiments": 0, "environments": 0, "optimizations": 0, "blobs": 0,
                                            "test_uses": 0, "trials": 0}
    assert json.loads(stdout)["skipped"]["trials"] == 4
    code, stdout, _ = cli("--store", pg_empty_url, "store", "info", "--json")
    info = json.loads(stdout)
    assert (info["backend"], info["trials"], info["by_status"], info["source"]) == (
        "postgresql", 4, {"completed": 4}, "TRACKER_STORE")
    assert info["migrations"] == ["0001_initial", "0008_queue", "0009_test_uses"]


def test_migrate_back_from_postgres_into_a_new_sqlite_store(ran: Project, pg_empty_url: str, tmp_path: Path) -> None:
    assert cli("store", "migrate", "--to", pg_empty_url)[0] == 0
    local = answers()
    back = f"sqlite:///{tmp_path / 'back.db'}"
    code, _, stderr = cli("--store", pg_empty_url, "store", "migrate", "--to", back)
    assert code == 0, stderr
    assert answers(back) == local


def test_migrate_refuses_while_trials_are_queued_or_running(ran: Project, pg_empty_url: str) -> None:
    waiting = ran.store.list_trials()[0]
    from dataclasses import replace

    ran.store.add_trials([replace(waiting, id="0queued0000a", status="queued", tags=[])])
    code, _, stderr = cli("store", "migrate", "--to", pg_empty_url)
    assert code == 2
    assert "the store has 1 queued or running trial(s) (0queued0000a)" in stderr and "tracker trials stop" in stderr
    assert len(stderr.strip().splitlines()) <= 2  # the error and its hint
    pg = open_store(pg_empty_url)
    assert pg.count() == 0  # nothing copied
    pg.close()


def test_tracker_sql_on_postgres_is_read_only(ran: Project, pg_empty_url: str) -> None:
    assert cli("store", "migrate", "--to", pg_empty_url)[0] == 0
    query = "SELECT status, count(*) AS n, avg(seed) AS s FROM trials WHERE id LIKE '%' GROUP BY status"
    code, stdout, stderr = cli("--store", pg_empty_url, "sql", query, "--json")
    assert code == 0, stderr
    assert json.loads(stdout) == [{"status": "completed", "n": 4, "s": 16.5}]
    assert cli("sql", query, "--json")[1] == stdout  # the same answer from SQLite
    code, stdout, _ = cli("--store", pg_empty_url, "sql", "SELECT params->>'lr' AS lr FROM trials ORDER BY 1", "--csv")
    assert stdout.split() == ["lr", "0.1", "0.1", "0.5", "0.5"]
    for statement in ("DELETE FROM trials", "COMMIT; DELETE FROM trials", "UPDATE trials SET note = 'x'"):
        code, _, stderr = cli("--store", pg_empty_url, "sql", statement)
        assert code == 2 and ("read-only" in stderr or "give one statement" in stderr), stderr
    pg = open_store(pg_empty_url)
    assert pg.count() == 4 and all(t.note != "x" for t in pg.list_trials())
    pg.close()


def test_a_password_in_the_url_is_never_printed(ran: Project, pg_empty_url: str) -> None:
    with_password = pg_empty_url.replace("postgres@", "postgres:hunter2pw@")  # trust auth: accepted, unused
    code, stdout, stderr = cli("--store", with_password, "store", "info")
    assert code == 0, stderr
    assert "hunter2pw" not in stdout + stderr and "postgres:***@" in stdout
    port = free_port("127.0.0.1")
    code, stdout, stderr = cli("--store", f"postgresql://me:hunter2pw@127.0.0.1:{port}/tracker", "trials", "list")
    assert code == 1 and "hunter2pw" not in stdout + stderr
    assert f"cannot reach the PostgreSQL store at 127.0.0.1:{port}/tracker" in stderr
    assert "PGPASSWORD" in stderr and len(stderr.strip().splitlines()) <= 2
    code, _, stderr = cli("store", "migrate", "--to", f"postgresql://me:hunter2pw@127.0.0.1:{port}/tracker")
    assert code == 1 and "hunter2pw" not in stderr
