"""`orchestrator prune`: apply the KEEP_* retention policy per database, manifests first.

Only backups known through their manifests are ever deleted, and only the keys the
catalog's layout gives for their id. A removal deletes the manifest first, then the dump
(every file of a directory dump), so an interrupted prune can leave a dump without a
manifest but never a manifest without its dump.

A dump object without a manifest (a failed or interrupted upload, a half-uploaded
directory, an interrupted prune) is never a backup. It is removed once it is older than
PRUNE_ORPHANS_AFTER and a newer backup of its database exists in the store, so an upload
still running is never touched; until then it is listed as unrecognised. Everything else
under the store's root (foreign objects, unreadable manifests) is listed, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import catalog
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError, Interrupted, JobError, OrchestratorError, StorageError
from orchestrator.formats import iso_z, utc
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.retention import Duration, Policy, Snapshot, apply_policy
from orchestrator.storage import ObjectInfo, Storage
from orchestrator.storage.locks import store_locks
from orchestrator.storage.multi import NamedStore, combined, fan_out

log = get_logger(__name__)
NOT_KEPT = "no rule keeps it"
WHOLE = "newest whole backup"
FOREIGN_LAYOUT = "not laid out by orchestrator: never pruned"


@dataclass(frozen=True)
class BackupDecision:
    """One backup, whether it is kept, and why (the rules that keep it, or why not)."""

    manifest: Manifest
    keep: bool
    reasons: tuple[str, ...]


@dataclass
class PruneResult:
    """What prune decided and did in one store; `ok` unless a deletion failed."""

    dry_run: bool
    decisions: list[BackupDecision]
    store: str = ""
    foreign: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
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


def _laid_out(manifest: Manifest) -> bool:
    """True when the manifest's dump key is one the layout gives for its id."""
    return catalog.owns_dump_key(manifest)


def plan_database(
    manifests: Sequence[Manifest], policy: Policy, whole: set[str] | None = None
) -> list[BackupDecision]:
    """Decide keep/remove for the backups of one database, newest first.

    Manifests whose keys do not follow the layout are kept and left out of the policy.
    With `whole` (the ids of the backups whose dump objects are all stored), the newest
    of them is kept whatever the policy says, so newer backups that lost a file never
    take the last restorable one with them.
    Raises ValueError for an empty policy, JobError if the newest backup were not kept.
    """
    ours = [m for m in manifests if _laid_out(m)]
    ordered = sorted(ours, key=lambda m: (utc(m.created_at), m.id), reverse=True)
    snapshots = [Snapshot(m.id, utc(m.created_at)) for m in ordered]
    decided = [
        BackupDecision(m, d.keep, d.reasons or (NOT_KEPT,))
        for m, d in zip(ordered, apply_policy(snapshots, policy), strict=True)
    ]
    if decided and not decided[0].keep:
        newest = decided[0].manifest.id
        raise JobError(f"refusing to prune: the policy would remove the newest backup {newest}")
    if whole is not None:
        decided = _keep_newest_whole(decided, whole)
    others = [BackupDecision(m, True, (FOREIGN_LAYOUT,)) for m in manifests if not _laid_out(m)]
    return decided + others


def _keep_newest_whole(decided: list[BackupDecision], whole: set[str]) -> list[BackupDecision]:
    """`decided` (newest first) with the first backup in `whole` kept."""
    for index, decision in enumerate(decided):
        if decision.manifest.id in whole:
            if not decision.keep:
                decided = decided.copy()
                decided[index] = BackupDecision(decision.manifest, True, (WHOLE,))
            break
    return decided


def plan_prune(
    manifests: Iterable[Manifest], policy: Policy, whole: set[str] | None = None
) -> list[BackupDecision]:
    """Decide keep/remove for every backup, the policy applied to each database on its own
    (keeping each one's newest backup in `whole` too, see `plan_database`).

    Gives the decisions grouped by database (sorted by name), newest first within each.
    Pure: touches no storage. Raises like `plan_database`.
    """
    by_database: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        by_database.setdefault(manifest.database, []).append(manifest)
    return [
        d for name in sorted(by_database) for d in plan_database(by_database[name], policy, whole)
    ]


def classify(
    objects: Iterable[ObjectInfo], manifests: Iterable[Manifest]
) -> tuple[list[str], list[str]]:
    """Give (foreign, orphans): keys not written by this tool, and laid-out keys of no backup.

    Orphans are dumps without a manifest and manifests that could not be read.
    """
    known = _keys(manifests)
    ours = catalog.STATUS_PREFIX  # the tool's own state (history, last cycle): not backups
    unknown = [o for o in objects if o.key not in known and not o.key.startswith(ours)]
    foreign = {o.key for o in catalog.foreign_objects(unknown)}
    return sorted(foreign), sorted(o.key for o in unknown if o.key not in foreign)


def stale_orphans(
    objects: Iterable[ObjectInfo], now: datetime, grace: Duration | None
) -> list[str]:
    """Give the keys of dump objects (custom-format dumps, directory dump files) of ids
    with no manifest in the listing `objects` (readable or not: a manifest that could not
    be read still protects its backup), last written before `now` minus `grace`, and
    older than the newest id of their database that has a manifest, so that an upload
    still running is never touched (pure). `grace` None: never any."""
    if grace is None:
        return []
    objects = list(objects)
    kept: set[str] = set()
    newest: dict[str, datetime] = {}  # per database name as the layout writes it
    for info in objects:
        if catalog.is_manifest_key(info.key):
            backup_id = info.key.rsplit("/", 1)[-1].removesuffix(catalog.MANIFEST_SUFFIX)
            kept.add(backup_id)
            parts = _id_parts(backup_id)
            if parts is not None:
                newest[parts[0]] = max(newest.get(parts[0], parts[1]), parts[1])
    cutoff = grace.subtract_from(utc(now))
    stale = []
    for info in objects:
        of = catalog.dump_backup_id(info.key)
        parts = _id_parts(of) if of is not None and of not in kept else None
        if parts is None or utc(info.modified) >= cutoff:
            continue
        database, when = parts
        if database in newest and when < newest[database]:
            stale.append(info.key)
    return sorted(stale)


def _id_parts(backup_id: str) -> tuple[str, datetime] | None:
    try:
        return catalog.id_parts(backup_id)
    except (ConfigError, ValueError):  # a name of the layout's shape but no real time
        return None


def _keys(manifests: Iterable[Manifest]) -> set[str]:
    """Every key the backups own: their manifests and dump objects."""
    return {key for m in manifests for key in (m.manifest_key, *m.object_keys)}


def _delete(storage: Storage, key: str) -> str | None:
    """Delete one key; give the error text when the store refused."""
    try:
        storage.delete([key])
    except (StorageError, ConfigError) as exc:
        return str(exc)
    return None


def remove_backup(storage: Storage, manifest: Manifest, protected: set[str]) -> str | None:
    """Delete the manifest, then (only if that worked) the dump and any other dump object of
    the same id (what an interrupted rekey left); give an error line or None.

    Keys in `protected` (those of kept backups) are never deleted.
    """
    keys = [manifest.manifest_key, *manifest.object_keys]
    if protected.intersection(keys):
        return f"{manifest.id}: not removed, a kept backup uses the same keys"
    failure = _delete(storage, manifest.manifest_key)
    if failure:
        return f"{manifest.id}: manifest not deleted, backup left whole: {failure}"
    try:
        strays = catalog.stray_dumps(storage, manifest)  # left by an interrupted rekey
    except Interrupted:
        raise
    except OrchestratorError:
        strays = []
    for key in [*manifest.object_keys, *strays]:
        failure = _delete(storage, key)
        if failure:
            return (
                f"{manifest.id}: manifest deleted but the dump {storage.describe(key)} "
                f"was not (prune removes it after PRUNE_ORPHANS_AFTER): {failure}"
            )
    log.info("prune.removed", backup_id=manifest.id)
    return None


def remove_planned(storage: Storage, result: PruneResult) -> None:
    """Remove the backups `result` plans to remove; add a line to `result.errors` per failure.

    One failure does not stop the other removals.
    """
    kept = [d.manifest for d in result.decisions if d.keep]
    protected = _keys(kept)
    for manifest in result.removals:
        failure = remove_backup(storage, manifest, protected)
        if failure:
            log.error("prune.delete_failed", backup_id=manifest.id, error=failure)
            result.errors.append(failure)


def prune(
    job: Job,
    dry_run: bool,
    database: str | None = None,
    stores: list[NamedStore] | None = None,
) -> list[PruneResult]:
    """Apply the retention policy to each store on its own, over that store's own manifests;
    give one result per store (every decision, what was left alone, errors).

    With `database`, only that database's backups are considered (the pipeline prunes only
    its own source's, since other jobs with other KEEP_* rules may share the store). With
    `stores`, only those stores (the pipeline's: those that received its backup).
    Raises ConfigError before touching any store when the policy keeps nothing or no store
    can be opened; a store that cannot be opened while others can is an error in its
    result. Failed deletions are reported in the results, not raised.
    """
    policy = job.policy()
    if stores is not None:  # the pipeline's, which holds the stores' locks already
        return [
            prune_store(store, policy, dry_run, database, job.orphans_after) for store in stores
        ]
    stores = job.stores()
    checks = fan_out(stores, lambda store: store.storage.check())
    failed = [(o.store, o.error) for o in checks if o.error is not None]
    if len(failed) == len(stores):
        raise combined(failed, "open a store")
    pairs = [] if dry_run else locked_pairs(stores, database)
    with store_locks(pairs, "prune"):
        return [
            prune_store(store, policy, dry_run, database, job.orphans_after) for store in stores
        ]


def locked_pairs(stores: list[NamedStore], database: str | None) -> list[tuple[NamedStore, str]]:
    """Each store with each database whose backups a job may change: `database`, or every
    database any store holds backups of."""
    if database is not None:
        return [(store, database) for store in stores]
    located, _failed = catalog.list_located(stores)
    names = {backup.manifest.database for backup in located}
    return [(store, name) for store in stores for name in names]


def prune_store(
    store: NamedStore,
    policy: Policy,
    dry_run: bool,
    database: str | None,
    orphans_after: Duration | None = None,
) -> PruneResult:
    """Apply `policy` to one store; a store that cannot be listed gives a result with its
    error and nothing removed."""
    storage = store.storage
    try:
        manifests = catalog.list_backups(storage, database)
        prefix = f"{catalog.safe_name(database)}/" if database else ""
        objects = list(storage.list(prefix))
    except Interrupted:
        raise
    except OrchestratorError as exc:
        log.error("prune.store_failed", store=store.label, error=str(exc))
        return PruneResult(dry_run, [], store.label, errors=[f"cannot list the store: {exc}"])
    whole = catalog.whole_backups(manifests, objects)
    for manifest in manifests:
        if manifest.id not in whole and _laid_out(manifest):
            log.warning("prune.damaged_backup", backup_id=manifest.id, store=store.label)
    result = PruneResult(dry_run, plan_prune(manifests, policy, whole), store.label)
    result.foreign, result.orphans = classify(objects, manifests)
    stale = set(stale_orphans(objects, datetime.now(UTC), orphans_after))
    result.orphans_removed = sorted(stale)
    result.orphans = [key for key in result.orphans if key not in stale]
    for key in result.unrecognised:
        log.warning("prune.unrecognised", key=key, store=store.label)
    if not dry_run:
        remove_planned(storage, result)
        _remove_orphans(storage, result)
    return result


def _remove_orphans(storage: Storage, result: PruneResult) -> None:
    """Delete the stale orphans `result` lists, in one request where the store allows."""
    if not result.orphans_removed:
        return
    try:
        storage.delete(result.orphans_removed)
    except (StorageError, ConfigError) as exc:
        result.errors.append(f"orphaned dump objects not removed: {exc}")
        return
    log.info("prune.orphans_removed", store=result.store, keys=len(result.orphans_removed))


def as_dict(result: PruneResult) -> dict[str, Any]:
    """The JSON object `prune --json` prints for one store."""
    return {
        "store": result.store,
        "dry_run": result.dry_run,
        "backups": [
            {
                "id": d.manifest.id,
                "database": d.manifest.database,
                "created_at": iso_z(d.manifest.created_at),
                "keep": d.keep,
                "reasons": list(d.reasons),
            }
            for d in result.decisions
        ],
        "unrecognised": result.unrecognised,
        "orphans_removed": result.orphans_removed,
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
    gone = "would remove" if result.dry_run else "removed"
    lines += [f"{gone} (orphaned dump object): {key}" for key in result.orphans_removed]
    return lines
