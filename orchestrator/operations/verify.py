"""`orchestrator verify`: every stored copy's checksum, and a readable table of contents.

Each store that holds the backup is checked, since finding a bad copy is what verify is
for: the stored bytes' SHA-256 needs no key. The table of contents is read from one good
copy: directly when it is plain, and for an encrypted backup only when
ARCHIVE_IDENTITY_FILE is set (the deep check), after decrypting it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import catalog
from orchestrator.catalog import Copy, Located, Manifest
from orchestrator.errors import Interrupted, LocalDiskFull, OrchestratorError
from orchestrator.job import Job
from orchestrator.logs import get_logger, with_context
from orchestrator.operations import directory
from orchestrator.operations.common import client_for, work_dir
from orchestrator.operations.fetch import download_checked, open_sealed, replaced
from orchestrator.postgres import pg_restore
from orchestrator.table_names import table_key

log = get_logger(__name__)


@dataclass
class VerifyResult:
    """Each check by name with its outcome; `ok` only when every check passed."""

    manifest: Manifest
    checks: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    stores: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems


def verify(job: Job, ref: str) -> VerifyResult:
    """Check backup `ref` in every store that holds it, then read one good copy with
    `pg_restore --list` (decrypted first when encrypted and an identity is set).

    Problems found in the archive are reported in the result, a store that could not be
    asked or whose manifest of the backup is unreadable among them; ConfigError (and the
    stores' errors when none can be asked) are raised.
    """
    stores = job.stores()
    located = catalog.find_located(stores, ref)
    if ref == "latest":  # by its id: a store whose manifest of it is unreadable is named
        located = catalog.find_located(stores, located.manifest.id)
    result = _verify(job, located)
    now = None if result.ok else replaced(located)
    if now is not None:  # a rekey replaced it while it was read: what it holds now
        log.info("verify.manifest_changed", backup_id=located.manifest.id)
        result = _verify(job, now)
    log.info("verify.done", backup_id=located.manifest.id, ok=result.ok)
    return result


def _verify(job: Job, located: Located) -> VerifyResult:
    """verify() of the copies `located` names, as they were read."""
    result = VerifyResult(located.manifest)
    for label, why in located.unreachable:  # it may hold a copy: one not checked is a problem
        result.stores[label] = "unreachable"
        result.problems.append(f"store {label} could not be asked: {why}")
    with work_dir(job) as folder:
        if located.manifest.directory:
            _verify_directory(job, located, folder, result)
            return result
        good = _check_copies(located.copies, folder, result)
        if good is None:
            return result
        copy, path = good
        manifest = copy.manifest
        if manifest.encrypted:
            if job.keys.identity_file is None:
                result.checks["toc"] = "skipped: encrypted, ARCHIVE_IDENTITY_FILE not set"
                return result
            identities = job.identities(f"backup {manifest.id} is encrypted")
            try:
                path = open_sealed(path, manifest, folder / "archive.dump", identities)
                result.checks["decrypt"] = "ok"
            except Interrupted:
                raise
            except OrchestratorError as exc:
                result.checks["decrypt"] = "failed"
                result.problems.append(str(exc))
                return result
        _check_toc(job, manifest, path, result)
    return result


def _verify_directory(job: Job, located: Located, folder: Path, result: VerifyResult) -> None:
    """Every file of every copy of a directory backup hashed (each missing or damaged file
    named with its store); then the table of contents read from the first good copy of
    toc.dat (decrypted when encrypted and an identity is set)."""
    good = [copy for copy in located.copies if _files_intact(copy, folder, result, located)]
    checked = [result.stores[copy.store.label] for copy in located.copies]
    result.checks["sha256"] = "ok" if all(v == "ok" for v in checked) else "failed"
    manifest = located.manifest
    if manifest.encrypted and job.keys.identity_file is None:
        result.checks["toc"] = "skipped: encrypted, ARCHIVE_IDENTITY_FILE not set"
        return
    toc_only = folder / "toc"
    toc_only.mkdir()
    identities = (
        job.identities(f"backup {manifest.id} is encrypted") if manifest.encrypted else None
    )
    try:
        Located(tuple(good) or located.copies).first_good(
            lambda copy: directory.plain_file(
                copy, catalog.TOC_FILE, toc_only / catalog.TOC_FILE, identities
            ),
            f"read the table of contents of backup {manifest.id}",
        )
    except Interrupted:
        raise
    except OrchestratorError as exc:
        result.checks["toc"] = "failed"
        result.problems.append(str(exc))
        return
    if manifest.encrypted:
        result.checks["decrypt"] = "ok"
    _check_toc(job, manifest, toc_only, result)


def _files_intact(copy: Copy, folder: Path, result: VerifyResult, located: Located) -> bool:
    """Download and hash every file of `copy` (a few at once); record each problem, naming
    the file and, with several stores, the store. True when every file is good."""
    where = f" in {copy.store.label}" if len(located.copies) > 1 else ""
    scratch = folder / f"copy-{located.copies.index(copy)}"
    scratch.mkdir()

    def one(name: str) -> str | None:
        try:
            directory.download_file(copy, name, scratch / name)
            (scratch / name).unlink()
        except (Interrupted, LocalDiskFull):  # this host's fault, not the copy's
            raise
        except OrchestratorError as exc:
            return f"{exc}{where}"
        return None

    names = [file.name for file in located.manifest.files]
    with ThreadPoolExecutor(directory.FILES_AT_ONCE, thread_name_prefix="verify") as pool:
        problems = [p for p in pool.map(with_context(one), names) if p is not None]
    result.problems.extend(problems)
    result.stores[copy.store.label] = "failed" if problems else "ok"
    return not problems


def _check_copies(
    copies: tuple[Copy, ...], folder: Path, result: VerifyResult
) -> tuple[Copy, Path] | None:
    """Download and hash every copy; record each store's outcome; give the first good copy."""
    good: tuple[Copy, Path] | None = None
    for index, copy in enumerate(copies):
        path = folder / f"copy-{index}"
        try:
            download_checked(copy.store.storage, copy.manifest, path)
            result.stores[copy.store.label] = "ok"
        except (Interrupted, LocalDiskFull):  # this host's fault, not the copy's
            raise
        except OrchestratorError as exc:
            result.stores[copy.store.label] = "failed"
            where = f" in {copy.store.label}" if len(copies) > 1 else ""
            result.problems.append(f"{exc}{where}")
            continue
        if good is None:
            good = (copy, path)
        else:
            path.unlink()
    checked = [result.stores[copy.store.label] for copy in copies]
    result.checks["sha256"] = "ok" if all(v == "ok" for v in checked) else "failed"
    return good


def _check_toc(job: Job, manifest: Manifest, path: Path, result: VerifyResult) -> None:
    client = client_for(
        job,
        "pg_restore",
        manifest.dump_major,
        f"written by pg_dump {manifest.pg_dump_version}",
    )
    try:
        toc = pg_restore.list_toc(client, path)
    except Interrupted:
        raise
    except OrchestratorError as exc:
        result.problems.append(str(exc))
        result.checks["toc"] = "failed"
        return
    missing = _missing_tables(toc, manifest)
    if missing:
        result.problems.append(f"table data missing from the archive: {', '.join(missing)}")
    result.checks["toc"] = "failed" if missing else "ok"


def _missing_tables(toc: str, manifest: Manifest) -> list[str]:
    present = set(pg_restore.table_data_tables(toc, manifest.tables, manifest.tables_by_oid))
    return sorted(table_key(s, t) for s, t in manifest.tables if (s, t) not in present)
