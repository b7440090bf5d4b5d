"""The in-script helper API works with and without tracker around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracker
from tracker.execution.capture import Capture


def parse_line(line: str) -> dict[str, float] | None:
    """The values tracker reads from one printed line (its step under ``step``), or None."""
    capture = Capture(None)
    points = capture.read(line)
    if not points:
        return None
    values = {p.name: p.value for p in points}
    return {"step": float(capture.step), **values} if capture.step is not None else values


def test_params_from_flags_outside_tracker(capsys: pytest.CaptureFixture[str]) -> None:
    p = tracker.params({"lr": 0.1, "epochs": 2, "fast": False, "name": "x"},
                       argv=["--lr=0.5", "--epochs", "7", "--fast", "--name=y"])
    assert p == {"lr": 0.5, "epochs": 7, "fast": True, "name": "y"}
    tracker.log(step=2, loss=0.25)
    line = capsys.readouterr().out.strip()
    assert line == "step: 2 loss: 0.25"
    assert parse_line(line) == {"step": 2.0, "loss": 0.25}  # what tracker reads back


def test_params_and_log_inside_a_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_TRIAL_ID", "t1")
    monkeypatch.setenv("TRACKER_TRIAL_DIR", str(tmp_path))
    monkeypatch.setenv("TRACKER_PARAMS", json.dumps({"lr": 0.3}))
    monkeypatch.setenv("TRACKER_SEED", "9")
    assert tracker.params({"lr": 1.0, "epochs": 3}) == {"lr": 0.3, "epochs": 3, "seed": 9}
    assert tracker.seed() == 9 and tracker.trial_dir() == tmp_path
    tracker.log(step=1, **{"val/acc": 0.5, "skip": "text"})
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["step"] == 1 and record["metrics"] == {"val/acc": 0.5}


def test_autolog_sklearn_and_rejects_unknown() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    captured = tracker.autolog(make_pipeline(StandardScaler(), SVC(C=2.0)))
    assert captured["Pipeline"]["params"]["svc__C"] == 2.0
    with pytest.raises(TypeError):
        tracker.autolog(object())


@pytest.mark.parametrize(("line", "expected"), [
    ("loss: 0.25", {"loss": 0.25}),
    ("step: 3 val/return: 12.5", {"step": 3.0, "val/return": 12.5}),
    ("acc=0.9, loss=1e-3", {"acc": 0.9, "loss": 0.001}),
    ("Epoch 1/10", None),
    ("INFO: loading 5 files", None),
    ("time: 12:30", None),
])
def test_metric_line_parsing(line: str, expected: dict[str, float] | None) -> None:
    assert parse_line(line) == expected
