"""A directory-format backup on local disk: downloaded file by file, each from the first
store whose copy of that file is good (so one store's missing or damaged file does not
fail the backup while another store has it), checked against the manifest, decrypted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from orchestrator import crypto
from orchestrator.catalog import Copy, DumpFile, Located, Manifest
from orchestrator.errors import IntegrityError, NotFound
from orchestrator.logs import get_logger, with_context
from orchestrator.operations.common import sha256_of

log = get_logger(__name__)
FILES_AT_ONCE = 4  # downloads at once: several connections, as the dump had


def entry(manifest: Manifest, name: str) -> DumpFile:
    """The manifest's entry for the file `name`. Raises IntegrityError when it has none."""
    for file in manifest.files:
        if file.name == name:
            return file
    raise IntegrityError(f"backup {manifest.id}: this copy's manifest does not list {name}")


def download_file(copy: Copy, name: str, dest: Path) -> DumpFile:
    """Download the stored object of file `name` of `copy` to `dest` (a temporary name
    beside it, renamed once its size and SHA-256 match the copy's manifest); give its
    entry. Raises IntegrityError when it is missing or differs, StorageError otherwise."""
    manifest, storage = copy.manifest, copy.store.storage
    file = entry(manifest, name)
    key = manifest.file_key(file)
    with _partial(dest) as tmp:
        try:
            storage.get_file(key, tmp)
        except NotFound:
            raise IntegrityError(
                f"backup {manifest.id}: file {name} ({storage.describe(key)}) is missing"
            ) from None
        check_file(tmp, (file.size_bytes, file.sha256), f"backup {manifest.id}: file {name}")
        tmp.replace(dest)
    return file


def plain_file(copy: Copy, name: str, dest: Path, identities: list[crypto.Identity] | None) -> None:
    """Write the plain file `name` of `copy` to `dest`, checked (decrypted first when the
    copy is encrypted). Raises IntegrityError, DecryptionError, StorageError."""
    sealed = dest.with_name(f".{dest.name}.stored")
    try:
        file = download_file(copy, name, sealed if copy.manifest.encrypted else dest)
        if copy.manifest.encrypted:
            size, digest = crypto.decrypt_file(sealed, dest, identities or [])
            if (size, digest) != (file.plain_size_bytes, file.plain_sha256):
                dest.unlink(missing_ok=True)
                raise IntegrityError(
                    f"backup {copy.manifest.id}: file {name} decrypts to other bytes than "
                    "the manifest's plain_sha256"
                )
    finally:
        sealed.unlink(missing_ok=True)


def plain_from_any(
    located: Located, file: DumpFile, dest: Path, identities: list[crypto.Identity] | None
) -> None:
    """Write the plain `file` of the backup to `dest`, from the first store whose copy of
    it is good and opens. Raises the stores' errors when none gives it."""

    def attempt(copy: Copy) -> None:
        if entry(copy.manifest, file.name).plain_sha256 != file.plain_sha256:
            raise IntegrityError(f"backup {copy.manifest.id}: this copy holds another {file.name}")
        plain_file(copy, file.name, dest, identities)

    located.first_good(attempt, f"read file {file.name} of backup {located.manifest.id}")


def plain_directory(
    located: Located, dest: Path, identities: list[crypto.Identity] | None
) -> tuple[Path, Manifest]:
    """The backup's pg_dump folder at `dest` (created), every file from the first store
    whose copy of it is good and opens (a few files at once); give it and the first
    copy's manifest. Raises the stores' errors for the first file no store gives."""
    manifest = located.manifest
    dest.mkdir()

    def one(file: DumpFile) -> None:
        plain_from_any(located, file, dest / file.name, identities)

    each(manifest.files, one)
    log.info("fetch.directory", backup_id=manifest.id, files=len(manifest.files))
    return dest, manifest


def each(files: Sequence[DumpFile], work: Callable[[DumpFile], None]) -> None:
    """Run `work` on every file, FILES_AT_ONCE at a time; on the first failure the files
    not started yet are dropped and its error is raised once the running ones end."""
    pool = ThreadPoolExecutor(FILES_AT_ONCE, thread_name_prefix="file")
    try:
        futures = [pool.submit(with_context(work), file) for file in files]
        for future in as_completed(futures):
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_folder(folder: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless `folder` holds exactly the manifest's plain files."""
    names = {path.name for path in folder.iterdir()}
    listed = {file.name for file in manifest.files}
    if names != listed:
        odd = ", ".join(sorted(names ^ listed))
        raise IntegrityError(
            f"{folder} is not the dump folder of backup {manifest.id}: it differs in {odd}"
        )
    for file in manifest.files:
        check_file(
            folder / file.name, (file.plain_size_bytes, file.plain_sha256), f"{folder}/{file.name}"
        )


def check_file(path: Path, expected: tuple[int, str], what: str) -> None:
    """Raise IntegrityError naming `what` unless the file at `path` has the `expected`
    size and SHA-256 (what a manifest says of it)."""
    size = path.stat().st_size
    if size != expected[0]:
        raise IntegrityError(f"{what}: size {size} differs from the manifest's {expected[0]}")
    digest = sha256_of(path)
    if digest != expected[1]:
        raise IntegrityError(f"{what}: sha256 differs from the manifest's ({digest})")


@contextlib.contextmanager
def _partial(dest: Path) -> Iterator[Path]:
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
