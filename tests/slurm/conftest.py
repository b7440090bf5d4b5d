"""A real single-node SLURM cluster (tests/infra/slurm.sh) for the tests of tracker.slurm.

MaxArraySize is 4 here, so a run of more than 4 trials is split into several arrays, and a
partition ``wide`` also has a node ``ghost`` (down, never running anything) besides this host.
The state directory must have world-searchable parents (munged runs as user munge), so it
is SLURM_STATE_DIR or /tmp/tracker-slurm, not pytest's tmp_path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import start_service, svc

MAX_ARRAY_SIZE = 4
EXTRA_CONF = "NodeName=ghost NodeAddr=127.0.0.9 CPUs=1 State=DOWN\nPartitionName=wide Nodes={node},ghost State=UP"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """slurmctld + slurmd + munged on this host; the script's facts (SLURM_CONF, SLURM_PARTITION...)."""
    state = os.environ.get("SLURM_STATE_DIR") or "/tmp/tracker-slurm"
    extra = EXTRA_CONF.format(node=socket.gethostname().split(".")[0])
    env = start_service("slurm.sh", state, env={"SLURM_MAX_ARRAY_SIZE": str(MAX_ARRAY_SIZE), "SLURM_EXTRA_CONF": extra})
    yield env
    svc("slurm.sh", "stop", state)


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The cluster, with SLURM's commands pointed at it (SLURM_CONF)."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    return slurm_cluster
