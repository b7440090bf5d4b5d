"""Fixtures for storage tests: the real emulators, started by the suite (see tests/infra/)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.conftest import INFRA, free_port, start_service, svc


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    d = tmp_path_factory.mktemp("s3")
    env = start_service("s3.sh", d, env={"S3_PORT": str(free_port())})
    yield env
    svc("s3.sh", "stop", d)


@pytest.fixture(scope="session")
def azure_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    d = tmp_path_factory.mktemp("azurite")
    env = start_service("azure.sh", d, env={"AZURITE_PORT": str(free_port())})
    yield env
    svc("azure.sh", "stop", d)


@pytest.fixture(scope="session")
def gcs_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    d = tmp_path_factory.mktemp("gcs")
    env = start_service("gcs.sh", d, env={"GCS_PORT": str(free_port())})
    yield env
    svc("gcs.sh", "stop", d)


@pytest.fixture(scope="session")
def b2_sim() -> object:
    """b2sdk's RawSimulator: a fresh in-memory B2 account."""
    pytest.importorskip("b2sdk")
    sys.path.insert(0, str(INFRA))
    from b2_simulator import make_b2_api

    return make_b2_api()[1]

