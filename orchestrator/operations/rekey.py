"""`orchestrator rekey`: re-encrypt archived backups to the current ARCHIVE_RECIPIENTS.

Per backup: one good copy is fetched and decrypted (or read, when it was stored plain),
checked against the manifest, and encrypted once to the current recipients, on its way to
every store whose copy is not yet encrypted to exactly those recipients (no encrypted copy
on disk). In each of them: the new object is stored under a new key and its size checked,
then the manifest is replaced, then the old object is removed. Interrupted at any point,
every copy's manifest names an object that exists, so every backup stays restorable;
leftovers of an interrupted run are removed by the next one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import catalog, crypto
from orchestrator.catalog import Copy, DumpFile, Encryption, Located, Manifest
from orchestrator.errors import ConfigError, IntegrityError, Interrupted, OrchestratorError
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.operations import directory
from orchestrator.operations.archiver import copy_file_by_file, seal_to_each
from orchestrator.operations.common import work_dir
from orchestrator.operations.fetch import plain_copy
from orchestrator.operations.upload import SealedPut, check_stored_size, sealed_to_each
from orchestrator.storage.locks import store_locks
from orchestrator.storage.multi import NamedStore, Outcome

log = get_logger(__name__)


@dataclass(frozen=True)
class RekeyItem:
    """One store's copy of one backup that is (or would be) re-encrypted."""

    backup_id: str
    store: str
    was: str  # "plain" or "age to N recipient(s)"


@dataclass
class RekeyResult:
    """What rekey planned and did; `ok` when every planned copy was re-encrypted."""

    dry_run: bool
    recipients: int
    planned: list[RekeyItem] = field(default_factory=list)
    done: list[RekeyItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.errors


def stale(copy: Copy, recipients: list[str]) -> bool:
    """True when the copy is not encrypted to exactly `recipients` (pure)."""
    encryption = copy.manifest.encryption
    return encryption is None or set(encryption.recipients) != set(recipients)


def _was(manifest: Manifest) -> str:
    if manifest.encryption is None:
        return "plain"
    return f"age to {len(manifest.encryption.recipients)} recipient(s)"


def rekey(job: Job, ref: str = "all", dry_run: bool = False) -> RekeyResult:
    """Re-encrypt backup `ref` (an id, `latest`, or `all`) in every store to the current
    recipients; give what was planned and done.

    Raises ConfigError before touching anything when ARCHIVE_RECIPIENTS is unset or (unless
    `dry_run`) ARCHIVE_IDENTITY_FILE is unset or unreadable.
    """
    recipients = job.recipients()
    if not recipients:
        raise ConfigError("ARCHIVE_RECIPIENTS is not set: there is nothing to re-encrypt to")
    identities = None if dry_run else job.identities("rekey decrypts backups to re-encrypt them")
    stores = job.stores()
    result = RekeyResult(dry_run, len(recipients))
    if ref == "all":
        backups, failed = catalog.list_located(stores)
        result.errors += [f"{store.label}: cannot list it: {error}" for store, error in failed]
    else:
        backups = [catalog.find_located(stores, ref)]
    pairs = [] if dry_run else [(s, b.manifest.database) for b in backups for s in stores]
    with store_locks(pairs, "rekey"):
        for backup in backups:
            _rekey_one(job, backup, recipients, identities, result)
    return result


def _rekey_one(
    job: Job,
    backup: Located,
    recipients: list[str],
    identities: list[crypto.Identity] | None,
    result: RekeyResult,
) -> None:
    """Plan (and unless a dry run, do) the re-encryption of one backup's stale copies."""
    copies = [c for c in backup.copies if stale(c, recipients)]
    result.planned += [RekeyItem(c.manifest.id, c.store.label, _was(c.manifest)) for c in copies]
    if result.dry_run:
        return
    if copies:
        with work_dir(job) as folder:
            _rekey_backup(backup, copies, recipients, identities or [], folder, result)
    for current in (c for c in backup.copies if c not in copies):
        _remove_strays(current, result)  # what an interrupted run left behind


def _remove_strays(copy: Copy, result: RekeyResult) -> None:
    try:
        strays = catalog.stray_dumps(copy.store.storage, copy.manifest)
        if strays:
            copy.store.storage.delete(strays)
            log.info("rekey.leftovers_removed", backup_id=copy.manifest.id, keys=strays)
    except Interrupted:
        raise
    except OrchestratorError as exc:
        result.errors.append(f"{copy.manifest.id} in {copy.store.label}: {exc}")


def _rekey_backup(
    backup: Located,
    copies: list[Copy],
    recipients: list[str],
    identities: list[crypto.Identity],
    folder: Path,
    result: RekeyResult,
) -> None:
    backup_id = backup.manifest.id
    generation = secrets.token_hex(4)
    by_store = {c.store.label: c for c in copies}
    if backup.manifest.directory:
        redone = _rekey_directory(
            backup, copies, recipients, identities, folder, generation, result
        )
        _record(backup_id, redone, result)
        return
    try:
        plain, manifest = plain_copy(backup, folder, identities)
        outcomes = sealed_to_each(
            [c.store for c in copies],
            plain,
            recipients,
            lambda store, put: _replace(
                by_store[store.label], manifest, put, recipients, generation
            ),
            (manifest.plain_size, manifest.plain_digest),
        )
    except Interrupted:
        raise
    except OrchestratorError as exc:
        result.errors.append(f"{backup_id}: {exc}")
        return
    _record(backup_id, outcomes, result)


def _record(backup_id: str, outcomes: list[Outcome[Any]], result: RekeyResult) -> None:
    for outcome in outcomes:
        item = RekeyItem(backup_id, outcome.store.label, "")
        if outcome.ok:
            log.info("rekey.done", backup_id=backup_id, store=outcome.store.label)
            result.done.append(item)
        else:
            log.error(
                "rekey.failed",
                backup_id=backup_id,
                store=outcome.store.label,
                error=str(outcome.error),
            )
            result.errors.append(f"{backup_id} in {outcome.store.label}: {outcome.error}")


def _replace(
    copy: Copy, plain: Manifest, put: SealedPut, recipients: list[str], generation: str
) -> None:
    """New object (the `plain` archive encrypted on its way), size checked; then the
    manifest; then the old objects go."""
    storage, old = copy.store.storage, copy.manifest
    if (plain.plain_size, plain.plain_digest) != (old.plain_size, old.plain_digest):
        raise IntegrityError(f"{old.id}: the copy in this store holds another archive")
    key = catalog.dump_key_for(old.id, encrypted=True, generation=generation)
    sealed = put(key)
    new = old.model_copy(
        update={
            "dump_key": key,
            "size_bytes": sealed.size,
            "sha256": sealed.sha256,
            "plain_size_bytes": sealed.plain_size,
            "plain_sha256": sealed.plain_sha256,
            "encryption": Encryption(recipients=tuple(recipients)),
            "format_version": catalog.FORMAT_VERSION,
        }
    )
    try:
        check_stored_size(storage, new.dump_key, new.size_bytes)
    except IntegrityError:
        storage.delete([new.dump_key])
        raise
    storage.put_bytes(new.manifest_key, new.to_json())
    storage.delete(catalog.stray_dumps(storage, new))


def _rekey_directory(
    backup: Located,
    copies: list[Copy],
    recipients: list[str],
    identities: list[crypto.Identity],
    folder: Path,
    generation: str,
    result: RekeyResult,
) -> list[Outcome[Manifest]]:
    """Re-encrypt a directory backup's stale `copies` file by file under a new prefix:
    each plain file from the first good copy, encrypted once for every store; then each
    store's manifest, then its old files go. A store that fails keeps its old copy."""
    old = backup.manifest
    planned = old.model_copy(
        update={
            "dump_key": catalog.dir_key_for(old.id, generation),
            "encryption": Encryption(recipients=tuple(recipients)),
            "format_version": catalog.FORMAT_VERSION,
        }
    )

    def put(live: list[NamedStore], file: DumpFile, path: Path) -> list[Outcome[DumpFile]]:
        return seal_to_each(live, planned, file, path, recipients)

    stores = [copy.store for copy in copies]
    outcomes = copy_file_by_file(
        stores,
        old.files,
        lambda file, path: directory.plain_from_any(backup, file, path, identities),
        put,
        planned,
        folder,
        replacing=True,
    )
    for outcome in outcomes:  # the old files go once the new manifest is in place
        if outcome.ok and outcome.value is not None:
            _remove_strays(Copy(outcome.store, outcome.value), result)
    return outcomes
