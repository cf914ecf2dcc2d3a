"""`orchestrator list`: the backups in every store, newest first, with the stores holding each."""

from __future__ import annotations

from orchestrator import catalog
from orchestrator.catalog import Located, Manifest
from orchestrator.job import Job
from orchestrator.records import BackupDoc


def list_backups(job: Job, database: str | None = None) -> tuple[list[Located], list[str]]:
    """Give every backup known through a manifest in any store, newest first, and one
    line for each store that could not be listed (its setting, URL and error) and each
    manifest that could not be read (its store's setting and URL, and the error).

    Raises the error when no store can be listed.
    """
    stores = job.stores()
    bad_manifests: dict[str, list[str]] = {}
    located, failed = catalog.list_located(stores, database, bad_manifests)
    unread = [
        f"{store.setting} ({store.label}) could not be listed: {error}" for store, error in failed
    ]
    unread += [
        f"{store.setting} ({store.label}): {error}"
        for store in stores
        for error in bad_manifests.get(store.label, [])
    ]
    return located, unread


def summary(manifest: Manifest, stores: list[str] | None = None) -> BackupDoc:
    """The fields `list --json` prints for one backup (`stores`: those that hold it)."""
    return {
        "id": manifest.id,
        "key": manifest.dump_key,
        "created_at": manifest.created_at.isoformat().replace("+00:00", "Z"),
        "database": manifest.database,
        "size_bytes": manifest.size_bytes,
        "sha256": manifest.sha256,
        "encrypted": manifest.encrypted,
        "format": manifest.format,
        "jobs": manifest.jobs,
        "files": len(manifest.files) or 1,
        "server_version": manifest.server_version,
        "pg_dump_version": manifest.pg_dump_version,
        "tables": len(manifest.row_counts),
        "rows": sum(manifest.row_counts.values()),
        "stores": stores or [],
    }


def located_summary(backup: Located) -> BackupDoc:
    """summary() of a backup found across stores."""
    return summary(backup.manifest, backup.stores)
