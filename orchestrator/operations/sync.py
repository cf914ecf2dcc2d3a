"""`orchestrator sync`: copy every backup that some store lacks from a store that has it.

A copy is made as a backup is: the dump object first (downloaded once and checked against
the manifest, then stored and its size checked in each store that lacks it), its manifest
last. Running it again copies nothing. The pipeline runs it for its own database, so a
store that missed a cycle (down, unreachable) catches up on the next one.

With ARCHIVE_RECIPIENTS set, nothing plain leaves the host: a backup stored plain (made
before encryption was turned on) is encrypted to the recipients on its way to the store
that lacks it. Encrypted backups are copied as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import catalog
from orchestrator.catalog import Copy, DumpFile, Encryption, Located, Manifest
from orchestrator.errors import IntegrityError, Interrupted, OrchestratorError
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.operations import directory
from orchestrator.operations.archiver import copy_file_by_file, seal_to_each, stored_file
from orchestrator.operations.common import work_dir
from orchestrator.operations.dump import LocalDump
from orchestrator.operations.fetch import download_any
from orchestrator.operations.upload import delete_quietly, store_everywhere
from orchestrator.storage.locks import store_locks
from orchestrator.storage.multi import NamedStore, Outcome, fan_out

log = get_logger(__name__)


@dataclass(frozen=True)
class CopyPlan:
    """One backup to copy into one store."""

    backup_id: str
    source: str
    target: str


@dataclass
class SyncResult:
    """What sync planned and did; `ok` when every copy succeeded and every store answered."""

    dry_run: bool
    planned: list[CopyPlan] = field(default_factory=list)
    copied: list[CopyPlan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.errors


def missing_copies(
    located: list[Located],
    stores: list[NamedStore],
    damaged: dict[str, set[str]] | None = None,
) -> list[tuple[Located, list[NamedStore]]]:
    """Give each backup that some of `stores` lack, with the stores that lack it (pure).

    A copy in `damaged` (per store label, the ids whose dump objects are not all there at
    their sizes) counts as lacking and is never copied from: the backup is given with its
    whole copies, and left out when it has none (nothing to mend it from)."""
    damaged = damaged or {}
    gaps = []
    for backup in located:
        whole = tuple(
            c for c in backup.copies if c.manifest.id not in damaged.get(c.store.label, ())
        )
        holders = {copy.store.label for copy in whole}
        lacking = [s for s in stores if s.label not in holders]
        if whole and lacking:
            gaps.append((Located(whole, backup.unreachable), lacking))
    return gaps


def damaged_copies(
    stores: list[NamedStore], located: list[Located], database: str | None
) -> dict[str, set[str]]:
    """Per store label, the ids of the backups in `located` whose copy there lost a dump
    object or holds one cut short, by the store's listing. A store that cannot be listed
    has none (its copies are taken as they are)."""
    prefix = f"{catalog.safe_name(database)}/" if database else ""
    listings = fan_out(stores, lambda store: list(store.storage.list(prefix)))
    found: dict[str, set[str]] = {}
    for outcome in listings:
        if outcome.value is None:
            continue
        label = outcome.store.label
        held = [c.manifest for b in located for c in b.copies if c.store.label == label]
        whole = catalog.whole_backups(held, outcome.value)
        found[label] = {m.id for m in held if m.id not in whole}
    return found


def sync(
    job: Job,
    dry_run: bool = False,
    database: str | None = None,
    stores: list[NamedStore] | None = None,
) -> SyncResult:
    """Copy into every store the backups it lacks (of `database` only, when given).

    A copy whose dump objects are not all there at their sizes is replaced from a whole
    one (its manifest goes first, logged as sync.damaged_copy). Stores that cannot be
    listed are reported in the result's errors and get nothing; one failed copy does not
    stop the others. Unless `stores` are given (the pipeline's,
    under its own locks), the stores' locks of the databases to copy are held; raises
    AlreadyRunning when another job holds one.
    """
    locking = stores is None and not dry_run  # the pipeline holds the stores' locks already
    stores = stores if stores is not None else job.stores()
    result = SyncResult(dry_run)
    if len(stores) < 2:
        return result
    recipients = job.recipients()
    located, failed = catalog.list_located(stores, database)
    result.errors += [f"{store.label}: cannot list it: {error}" for store, error in failed]
    reachable = [s for s in stores if s.label not in {f.label for f, _e in failed}]
    damaged = damaged_copies(reachable, located, database)
    gaps = missing_copies(located, reachable, damaged)
    names = {backup.manifest.database for backup, _lacking in gaps}
    with store_locks([(s, n) for s in reachable for n in names] if locking else [], "sync"):
        for backup, lacking in gaps:
            plans = [CopyPlan(backup.manifest.id, backup.stores[0], s.label) for s in lacking]
            result.planned += plans
            if not dry_run:
                _forget_damaged(backup.manifest, lacking, damaged)
                with work_dir(job) as folder:
                    _copy(backup, lacking, folder, plans, result, recipients)
    return result


def _forget_damaged(
    manifest: Manifest, lacking: list[NamedStore], damaged: dict[str, set[str]]
) -> None:
    """Delete the manifest of `manifest`'s backup in each store of `lacking` whose copy is
    damaged, so that the copy made next replaces it (best effort: a manifest that stays
    makes that copy fail, named in the result)."""
    for store in lacking:
        if manifest.id in damaged.get(store.label, ()):
            log.warning("sync.damaged_copy", backup_id=manifest.id, store=store.label)
            delete_quietly(store.storage, [manifest.manifest_key])


def _copy(
    backup: Located,
    lacking: list[NamedStore],
    folder: Path,
    plans: list[CopyPlan],
    result: SyncResult,
    recipients: list[str],
) -> None:
    """Download one good copy of `backup`, then store it in each of `lacking` at once
    (a plain one encrypted on the way when there are recipients)."""
    if backup.manifest.directory:
        _record(plans, _copy_directory(backup, lacking, folder, recipients), result)
        return
    try:
        copy = download_any(backup, folder / "copy")
    except Interrupted:
        raise
    except OrchestratorError as exc:
        result.errors.append(f"{backup.manifest.id}: no good copy to copy from: {exc}")
        return
    dump = LocalDump(folder / "copy", copy.manifest)
    try:  # a plain copy is encrypted on its way when there are recipients
        outcomes = store_everywhere(lacking, dump, recipients, check_source=False)
    except Interrupted:
        raise
    except OrchestratorError as exc:  # the encryption failed: no store got the copy
        result.errors.append(f"{backup.manifest.id}: {exc}")
        return
    _record(plans, [(copy.store.label, o) for o in outcomes], result)


def _record(
    plans: list[CopyPlan], outcomes: Sequence[tuple[str, Outcome[Any]]], result: SyncResult
) -> None:
    """Add each store's outcome (with the store copied from) to `result`."""
    for plan, (source, outcome) in zip(plans, outcomes, strict=True):
        if outcome.ok:
            log.info("sync.copied", backup_id=plan.backup_id, source=source, target=plan.target)
            result.copied.append(CopyPlan(plan.backup_id, source, plan.target))
        else:
            log.error(
                "sync.failed",
                backup_id=plan.backup_id,
                target=plan.target,
                error=str(outcome.error),
            )
            result.errors.append(f"{plan.backup_id} to {plan.target}: {outcome.error}")


def _copy_directory(
    backup: Located, lacking: list[NamedStore], folder: Path, recipients: list[str]
) -> list[tuple[str, Outcome[Manifest]]]:
    """Copy a directory backup into each of `lacking`, file by file: each stored file from
    the first store whose copy of it is good, as it is stored (a plain backup's files
    encrypted on the way when there are `recipients`), then each store's manifest. Give
    each store's outcome with the store the copy came from."""
    source = backup.copies[0]
    seal = bool(recipients) and not source.manifest.encrypted
    planned = source.manifest.model_copy(
        update={"encryption": Encryption(recipients=tuple(recipients))} if seal else {}
    )

    def fetch(file: DumpFile, path: Path) -> None:
        def attempt(copy: Copy) -> None:  # the same stored bytes, not another store's keys
            theirs = directory.entry(copy.manifest, file.name)
            if (theirs.sha256, copy.manifest.encryption) != (
                file.sha256,
                source.manifest.encryption,
            ):
                raise IntegrityError(
                    f"backup {copy.manifest.id}: the copy in {copy.store.label} stores "
                    f"{file.name} otherwise (another encryption)"
                )
            directory.download_file(copy, file.name, path)

        backup.first_good(attempt, f"read file {file.name} of backup {backup.manifest.id}")

    def put(live: list[NamedStore], file: DumpFile, path: Path) -> list[Outcome[DumpFile]]:
        if seal:
            return seal_to_each(live, planned, file, path, recipients)
        return fan_out(live, lambda store: stored_file(store.storage, planned, file, path))

    outcomes = copy_file_by_file(lacking, source.manifest.files, fetch, put, planned, folder)
    return [(source.store.label, outcome) for outcome in outcomes]
