"""Archive stores: one small interface, a folder backend and an S3 backend."""

from orchestrator.storage.base import ObjectInfo, Progress, Storage, open_storage

__all__ = ["ObjectInfo", "Progress", "Storage", "open_storage"]
