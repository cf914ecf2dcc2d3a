"""`orchestrator fetch`: download a backup's dump, checked against its manifest, atomically.

With several stores the first store that holds a good copy serves it: a store that is
unreachable, lacks the object or holds bytes that fail their checksum is passed over (and
logged). An encrypted backup is decrypted with ARCHIVE_IDENTITY_FILE unless `--raw`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from orchestrator import catalog, crypto
from orchestrator.catalog import Copy, Located, Manifest
from orchestrator.errors import (
    ConfigError,
    IntegrityError,
    Interrupted,
    JobError,
    LocalDiskFull,
    NotFound,
    OrchestratorError,
)
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.operations import directory
from orchestrator.operations.common import sha256_of, source_identity, work_dir
from orchestrator.storage import Progress, Storage

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class FetchResult:
    """Where the checked dump now is, which backup it is, and whether it is still sealed."""

    manifest: Manifest
    path: Path
    encrypted: bool = False


@contextlib.contextmanager
def _temp_beside(dest: Path) -> Iterator[Path]:
    """A temporary file name beside `dest` (same file system, so a rename is atomic),
    removed afterwards unless it was renamed into place."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write in {dest.parent}: {exc.strerror}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def download_checked(
    storage: Storage, manifest: Manifest, dest: Path, progress: Progress | None = None
) -> Path:
    """Download `manifest`'s dump object to `dest` via a temporary file beside it, then rename.

    Raises IntegrityError when size or SHA-256 differ from the manifest (nothing is left
    at `dest` then), or when the dump object is missing; StorageError otherwise.
    """
    with _temp_beside(dest) as tmp:
        try:
            storage.get_file(manifest.dump_key, tmp, progress)
        except NotFound:
            raise IntegrityError(
                f"backup {manifest.id} has a manifest but its dump object "
                f"{storage.describe(manifest.dump_key)} is missing"
            ) from None
        directory.check_file(tmp, (manifest.size_bytes, manifest.sha256), manifest.id)
        tmp.replace(dest)
    return dest


def download_any(located: Located, dest: Path, progress: Progress | None = None) -> Copy:
    """Download the first good copy of `located` to `dest`, trying its stores in order;
    give the copy used. Raises the stores' errors when none gives a good copy."""

    def attempt(copy: Copy) -> Copy:
        download_checked(copy.store.storage, copy.manifest, dest, progress)
        return copy

    return located.first_good(attempt, f"download backup {located.manifest.id}")


def open_sealed(
    sealed: Path, manifest: Manifest, dest: Path, identities: list[crypto.Identity]
) -> Path:
    """Decrypt the checked stored object `sealed` into `dest` (via a temporary file beside
    it) and check it is the plain archive the manifest names. Raises DecryptionError or
    IntegrityError (nothing is left at `dest` then)."""
    with _temp_beside(dest) as tmp:
        size, digest = crypto.decrypt_file(sealed, tmp, identities)
        if (size, digest) != (manifest.plain_size, manifest.plain_digest):
            raise IntegrityError(
                f"{manifest.id}: the decrypted archive differs from the manifest's plain_sha256"
            )
        tmp.replace(dest)
    return dest


def plain_copy(
    located: Located, folder: Path, identities: list[crypto.Identity] | None
) -> tuple[Path, Manifest]:
    """The backup's plain pg_dump archive in `folder`, from the first store whose copy is
    good and opens (decrypted when it is encrypted); give it and that copy's manifest.

    `identities` must be given for an encrypted backup (see `needed_identities`); a copy
    they cannot open (say, still encrypted to an old key) is passed over like a bad one.
    Read as it is now when rekey replaced it meanwhile (see `as_it_is_now`). Raises the
    stores' errors when no copy serves.
    """

    def read(found: Located) -> tuple[Path, Manifest]:
        shutil.rmtree(folder / "archive.d", ignore_errors=True)  # a first attempt's files
        return _plain_copy(found, folder, identities)

    return as_it_is_now(located, read)


def as_it_is_now(located: Located, read: Callable[[Located], T]) -> T:
    """`read(located)`; when no copy served and a store's manifest of the backup has
    changed meanwhile (a rekey replaced its objects while they were read), `read` once
    more of the backup as the stores now hold it. Raises what the last `read` raised."""
    try:
        return read(located)
    except (Interrupted, LocalDiskFull):
        raise
    except OrchestratorError:
        now = replaced(located)
        if now is None:
            raise
    log.info("fetch.manifest_changed", backup_id=located.manifest.id)
    return read(now)


def replaced(located: Located) -> Located | None:
    """`located` as its stores hold it now (the stores it could not ask kept), when a
    store's manifest of it differs from the one read before; None when none does or the
    stores cannot say. Raises JobError when none of them holds it any more."""
    backup_id = located.manifest.id
    try:
        now = catalog.find_located([c.store for c in located.copies], backup_id)
    except (Interrupted, LocalDiskFull):
        raise
    except NotFound:
        raise JobError(
            f"backup {backup_id} was removed while it was read (by prune, or by hand)"
        ) from None
    except OrchestratorError:
        return None
    before = {c.store.label: c.manifest for c in located.copies}
    if all(before.get(c.store.label) == c.manifest for c in now.copies):
        return None
    return Located(now.copies, located.unreachable)


def _plain_copy(
    located: Located, folder: Path, identities: list[crypto.Identity] | None
) -> tuple[Path, Manifest]:
    """plain_copy() of the copies `located` names, as they were read."""
    if located.manifest.directory:
        if located.manifest.encrypted and not identities:
            raise ConfigError(
                f"ARCHIVE_IDENTITY_FILE is not set: backup {located.manifest.id} is encrypted"
            )
        return directory.plain_directory(located, folder / "archive.d", identities)

    def attempt(copy: Copy) -> tuple[Path, Manifest]:
        stored = folder / "archive.stored"
        download_checked(copy.store.storage, copy.manifest, stored)
        if not copy.manifest.encrypted:
            return stored.replace(folder / "archive.dump"), copy.manifest
        try:
            if not identities:
                raise ConfigError(
                    f"ARCHIVE_IDENTITY_FILE is not set: backup {copy.manifest.id} is encrypted"
                )
            return open_sealed(stored, copy.manifest, folder / "archive.dump", identities), (
                copy.manifest
            )
        finally:
            stored.unlink(missing_ok=True)

    return located.first_good(attempt, f"read backup {located.manifest.id}")


def needed_identities(job: Job, located: Located, doing: str) -> list[crypto.Identity] | None:
    """The identities to open `located` when any copy of it is encrypted (ConfigError
    naming ARCHIVE_IDENTITY_FILE when it is unset), else None."""
    if not any(c.manifest.encrypted for c in located.copies):
        return None
    return job.identities(f"backup {located.manifest.id} is encrypted and {doing} needs it")


def target_path(output: Path, name: str) -> Path:
    """`output` itself, or `name` inside it when it is a folder."""
    if output.is_dir():
        return output / name
    if output.exists() and not output.is_file():
        raise ConfigError(f"--output: {output} exists and is not a regular file")
    if not output.parent.is_dir():
        raise ConfigError(f"--output: folder {output.parent} does not exist")
    return output


def fetch(
    job: Job,
    ref: str,
    output: Path,
    progress: Callable[[int], Progress] | None = None,
    raw: bool = False,
) -> FetchResult:
    """Download backup `ref` (an id or `latest`) to `output`, verified against its manifest;
    decrypted unless `raw` (then the stored, encrypted bytes are written).

    `progress`, when given, is called with the download's size and gives the byte callback.
    Raises ConfigError (exit 2) before downloading when the backup is encrypted and
    ARCHIVE_IDENTITY_FILE is not set.
    """
    located = catalog.find_located(job.stores(), ref)
    identities = None if raw else needed_identities(job, located, "fetch")
    return as_it_is_now(located, lambda found: _fetch(found, output, identities, raw, progress))


def _fetch(
    located: Located,
    output: Path,
    identities: list[crypto.Identity] | None,
    raw: bool,
    progress: Callable[[int], Progress] | None,
) -> FetchResult:
    """fetch() of the copies `located` names, as they were read."""
    manifest = located.manifest
    if manifest.directory:
        return _fetch_directory(located, output, identities, raw)
    target_path(output, manifest.id)  # a bad --output is refused before downloading
    folder = output if output.is_dir() else output.parent
    callback = progress(manifest.size_bytes) if progress else None
    with _temp_beside(folder / ".fetch") as stored:
        copy = download_any(located, stored, callback)
        sealed = copy.manifest.encrypted and not raw  # each copy says what it holds
        name = f"{copy.manifest.id}.dump" if sealed else copy.manifest.dump_key.rsplit("/", 1)[-1]
        dest = target_path(output, name)
        if sealed:
            open_sealed(stored, copy.manifest, dest, identities or [])
        else:
            stored.replace(dest)
    log.info("fetch.done", backup_id=manifest.id, path=str(dest), store=copy.store.label)
    return FetchResult(copy.manifest, dest, copy.manifest.encrypted and not sealed)


def _fetch_directory(
    located: Located, output: Path, identities: list[crypto.Identity] | None, raw: bool
) -> FetchResult:
    """Fetch a directory backup as the folder `<output>/<id>.d` (or `output` itself when
    it does not exist yet): its plain files, or with `raw` the stored ones as they are."""
    manifest = located.manifest
    dest = output / f"{manifest.id}.d" if output.is_dir() else output
    if dest.exists():
        raise ConfigError(f"--output: {dest} already exists; not overwriting it")
    if not dest.parent.is_dir():
        raise ConfigError(f"--output: folder {dest.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        if raw:
            copy = located.copies[0]
            folder = Path(tmp) / "stored"
            folder.mkdir()
            for file in copy.manifest.files:
                name = copy.manifest.file_key(file).rsplit("/", 1)[-1]
                directory.download_file(copy, file.name, folder / name)
        else:
            folder, _first = directory.plain_directory(located, Path(tmp) / "plain", identities)
        folder.rename(dest)
    log.info("fetch.done", backup_id=manifest.id, path=str(dest), files=len(manifest.files))
    return FetchResult(manifest, dest, raw and manifest.encrypted)


@contextlib.contextmanager
def local_archive(
    job: Job, located: Located, dump: Path | None, doing: str
) -> Iterator[tuple[Path, Manifest]]:
    """The plain pg_dump archive on local disk, checked against the manifest, and the
    manifest of the copy it came from: `dump` itself (the plain archive, or the encrypted
    object, which is then decrypted) or a download from the first store with a good copy.

    Raises ConfigError naming ARCHIVE_IDENTITY_FILE before downloading when the backup is
    encrypted and no identity is set, IntegrityError when `dump` is not this backup.
    """
    with work_dir(job) as folder:
        manifest = located.manifest
        if dump is None:
            yield plain_copy(located, folder, needed_identities(job, located, doing))
            return
        if dump.is_dir():
            directory.check_folder(dump, manifest)
            yield dump, manifest
            return
        given = (dump.stat().st_size, sha256_of(dump))
        if given == (manifest.plain_size, manifest.plain_digest):
            yield dump, manifest
        elif manifest.encrypted and given == (manifest.size_bytes, manifest.sha256):
            keys = job.identities(f"{dump} is encrypted and {doing} needs it")
            yield open_sealed(dump, manifest, folder / "archive.dump", keys), manifest
        else:
            raise IntegrityError(
                f"--dump: {dump} is not the archive of backup {manifest.id} (its size or sha256 "
                "differs from the manifest's)"
            )


def find_backup(job: Job, ref: str) -> Located:
    """Resolve `ref` (id or latest, latest of the source's database when it is set) in the
    stores, with every store that holds it."""
    database = job.source.database if job.source else None
    identity = source_identity(job) if ref == "latest" else None
    return catalog.find_located(job.stores(), ref, database, identity)
