"""Upload: a finished dump to every store at once, each store on its own.

In each store the dump object is stored and its size checked first and the manifest last,
so a failure anywhere leaves no backup behind in that store (at worst a dump object without
a manifest, which is removed again), and a store that fails takes nothing from the others.

With recipients the dump is encrypted once, on the way: one thread reads the plain dump and
age-encrypts it into a broadcast that streams the same ciphertext to every store (no sealed
copy on disk); a store's object completes only once the whole ciphertext has been checked,
and a failed encryption leaves no object in any store.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from orchestrator import catalog, crypto, tasks
from orchestrator.catalog import Encryption, Manifest
from orchestrator.errors import (
    ConfigError,
    IntegrityError,
    Interrupted,
    JobError,
    NotFound,
    OrchestratorError,
)
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.operations.dump import LocalDump
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore, Outcome, combined, fan_out

log = get_logger(__name__)
ID_ATTEMPTS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class BackupResult:
    """The stored backup."""

    manifest: Manifest
    location: str


@dataclass(frozen=True)
class Archived:
    """A backup stored in every store: its manifest (as stored), the stores and what
    happened in each ("ok")."""

    manifest: Manifest
    stores: list[NamedStore]
    report: dict[str, str]


@dataclass(frozen=True)
class OpenStores:
    """The configured stores that answered, and those that did not with their errors."""

    usable: list[NamedStore]
    failed: list[tuple[NamedStore, OrchestratorError]]


class UploadFailed(JobError):
    """The backup did not reach every store; `stores` says what each store did and
    `stored_in` are the stores that hold it all the same."""

    def __init__(self, message: str, stores: dict[str, str], stored_in: list[NamedStore]) -> None:
        super().__init__(message)
        self.stores = stores
        self.stored_in = stored_in


def with_unused_id(stores: list[NamedStore], dump: LocalDump) -> LocalDump:
    """`dump`, named one second later (and again, up to ID_ATTEMPTS times) while a stored
    backup of its database already has its id in any store: ids have one-second
    resolution, and two runs started in the same second must not collide. When a store
    cannot say, it counts as free (archive() still refuses to overwrite)."""
    manifest = dump.manifest
    for _attempt in range(ID_ATTEMPTS):
        if not any(_holds(store.storage, manifest.manifest_key) for store in stores):
            break
        created = manifest.created_at + timedelta(seconds=1)
        backup_id = catalog.new_backup_id(manifest.database, created)
        key = catalog.dir_key_for if manifest.directory else catalog.dump_key_for
        manifest = manifest.model_copy(
            update={"id": backup_id, "created_at": created, "dump_key": key(backup_id)}
        )
    if manifest.id != dump.manifest.id:
        log.info("backup.renamed", backup_id=manifest.id, taken=dump.manifest.id)
    return LocalDump(dump.path, manifest)


def _holds(storage: Storage, key: str) -> bool:
    try:
        storage.get_bytes(key)
    except Interrupted:
        raise
    except OrchestratorError:  # NotFound (free) or cannot tell
        return False
    return True


def archive(storage: Storage, dump: LocalDump, check_source: bool = True) -> BackupResult:
    """Store the dump file as it is, check its size, then write its manifest. Raises
    JobError when a write fails or the stored size differs. `check_source` warns when the
    store's newest backup of this database came from another cluster (new backups, not
    copies).

    A dump object stored without its manifest is deleted again (best effort).
    """

    def put() -> Manifest:
        storage.put_file(dump.manifest.dump_key, dump.path)
        return dump.manifest

    return _archive(storage, dump.manifest, put, check_source)


def _archive(
    storage: Storage, planned: Manifest, put: Callable[[], Manifest], check_source: bool
) -> BackupResult:
    """Refuse an id the store already holds, `put` the dump object (which gives the final
    manifest), check the stored size, then write the manifest; see archive()."""
    must_be_free(storage, planned)
    if check_source:
        _warn_other_source(storage, planned)
    manifest = planned
    try:
        manifest = put()
        check_stored_size(storage, manifest.dump_key, manifest.size_bytes)
        storage.put_bytes(manifest.manifest_key, manifest.to_json())
    except BaseException:
        # a write may have landed before it failed: manifest first, as prune does
        delete_quietly(storage, [manifest.manifest_key])
        delete_quietly(storage, [manifest.dump_key])
        raise
    log.info("backup.stored", backup_id=manifest.id, size_bytes=manifest.size_bytes)
    return BackupResult(manifest, storage.describe(manifest.dump_key))


def store_everywhere(
    stores: Sequence[NamedStore],
    dump: LocalDump,
    recipients: Sequence[str],
    check_source: bool = True,
) -> list[Outcome[BackupResult]]:
    """Store `dump` in every store at once, each on its own (archive()); with
    `recipients`, a plain dump is encrypted once on the way and every store receives the
    same ciphertext. Give each store's outcome, in store order.

    Raises EncryptionError (after every store has finished, none holding the backup) when
    the encryption fails, or its output is not exactly the dump's.
    """
    if not recipients or dump.manifest.encrypted:
        return fan_out(stores, lambda store: archive(store.storage, dump, check_source))
    plain = dump.manifest
    planned = plain.model_copy(
        update={
            "dump_key": catalog.dump_key_for(plain.id, encrypted=True),
            "encryption": Encryption(recipients=tuple(recipients)),
        }
    )

    def work(store: NamedStore, put: SealedPut) -> BackupResult:
        def stored() -> Manifest:
            sealed = put(planned.dump_key)
            return planned.model_copy(update={"size_bytes": sealed.size, "sha256": sealed.sha256})

        return _archive(store.storage, planned, stored, check_source)

    expected = (plain.plain_size, plain.plain_digest)
    return sealed_to_each(stores, dump.path, recipients, work, expected)


SealedPut = Callable[[str], crypto.Sealed]
"""Stores the encrypted dump under a key; gives its sizes and hashes once checked."""


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_FROM = 1024 * 1024


def large_buffers_back_to_the_os() -> None:
    """Have glibc serve allocations of 1 MiB and more with their own mappings, given back
    to the system when freed (a fixed M_MMAP_THRESHOLD). Streamed uploads free a part of a
    few MiB after every part; glibc's default threshold moves up past the part size after
    the first free, and the parts then stay in per-thread arenas (measured: 54 MiB more
    peak RSS for an encrypted backup to two stores). Set when a stream starts, not for
    every command: reads of 4 MiB (hashing a dump) each cost a fresh mapping then, about
    20 ms for a 37 MB backup. Nothing happens without glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_FROM)


Expected = tuple[int, str]
"""The size and SHA-256 a plain file must have when it is read."""


def sealed_to_each(
    stores: Sequence[NamedStore],
    path: Path,
    recipients: Sequence[str],
    work: Callable[[NamedStore, SealedPut], T],
    expected: Expected | None = None,
) -> list[Outcome[T]]:
    """Run `work(store, put)` on every store at once; `put(key)` stores the plain file at
    `path` (of the `expected` size and sha256 when given) encrypted to `recipients` under
    `key` and gives the sizes and hashes of both. One encryption feeds every store's
    stream; a store's object completes only once the whole ciphertext has been checked.
    Give each store's outcome, in store order.

    Raises EncryptionError (after every store has finished, none holding the object) when
    the encryption fails or did not read exactly the bytes `expected` describes.
    """
    large_buffers_back_to_the_os()
    broadcast = tasks.Broadcast([store.label for store in stores])
    sealing = tasks.in_background(
        lambda: _seal_into(path, expected, list(recipients), broadcast), "seal"
    )
    plain_size = expected[0] if expected else path.stat().st_size
    size_hint = crypto.expected_size(256 * len(recipients), plain_size)

    def put_for(store: NamedStore) -> SealedPut:
        def put(key: str) -> crypto.Sealed:
            store.storage.put_stream(key, broadcast.reader(store.label), size_hint)
            sealed = tasks.result_unless_stopped(sealing, "encrypting the dump")
            if sealed is None:  # cannot be: the stream ends only once the encryption is checked
                raise crypto.EncryptionError("the encryption ended without its checks")
            return sealed

        return put

    def each(store: NamedStore) -> T:
        try:
            return work(store, put_for(store))
        finally:
            broadcast.leave(store.label)

    outcomes = fan_out(stores, each)
    tasks.result_unless_stopped(sealing, "encrypting the dump")  # raises its failure
    return outcomes


def _seal_into(
    path: Path, expected: Expected | None, recipients: list[str], broadcast: tasks.Broadcast
) -> crypto.Sealed | None:
    """Encrypt the file at `path` into `broadcast` and end it once the ciphertext is
    checked; give its sizes and hashes, or None when every store left before the end
    (their own errors say why). Raises EncryptionError (every store's stream raising it
    too) when encryption fails or did not read exactly the bytes `expected` describes."""
    try:
        sealed = crypto.encrypt_to(path, broadcast, recipients)
        if expected is not None and (sealed.plain_size, sealed.plain_sha256) != expected:
            raise crypto.EncryptionError(
                "the dump changed while it was encrypted; not uploading it"
            )
        broadcast.close()
    except BaseException as exc:
        if broadcast.deserted:
            return None
        broadcast.fail(
            exc if isinstance(exc, OrchestratorError) else crypto.EncryptionError(repr(exc))
        )
        raise
    log.info("backup.encrypted", file=path.name, recipients=len(recipients))
    return sealed


def archive_everywhere(
    stores: OpenStores, dump: LocalDump, recipients: Sequence[str] = ()
) -> Archived:
    """Store `dump` in every usable store at once (store_everywhere(): encrypted on the way
    when there are `recipients`); give the stored manifest, the stores that now hold it and
    what happened in each store ("ok" or the error). Raises UploadFailed, after every store
    has finished, when any store (usable or not) does not hold it, and EncryptionError when
    the encryption failed (no store holds it)."""
    outcomes = store_everywhere(stores.usable, dump, recipients)
    failed = [*stores.failed, *[(o.store, o.error) for o in outcomes if o.error is not None]]
    stored = [(o.store, o.value.manifest) for o in outcomes if o.value is not None]
    return archived(stored, failed)


def archived(
    stored: Sequence[tuple[NamedStore, Manifest]],
    failed: Sequence[tuple[NamedStore, OrchestratorError]],
) -> Archived:
    """The backup as the stores that hold it have it (`stored`: each with its manifest),
    and what happened in each store. Raises UploadFailed, naming each store that `failed`
    and those that hold it, when any store failed."""
    done = [store for store, _manifest in stored]
    report = {store.label: "ok" for store in done}
    report.update({store.label: str(error) for store, error in failed})
    if failed:
        for store, error in failed:
            log.error("backup.store_failed", store=store.label, error=str(error))
        kept = ", ".join(s.label for s in done) or "no store"
        raise UploadFailed(
            "; ".join(f"store {s.label} ({s.setting}) failed: {e}" for s, e in failed)
            + f"; the backup is in {kept}",
            report,
            done,
        )
    return Archived(stored[0][1], done, report)


def must_be_free(storage: Storage, planned: Manifest) -> None:
    """Raise JobError when `storage` holds a manifest for `planned`'s id, or the store's
    error when it cannot say."""
    try:
        storage.get_bytes(planned.manifest_key)
    except NotFound:
        return
    raise JobError(f"a backup with id {planned.id} already exists; not overwriting it")


def check_stored_size(storage: Storage, key: str, size: int) -> None:
    """Raise IntegrityError unless the object at `key` holds `size` bytes."""
    stored = storage.size_of(key)
    if stored != size:
        raise IntegrityError(
            f"{storage.describe(key)} holds {stored} bytes after the upload, not {size}"
        )


def open_stores(job: Job) -> OpenStores:
    """Open and check every store at once.

    Raises ConfigError when every store is misconfigured (missing bucket, refused
    credentials): nothing could be archived. Otherwise the stores that failed their check
    are given with their errors, and the work goes on with the others.
    """
    stores = job.stores()
    outcomes = fan_out(stores, lambda store: store.storage.check())
    failed = [(o.store, o.error) for o in outcomes if o.error is not None]
    if (
        failed
        and len(failed) == len(stores)
        and all(isinstance(e, ConfigError) for _s, e in failed)
    ):
        raise combined(failed, "open a store")
    for store, error in failed:
        log.warning("backup.store_unavailable", store=store.label, error=str(error))
    return OpenStores([o.store for o in outcomes if o.ok], failed)


def _warn_other_source(storage: Storage, manifest: Manifest) -> None:
    """Warn when the newest backup of this database name came from another cluster: two
    sources sharing a prefix mix their retention (give each source its own prefix). Not an
    error, since a provider's major upgrade or failover changes the identity too; best
    effort (a store that cannot say is no reason to fail the upload)."""
    try:
        other = catalog.newest_backup(storage, manifest.database)
    except Interrupted:
        raise
    except OrchestratorError as exc:
        log.warning("backup.other_source_unknown", error=str(exc))
        return
    previous = other.source_identity if other is not None else None
    if previous and manifest.source_identity not in (None, previous):
        log.warning(
            "backup.other_source",
            database=manifest.database,
            previous=previous,
            now=manifest.source_identity,
            advice="one STORAGE_URL prefix per source unless the server was replaced",
        )


def delete_quietly(storage: Storage, keys: list[str]) -> None:
    """Delete `keys` (best effort: a failure is logged, never raised)."""
    try:
        storage.delete(keys)
    except Exception as exc:
        log.warning("backup.cleanup_failed", keys=keys, error=str(exc))
