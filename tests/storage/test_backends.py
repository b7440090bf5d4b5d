"""The storage-backend contract suite (tracker.testing.storage), run against every built-in backend's
real server or emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tracker.project import Project
from tracker.testing.storage import CloudContract, DirectoryContract, MiB, unique


class TestLocal(DirectoryContract):
    @pytest.fixture
    def target(self, tmp_path: Path) -> dict[str, Any]:
        return {"type": "local", "path": str(tmp_path / "backups"), "multipart_threshold": MiB}

    def local_root(self, storage: Any) -> Path:
        return storage.root


@pytest.mark.ssh
class TestSSH(DirectoryContract):
    @pytest.fixture
    def target(self, ssh_hosts: dict[str, str], project_dir: Path, tmp_path: Path) -> dict[str, Any]:
        Project.load(project_dir).set_section("remotes", "gpu1", {
            "host": ssh_hosts["SSH_GPU1_ADDR"], "port": int(ssh_hosts["SSH_PORT"]), "user": ssh_hosts["SSH_USER"],
            "key": ssh_hosts["SSH_KEY"], "known_hosts": ssh_hosts["SSH_KNOWN_HOSTS"],
            "workdir": ssh_hosts["SSH_GPU1_BASE"]})
        return {"type": "ssh", "remote": "gpu1", "path": f"{ssh_hosts['SSH_GPU1_BASE']}/{unique('backups')}"}

    def local_root(self, storage: Any) -> Path:
        return Path(storage.root)  # the test hosts' directories are on this machine


@pytest.mark.cloud
class TestS3(CloudContract):
    @pytest.fixture
    def target(self, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        for key, value in s3_env.items():
            monkeypatch.setenv(key, value)
        import boto3

        bucket = unique("bk")
        boto3.client("s3", endpoint_url=s3_env["S3_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
        return {"type": "s3", "bucket": bucket, "endpoint_url": s3_env["S3_ENDPOINT_URL"],
                "multipart_threshold": 5 * MiB, "chunk_size": 5 * MiB}

    def assert_multipart(self, storage: Any, key: str) -> None:
        head = storage._client.head_object(Bucket=storage.options.bucket, Key=key)
        assert head["ETag"].strip('"').endswith("-2")  # two 5 MiB parts

    def break_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    def missing_bucket(self, target: dict[str, Any]) -> dict[str, Any]:
        return {**target, "bucket": unique("no-such-bucket")}


@pytest.mark.cloud
class TestAzure(CloudContract):
    large_size = 3 * MiB

    @pytest.fixture
    def target(self, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("TRACKER_TEST_AZURE", azure_env["AZURE_STORAGE_CONNECTION_STRING"])
        from azure.storage.blob import BlobServiceClient

        container = unique("bk")
        BlobServiceClient.from_connection_string(azure_env["AZURE_STORAGE_CONNECTION_STRING"]) \
            .create_container(container)
        return {"type": "azure", "container": container, "connection_string_env": "TRACKER_TEST_AZURE",
                "multipart_threshold": MiB, "chunk_size": MiB}

    def assert_multipart(self, storage: Any, key: str) -> None:
        committed, _ = storage._container.get_blob_client(key).get_block_list()
        assert len(committed) == 3  # three 1 MiB blocks

    def break_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TRACKER_TEST_AZURE")

    def missing_bucket(self, target: dict[str, Any]) -> dict[str, Any]:
        return {**target, "container": unique("nope")}


@pytest.mark.cloud
class TestGCS(CloudContract):
    large_size = 3 * MiB

    @pytest.fixture
    def target(self, gcs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_env["STORAGE_EMULATOR_HOST"])
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        bucket = unique("bk")
        storage.Client(project=gcs_env["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials()) \
            .create_bucket(bucket)
        return {"type": "gcs", "bucket": bucket, "project": gcs_env["GOOGLE_CLOUD_PROJECT"],
                "multipart_threshold": MiB, "chunk_size": MiB}

    def break_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("STORAGE_EMULATOR_HOST")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
        monkeypatch.setenv("NO_GCE_CHECK", "True")  # never ask a metadata server

    def missing_bucket(self, target: dict[str, Any]) -> dict[str, Any]:
        return {**target, "bucket": unique("nope")}


@pytest.mark.cloud
class TestB2(CloudContract):
    large_size = 3 * MiB

    @pytest.fixture
    def target(self, b2_sim: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        from b2_simulator import make_b2_api

        from tracker.storage.b2 import B2Storage

        api = make_b2_api(b2_sim)[0]
        monkeypatch.setattr(B2Storage, "api_factory", lambda: api)
        bucket = unique("bk")
        api.create_bucket(bucket, "allPrivate")
        return {"type": "b2", "bucket": bucket, "multipart_threshold": MiB, "chunk_size": MiB}

    def assert_multipart(self, storage: Any, key: str) -> None:
        version = storage._bucket.get_file_info_by_name(key)
        assert "large_file_sha1" in (version.file_info or {})  # uploaded as a B2 large file

    def break_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tracker.storage.b2 import B2Storage

        monkeypatch.setattr(B2Storage, "api_factory", None)
        monkeypatch.delenv("B2_APPLICATION_KEY_ID", raising=False)
        monkeypatch.delenv("B2_APPLICATION_KEY", raising=False)

    def missing_bucket(self, target: dict[str, Any]) -> dict[str, Any]:
        return {**target, "bucket": unique("nope")}
