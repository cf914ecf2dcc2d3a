"""Small pieces every action shares: opening the store, choosing clients, hashing files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.postgres import clients
from orchestrator.settings import Settings
from orchestrator.storage import Storage, open_storage
from orchestrator.storage.base import S3Options

HASH_CHUNK = 4 * 1024 * 1024


def storage_from(settings: Settings) -> Storage:
    """Open the store named by STORAGE_URL with the S3 options from settings."""
    return open_storage(
        settings.storage_url,
        S3Options(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            checksum_algorithm=settings.s3_checksum_algorithm,
            checksum_calculation=settings.s3_checksum_calculation,
            checksum_validation=settings.s3_checksum_validation,
            max_concurrency=settings.s3_max_concurrency,
        ),
    )


def client_for(settings: Settings, tool: str, needed_major: int, why: str) -> clients.ClientSet:
    """Find the `tool` binary of `needed_major` or the nearest newer one; ConfigError if none."""
    found = clients.discover(settings.pg_bin_dirs, tool)
    return clients.choose(found, needed_major, tool, why)


def sha256_of(path: Path) -> str:
    """Give the hex SHA-256 of the file at `path`, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
