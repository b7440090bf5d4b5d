"""Backups in Google Cloud Storage.

Credentials come from Google's Application Default Credentials (the
``GOOGLE_APPLICATION_CREDENTIALS`` file, gcloud's login, or the metadata
server). With ``STORAGE_EMULATOR_HOST`` set (an emulator), anonymous
credentials are used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.errors import StorageError
from tracker.storage.base import BaseStorage, ObjectInfo, Progress, StorageOptions, require


class GCSOptions(StorageOptions):
    """``{type: gcs, bucket: my-models, prefix: tracker, project: my-project}``"""

    bucket: str
    project: str | None = None


class GCSStorage(BaseStorage):
    """GCS objects; files above ``multipart_threshold`` use resumable uploads of ``chunk_size``."""

    Options = GCSOptions
    options: GCSOptions

    @cached_property
    def _bucket(self) -> Any:
        storage = require("google.cloud.storage", "google-cloud-storage", "gcs")
        project = self.options.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        try:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project=project or "tracker", credentials=AnonymousCredentials())
            else:
                client = storage.Client(project=project)
        except Exception as exc:
            from google.auth.exceptions import DefaultCredentialsError

            if isinstance(exc, DefaultCredentialsError):
                raise StorageError(f"no Google Cloud credentials for {self.describe()}",
                                   hint="set GOOGLE_APPLICATION_CREDENTIALS or run "
                                        "'gcloud auth application-default login'") from exc
            raise StorageError(f"cannot use Google Cloud Storage for {self.describe()}: {exc}") from exc
        return client.bucket(self.options.bucket)

    def describe(self) -> str:
        return f"gcs target {self.name} (gs://{self.options.bucket}/{self.options.prefix.strip('/')})"

    def _call(self, action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        require("google.cloud.storage", "google-cloud-storage", "gcs")  # install advice, not an ImportError
        from google.api_core import exceptions as gce

        try:
            return func(*args, **kwargs)
        except gce.NotFound as exc:
            if action != "read" or "bucket" in str(exc).lower():
                raise StorageError(f"bucket {self.options.bucket!r} does not exist ({self.describe()})",
                                   hint="create it, or fix 'bucket' in tracker.yaml") from exc
            raise
        except gce.Forbidden as exc:
            raise StorageError(f"permission denied to {action} in {self.describe()}",
                               hint="check the service account's roles on the bucket") from exc
        except gce.GoogleAPICallError as exc:
            raise StorageError(f"GCS refused to {action} in {self.describe()}: {exc}") from exc

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        blob = self._bucket.blob(self.key(key))
        if path.stat().st_size > self.options.multipart_threshold:
            blob.chunk_size = max(256 * 1024, self.options.chunk_size // (256 * 1024) * 256 * 1024)
        self._call("upload", blob.upload_from_filename, str(path))
        if progress:
            progress(path.stat().st_size)

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._call("download", self._bucket.blob(self.key(key)).download_to_filename, str(dest))
        except (NotFound, StorageError) as exc:
            if isinstance(exc, StorageError) and "does not exist" not in str(exc):
                raise
            raise StorageError(f"{key} is not in {self.describe()}") from exc
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        blob = self._call("read", self._bucket.get_blob, self.key(key))
        if blob is None:
            if not self._call("read", self._bucket.exists):
                raise StorageError(f"bucket {self.options.bucket!r} does not exist ({self.describe()})",
                                   hint="create it, or fix 'bucket' in tracker.yaml")
            return None
        return ObjectInfo(key, int(blob.size))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        blobs = self._call("list", lambda: list(self._bucket.client.list_blobs(self._bucket,
                                                                              prefix=self.key(prefix))))
        for blob in blobs:
            yield ObjectInfo(self.strip(blob.name), int(blob.size))

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self._call("read", self._bucket.blob(self.key(key)).delete)
