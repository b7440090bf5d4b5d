"""Backups in Azure Blob Storage.

Credentials: a connection string from the environment variable named by
``connection_string_env`` (default ``AZURE_STORAGE_CONNECTION_STRING``), or
``account_url`` with ``AZURE_STORAGE_KEY`` / ``AZURE_STORAGE_SAS_TOKEN`` (or
azure-identity's DefaultAzureCredential when installed). Never in tracker.yaml.
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


class AzureOptions(StorageOptions):
    """``{type: azure, container: models, prefix: tracker, connection_string_env: ...}``"""

    container: str
    account_url: str | None = None
    connection_string_env: str = "AZURE_STORAGE_CONNECTION_STRING"


class AzureStorage(BaseStorage):
    """Block blobs; blocks of ``chunk_size`` above ``multipart_threshold``, committed at the end."""

    Options = AzureOptions
    options: AzureOptions

    @cached_property
    def _container(self) -> Any:
        blob = require("azure.storage.blob", "azure-storage-blob", "azure")
        limits = {"max_single_put_size": self.options.multipart_threshold, "max_block_size": self.options.chunk_size}
        conn_str = os.environ.get(self.options.connection_string_env)
        if conn_str:
            try:
                service = blob.BlobServiceClient.from_connection_string(conn_str, **limits)
            except ValueError as exc:  # the SDK's message never echoes the string; neither do we
                raise StorageError(f"${self.options.connection_string_env} does not hold a valid Azure "
                                   f"connection string ({self.describe()})") from exc
        elif self.options.account_url:
            service = blob.BlobServiceClient(self.options.account_url, credential=self._credential(), **limits)
        else:
            raise StorageError(f"no Azure credentials for {self.describe()}: "
                               f"${self.options.connection_string_env} is not set",
                               hint=f"export {self.options.connection_string_env}=..., or set account_url and "
                                    "AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN")
        return service.get_container_client(self.options.container)

    def _credential(self) -> Any:
        for var in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
            if os.environ.get(var):
                return os.environ[var]
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise StorageError(f"no Azure credentials for {self.describe()}",
                               hint="set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or pip install azure-identity"
                               ) from exc
        return DefaultAzureCredential()

    def describe(self) -> str:
        return f"azure target {self.name} (container {self.options.container})"

    def _call(self, action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        require("azure.storage.blob", "azure-storage-blob", "azure")  # install advice, not an ImportError
        from azure.core import exceptions as ace

        try:
            return func(*args, **kwargs)
        except ace.ResourceNotFoundError as exc:
            if "ContainerNotFound" in str(getattr(exc, "error_code", "") or exc):
                raise StorageError(f"container {self.options.container!r} does not exist ({self.describe()})",
                                   hint="create it, or fix 'container' in tracker.yaml") from exc
            raise
        except ace.ClientAuthenticationError as exc:
            raise StorageError(f"Azure rejected the credentials for {self.describe()}",
                               hint=f"check ${self.options.connection_string_env} or the account key") from exc
        except ace.HttpResponseError as exc:
            raise StorageError(f"Azure refused to {action} in {self.describe()}: {exc.reason or exc}") from exc
        except ace.AzureError as exc:
            raise StorageError(f"Azure failed to {action} in {self.describe()}: {exc}") from exc

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        client = self._container.get_blob_client(self.key(key))
        seen = [0]

        def hook(response: Any) -> None:
            current = response.context.get("upload_stream_current")
            if progress and current is not None:
                progress(current - seen[0])
                seen[0] = current

        with open(path, "rb") as fh:
            self._call("upload", client.upload_blob, fh, length=path.stat().st_size, overwrite=True,
                       max_concurrency=4, raw_response_hook=hook)

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._container.get_blob_client(self.key(key))
        try:
            with open(dest, "wb") as fh:
                self._call("download", lambda: client.download_blob(max_concurrency=4).readinto(fh))
        except ResourceNotFoundError as exc:
            raise StorageError(f"{key} is not in {self.describe()}") from exc
        if progress:
            progress(dest.stat().st_size)

    def info(self, key: str) -> ObjectInfo | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._call("read", self._container.get_blob_client(self.key(key)).get_blob_properties)
        except ResourceNotFoundError:
            self._call("read", self._container.get_container_properties)  # names a missing container
            return None
        return ObjectInfo(key, int(props.size))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        blobs = self._call("list", lambda: list(self._container.list_blobs(name_starts_with=self.key(prefix))))
        for blob in blobs:
            yield ObjectInfo(self.strip(blob.name), int(blob.size))

    def delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._call("delete", self._container.delete_blob, self.key(key))
