"""Results out of the store: tracker export (CSV, JSON, Parquet), read-only tracker sql, tracker.load_trials."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import cli
from tracker.project import Project
from tracker.runs import RunOptions, run_experiment


@pytest.fixture
def ran(project_dir: Path) -> Project:
    """The 'base' experiment run: lr 0.1 and 0.5, 2 seeds each (4 real trials)."""
    project = Project.find()
    result = run_experiment(project, "base", RunOptions())
    assert [t.status for t in result.trials] == ["completed"] * 4
    return project


def test_export_csv_json_parquet_one_row_per_trial(ran: Project, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    stored = {t.id: t for t in ran.store.list_trials()}
    for suffix in ("csv", "json", "parquet"):
        dest = tmp_path / f"results.{suffix}"
        code, _, err = cli("export", "base", "--to", str(dest))
        assert code == 0, err
        assert "wrote 4 trial(s)" in err
        if suffix == "csv":
            rows = list(csv.DictReader(dest.read_text().splitlines()))
        elif suffix == "json":
            rows = json.loads(dest.read_text())
        else:
            rows = pq.read_table(dest).to_pylist()
        assert {r["id"] for r in rows} == set(stored)
        for row in rows:
            trial = stored[row["id"]]
            assert float(row["params.lr"]) == trial.params["lr"]
            assert float(row["metrics.val/acc"]) == pytest.approx(trial.metrics["val/acc"])
            assert int(row["seed"]) == trial.seed and row["status"] == "completed"


def test_export_filters_and_bad_input(ran: Project, tmp_path: Path) -> None:
    code, _, err = cli("export", "--status", "failed", "--to", str(tmp_path / "none.csv"))
    assert code == 0 and "wrote 0 trial(s)" in err
    assert (tmp_path / "none.csv").read_text().startswith("id,experiment,status")
    code, _, err = cli("export", "base", "--to", str(tmp_path / "results.xlsx"))
    assert code == 2 and "end the file name in .csv, .json or .parquet" in err and "Traceback" not in err
    code, _, err = cli("export", "nope", "--to", str(tmp_path / "r.csv"))
    assert code == 2 and "no experiment 'nope'" in err


def test_sql_reads_and_never_writes(ran: Project) -> None:
    code, out, err = cli("sql", "SELECT status, count(*) AS n FROM trials GROUP BY status", "--json")
    assert code == 0, err
    assert json.loads(out) == [{"status": "completed", "n": 4}]
    code, out, _ = cli("sql", "SELECT name, count(*) FROM params GROUP BY name ORDER BY name")
    assert out.splitlines()[1:] == ["epochs\t4", "lr\t4"]
    before = ran.store.count()
    for statement in ("DELETE FROM trials", "UPDATE trials SET status = 'failed'", "DROP TABLE trials",
                      "INSERT INTO tags VALUES ('x', 'y')", "ATTACH 'other.db' AS o", "PRAGMA journal_mode = DELETE",
                      "CREATE TABLE t (x)", "SELECT 1; DELETE FROM trials"):
        code, _, err = cli("sql", statement)
        assert code == 2, statement
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert ran.store.count() == before
    assert {t.status for t in ran.store.list_trials()} == {"completed"}
    assert not Path("other.db").exists()


def test_load_trials_gives_a_dataframe_or_records(ran: Project) -> None:
    import tracker

    frame = tracker.load_trials("base")
    assert frame.shape[0] == 4
    means = frame.groupby("params.lr")["metrics.val/acc"].mean()
    assert set(means.index) == {0.1, 0.5}
    records = tracker.load_trials(["base"], as_frame=False, status=["completed"])
    assert sorted(r["id"] for r in records) == sorted(frame["id"])
    assert all(isinstance(r["dirty"], bool) for r in records)


@pytest.mark.parametrize("suffix", ["csv", "json", "parquet"])
def test_an_unwritable_destination_is_one_line(ran: Project, tmp_path: Path, suffix: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = cli("export", "base", "--to", str(blocker / f"results.{suffix}"))
    assert code == 1
    assert err.startswith(f"error: cannot write {blocker / f'results.{suffix}'}") and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1
