"""The SLURM command wrappers against a real slurmctld: limits, submit, states, refusals."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.slurm.conftest import MAX_ARRAY_SIZE
from tracker.errors import ExecutionError
from tracker.slurm import cluster

pytestmark = pytest.mark.slurm


def test_limits_come_from_the_cluster(slurm: dict[str, str]) -> None:
    limits = cluster.limits()
    assert limits.max_array_size == MAX_ARRAY_SIZE
    assert limits.max_jobs == 10000  # MaxJobCount; no accounting database, so no MaxSubmitJobs
    assert any(n.startswith("MaxSubmitJobs: no limit") for n in limits.notes)


def test_partition_nodes(slurm: dict[str, str]) -> None:
    assert cluster.partition_nodes(None) == [slurm["SLURM_NODE"]] == cluster.partition_nodes("debug")
    assert slurm["SLURM_NODE"] == socket.gethostname().split(".")[0]


def test_array_states_then_gone(slurm: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "hold.sh"
    script.write_text("#!/bin/bash\nsleep 30\n")
    job = cluster.sbatch(script, ["--array=0-2", "--hold", f"--output={tmp_path}/%A_%a.out"])
    try:
        assert cluster.states([job]) == {f"{job}_{i}": "PENDING" for i in range(3)}
        assert cluster.task_state(f"{job}_1") == "PENDING"
        cluster.scancel([f"{job}_1"])
        deadline = time.monotonic() + 10
        while cluster.states([job]).get(f"{job}_1") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(cluster.states([job])) == {f"{job}_0", f"{job}_2"}
    finally:
        cluster.scancel([job])
    assert cluster.task_state("987654321") == cluster.GONE
    assert cluster.states(["987654321"]) == {}


def test_sbatch_refusal_is_one_line_with_slurms_message(slurm: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    with pytest.raises(ExecutionError, match=r"^sbatch failed: sbatch: error: invalid partition specified: nope"):
        cluster.sbatch(script, ["--partition=nope"])
    with pytest.raises(ExecutionError, match="Invalid job array specification"):
        cluster.sbatch(script, [f"--array=0-{MAX_ARRAY_SIZE}"])


def test_missing_sbatch_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutionError, match="sbatch not found: SLURM's client commands are not installed"):
        cluster.sbatch(tmp_path / "job.sh")
