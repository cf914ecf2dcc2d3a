"""`orchestrator prune`: apply the KEEP_* retention policy per database, manifests first.

Only backups known through their manifests are ever deleted, and only the two keys the
catalog's layout gives for their id. A removal deletes the manifest first, then the dump,
so an interrupted prune can leave a dump without a manifest (reported as unrecognised
next time) but never a manifest without its dump. Everything else under the store's
root (foreign objects, dumps without a manifest, unreadable manifests) is listed, never
touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import catalog
from orchestrator.actions.common import storage_from
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError, JobError, StorageError
from orchestrator.logs import get_logger
from orchestrator.retention import Policy, Snapshot, apply_policy
from orchestrator.settings import Settings
from orchestrator.storage import ObjectInfo, Storage

log = get_logger(__name__)
NOT_KEPT = "no rule keeps it"
FOREIGN_LAYOUT = "not laid out by orchestrator: never pruned"


@dataclass(frozen=True)
class BackupDecision:
    """One backup, whether it is kept, and why (the rules that keep it, or why not)."""

    manifest: Manifest
    keep: bool
    reasons: tuple[str, ...]


@dataclass
class PruneResult:
    """What prune decided and did; `ok` unless a deletion failed."""

    dry_run: bool
    decisions: list[BackupDecision]
    foreign: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every planned deletion succeeded (always for a dry run)."""
        return not self.errors

    @property
    def unrecognised(self) -> list[str]:
        """Keys under the root that belong to no known backup, sorted: left alone."""
        return sorted([*self.foreign, *self.orphans])

    @property
    def removals(self) -> list[Manifest]:
        """The backups the policy removes."""
        return [d.manifest for d in self.decisions if not d.keep]


def _aware(when: datetime) -> datetime:
    return when if when.utcoffset() is not None else when.replace(tzinfo=UTC)


def _laid_out(manifest: Manifest) -> bool:
    """True when the manifest's dump key is the one the layout gives for its id."""
    try:
        return manifest.dump_key == catalog.dump_key_for(manifest.id)
    except ConfigError:
        return False


def plan_database(manifests: Sequence[Manifest], policy: Policy) -> list[BackupDecision]:
    """Decide keep/remove for the backups of one database, newest first.

    Manifests whose keys do not follow the layout are kept and left out of the policy.
    Raises ValueError for an empty policy, JobError if the newest backup were not kept.
    """
    ours = [m for m in manifests if _laid_out(m)]
    ordered = sorted(ours, key=lambda m: (_aware(m.created_at), m.id), reverse=True)
    snapshots = [Snapshot(m.id, _aware(m.created_at)) for m in ordered]
    decided = [
        BackupDecision(m, d.keep, d.reasons or (NOT_KEPT,))
        for m, d in zip(ordered, apply_policy(snapshots, policy), strict=True)
    ]
    if decided and not decided[0].keep:
        newest = decided[0].manifest.id
        raise JobError(f"refusing to prune: the policy would remove the newest backup {newest}")
    others = [BackupDecision(m, True, (FOREIGN_LAYOUT,)) for m in manifests if not _laid_out(m)]
    return decided + others


def plan_prune(manifests: Iterable[Manifest], policy: Policy) -> list[BackupDecision]:
    """Decide keep/remove for every backup, the policy applied to each database on its own.

    Gives the decisions grouped by database (sorted by name), newest first within each.
    Pure: touches no storage. Raises like `plan_database`.
    """
    by_database: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        by_database.setdefault(manifest.database, []).append(manifest)
    return [d for name in sorted(by_database) for d in plan_database(by_database[name], policy)]


def classify(
    objects: Iterable[ObjectInfo], manifests: Iterable[Manifest]
) -> tuple[list[str], list[str]]:
    """Give (foreign, orphans): keys not written by this tool, and laid-out keys of no backup.

    Orphans are dumps without a manifest and manifests that could not be read.
    """
    known = {key for m in manifests for key in (m.manifest_key, m.dump_key)}
    unknown = [o for o in objects if o.key not in known]
    foreign = {o.key for o in catalog.foreign_objects(unknown)}
    return sorted(foreign), sorted(o.key for o in unknown if o.key not in foreign)


def _delete(storage: Storage, key: str) -> str | None:
    """Delete one key; give the error text when the store refused."""
    try:
        storage.delete([key])
    except (StorageError, ConfigError) as exc:
        return str(exc)
    return None


def remove_backup(storage: Storage, manifest: Manifest, protected: set[str]) -> str | None:
    """Delete the manifest, then (only if that worked) the dump; give an error line or None.

    Keys in `protected` (those of kept backups) are never deleted.
    """
    keys = [manifest.manifest_key, manifest.dump_key]
    if protected.intersection(keys):
        return f"{manifest.id}: not removed, a kept backup uses the same keys"
    failure = _delete(storage, manifest.manifest_key)
    if failure:
        return f"{manifest.id}: manifest not deleted, backup left whole: {failure}"
    failure = _delete(storage, manifest.dump_key)
    if failure:
        return (
            f"{manifest.id}: manifest deleted but the dump {storage.describe(manifest.dump_key)} "
            f"was not (delete it by hand): {failure}"
        )
    log.info("prune.removed", backup_id=manifest.id)
    return None


def remove_planned(storage: Storage, result: PruneResult) -> None:
    """Remove the backups `result` plans to remove; add a line to `result.errors` per failure.

    One failure does not stop the other removals.
    """
    kept = [d.manifest for d in result.decisions if d.keep]
    protected = {key for m in kept for key in (m.manifest_key, m.dump_key)}
    for manifest in result.removals:
        failure = remove_backup(storage, manifest, protected)
        if failure:
            log.error("prune.delete_failed", backup_id=manifest.id, error=failure)
            result.errors.append(failure)


def prune(settings: Settings, dry_run: bool, database: str | None = None) -> PruneResult:
    """Apply the retention policy to the store; give every decision, what was left alone, errors.

    With `database`, only that database's backups are considered (the pipeline prunes only
    its own source's, since other jobs with other KEEP_* rules may share the store).
    Raises ConfigError before touching the store when the policy keeps nothing or the
    store cannot be opened. Failed deletions are reported in the result, not raised.
    """
    policy = settings.retention_policy()
    storage = storage_from(settings)
    storage.check()
    manifests = catalog.list_backups(storage, database)
    prefix = f"{catalog.safe_name(database)}/" if database else ""
    objects = list(storage.list(prefix))
    result = PruneResult(dry_run, plan_prune(manifests, policy))
    result.foreign, result.orphans = classify(objects, manifests)
    for key in result.unrecognised:
        log.warning("prune.unrecognised", key=key)
    if not dry_run:
        remove_planned(storage, result)
    return result


def _stamp(when: datetime) -> str:
    return _aware(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_dict(result: PruneResult) -> dict[str, Any]:
    """The JSON object `prune --json` prints."""
    return {
        "dry_run": result.dry_run,
        "backups": [
            {
                "id": d.manifest.id,
                "database": d.manifest.database,
                "created_at": _stamp(d.manifest.created_at),
                "keep": d.keep,
                "reasons": list(d.reasons),
            }
            for d in result.decisions
        ],
        "unrecognised": result.unrecognised,
        "errors": result.errors,
    }


def table_lines(result: PruneResult) -> list[str]:
    """The human report: one line per backup, then a summary and what was left alone."""
    rows = as_dict(result)["backups"]
    width = max([len(r["id"]) for r in rows] + [2])
    lines = [f"{'ID':<{width}}  {'CREATED (UTC)':<19}  {'ACTION':<6}  REASONS"]
    for row in rows:
        created = row["created_at"].replace("T", " ").removesuffix("Z")
        action = "KEEP" if row["keep"] else "REMOVE"
        lines.append(
            f"{row['id']:<{width}}  {created:<19}  {action:<6}  {', '.join(row['reasons'])}"
        )
    planned, failed = len(result.removals), len(result.errors)
    if result.dry_run:
        lines.append(f"{len(rows) - planned} kept, {planned} to remove (dry run: nothing deleted)")
    else:
        failures = f", {failed} could not be removed" if failed else ""
        lines.append(f"{len(rows) - planned} kept, {planned - failed} removed{failures}")
    lines += [f"left alone (foreign object): {key}" for key in result.foreign]
    lines += [f"left alone (no readable manifest): {key}" for key in result.orphans]
    return lines
