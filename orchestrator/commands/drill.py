"""`orchestrator drill`: prove a backup restores, and how long it takes (the RTO).

Restores into a scratch database (on the backup server unless told otherwise), checks
row counts against the manifest and that every table in the archive exists, then drops
the scratch database whatever happened.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from orchestrator import conninfo, history, restore_plan
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import AlreadyRunning, ConfigError, Interrupted, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.job import Job
from orchestrator.logs import get_logger, mask
from orchestrator.notify import Notifier, drill_summary, drill_text
from orchestrator.operations.common import client_for, notifier_for, stores_or_none
from orchestrator.operations.fetch import find_backup, local_archive
from orchestrator.operations.restore import target_identity
from orchestrator.operations.restored import verify_restored
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres import queries
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.lock import claim_staging, cycle_lock, sweep_staging
from orchestrator.postgres.pg_restore import RestoreOptions
from orchestrator.records import DrillDoc
from orchestrator.restore_plan import Endpoint

log = get_logger(__name__)


@dataclass
class DrillReport:
    """The drill's findings; `ok` only when nothing is wrong."""

    backup_id: str
    server: str
    scratch_database: str
    pg_restore_version: str
    database: str = ""  # the source database the backup is of
    fetch_seconds: float = 0.0
    restore_seconds: float = 0.0
    verify_seconds: float = 0.0
    tables: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    ignored_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the restore worked and every check passed."""
        return not self.problems

    @property
    def rto_seconds(self) -> float:
        """Time to get the archive and restore it: what an incident would wait for."""
        return round(self.fetch_seconds + self.restore_seconds, 3)


def document(
    report: DrillReport | None, run_id: str, started: datetime, error: str | None
) -> DrillDoc:
    """The drill as kept in the history and sent to the webhook (no password in it)."""
    ok = report is not None and report.ok and error is None
    found: DrillDoc = {
        "kind": "drill",
        "status": "success" if ok else "failure",
        "run_id": run_id,
        "started_at": iso_z(started),
        "finished_at": iso_z(datetime.now(UTC)),
        "error": mask(error) if error else None,
    }
    if report is not None:
        found.update(
            {
                "backup_id": report.backup_id,
                "server": mask(report.server),
                "scratch_database": report.scratch_database,
                "pg_restore_version": report.pg_restore_version,
                "fetch_seconds": report.fetch_seconds,
                "restore_seconds": report.restore_seconds,
                "verify_seconds": report.verify_seconds,
                "rto_seconds": report.rto_seconds,
                "tables": report.tables,
                "rows": report.rows,
                "problems": [mask(p) for p in report.problems],
                "ignored_errors": report.ignored_errors,
            }
        )
    return found


@contextlib.contextmanager
def _drill_lock(job: Job) -> Iterator[None]:
    """The cycle lock, so a drill never runs beside a cycle (raises AlreadyRunning). When
    the source is unset or cannot be asked, the drill runs without it (logged): it needs
    only the stores and the drill server, and no cycle can run without the source either."""
    source = job.source
    with contextlib.ExitStack() as stack:
        if source is not None:
            try:
                stack.enter_context(cycle_lock(source, "SOURCE_DATABASE_URL"))
            except (AlreadyRunning, Interrupted):
                raise
            except OrchestratorError as exc:
                log.warning("drill.unlocked", reason=str(exc))
        yield


def drill_notifier(job: Job) -> Notifier:
    """Alerts for drills: the webhook (as for cycles) and DRILL_HEALTHCHECK_URL's pings."""
    return notifier_for(job, job.alerts.drill_healthcheck_url)


def recorded_drill(
    job: Job,
    notifier: Notifier,
    ref: str = "latest",
    target_url: str | None = None,
    lock: bool = False,
) -> tuple[DrillReport | None, DrillDoc]:
    """Run a drill (under the cycle lock when `lock`), keep it in the history, alert through
    `notifier` (DRILL_HEALTHCHECK_URL pings, the webhook on failure); give the report and
    the document kept.

    Raises AlreadyRunning (nothing done, nothing kept) when a cycle holds the lock, and
    after recording, what the drill raised when it could not even start.
    """
    run_id, started = secrets.token_hex(6), datetime.now(UTC)
    report, failure = None, None
    with _drill_lock(job) if lock else contextlib.nullcontext():
        notifier.start()
        try:
            report = drill(job, ref, target_url)
        except Interrupted:
            raise
        except OrchestratorError as exc:
            failure = exc
    kept = document(report, run_id, started, str(failure) if failure else None)
    source = job.source
    database = report.database if report else (source.database if source else None)
    history.record(stores_or_none(job), "drill", kept, database)
    notifier.finish(kept["status"] == "success", kept, drill_summary(kept), drill_text(kept))
    if failure is not None:
        raise failure
    return report, kept


def drill_server(job: Job, target_url: str | None) -> ConnInfo:
    """The server to drill on: --target-url, else BACKUP_DATABASE_URL's server. With
    DEV_MASK_RULES set, the dev server is refused (a drill restores raw data)."""
    if target_url is None:
        return job.target("backup").url
    try:
        server = job.connection(conninfo.parse(target_url))
    except ValueError as exc:
        raise ConfigError(f"--target-url: {exc}") from None
    dev = job.url_of("dev")
    if dev is not None and job.dev_mask_rules is not None:
        identities = [
            target_identity(url, job.restore.maintenance_database) for url in (server, dev)
        ]
        here, there = (
            Endpoint(u.host, u.port, "", i) for u, i in zip((server, dev), identities, strict=True)
        )
        if restore_plan.same_server(here, there):
            raise ConfigError(
                "--target-url: that is the dev server, which holds masked copies only "
                "(DEV_MASK_RULES); a drill restores the raw backup: drill elsewhere"
            )
    return server


def drill(job: Job, ref: str = "latest", target_url: str | None = None) -> DrillReport:
    """Run a restore drill of backup `ref`; give the report (problems inside, not raised).

    Raises ConfigError for bad input and JobError when the drill cannot even start.
    """
    server = drill_server(job, target_url)
    located = find_backup(job, ref)
    manifest = located.manifest
    client = client_for(
        job,
        "pg_restore",
        manifest.dump_major,
        f"written by pg_dump {manifest.pg_dump_version}",
    )
    scratch = restore_plan.staging_name(f"drill_{manifest.database}", secrets.token_hex(4))
    report = DrillReport(manifest.id, server.url, scratch, client.version, manifest.database)
    started = time.monotonic()
    with local_archive(job, located, None, "drill") as (archive, used):
        report.fetch_seconds = round(time.monotonic() - started, 3)
        _drill_in_scratch(job, server, scratch, client, archive, used, report)
    log.info("drill.done", backup_id=manifest.id, ok=report.ok, rto_seconds=report.rto_seconds)
    return report


def _drill_in_scratch(
    job: Job,
    server: ConnInfo,
    scratch: str,
    client: ClientSet,
    archive: Path,
    manifest: Manifest,
    report: DrillReport,
) -> None:
    maint = queries.connect_maintenance(server, job.restore.maintenance_database, "drill server")
    with contextlib.closing(maint):
        major = queries.server_info(maint).major
        left_by = partial(restore_plan.is_staging_of, f"drill_{manifest.database}")
        sweep_staging(maint, left_by, major)
        claim_staging(maint, scratch)
        queries.create_database(maint, scratch)
        try:
            _restore_and_check(
                job, server.with_database(scratch), client, archive, manifest, report
            )
        finally:
            queries.drop_database(maint, scratch, major)


def _restore_and_check(
    job: Job,
    scratch: ConnInfo,
    client: ClientSet,
    archive: Path,
    manifest: Manifest,
    report: DrillReport,
) -> None:
    options = RestoreOptions(
        jobs=job.restore.jobs, timeout=job.restore.timeout, work_dir=job.work_dir
    )
    started = time.monotonic()
    try:
        report.ignored_errors = pgrestore.run_restore(client, scratch, archive, options)
    except Interrupted:
        raise
    except OrchestratorError as exc:
        report.problems.append(f"restore failed: {exc}")
        return
    finally:
        report.restore_seconds = round(time.monotonic() - started, 3)
    started = time.monotonic()
    toc = pgrestore.list_toc(client, archive)
    with contextlib.closing(queries.connect(scratch, "drill scratch database")) as conn:
        present = queries.user_tables(conn)
    _found, missing = pgrestore.toc_tables(toc, present, kind="TABLE")
    report.problems += [f"table in the archive but not restored: {name}" for name in missing]
    checked = verify_restored(scratch, manifest, "drill scratch database", jobs=job.restore.jobs)
    report.problems += checked.problems
    report.tables, report.rows = checked.tables, checked.rows
    report.verify_seconds = round(time.monotonic() - started, 3)
