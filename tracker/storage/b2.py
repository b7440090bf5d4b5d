"""Backups in Backblaze B2.

Credentials come from ``B2_APPLICATION_KEY_ID`` and ``B2_APPLICATION_KEY`` (the
names b2's own CLI uses). ``B2Storage.api_factory`` can supply an authorized
``b2sdk.v2.B2Api`` instead (tests use b2sdk's RawSimulator this way).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from tracker.errors import StorageError
from tracker.storage.base import BaseStorage, ObjectInfo, Progress, StorageOptions, require


class B2Options(StorageOptions):
    """``{type: b2, bucket: my-models, prefix: tracker}``"""

    bucket: str


class B2Storage(BaseStorage):
    """B2 files; above ``multipart_threshold`` b2sdk's large-file upload (parts of ``chunk_size``)."""

    Options = B2Options
    options: B2Options
    api_factory: ClassVar[Callable[[], Any] | None] = None

    @cached_property
    def _api(self) -> Any:
        b2 = require("b2sdk.v2", "b2sdk", "b2")
        if B2Storage.api_factory is not None:
            return B2Storage.api_factory()
        key_id, key = os.environ.get("B2_APPLICATION_KEY_ID"), os.environ.get("B2_APPLICATION_KEY")
        if not key_id or not key:
            raise StorageError(f"no Backblaze B2 credentials for {self.describe()}",
                               hint="set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY")
        api = b2.B2Api(b2.InMemoryAccountInfo())
        self._call("authorize", api.authorize_account, "production", key_id, key)
        return api

    @cached_property
    def _bucket(self) -> Any:
        return self._call("open bucket", self._api.get_bucket_by_name, self.options.bucket)

    def describe(self) -> str:
        return f"b2 target {self.name} (b2://{self.options.bucket}/{self.options.prefix.strip('/')})"

    def _call(self, action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        require("b2sdk.v2", "b2sdk", "b2")  # a missing extra gives install advice, not ImportError
        from b2sdk.v2 import exception as b2e

        try:
            return func(*args, **kwargs)
        except b2e.NonExistentBucket as exc:
            raise StorageError(f"bucket {self.options.bucket!r} does not exist ({self.describe()})",
                               hint="create it, or fix 'bucket' in tracker.yaml") from exc
        except (b2e.InvalidAuthToken, b2e.Unauthorized) as exc:
            raise StorageError(f"B2 rejected the credentials for {self.describe()}",
                               hint="check B2_APPLICATION_KEY_ID / B2_APPLICATION_KEY and the key's bucket") from exc
        except b2e.FileNotPresent:
            raise
        except b2e.B2Error as exc:
            raise StorageError(f"B2 failed to {action} in {self.describe()}: {exc}") from exc

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        size = path.stat().st_size
        kwargs: dict[str, Any] = {}
        if size > self.options.multipart_threshold:
            kwargs["min_part_size"] = self.options.chunk_size
        self._call("upload", self._bucket.upload_local_file, local_file=str(path), file_name=self.key(key), **kwargs)
        if progress:
            progress(size)

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        from b2sdk.v2 import exception as b2e

        try:
            downloaded = self._call("download", self._bucket.download_file_by_name, self.key(key))
            downloaded.save_to(str(dest))
        except b2e.FileNotPresent as exc:
            raise StorageError(f"{key} is not in {self.describe()}") from exc
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        from b2sdk.v2 import exception as b2e

        try:
            version = self._call("read", self._bucket.get_file_info_by_name, self.key(key))
        except b2e.FileNotPresent:
            return None
        return ObjectInfo(key, int(version.size))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = self.key(prefix)
        folder = full.rsplit("/", 1)[0] if "/" in full else ""
        entries = self._call("list", lambda: list(self._bucket.ls(folder, recursive=True)))
        for version, _ in entries:
            if version.file_name.startswith(full):
                yield ObjectInfo(self.strip(version.file_name), int(version.size))

    def delete(self, key: str) -> None:
        versions = self._call("list", lambda: list(self._bucket.list_file_versions(self.key(key))))
        for version in versions:
            self._call("delete", self._api.delete_file_version, version.id_, version.file_name)
