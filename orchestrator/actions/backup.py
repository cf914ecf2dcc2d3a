"""`orchestrator backup`: dump the source once in an exported snapshot, archive it with a manifest.

With ARCHIVE_RECIPIENTS the dump is age-encrypted on this host before any byte leaves it.
The same bytes then go to every store at once; in each store the dump object is stored and
its size checked first and the manifest last, so a failure anywhere leaves no backup behind
in that store (at worst a dump object without a manifest, which this action removes), and
a store that fails takes nothing from the others.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from orchestrator import __version__, catalog, crypto
from orchestrator.actions.common import client_for, sha256_of
from orchestrator.catalog import Encryption, Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import (
    CommandFailed,
    ConfigError,
    IntegrityError,
    Interrupted,
    JobError,
    NotFound,
    OrchestratorError,
)
from orchestrator.job import Job
from orchestrator.logs import get_logger, with_context
from orchestrator.postgres import pg_restore, queries
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import DumpOptions, compression_for, run_dump
from orchestrator.schema_facts import SchemaFacts
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore, Outcome, combined, fan_out
from orchestrator.table_names import table_key

log = get_logger(__name__)
SOURCE = "SOURCE_DATABASE_URL"
ID_ATTEMPTS = 3


@dataclass(frozen=True)
class LocalDump:
    """A finished dump on local disk and the manifest that will describe it once stored.

    `path` is the plain pg_dump archive (what restores read); `sealed_path`, when set, is
    its encrypted form, which is what the stores receive.
    """

    path: Path
    manifest: Manifest
    sealed_path: Path | None = None

    @property
    def upload_path(self) -> Path:
        """The file whose bytes the stores receive."""
        return self.sealed_path or self.path


@dataclass(frozen=True)
class BackupResult:
    """The stored backup."""

    manifest: Manifest
    location: str


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


def dump_options(job: Job, pg_dump_major: int) -> DumpOptions:
    """The job's pg_dump options (PG_DUMP_*), for a pg_dump of `pg_dump_major`."""
    return DumpOptions(
        compress=compression_for(job.dump.compress, pg_dump_major),
        exclude_tables=job.dump.exclude_tables,
        exclude_table_data=job.dump.exclude_table_data,
        extra_args=job.dump.extra_args,
        timeout=job.dump.timeout,
    )


@contextmanager
def work_dir(job: Job) -> Iterator[Path]:
    """A private temporary folder (under WORK_DIR when set), removed afterwards."""
    base = job.work_dir
    try:
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="orchestrator-", dir=base))
    except OSError as exc:
        raise ConfigError(
            f"WORK_DIR: cannot make a work folder in {base}: {exc.strerror}"
        ) from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def take_dump(job: Job, folder: Path) -> LocalDump:
    """Dump the source into `folder` and count its rows in the same snapshot; the backup is
    named after the time it started. Raises ConfigError (bad URL, credentials, no suitable
    pg_dump) or JobError.
    """
    source = job.require_source()
    started_at = datetime.now(UTC)
    started = time.monotonic()
    backup_id = catalog.new_backup_id(source.database, started_at)
    out = folder / f"{backup_id}{catalog.DUMP_SUFFIX}"
    with queries.exported_snapshot(source, SOURCE) as snap:
        server = queries.server_info(snap.conn)
        identity = queries.cluster_identity(snap.conn)
        client = client_for(job, "pg_dump", server.major, f"the source runs {server.version}")
        options = dump_options(job, client.major)
        log.info(
            "backup.dump",
            backup_id=backup_id,
            server=server.version,
            pg_dump=client.version,
            compression=options.compress or "pg_dump's default",
        )
        try:
            counts, sha256, facts = _dump_in_snapshot(source, snap, client, out, options)
        except CommandFailed as exc:
            refused = _compression_refused(exc, client, options.compress)
            if refused is None:
                raise
            raise refused from None
    size = out.stat().st_size
    manifest = Manifest(
        id=backup_id,
        created_at=started_at.replace(microsecond=0),
        database=source.database,
        dump_key=catalog.dump_key_for(backup_id),
        size_bytes=size,
        sha256=sha256,
        plain_size_bytes=size,
        plain_sha256=sha256,
        server_version=server.version,
        server_version_num=server.version_num,
        pg_dump_version=client.version,
        duration_seconds=round(time.monotonic() - started, 3),
        compression=options.compress,
        row_counts=counts,
        source_identity=identity,
        schema_facts=facts,
        tool_version=__version__,
    )
    return LocalDump(out, manifest)


def _compression_refused(
    exc: CommandFailed, client: ClientSet, compress: str | None
) -> ConfigError | None:
    """A ConfigError naming PG_DUMP_COMPRESS when pg_dump was built without the method."""
    if compress is None or "does not support compression" not in str(exc):
        return None
    return ConfigError(
        f"PG_DUMP_COMPRESS: pg_dump {client.version} ({client.bin_dir}) was built without "
        f"{compress.partition(':')[0]}; set PG_DUMP_COMPRESS=gzip"
    )


def _dump_in_snapshot(
    source: ConnInfo, snap: queries.Snapshot, client: ClientSet, out: Path, options: DumpOptions
) -> tuple[dict[str, int], str, SchemaFacts | None]:
    """Run pg_dump of `source` in `snap`; give (row counts of the tables whose data the
    archive holds, the archive's sha256, the schema facts). Raises what run_dump raises.

    A dump of every table has the tables counted while pg_dump runs (same snapshot, and the
    server has time to spare then); what that could not count, or any dump narrowed by
    exclusions, is counted after, from the archive's TOC.
    """
    known = queries.user_tables(snap.conn)
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        early = None
        if options.dumps_every_table:
            early_tables = queries.user_tables(snap.conn, outside_extensions=True)
            early = pool.submit(
                with_context(queries.count_rows_while),
                snap.conn,
                early_tables,
                lambda: not done.is_set(),
            )
        try:
            run_dump(client, source, out, snap.snapshot_id, options)
            digest = pool.submit(sha256_of, out)
            tables = pg_restore.table_data_tables(pg_restore.list_toc(client, out), known)
            counts = _counts_of(snap.conn, tables, early)
            return counts, digest.result(), queries.schema_facts(snap.conn)
        finally:
            if early is not None and not early.done():  # pg_dump or the TOC read failed
                done.set()
                with contextlib.suppress(psycopg.Error):
                    snap.conn.cancel_safe(timeout=3.0)


def _counts_of(
    conn: queries.Conn, tables: list[queries.TableName], early: Future[dict[str, int]] | None
) -> dict[str, int]:
    """Row counts of `tables`: those counted during the dump (`early`), the rest now."""
    counted = early.result() if early is not None else {}
    missing = [t for t in tables if table_key(*t) not in counted]
    counted = {**counted, **queries.count_rows(conn, missing)}
    return {table_key(*t): counted[table_key(*t)] for t in tables}


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
        manifest = manifest.model_copy(
            update={
                "id": backup_id,
                "created_at": created,
                "dump_key": catalog.dump_key_for(backup_id),
            }
        )
    if manifest.id != dump.manifest.id:
        log.info("backup.renamed", backup_id=manifest.id, taken=dump.manifest.id)
    return LocalDump(dump.path, manifest, dump.sealed_path)


def _holds(storage: Storage, key: str) -> bool:
    try:
        storage.get_bytes(key)
    except Interrupted:
        raise
    except OrchestratorError:  # NotFound (free) or cannot tell
        return False
    return True


def seal(dump: LocalDump, recipients: list[str]) -> LocalDump:
    """`dump` encrypted to `recipients` beside the plain file (unchanged when there are
    none), its manifest describing both the stored and the plain bytes.

    Raises EncryptionError (nothing is left to upload) when encryption fails or its
    output does not hold exactly the dump.
    """
    if not recipients:
        return dump
    manifest = dump.manifest
    sealed_path = dump.path.with_name(dump.path.name + catalog.AGE_SUFFIX)
    sealed = crypto.encrypt_file(dump.path, sealed_path, recipients)
    if (sealed.plain_size, sealed.plain_sha256) != (manifest.plain_size, manifest.plain_digest):
        sealed_path.unlink(missing_ok=True)
        raise crypto.EncryptionError("the dump changed while it was encrypted; not uploading it")
    log.info("backup.encrypted", backup_id=manifest.id, recipients=len(recipients))
    sealed_manifest = manifest.model_copy(
        update={
            "dump_key": catalog.dump_key_for(manifest.id, encrypted=True),
            "size_bytes": sealed.size,
            "sha256": sealed.sha256,
            "encryption": Encryption(recipients=tuple(recipients)),
        }
    )
    return LocalDump(dump.path, sealed_manifest, sealed_path)


def archive(storage: Storage, dump: LocalDump, check_source: bool = True) -> BackupResult:
    """Store the dump object, check its size, then write its manifest. Raises JobError when
    a write fails or the stored size differs. `check_source` warns when the store's newest
    backup of this database came from another cluster (new backups, not copies).

    A dump object stored without its manifest is deleted again (best effort).
    """
    manifest = dump.manifest
    try:
        storage.get_bytes(manifest.manifest_key)
        raise JobError(f"a backup with id {manifest.id} already exists; not overwriting it")
    except NotFound:
        pass
    if check_source:
        _warn_other_source(storage, manifest)
    storage.put_file(manifest.dump_key, dump.upload_path)
    try:
        stored = storage.size_of(manifest.dump_key)
        if stored != manifest.size_bytes:
            raise IntegrityError(
                f"{storage.describe(manifest.dump_key)} holds {stored} bytes after the upload, "
                f"not {manifest.size_bytes}"
            )
        storage.put_bytes(manifest.manifest_key, manifest.to_json())
    except BaseException:
        # the write may have landed before it failed: manifest first, as prune does
        _delete_quietly(storage, manifest.manifest_key)
        _delete_quietly(storage, manifest.dump_key)
        raise
    log.info("backup.stored", backup_id=manifest.id, size_bytes=manifest.size_bytes)
    return BackupResult(manifest, storage.describe(manifest.dump_key))


def archive_everywhere(
    stores: OpenStores, dump: LocalDump
) -> tuple[list[NamedStore], dict[str, str]]:
    """Store `dump` in every usable store at once; give the stores that now hold it and
    what happened in each store ("ok" or the error). Raises UploadFailed, after every
    store has finished, when any store (usable or not) does not hold it."""
    outcomes: list[Outcome[BackupResult]] = fan_out(
        stores.usable, lambda store: archive(store.storage, dump)
    )
    failed = [*stores.failed, *[(o.store, o.error) for o in outcomes if o.error is not None]]
    done = [o.store for o in outcomes if o.ok]
    report = {o.store.label: "ok" for o in outcomes if o.ok}
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
    return done, report


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


def _delete_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete([key])
    except Exception as exc:
        log.warning("backup.cleanup_failed", key=key, error=str(exc))


def backup(job: Job) -> BackupResult:
    """Take one backup of the source, encrypt it when recipients are set, and archive it in
    every store; give the stored backup.

    The stores are checked and the recipients read before the dump starts, so a wrong
    bucket or key costs no dump, and when no store can take the backup (an uninitialised
    folder, a store that is down) nothing is dumped: that store's error is raised. Raises
    UploadFailed when a store did not get it.
    """
    recipients = job.recipients()
    stores = open_stores(job)
    if not stores.usable:
        raise combined(stores.failed, "open a store")
    with work_dir(job) as folder:
        dump = with_unused_id(stores.usable, take_dump(job, folder))
        sealed = seal(dump, recipients)
        archive_everywhere(stores, sealed)
    return BackupResult(sealed.manifest, sealed.manifest.dump_key)
