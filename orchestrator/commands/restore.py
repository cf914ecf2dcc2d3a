"""`orchestrator restore`: find a backup, fetch it, and restore it into a target without
ever losing the target (operations.restore), then keep the restore in the history.

A target that is the source is refused before anything is touched; a target given by URL
that is the dev database is restored exactly as dev.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import conninfo, history, restore_plan
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.job import TARGET_NAMES, Job, TargetSettings
from orchestrator.logs import get_logger, mask
from orchestrator.operations import masked_load
from orchestrator.operations.common import client_for, stores_or_none
from orchestrator.operations.fetch import find_backup, local_archive
from orchestrator.operations.restore import (
    Restorer,
    RestoreResult,
    endpoint,
    guard,
    recorded_source,
    target_identity,
    target_server,
)
from orchestrator.records import RestoreDoc

log = get_logger(__name__)


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
    if not restore_plan.same_database(endpoint(target.url, identity), endpoint(dev, dev_identity)):
        return target
    log.info("restore.dev_settings_apply", reason="the target is the dev database")
    as_dev = dataclasses.replace(job.target("dev"), url=target.url)
    if target.mask_rules is None:
        return as_dev
    return dataclasses.replace(as_dev, mask_rules=target.mask_rules, mask_setting="--mask-rules")


def _remember(
    job: Job,
    target: TargetSettings,
    manifest: Manifest,
    started: datetime,
    result: RestoreResult | None,
    error: str | None,
) -> None:
    """Keep a manual restore in the history, so the status page knows the target's age."""
    document: RestoreDoc = {
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
