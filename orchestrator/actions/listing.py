"""`orchestrator list`: the backups in the store, newest first."""

from __future__ import annotations

from typing import Any

from orchestrator import catalog
from orchestrator.actions.common import storage_from
from orchestrator.catalog import Manifest
from orchestrator.settings import Settings


def list_backups(settings: Settings, database: str | None = None) -> list[Manifest]:
    """Give every backup known through its manifest, newest first."""
    storage = storage_from(settings)
    storage.check()
    return catalog.list_backups(storage, database)


def summary(manifest: Manifest) -> dict[str, Any]:
    """The fields `list --json` prints for one backup."""
    return {
        "id": manifest.id,
        "key": manifest.dump_key,
        "created_at": manifest.created_at.isoformat().replace("+00:00", "Z"),
        "database": manifest.database,
        "size_bytes": manifest.size_bytes,
        "sha256": manifest.sha256,
        "server_version": manifest.server_version,
        "pg_dump_version": manifest.pg_dump_version,
        "tables": len(manifest.row_counts),
        "rows": sum(manifest.row_counts.values()),
    }
