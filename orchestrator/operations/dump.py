"""Dump: pg_dump the source once in an exported snapshot into a work folder, with the row
counts and schema facts its manifest records (encryption happens on the way to the stores:
operations/upload)."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from orchestrator import __version__, catalog
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import CommandFailed, ConfigError
from orchestrator.job import Job
from orchestrator.logs import get_logger, with_context
from orchestrator.operations.common import client_for, sha256_of
from orchestrator.postgres import pg_restore, queries
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import DumpOptions, compression_for, run_dump
from orchestrator.schema_facts import SchemaFacts
from orchestrator.table_names import table_key

log = get_logger(__name__)
SOURCE = "SOURCE_DATABASE_URL"


@dataclass(frozen=True)
class LocalDump:
    """A finished dump on local disk and the manifest that will describe it once stored.

    `path` is the pg_dump archive (what restores read), or the stored object it was
    downloaded as (sync): `manifest` says which.
    """

    path: Path
    manifest: Manifest


def dump_options(job: Job, pg_dump_major: int) -> DumpOptions:
    """The job's pg_dump options (PG_DUMP_*), for a pg_dump of `pg_dump_major`."""
    return DumpOptions(
        compress=compression_for(job.dump.compress, pg_dump_major),
        exclude_tables=job.dump.exclude_tables,
        exclude_table_data=job.dump.exclude_table_data,
        extra_args=job.dump.extra_args,
        timeout=job.dump.timeout,
    )


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
