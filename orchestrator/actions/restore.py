"""`orchestrator restore`: put an archived backup into a target without ever losing the target.

swap: restore into a new database beside the target, verify it, run the target's
post-restore SQL, then rename (target -> <name>_previous, new -> <name>) in one
transaction. Anything failing before the rename drops the new database; the target is
untouched. transaction: one pg_restore --single-transaction, which rolls back on error.
A target that is the source is refused before anything is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from orchestrator import cancel, catalog, conninfo, history, restore_plan
from orchestrator.actions import masked_load
from orchestrator.actions.backup import work_dir
from orchestrator.actions.common import client_for, sha256_of, stores_or_none
from orchestrator.actions.fetch import needed_identities, open_sealed, plain_copy
from orchestrator.catalog import Located, Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, IntegrityError, JobError, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.job import TARGET_NAMES, Job, TargetSettings
from orchestrator.logs import get_logger, mask, with_context
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres import queries
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.pg_restore import RestoreOptions
from orchestrator.postgres.queries import Conn
from orchestrator.restore_plan import Capabilities, Endpoint, Strategy
from orchestrator.table_names import table_key

if TYPE_CHECKING:
    from orchestrator.masking.plan import TablePlan

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


def resolve_target(job: Job, name_or_url: str, mask_rules: Path | None = None) -> TargetSettings:
    """`backup`, `dev`, or a postgresql:// URL (ConfigError naming --target otherwise), with
    `mask_rules` (--mask-rules) replacing the target's own rules; the backup target is the
    disaster-recovery copy and is never masked."""
    if name_or_url in TARGET_NAMES:
        target = job.target(name_or_url)
        if mask_rules is None:
            return target
        if name_or_url == "backup":
            raise ConfigError(
                "--mask-rules: the backup target is the disaster-recovery copy and is never "
                "masked; restore masked copies into dev or a URL"
            )
        return dataclasses.replace(target, mask_rules=mask_rules, mask_setting="--mask-rules")
    try:
        return job.adhoc_target(conninfo.parse(name_or_url), mask_rules)
    except ValueError as exc:
        raise ConfigError(f"--target: must be backup, dev or a postgresql:// URL ({exc})") from None


def _endpoint(info: ConnInfo, identity: str | None) -> Endpoint:
    return Endpoint(info.host, info.port, info.database, identity)


def _live_source_identity(job: Job) -> str | None:
    """The source's cluster identity, asked once per job (the guard of each target and the
    choice of the latest backup use it); None when the source is unset or unreachable."""
    return job.remember("source_identity", lambda: _ask_source_identity(job.source))


def _ask_source_identity(source: ConnInfo | None) -> str | None:
    if source is None:
        return None
    try:
        with contextlib.closing(queries.connect(source, "SOURCE_DATABASE_URL")) as conn:
            return queries.cluster_identity(conn)
    except OrchestratorError as exc:
        log.warning("restore.source_unreachable", error=str(exc), note="guard uses URL + manifest")
        return None


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
    target_ep = _endpoint(target, target_identity)
    sources = [recorded] if recorded else []
    if job.source is not None:
        source = job.source
        sources.append(_endpoint(source, None))
        if target_identity is not None:
            sources.append(_endpoint(source, _live_source_identity(job)))
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


def _maintenance(target: ConnInfo, maintenance: str) -> Conn:
    return queries.connect_maintenance(target, maintenance, "target (maintenance database)")


@contextlib.contextmanager
def local_archive(
    job: Job, located: Located, dump: Path | None, doing: str
) -> Iterator[tuple[Path, Manifest]]:
    """The plain pg_dump archive on local disk, checked against the manifest, and the
    manifest of the copy it came from: `dump` itself (the plain archive, or the encrypted
    object, which is then decrypted) or a download from the first store with a good copy.

    Raises ConfigError naming ARCHIVE_IDENTITY_FILE before downloading when the backup is
    encrypted and no identity is set, IntegrityError when `dump` is not this backup.
    """
    with work_dir(job) as folder:
        manifest = located.manifest
        if dump is None:
            yield plain_copy(located, folder, needed_identities(job, located, doing))
            return
        given = (dump.stat().st_size, sha256_of(dump))
        if given == (manifest.plain_size, manifest.plain_digest):
            yield dump, manifest
        elif manifest.encrypted and given == (manifest.size_bytes, manifest.sha256):
            keys = job.identities(f"{dump} is encrypted and {doing} needs it")
            yield open_sealed(dump, manifest, folder / "archive.dump", keys), manifest
        else:
            raise IntegrityError(
                f"--dump: {dump} is not the archive of backup {manifest.id} (its size or sha256 "
                "differs from the manifest's)"
            )


def find_backup(job: Job, ref: str) -> Located:
    """Resolve `ref` (id or latest, latest of the source's database when it is set) in the
    stores, with every store that holds it."""
    database = job.source.database if job.source else None
    identity = _live_source_identity(job) if ref == "latest" else None
    return catalog.find_located(job.stores(), ref, database, identity)


def restore(
    job: Job,
    target_ref: str,
    ref: str = "latest",
    dump: Path | None = None,
    mask_rules: Path | None = None,
) -> RestoreResult:
    """Restore backup `ref` (from the local `dump` when given) into a target, masked by the
    target's rules (DEV_MASK_RULES for dev) or `mask_rules`.

    Raises ConfigError (bad target, target is the source, no suitable pg_restore, bad
    rules) before touching anything, MaskingRefused when the rules do not fit the backup,
    and JobError when the restore fails; the target is then unchanged.
    """
    target = resolve_target(job, target_ref, mask_rules)
    identity = target_identity(target.url, job.restore.maintenance_database)
    target = _dev_if_named(job, target, identity)
    masked_load.load_masking(job, target)  # a bad rules file or key: exit 2 before any work
    located = find_backup(job, ref)
    manifest = located.manifest
    guard(job, target.url, identity, recorded_source(manifest))
    client = client_for(
        job,
        "pg_restore",
        manifest.dump_major,
        f"the archive was written by pg_dump {manifest.pg_dump_version}",
    )
    started = datetime.now(UTC)
    with local_archive(job, located, dump, "restore") as (archive, used):
        try:
            result = Restorer(job, target, used, client, archive).run()
        except OrchestratorError as exc:
            _remember(job, target, manifest, started, None, str(exc))
            raise
    _remember(job, target, manifest, started, result, None)
    return result


def _dev_if_named(job: Job, target: TargetSettings, identity: str | None) -> TargetSettings:
    """A target given by URL that is the dev database (by URL, or by cluster and name) is
    restored exactly as `--target dev` would be: DEV_MASK_RULES (or --mask-rules),
    DEV_POST_RESTORE_SQL, DEV_KEEP_PREVIOUS, the DEV_ strategy, owners and grants, and
    recorded as dev; only the URL given (its credentials) is kept. Dev never gets raw or
    unscrubbed data by another path."""
    dev = job.url_of("dev")
    if dev is None or target.name in TARGET_NAMES:
        return target
    dev_identity = target_identity(dev, job.restore.maintenance_database) if identity else None
    if not restore_plan.same_database(
        _endpoint(target.url, identity), _endpoint(dev, dev_identity)
    ):
        return target
    log.info("restore.dev_settings_apply", reason="the target is the dev database")
    as_dev = dataclasses.replace(job.target("dev"), url=target.url)
    if target.mask_rules is None:
        return as_dev
    return dataclasses.replace(as_dev, mask_rules=target.mask_rules, mask_setting="--mask-rules")


def target_server(url: ConnInfo) -> str:
    """Where a target is, for people: `host:port` (never credentials)."""
    return f"{url.host}:{url.port}"


def _remember(
    job: Job,
    target: TargetSettings,
    manifest: Manifest,
    started: datetime,
    result: RestoreResult | None,
    error: str | None,
) -> None:
    """Keep a manual restore in the history, so the status page knows the target's age."""
    document = {
        "status": "success" if result is not None else "failure",
        "run_id": secrets.token_hex(6),
        "started_at": iso_z(started),
        "finished_at": iso_z(datetime.now(UTC)),
        "target": target.name,
        "database": target.url.database,
        "server": target_server(target.url),
        "backup_id": manifest.id,
        "strategy": result.strategy if result else None,
        "seconds": result.seconds if result else None,
        "masked": target.mask_rules is not None,
        "masking": result.masking if result else None,
        "error": mask(error) if error else None,
    }
    history.record(stores_or_none(job), "restore", document, manifest.database)


@dataclass
class Restorer:
    """One restore of one archive into one target."""

    job: Job
    target: TargetSettings
    manifest: Manifest
    client: ClientSet
    archive: Path
    unlisted: list[str] = field(default_factory=list)  # the columns kept unlisted (masked)

    def run(self) -> RestoreResult:
        """Check the target again on the connection used, choose the strategy, restore.

        Raises ConfigError when the target is the source, JobError when the restore fails
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
            if strategy == "swap":
                ignored, previous = self._swap(maint, caps.server_major, masking, plans, stats)
            elif masking is not None:
                raise ConfigError(
                    f"{masking.setting} needs the swap strategy (a role that may create "
                    "databases): masked rows must be loaded into a new database, never over the "
                    "target"
                )
            else:
                ignored, previous = self._transaction(caps.server_major), None
        result = RestoreResult(
            target=self.target.name,
            database=self.target.url.database,
            backup_id=self.manifest.id,
            strategy=strategy,
            seconds=round(time.monotonic() - started, 3),
            tables=len(self.manifest.row_counts),
            rows=sum(self.manifest.row_counts.values()),
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
        )

    def _swap(
        self,
        maint: Conn,
        server_major: int,
        masking: masked_load.Masking | None,
        plans: dict[str, TablePlan],
        stats: dict[str, dict[str, Any]],
    ) -> tuple[list[str], str | None]:
        staging = restore_plan.staging_name(self.target.url.database, secrets.token_hex(4))
        queries.create_database(maint, staging)
        try:
            staged = self.target.url.with_database(staging)
            with ThreadPoolExecutor(max_workers=1) as pool:
                room = pool.submit(with_context(self._make_room), maint, server_major)
                ignored = self._load(staged, masking, plans, stats)
                room.result()
            self._verify(staged)
            self._post_restore_sql(staged)
            when = iso_z(datetime.now(UTC))
            comment = masked_load.database_comment(
                self.manifest.id, when, masking, stats, self.unlisted
            )
            queries.comment_on_database(maint, staging, comment)
            previous = self._swap_in(maint, staging, server_major)
        except BaseException:
            with contextlib.suppress(Exception):
                queries.drop_database(maint, staging, server_major)
            raise
        return ignored, previous

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
        known = self.manifest.tables

        def tables_of(entry: pgrestore.TocEntry) -> list[str]:
            return [table_key(*found) for found in pgrestore.entry_tables(entry, known)]

        with work_dir(self.job) as folder:
            load = masked_load.MaskedLoad(
                self.client,
                staged,
                self.archive,
                self._options(False),
                masking,
                plans,
                folder,
                tables_of,
            )
            ignored = load.run()
            stats.update(load.stats)
        return ignored

    def _make_room(self, maint: Conn, server_major: int) -> None:
        """Drop the previous copy this swap would drop anyway (ages_out), while pg_restore
        runs: the server then needs room for one copy less, and the checkpoint that DROP
        DATABASE forces runs now, not right after gigabytes were restored. A failure only
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
        """ANALYZE, then compare row counts with the manifest; JobError on any difference."""
        with contextlib.closing(queries.connect(database, "target")) as conn:
            queries.analyze(conn)
            counts = queries.count_rows_where_present(conn, self.manifest.tables)
        problems = restore_plan.count_differences(self.manifest.row_counts, counts)
        if problems:
            shown = "; ".join(problems[:5])
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
