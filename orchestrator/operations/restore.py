"""Restore and verify: put a local archive into a target without ever losing the target.

swap: restore into a new database beside the target, verify it, run the target's
post-restore SQL, then rename (target -> <name>_previous, new -> <name>) in one
transaction. Anything failing before the rename drops the new database; the target is
untouched. transaction: one pg_restore --single-transaction, which rolls back on error.
A target that is the source is refused before anything is touched.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from orchestrator import cancel, restore_plan
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, JobError, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.job import Job, TargetSettings
from orchestrator.logs import get_logger, mask
from orchestrator.operations import masked_load
from orchestrator.operations import subset as subset_operation
from orchestrator.operations.common import source_identity, work_dir
from orchestrator.operations.restored import verify_restored
from orchestrator.postgres import lock, queries
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.pg_restore import RestoreOptions
from orchestrator.postgres.queries import Conn
from orchestrator.restore_plan import Capabilities, Endpoint, Strategy
from orchestrator.table_names import table_key

if TYPE_CHECKING:
    from orchestrator.masking.plan import TablePlan
    from orchestrator.masking.subset_flags import RowFlags

log = get_logger(__name__)
RETRY_SECONDS = 0.5


@dataclass
class RestoreResult:
    """What a finished restore did."""

    target: str
    database: str
    backup_id: str
    strategy: Strategy
    seconds: float
    tables: int
    rows: int
    previous: str | None = None
    ignored_errors: list[str] = field(default_factory=list)
    masking: dict[str, Any] | None = None


def endpoint(info: ConnInfo, identity: str | None) -> Endpoint:
    return Endpoint(info.host, info.port, info.database, identity)


def recorded_source(manifest: Manifest) -> Endpoint:
    """The source a backup was taken from, as its manifest recorded it."""
    return Endpoint("", 0, manifest.database, manifest.source_identity)


def guard(
    job: Job,
    target: ConnInfo,
    target_identity: str | None,
    recorded: Endpoint | None = None,
) -> None:
    """Raise ConfigError when `target` is the source database: by URL, or by cluster
    identity and database name, against the live source and the `recorded` one."""
    target_ep = endpoint(target, target_identity)
    sources = [recorded] if recorded else []
    if job.source is not None:
        source = job.source
        sources.append(endpoint(source, None))
        if target_identity is not None:
            sources.append(endpoint(source, source_identity(job)))
    for source_ep in sources:
        why = restore_plan.same_database(target_ep, source_ep)
        if why:
            raise ConfigError(f"refusing to restore into the source database: {why}")


def target_identity(target: ConnInfo, maintenance: str) -> str | None:
    """The target server's cluster identity (None when unreachable: the restore fails later)."""
    try:
        with contextlib.closing(_maintenance(target, maintenance)) as conn:
            return queries.cluster_identity(conn)
    except OrchestratorError:
        return None


STAGING_DROP_ATTEMPTS = 3
STAGING_DROP_PAUSE = 0.5  # seconds before another attempt: a late cancel has landed by then


def _maintenance(target: ConnInfo, maintenance: str) -> Conn:
    return queries.connect_maintenance(target, maintenance, "target (maintenance database)")


def target_server(url: ConnInfo) -> str:
    """Where a target is, for people: `host:port` (never credentials)."""
    return f"{url.host}:{url.port}"


@dataclass
class Restorer:
    """One restore of one archive into one target."""

    job: Job
    target: TargetSettings
    manifest: Manifest
    client: ClientSet
    archive: Path
    unlisted: list[str] = field(default_factory=list)  # the columns kept unlisted (masked)
    expected: dict[str, int] | None = None  # rows per table a subset keeps (None: all)

    def run(self) -> RestoreResult:
        """Check the target again on the connection used, choose the strategy, restore.

        Raises ConfigError when the target is the source or a subset's condition does not
        parse or fit the backup's schema, AlreadyRunning (nothing touched) when another
        restore into the target's database runs, JobError when the restore fails
        (database errors included); the target is then as it was.
        """
        if self.target.url.database == self.job.restore.maintenance_database:
            raise ConfigError(
                f"MAINTENANCE_DATABASE: the target database {self.target.url.database!r} cannot "
                "also be the database used to create and rename databases"
            )
        masking = masked_load.load_masking(self.job, self.target)
        # the gate: rules that do not fit this backup stop the restore before anything loads
        plans = masked_load.plans_for(masking, self.manifest) if masking is not None else {}
        if masking is not None and masking.rules.subset is not None:
            with work_dir(self.job) as folder:
                subset_operation.check_conditions(
                    self.manifest, masking.rules.subset, masking.setting, folder
                )
        if masking is not None:
            self.unlisted = masked_load.unlisted_kept(
                masking.rules, self.manifest.schema_facts, plans
            )
        if self.unlisted:
            log.warning("restore.unlisted_kept", target=self.target.name, columns=self.unlisted)
        try:
            return self._run(masking, plans)
        except psycopg.Error as exc:
            first = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
            raise JobError(f"restore into {self.target.name} failed: {first}") from None

    def _run(
        self, masking: masked_load.Masking | None, plans: dict[str, TablePlan]
    ) -> RestoreResult:
        started = time.monotonic()
        with contextlib.closing(
            _maintenance(self.target.url, self.job.restore.maintenance_database)
        ) as maint:
            # the pre-check may not have reached the target; this connection is the one used
            identity = queries.cluster_identity(maint)
            guard(self.job, self.target.url, identity, recorded_source(self.manifest))
            lock.claim_target(maint, self.target.url.database, self.target.name)
            caps = self._capabilities(maint)
            strategy, why = restore_plan.choose_strategy(self.target.strategy, caps)
            log.info(
                "restore.start",
                target=self.target.name,
                backup_id=self.manifest.id,
                strategy=strategy,
                why=why,
                pg_restore=self.client.version,
            )
            stats: dict[str, dict[str, Any]] = {}
            try:
                ignored, previous = self._restore(maint, strategy, caps, masking, plans, stats)
            except JobError as exc:
                version = self.manifest.server_version
                note = restore_plan.older_server_note(str(exc), version, caps.server_major)
                if type(exc) is not JobError or note is None:
                    raise
                raise JobError(f"{exc} ({note})") from None
        result = RestoreResult(
            target=self.target.name,
            database=self.target.url.database,
            backup_id=self.manifest.id,
            strategy=strategy,
            seconds=round(time.monotonic() - started, 3),
            tables=len(self.manifest.row_counts),
            rows=sum((self.expected or self.manifest.row_counts).values()),
            previous=previous,
            ignored_errors=ignored,
            masking=masked_load.masking_report(masking, stats, self.unlisted) if masking else None,
        )
        log.info("restore.done", target=self.target.name, seconds=result.seconds, strategy=strategy)
        return result

    def _capabilities(self, maint: Conn) -> Capabilities:
        superuser, create_db, owns = queries.role_capabilities(maint, self.target.url.database)
        return Capabilities(superuser, create_db, owns, queries.server_info(maint).major)

    def _options(self, single_transaction: bool) -> RestoreOptions:
        return RestoreOptions(
            jobs=self.job.restore.jobs,
            no_owner=self.target.no_owner,
            no_acl=self.target.no_acl,
            single_transaction=single_transaction,
            timeout=self.job.restore.timeout,
            work_dir=self.job.work_dir,
        )

    def _swap(
        self,
        maint: Conn,
        server_major: int,
        masking: masked_load.Masking | None,
        plans: dict[str, TablePlan],
        stats: dict[str, dict[str, Any]],
    ) -> tuple[list[str], str | None]:
        name = self.target.url.database
        lock.sweep_staging(maint, partial(restore_plan.is_staging_of, name), server_major)
        staging = restore_plan.staging_name(name, secrets.token_hex(4))
        lock.claim_staging(maint, staging)
        # the copy takes the place of the target's database: it keeps its encoding and locale
        locale = queries.database_locale(maint, name)
        try:  # a stop that lands as the server has just created it still drops it
            queries.create_database(maint, staging, locale)
            staged = self.target.url.with_database(staging)
            self._make_room(maint, server_major)
            ignored = self._load(staged, masking, plans, stats)
            self._verify(staged)
            self._post_restore_sql(staged)
            when = iso_z(datetime.now(UTC))
            comment = masked_load.database_comment(
                self.manifest.id, when, masking, stats, self.unlisted
            )
            queries.comment_on_database(maint, staging, comment)
            # given last: a default_transaction_read_only = on would have stopped the load
            queries.give_settings(maint, staging, queries.database_settings(maint, name))
            previous = self._swap_in(maint, staging, server_major)
        except BaseException:
            self._drop_staging(maint, staging, server_major)
            raise
        return ignored, previous

    def _drop_staging(self, maint: Conn, staging: str, server_major: int) -> None:
        """Drop the half-restored `staging` after a failure or a stop. A stop request
        cancels the query of every open connection, and under load that cancel can land
        on this very DROP: it is tried again, on a new connection. A copy that stays is
        logged with its name, never raised (the failure that led here is the one to tell)."""
        problem = ""
        for attempt in range(STAGING_DROP_ATTEMPTS):
            try:
                if attempt == 0:
                    queries.drop_database(maint, staging, server_major)
                else:
                    time.sleep(STAGING_DROP_PAUSE)
                    maintenance = self.job.restore.maintenance_database
                    with contextlib.closing(_maintenance(self.target.url, maintenance)) as fresh:
                        queries.drop_database(fresh, staging, server_major)
                return
            except Exception as exc:  # whatever it was, the copy left is reported
                problem = str(exc)
        log.warning(
            "restore.staging_left", target=self.target.name, database=staging, error=mask(problem)
        )

    def _load(
        self,
        staged: ConnInfo,
        masking: masked_load.Masking | None,
        plans: dict[str, TablePlan],
        stats: dict[str, dict[str, Any]],
    ) -> list[str]:
        """Restore the archive into the empty `staged` database: in one pg_restore, or
        masked (section by section, masked tables through the filter)."""
        if masking is None:
            return pgrestore.run_restore(self.client, staged, self.archive, self._options(False))
        known, by_oid = self.manifest.tables, self.manifest.tables_by_oid

        def tables_of(entry: pgrestore.TocEntry) -> list[str]:
            return [table_key(*found) for found in pgrestore.entry_tables(entry, known, by_oid)]

        with work_dir(self.job) as folder:
            decide = self._one_pass(masking, folder)
            load = masked_load.MaskedLoad(
                self.client,
                staged,
                self.archive,
                self._options(False),
                masking,
                plans,
                folder,
                tables_of,
                subset=self._subset(masking, folder) if decide is None else {},
                decide=decide,
            )
            ignored = load.run()
            stats.update(load.stats)
        if decide is not None:
            self._decided(decide, load.stats)
        return ignored

    def _one_pass(
        self, masking: masked_load.Masking, folder: Path
    ) -> subset_operation.OnePass | None:
        """The rules' subset when the filter can decide it as the rows stream (None without
        a subset, or when it needs two passes)."""
        if masking.rules.subset is None:
            return None
        return subset_operation.one_pass(self.manifest, masking.rules.subset, folder)

    def _decided(self, decide: subset_operation.OnePass, stats: dict[str, dict[str, Any]]) -> None:
        """What the one-pass filter kept becomes the rows expected in the copy."""
        kept = {table: int(stats[table]["rows"]) for table in decide.ranks if table in stats}
        for name, rows in sorted(kept.items()):
            dropped = int(stats[name].get("dropped", 0))
            log.info("subset.decided", table=name, kept=rows, rows=rows + dropped)
        self.expected = {**self.manifest.row_counts, **kept}

    def _subset(self, masking: masked_load.Masking, folder: Path) -> dict[str, RowFlags]:
        """The first pass of the rules' subset over the local archive (none without one):
        which rows each filtered table keeps. The rows expected in the copy become those."""
        if masking.rules.subset is None:
            return {}
        scanned = subset_operation.scan(
            self.client,
            self.archive,
            self.manifest,
            masking.rules.subset,
            masking.key,
            folder,
            self.job.restore.timeout,
        )
        self.expected = {**self.manifest.row_counts, **scanned.kept}
        return scanned.flags

    def _make_room(self, maint: Conn, server_major: int) -> None:
        """Drop the previous copy this swap would drop anyway (ages_out), before pg_restore
        starts: the server then needs room for one copy less, and the immediate checkpoint
        that DROP DATABASE forces finds little to write. Run beside pg_restore, as it was,
        that checkpoint flushed gigabytes of freshly loaded pages at once (a DROP of a
        4.5 GB copy took 4 to 18 s beside two loads, and slowed them). A failure only
        warns: the swap then renames the copy aside and drops it afterwards, as before."""
        name = self.target.url.database
        try:
            oldest = restore_plan.ages_out(name, self.target.keep_previous, *self._existing(maint))
            if oldest is not None:
                queries.drop_database(maint, oldest, server_major)
                log.info("restore.made_room", target=self.target.name, dropped=oldest)
        except psycopg.Error as exc:
            log.warning("restore.make_room_failed", target=self.target.name, error=str(exc))

    def _existing(self, maint: Conn) -> tuple[bool, list[str]]:
        """Give (the target exists, the names of its previous copies that exist)."""
        name = self.target.url.database
        previous = restore_plan.previous_names(name, self.target.keep_previous)
        return queries.database_exists(maint, name), [
            n for n in previous if queries.database_exists(maint, n)
        ]

    def _restore(
        self,
        maint: Conn,
        strategy: Strategy,
        caps: Capabilities,
        masking: masked_load.Masking | None,
        plans: dict[str, TablePlan],
        stats: dict[str, dict[str, Any]],
    ) -> tuple[list[str], str | None]:
        """Restore by `strategy`; give the harmless errors ignored and the previous copy's
        name (swap only)."""
        if strategy == "swap":
            return self._swap(maint, caps.server_major, masking, plans, stats)
        if masking is not None:
            raise ConfigError(
                f"{masking.setting} needs the swap strategy (a role that may create "
                "databases): masked rows must be loaded into a new database, never over the "
                "target"
            )
        return self._transaction(caps.server_major), None

    def _transaction(self, server_major: int) -> list[str]:
        if self.target.post_restore_sql:
            raise ConfigError(
                "DEV_POST_RESTORE_SQL needs the swap strategy (a role that may create databases): "
                "with the transaction strategy dev users would see the unscrubbed data"
            )
        options = self._options(True)
        if self.client.major >= 17 > server_major:
            # pg_restore would send SET transaction_timeout, which aborts the transaction
            with work_dir(self.job) as folder:
                pgrestore.restore_via_script(
                    self.client, self.target.url, self.archive, options, folder
                )
            ignored: list[str] = []
        else:
            ignored = pgrestore.run_restore(self.client, self.target.url, self.archive, options)
        self._verify(self.target.url)
        return ignored

    def _verify(self, database: ConnInfo) -> None:
        """ANALYZE, then compare row counts with the manifest's (a subset's: the rows its
        first pass kept); JobError on any difference."""
        checked = verify_restored(
            database,
            self.manifest,
            "target",
            analyze=True,
            expected=self.expected,
            jobs=self.job.restore.jobs,
        )
        if checked.problems:
            shown = "; ".join(checked.problems[:5])
            raise JobError(f"restored data does not match backup {self.manifest.id}: {shown}")

    def _post_restore_sql(self, database: ConnInfo) -> None:
        for path in self.target.post_restore_sql:
            if not path.is_file():
                raise ConfigError(f"DEV_POST_RESTORE_SQL: {path} is not a readable file")
            log.info("restore.post_sql", target=self.target.name, file=str(path))
            pgrestore.run_sql_file(self.client, database, path, self.job.restore.timeout)

    def _swap_in(self, maint: Conn, staging: str, server_major: int) -> str | None:
        """Rename the target aside and the staging database into its place, ending sessions
        on the target with a bounded wait. Gives the previous copy's name (None if none)."""
        name = self.target.url.database
        target_exists, existing = self._existing(maint)
        plan = restore_plan.swap_renames(
            name, staging, target_exists, existing, self.target.keep_previous, secrets.token_hex(4)
        )
        busy = [old for old, _new in plan.renames if old != staging]
        deadline = time.monotonic() + self.job.restore.session_wait
        while True:
            if cancel.stop_requested():
                raise JobError("stopped before the swap; the target was left as it was")
            for database in busy:
                queries.terminate_sessions(maint, database)
            try:
                queries.rename_databases(maint, plan.renames)
                break
            except psycopg.errors.ObjectInUse:
                if time.monotonic() >= deadline:
                    raise JobError(
                        f"{name} still has sessions after {self.job.restore.session_wait}s "
                        "(RESTORE_SESSION_WAIT); the target was left as it was"
                    ) from None
                time.sleep(RETRY_SECONDS)
        for database in plan.drop_after:
            try:
                queries.drop_database(maint, database, server_major)
            except psycopg.Error as exc:  # the swap itself has committed: warn, do not fail
                log.warning("restore.drop_old_failed", database=database, error=str(exc))
        log.info("restore.swapped", target=self.target.name, previous=plan.previous)
        return plan.previous
