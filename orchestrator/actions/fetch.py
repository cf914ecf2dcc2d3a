"""`orchestrator fetch`: download a backup's dump, checked against its manifest, atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator import catalog
from orchestrator.actions.common import sha256_of, storage_from
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.logs import get_logger
from orchestrator.settings import Settings
from orchestrator.storage import Progress, Storage

log = get_logger(__name__)


@dataclass(frozen=True)
class FetchResult:
    """Where the checked dump now is, and which backup it is."""

    manifest: Manifest
    path: Path


def download_checked(
    storage: Storage, manifest: Manifest, dest: Path, progress: Progress | None = None
) -> Path:
    """Download `manifest`'s dump to `dest` via a temporary file beside it, then rename.

    Raises IntegrityError when size or SHA-256 differ from the manifest (nothing is left
    at `dest` then), NotFound when the dump object is missing, StorageError otherwise.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write in {dest.parent}: {exc.strerror}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            storage.get_file(manifest.dump_key, tmp, progress)
        except NotFound:
            raise IntegrityError(
                f"backup {manifest.id} has a manifest but its dump object "
                f"{storage.describe(manifest.dump_key)} is missing"
            ) from None
        check_file(tmp, manifest)
        tmp.replace(dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def check_file(path: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless the file's size and SHA-256 match the manifest."""
    size = path.stat().st_size
    if size != manifest.size_bytes:
        raise IntegrityError(
            f"{manifest.id}: size {size} differs from the manifest's {manifest.size_bytes}"
        )
    digest = sha256_of(path)
    if digest != manifest.sha256:
        raise IntegrityError(f"{manifest.id}: sha256 {digest} differs from the manifest's")


def target_path(output: Path, manifest: Manifest) -> Path:
    """`output` itself, or the dump's own file name inside it when it is a folder."""
    if output.is_dir():
        return output / manifest.dump_key.rsplit("/", 1)[-1]
    if output.exists() and not output.is_file():
        raise ConfigError(f"--output: {output} exists and is not a regular file")
    if not output.parent.is_dir():
        raise ConfigError(f"--output: folder {output.parent} does not exist")
    return output


def fetch(
    settings: Settings,
    ref: str,
    output: Path,
    progress: Callable[[int], Progress] | None = None,
) -> FetchResult:
    """Download backup `ref` (an id or `latest`) to `output`, verified against its manifest.

    `progress`, when given, is called with the dump's size and gives the byte callback.
    """
    storage = storage_from(settings)
    storage.check()
    manifest = catalog.find(storage, ref)
    dest = target_path(output, manifest)
    download_checked(storage, manifest, dest, progress(manifest.size_bytes) if progress else None)
    log.info("fetch.done", backup_id=manifest.id, path=str(dest), size_bytes=manifest.size_bytes)
    return FetchResult(manifest, dest)
