"""Backups written straight into a store, as `backup` would leave them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from orchestrator import catalog
from orchestrator.catalog import Manifest
from orchestrator.storage import Storage


def put_backup(storage: Storage, database: str, when: str) -> Manifest:
    """Store a small dump object, then its manifest, as `backup` would; give the manifest."""
    created = datetime.fromisoformat(when).replace(tzinfo=UTC)
    backup_id = catalog.new_backup_id(database, created)
    body = f"dump of {backup_id}".encode()
    manifest = Manifest(
        id=backup_id,
        created_at=created,
        database=database,
        dump_key=catalog.dump_key_for(backup_id),
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        server_version="17.2",
        server_version_num=170002,
        pg_dump_version="17.2",
        duration_seconds=1.0,
    )
    storage.put_bytes(manifest.dump_key, body)
    storage.put_bytes(manifest.manifest_key, manifest.to_json())
    return manifest
