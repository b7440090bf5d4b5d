"""Backup storage: one small interface, backends registered by type name.

Built-in types: ``local``, ``ssh``, ``s3``, ``azure``, ``gcs``, ``b2``; third parties
add more through the ``tracker.storage`` entry-point group. Cloud SDKs are
imported only by the backend that needs them.
"""

from tracker.storage.base import BaseStorage, ObjectInfo, StorageOptions
from tracker.storage.registry import backend_class, open_target, register, types

__all__ = ["BaseStorage", "ObjectInfo", "StorageOptions", "backend_class", "open_target", "register", "types"]
