"""Backups in Amazon S3 (or any S3-compatible service: MinIO, Ceph, moto).

Credentials come from boto3's standard chain (environment, ~/.aws, instance
role); nothing is read from or written to tracker.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.errors import StorageError
from tracker.storage.base import BaseStorage, ObjectInfo, Progress, StorageOptions, require


class S3Options(StorageOptions):
    """``{type: s3, bucket: my-models, prefix: tracker, region: eu-west-1, endpoint_url: ...}``"""

    bucket: str
    region: str | None = None
    endpoint_url: str | None = None


class S3Storage(BaseStorage):
    """S3 objects; files above ``multipart_threshold`` go up in ``chunk_size`` parts."""

    Options = S3Options
    options: S3Options

    @cached_property
    def _client(self) -> Any:
        boto3 = require("boto3", "boto3", "s3")
        endpoint = self.options.endpoint_url or os.environ.get("S3_ENDPOINT_URL") or None
        return boto3.session.Session().client("s3", region_name=self.options.region, endpoint_url=endpoint)

    @cached_property
    def _transfer(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.options.multipart_threshold,
                              multipart_chunksize=self.options.chunk_size, max_concurrency=8)

    def describe(self) -> str:
        return f"s3 target {self.name} (s3://{self.options.bucket}/{self.options.prefix.strip('/')})"

    def _error(self, exc: Exception, action: str) -> StorageError:
        from botocore import exceptions as bce

        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return StorageError(f"no AWS credentials found for {self.describe()}",
                                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile")
        if isinstance(exc, bce.EndpointConnectionError):
            return StorageError(f"cannot reach the S3 endpoint of {self.describe()}: {exc}")
        if isinstance(exc, bce.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket",) or (code == "404" and action == "bucket"):
                return StorageError(f"bucket {self.options.bucket!r} does not exist ({self.describe()})",
                                    hint="create it, or fix 'bucket' in tracker.yaml")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StorageError(f"permission denied to {action} in {self.describe()} ({code})",
                                    hint="check the credentials and the bucket policy")
            return StorageError(f"S3 refused to {action} in {self.describe()}: {code or exc}")
        return StorageError(f"S3 failed to {action} in {self.describe()}: {exc}")

    def _call(self, action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        require("boto3", "boto3", "s3")  # a missing extra gives install advice, not ImportError
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bce

        try:
            return func(*args, **kwargs)
        except S3UploadFailedError as exc:
            if "NoSuchBucket" in str(exc):
                raise StorageError(f"bucket {self.options.bucket!r} does not exist ({self.describe()})",
                                   hint="create it, or fix 'bucket' in tracker.yaml") from exc
            raise StorageError(f"S3 upload failed in {self.describe()}: {exc}") from exc
        except (bce.BotoCoreError, bce.ClientError) as exc:
            raise self._error(exc, action) from exc

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        self._call("upload", self._client.upload_file, str(path), self.options.bucket, self.key(key),
                   Config=self._transfer, Callback=progress)

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        self._call("download", self._client.download_file, self.options.bucket, self.key(key), str(dest),
                   Config=self._transfer, Callback=progress)

    def info(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        def head() -> Any:
            try:
                return self._client.head_object(Bucket=self.options.bucket, Key=self.key(key))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        found = self._call("read", head)
        if found is None:
            self._call("bucket", self._client.head_bucket, Bucket=self.options.bucket)  # names a missing bucket
            return None
        return ObjectInfo(key, int(found["ContentLength"]))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = self._call("list", lambda: list(paginator.paginate(Bucket=self.options.bucket,
                                                                   Prefix=self.key(prefix))))
        for page in pages:
            for obj in page.get("Contents", []):
                yield ObjectInfo(self.strip(obj["Key"]), int(obj["Size"]))

    def delete(self, key: str) -> None:
        self._call("delete", self._client.delete_object, Bucket=self.options.bucket, Key=self.key(key))
