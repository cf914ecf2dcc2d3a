"""Dump: pg_dump the source once in an exported snapshot into a work folder, with the row
counts and schema facts its manifest records (encryption happens on the way to the stores:
operations/upload)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psycopg

from orchestrator import __version__, catalog, closed_files, progress
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import CommandFailed, ConfigError
from orchestrator.formats import iso_z
from orchestrator.job import Job
from orchestrator.logs import get_logger, with_context
from orchestrator.operations.common import client_for, sha256_of
from orchestrator.postgres import copy_rows, pg_restore, queries
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import DumpOptions, choose_jobs, compression_for, run_dump
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


class DumpSink(Protocol):
    """Where a directory dump's files go while pg_dump still writes the others
    (operations/upload.Archiver)."""

    def start(self, planned: Manifest) -> Manifest:
        """Called once before pg_dump starts a directory dump; gives the manifest to go on
        with (another id when the planned one is taken)."""

    def closed(self, path: Path) -> None:
        """Called, from another thread, with each file pg_dump has finished writing."""


def dump_options(job: Job, pg_dump_major: int) -> DumpOptions:
    """The job's pg_dump options (PG_DUMP_*), for a pg_dump of `pg_dump_major`."""
    return DumpOptions(
        compress=compression_for(job.dump.compress, pg_dump_major),
        exclude_tables=job.dump.exclude_tables,
        exclude_table_data=job.dump.exclude_table_data,
        extra_args=job.dump.extra_args,
        timeout=job.dump.timeout,
    )


def take_dump(job: Job, folder: Path, sink: DumpSink | None = None) -> LocalDump:
    """Dump the source into `folder` and count its rows in the same snapshot; the backup is
    named after the time it started. With more than one job (DUMP_JOBS, or auto for a large
    database) the dump is a directory whose files are handed to `sink` as pg_dump closes
    them. Raises ConfigError (bad URL, credentials, no suitable pg_dump) or JobError.
    """
    source = job.require_source()
    started = time.monotonic()
    with queries.exported_snapshot(source, SOURCE) as snap:
        planned, client, options = _plan(job, snap, _snapshot_time(snap))
        out = folder / planned.dump_key.rstrip("/").rsplit("/", 1)[-1]
        activity = progress.now_running()
        activity.watched = out
        watching: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        counter = None
        if planned.directory:
            out.mkdir()
            if options.dumps_every_table:
                activity.tables_total = queries.tables_with_rows(snap.conn)
                counter = RowsOfFiles(out, options.jobs)
            planned = sink.start(planned) if sink is not None else planned
            watching = closed_files.reporting_closed(out, _each(sink, counter))
        log.info("backup.dump", backup_id=planned.id, format=planned.format, jobs=options.jobs)
        try:
            with watching, counter or contextlib.nullcontext():
                counts, sha256, facts = _dump_in_snapshot(
                    source, snap, client, out, options, counter
                )
        except CommandFailed as exc:
            refused = _compression_refused(exc, client, options.compress)
            if refused is None:
                raise
            raise refused from None
    size = progress.dump_size(out)
    manifest = planned.model_copy(
        update={
            "size_bytes": size,
            "sha256": sha256,
            "plain_size_bytes": size,
            "plain_sha256": sha256,
            "duration_seconds": round(time.monotonic() - started, 3),
            "row_counts": counts,
            "schema_facts": facts,
        }
    )
    return LocalDump(out, manifest)


def _snapshot_time(snap: queries.Snapshot) -> datetime:
    """The time the backup is named after: the source server's clock when the snapshot was
    taken (the data's own time), so a host clock that runs ahead or behind cannot date a
    backup out of order; a gap of more than a minute is logged as `backup.clock_skew`."""
    host, server = datetime.now(UTC), queries.transaction_time(snap.conn)
    skew = catalog.clock_skew(host, server)
    if skew is not None:
        log.warning(
            "backup.clock_skew",
            host_time=iso_z(host),
            server_time=iso_z(server),
            host_ahead_seconds=round(skew.total_seconds()),
            named_after="the source server's clock",
        )
    return server


def _plan(
    job: Job, snap: queries.Snapshot, started_at: datetime
) -> tuple[Manifest, ClientSet, DumpOptions]:
    """The dump about to start in `snap`: its manifest (sizes, hashes and counts to come),
    the pg_dump to run and its options, connections chosen by the database's size."""
    server = queries.server_info(snap.conn)
    client = client_for(job, "pg_dump", server.major, f"the source runs {server.version}")
    size = queries.database_size(snap.conn)
    jobs, why = choose_jobs(job.dump.jobs, job.dump.parallel_from, size)
    options = dataclasses.replace(dump_options(job, client.major), jobs=jobs)
    planned = _planned(job.require_source().database, started_at, server, client, options, why)
    log.info(
        "backup.plan",
        server=server.version,
        pg_dump=client.version,
        compression=options.compress or "pg_dump's default",
        database_bytes=size,
        jobs=jobs,
        why=why,
    )
    identity = queries.cluster_identity(snap.conn)
    return planned.model_copy(update={"source_identity": identity}), client, options


def _planned(
    database: str,
    started_at: datetime,
    server: queries.ServerInfo,
    client: ClientSet,
    options: DumpOptions,
    why: str,
) -> Manifest:
    """The manifest of a dump about to start (sizes, hashes and counts to come)."""
    backup_id = catalog.new_backup_id(database, started_at)
    directory = options.jobs > 1
    return Manifest(
        id=backup_id,
        created_at=started_at.replace(microsecond=0),
        database=database,
        dump_key=catalog.dir_key_for(backup_id) if directory else catalog.dump_key_for(backup_id),
        size_bytes=0,
        sha256="",
        server_version=server.version,
        server_version_num=server.version_num,
        pg_dump_version=client.version,
        duration_seconds=0.0,
        compression=options.compress,
        tool_version=__version__,
        format="directory" if directory else "custom",
        jobs=options.jobs,
        jobs_reason=why,
    )


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
    source: ConnInfo,
    snap: queries.Snapshot,
    client: ClientSet,
    out: Path,
    options: DumpOptions,
    counter: RowsOfFiles | None,
) -> tuple[dict[str, int], str, SchemaFacts | None]:
    """Run pg_dump of `source` in `snap`; give (row counts of the tables whose data the
    archive holds, the archive's sha256, the schema facts). Raises what run_dump raises.

    A dump of every table has its rows counted while pg_dump runs: by the server, in the
    same snapshot, for a single-file dump (the server has time to spare then); from the
    files as pg_dump closes them, on this host, for a directory dump (`counter`: no second
    read of a large database on the source). The schema facts are read beside pg_dump too.
    What that could not count, or any dump narrowed by exclusions, is counted after, from
    the archive's TOC.
    """
    known = queries.user_tables(snap.conn)
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        early = None
        if options.dumps_every_table:
            early_tables = (
                [] if counter else queries.user_tables(snap.conn, outside_extensions=True)
            )
            early = pool.submit(with_context(_count_then_read_facts), snap.conn, early_tables, done)
        try:
            run_dump(client, source, out, snap.snapshot_id, options)
            # a directory dump's files are hashed on their way to the stores
            digest = pool.submit(sha256_of, out) if out.is_file() else _no_digest()
            toc = pg_restore.list_toc(client, out)
            counted, facts = early.result() if early is not None else ({}, None)
            facts = facts or queries.schema_facts(snap.conn)
            by_oid = catalog.tables_by_oid(facts)  # ties the TOC's lines to tables exactly
            tables = pg_restore.table_data_tables(toc, known, by_oid)
            if counter is not None:
                counted = _counts_by_entry(toc, known, counter.rows(out), by_oid)
            counts = _counts_of(snap.conn, tables, counted)
            return counts, digest.result(), facts
        finally:
            if early is not None and not early.done():  # pg_dump or the TOC read failed
                done.set()
                with contextlib.suppress(psycopg.Error):
                    snap.conn.cancel_safe(timeout=3.0)


def _count_then_read_facts(
    conn: queries.Conn, tables: list[queries.TableName], done: threading.Event
) -> tuple[dict[str, int], SchemaFacts | None]:
    """Beside pg_dump, in its snapshot: the tables' row counts, then the schema facts (not
    after the dump, where a remote server's round trips would add to the backup's time);
    stops early once `done` is set."""
    counts = queries.count_rows_while(conn, tables, lambda: not done.is_set())
    return counts, None if done.is_set() else queries.schema_facts(conn)


class RowsOfFiles:
    """Rows of a directory dump's data files, counted on this host while pg_dump writes
    them (postgres/copy_rows): each data file is read as it grows, by one of a few
    threads, and finished as soon as pg_dump closes it, so no large table is left to
    count after the dump. Use it as a context manager around the dump."""

    def __init__(self, folder: Path, jobs: int) -> None:
        self._folder = folder
        self._closed: dict[int, threading.Event] = {}
        self._counting: dict[int, Future[int | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(jobs + 1, thread_name_prefix="count")  # a file each
        self._done = threading.Event()  # pg_dump has exited: look for no more files
        self._abandon = threading.Event()
        self._finder = threading.Thread(
            target=with_context(self._find), name="count-find", daemon=True
        )

    def __enter__(self) -> RowsOfFiles:
        self._finder.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._abandon.set()
        self._finder.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def closed(self, path: Path) -> None:
        """pg_dump has closed `path`: its count ends once what was written is read."""
        self._follow(path).set()

    def rows(self, folder: Path) -> dict[int, int]:
        """Rows by TOC entry of every data file in `folder`, once pg_dump has exited;
        a file not counted is left out."""
        self._done.set()
        for path in folder.iterdir():
            self.closed(path)
        with self._lock:
            counting = dict(self._counting)
        counted = {entry: future.result() for entry, future in counting.items()}
        return {entry: rows for entry, rows in counted.items() if rows is not None}

    def _follow(self, path: Path) -> threading.Event:
        """Start counting `path` unless it is counted already; give its closed event."""
        entry = copy_rows.dump_id(path.name)
        with self._lock:
            if entry is None:
                return threading.Event()
            if entry not in self._closed:
                closed = self._closed[entry] = threading.Event()
                count = with_context(_count)
                self._counting[entry] = self._pool.submit(count, path, closed, self._abandon)
            return self._closed[entry]

    def _find(self) -> None:
        """Until pg_dump has exited: start counting each data file as it appears."""
        while not self._done.wait(FIND_EVERY):
            with contextlib.suppress(OSError):
                for path in self._folder.iterdir():
                    self._follow(path)


FIND_EVERY = 0.1  # seconds between looks for new files in the dump's folder


def _count(path: Path, closed: threading.Event, abandon: threading.Event) -> int | None:
    try:
        return copy_rows.count_rows(path, closed, abandon)
    except copy_rows.Abandoned:
        return None
    except Exception as exc:  # a file this host cannot read: the server counts that table
        log.warning("backup.count_failed", file=path.name, error=str(exc))
        return None


def _each(sink: DumpSink | None, counter: RowsOfFiles | None) -> Callable[[Path], None]:
    """Hand each closed file to the sink and the counter (those given)."""

    def closed(path: Path) -> None:
        if counter is not None:
            counter.closed(path)
        if sink is not None:
            sink.closed(path)

    return closed


def _counts_by_entry(
    toc: str,
    known: list[queries.TableName],
    rows: dict[int, int],
    by_oid: dict[int, queries.TableName],
) -> dict[str, int]:
    """Row counts by table from counts by TOC entry (`<id>;` in `pg_restore --list`),
    each entry's table found by its oid (`by_oid`)."""
    counts = {}
    for entry in pg_restore.toc_list(toc):
        table = pg_restore.entry_table(entry, known, by_oid) if entry.kind == "TABLE DATA" else None
        found = rows.get(int(entry.line.split(";", 1)[0]))
        if table is not None and found is not None:
            counts[table_key(*table)] = found
    return counts


def _no_digest() -> Future[str]:
    done: Future[str] = Future()
    done.set_result("")
    return done


def _counts_of(
    conn: queries.Conn, tables: list[queries.TableName], counted: dict[str, int]
) -> dict[str, int]:
    """Row counts of `tables`: those counted during the dump (`counted`), the rest now."""
    missing = [t for t in tables if table_key(*t) not in counted]
    counted = {**counted, **queries.count_rows(conn, missing)}
    return {table_key(*t): counted[table_key(*t)] for t in tables}
