"""`orchestrator backup`: dump the source once in an exported snapshot, archive it with a manifest.

The dump object is stored first and the manifest last, so a failure anywhere leaves no
backup behind: at worst a dump object without a manifest, which this action removes.
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

from orchestrator import __version__, catalog
from orchestrator.actions.common import client_for, sha256_of, storage_from
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import (
    CommandFailed,
    ConfigError,
    JobError,
    NotFound,
    OrchestratorError,
)
from orchestrator.logs import get_logger, with_context
from orchestrator.names import table_key
from orchestrator.postgres import inspect, restore
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import DumpOptions, compression_for, run_dump
from orchestrator.settings import Settings
from orchestrator.storage import Storage

log = get_logger(__name__)
SOURCE = "SOURCE_DATABASE_URL"
ID_ATTEMPTS = 3


@dataclass(frozen=True)
class LocalDump:
    """A finished dump on local disk and the manifest that will describe it once stored."""

    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class BackupResult:
    """The stored backup."""

    manifest: Manifest
    location: str


def dump_options(settings: Settings, pg_dump_major: int) -> DumpOptions:
    """The pg_dump options chosen in settings, for a pg_dump of `pg_dump_major`."""
    return DumpOptions(
        compress=compression_for(settings.pg_dump_compress, pg_dump_major),
        exclude_tables=tuple(settings.pg_dump_exclude_tables),
        exclude_table_data=tuple(settings.pg_dump_exclude_table_data),
        extra_args=tuple(settings.pg_dump_extra_argv),
        timeout=float(settings.pg_dump_timeout),
    )


@contextmanager
def work_dir(settings: Settings) -> Iterator[Path]:
    """A private temporary folder (under WORK_DIR when set), removed afterwards."""
    base = settings.work_dir
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


def take_dump(settings: Settings, folder: Path) -> LocalDump:
    """Dump the source into `folder` and count its rows in the same snapshot; the backup is
    named after the time it started. Raises ConfigError (bad URL, credentials, no suitable
    pg_dump) or JobError.
    """
    source = settings.require_source()
    started_at = datetime.now(UTC)
    started = time.monotonic()
    backup_id = catalog.new_backup_id(source.database, started_at)
    out = folder / f"{backup_id}{catalog.DUMP_SUFFIX}"
    with inspect.exported_snapshot(source, SOURCE) as snap:
        server = inspect.server_info(snap.conn)
        identity = inspect.cluster_identity(snap.conn)
        client = client_for(settings, "pg_dump", server.major, f"the source runs {server.version}")
        options = dump_options(settings, client.major)
        log.info(
            "backup.dump",
            backup_id=backup_id,
            server=server.version,
            pg_dump=client.version,
            compression=options.compress or "pg_dump's default",
        )
        try:
            counts, sha256 = _dump_in_snapshot(source, snap, client, out, options)
        except CommandFailed as exc:
            refused = _compression_refused(exc, client, options.compress)
            if refused is None:
                raise
            raise refused from None
    manifest = Manifest(
        id=backup_id,
        created_at=started_at.replace(microsecond=0),
        database=source.database,
        dump_key=catalog.dump_key_for(backup_id),
        size_bytes=out.stat().st_size,
        sha256=sha256,
        server_version=server.version,
        server_version_num=server.version_num,
        pg_dump_version=client.version,
        duration_seconds=round(time.monotonic() - started, 3),
        compression=options.compress,
        row_counts=counts,
        source_identity=identity,
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
    source: ConnInfo, snap: inspect.Snapshot, client: ClientSet, out: Path, options: DumpOptions
) -> tuple[dict[str, int], str]:
    """Run pg_dump of `source` in `snap`; give (row counts of the tables whose data the
    archive holds, the archive's sha256). Raises what run_dump raises.

    A dump of every table has the tables counted while pg_dump runs (same snapshot, and the
    server has time to spare then); what that could not count, or any dump narrowed by
    exclusions, is counted after, from the archive's TOC.
    """
    known = inspect.user_tables(snap.conn)
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        early = None
        if options.dumps_every_table:
            early_tables = inspect.user_tables(snap.conn, outside_extensions=True)
            early = pool.submit(
                with_context(inspect.count_rows_while),
                snap.conn,
                early_tables,
                lambda: not done.is_set(),
            )
        try:
            run_dump(client, source, out, snap.snapshot_id, options)
            digest = pool.submit(sha256_of, out)
            tables = restore.table_data_tables(restore.list_toc(client, out), known)
            return _counts_of(snap.conn, tables, early), digest.result()
        finally:
            if early is not None and not early.done():  # pg_dump or the TOC read failed
                done.set()
                with contextlib.suppress(psycopg.Error):
                    snap.conn.cancel_safe(timeout=3.0)


def _counts_of(
    conn: inspect.Conn, tables: list[inspect.TableName], early: Future[dict[str, int]] | None
) -> dict[str, int]:
    """Row counts of `tables`: those counted during the dump (`early`), the rest now."""
    counted = early.result() if early is not None else {}
    missing = [t for t in tables if table_key(*t) not in counted]
    counted = {**counted, **inspect.count_rows(conn, missing)}
    return {table_key(*t): counted[table_key(*t)] for t in tables}


def with_unused_id(storage: Storage, dump: LocalDump) -> LocalDump:
    """`dump`, named one second later (and again, up to ID_ATTEMPTS times) while a stored
    backup of its database already has its id: ids have one-second resolution, and two
    runs started in the same second must not collide. When the store cannot say, `dump`
    as it is (archive() still refuses to overwrite)."""
    manifest = dump.manifest
    for _attempt in range(ID_ATTEMPTS):
        try:
            storage.get_bytes(manifest.manifest_key)
        except OrchestratorError:  # NotFound (free) or cannot tell
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
    return LocalDump(dump.path, manifest)


def archive(storage: Storage, dump: LocalDump) -> BackupResult:
    """Store the dump object, then its manifest. Raises JobError when either write fails.

    A dump object stored without its manifest is deleted again (best effort).
    """
    manifest = dump.manifest
    try:
        storage.get_bytes(manifest.manifest_key)
        raise JobError(f"a backup with id {manifest.id} already exists; not overwriting it")
    except NotFound:
        pass
    _warn_other_source(storage, manifest)
    storage.put_file(manifest.dump_key, dump.path)
    try:
        storage.put_bytes(manifest.manifest_key, manifest.to_json())
    except BaseException:
        # the write may have landed before it failed: manifest first, as prune does
        _delete_quietly(storage, manifest.manifest_key)
        _delete_quietly(storage, manifest.dump_key)
        raise
    log.info("backup.stored", backup_id=manifest.id, size_bytes=manifest.size_bytes)
    return BackupResult(manifest, storage.describe(manifest.dump_key))


def _warn_other_source(storage: Storage, manifest: Manifest) -> None:
    """Warn when the newest backup of this database name came from another cluster: two
    sources sharing a prefix mix their retention (give each source its own prefix). Not an
    error, since a provider's major upgrade or failover changes the identity too."""
    for other in catalog.list_backups(storage, manifest.database)[:1]:
        if other.source_identity and manifest.source_identity not in (None, other.source_identity):
            log.warning(
                "backup.other_source",
                database=manifest.database,
                previous=other.source_identity,
                now=manifest.source_identity,
                advice="one STORAGE_URL prefix per source unless the server was replaced",
            )


def _delete_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete([key])
    except Exception as exc:
        log.warning("backup.cleanup_failed", key=key, error=str(exc))


def backup(settings: Settings) -> BackupResult:
    """Take one backup of the source and archive it; give the stored backup.

    The store is checked before the dump starts, so a wrong bucket costs no dump.
    """
    storage = storage_from(settings)
    storage.check()
    with work_dir(settings) as folder:
        return archive(storage, with_unused_id(storage, take_dump(settings, folder)))
