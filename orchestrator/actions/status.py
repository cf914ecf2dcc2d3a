"""`orchestrator status` and the status page: recent backups, the newest one's age, the
cycles, drills and target refreshes kept in the history, and the page rendered from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from orchestrator import catalog, history
from orchestrator.actions.common import stores_from
from orchestrator.actions.listing import located_summary
from orchestrator.actions.restore import target_server
from orchestrator.dashboard import (
    BackupDoc,
    CycleDoc,
    DrillDoc,
    PageData,
    TargetDoc,
    render_status_page,
)
from orchestrator.errors import Interrupted, OrchestratorError
from orchestrator.logs import get_logger
from orchestrator.schedule_spec import parse_schedule
from orchestrator.settings import TARGET_NAMES, Settings
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)
LAST_CYCLE_KEY = f"{catalog.STATUS_PREFIX}last-cycle.json"
RECENT = 5
RECENT_RUNS = 20
PAGE_BACKUPS = 50
CYCLE_SLACK_SECONDS = 600


@dataclass
class Status:
    """What `status` shows."""

    backups: list[dict[str, Any]] = field(default_factory=list)
    newest_age_seconds: float | None = None
    last_cycle: dict[str, Any] | None = None
    cycles: list[dict[str, Any]] = field(default_factory=list)
    drills: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Snapshot:
    """What the stores say now: every backup (newest first) and the history."""

    backups: list[dict[str, Any]]
    history: history.History


def save_last_cycle(storage: Storage, document: dict[str, Any]) -> None:
    """Store the last cycle's report beside the backups (best effort: a failure is logged)."""
    try:
        storage.put_bytes(LAST_CYCLE_KEY, json.dumps(document, indent=2).encode())
    except Interrupted:
        raise
    except OrchestratorError as exc:
        log.warning("status.save_failed", error=str(exc))


def read_snapshot(settings: Settings, stores: list[NamedStore] | None = None) -> Snapshot:
    """Read the backups and the history of the source's database (of every database when
    SOURCE_DATABASE_URL is unset: several jobs may share the stores) from the stores.
    Raises the stores' errors when none can be listed."""
    stores = stores if stores is not None else stores_from(settings)
    source = settings.source_database_url
    database = source.database if source else None
    backups, _failed = catalog.list_located(stores, database)
    return Snapshot([located_summary(b) for b in backups], history.load(stores, database))


def status(settings: Settings, now: datetime | None = None) -> Status:
    """Give recent backups (newest first, across every store), the newest one's age, the
    last cycle, the recent cycles and drills, and each target's last successful refresh;
    of the source's database when SOURCE_DATABASE_URL is set."""
    stores = stores_from(settings)
    snap = read_snapshot(settings, stores)
    result = Status(
        backups=snap.backups[:RECENT],
        cycles=snap.history.cycles[:RECENT_RUNS],
        drills=snap.history.drills[:RECENT_RUNS],
        targets=[dict(t) for t in targets(settings, snap.history)],
    )
    if snap.backups:
        created = datetime.fromisoformat(snap.backups[0]["created_at"].replace("Z", "+00:00"))
        result.newest_age_seconds = round(((now or datetime.now(UTC)) - created).total_seconds(), 1)
    result.last_cycle = snap.history.cycles[0] if snap.history.cycles else _last_cycle(stores)
    return result


def _last_cycle(stores: list[NamedStore]) -> dict[str, Any] | None:
    """The last cycle as versions before the history kept it."""
    for store in stores:
        try:
            found = json.loads(store.storage.get_bytes(LAST_CYCLE_KEY))
            return found if isinstance(found, dict) else None
        except Interrupted:
            raise
        except (OrchestratorError, ValueError):
            continue
    return None


def targets(settings: Settings, kept: history.History) -> list[TargetDoc]:
    """Each configured target with its last successful refresh (by a cycle or a manual
    restore), from the history: when, from which backup, whether that refresh was masked
    and, for a masked one, the unlisted columns it recorded as kept."""
    found = []
    for name in TARGET_NAMES:
        url = getattr(settings, f"{name}_database_url")
        if url is None:
            continue
        when, backup_id, record = _newest_refresh(name, kept) or (None, None, {})
        doc = TargetDoc(
            name=name,
            database=url.database,
            server=target_server(url),
            last_refresh_at=when,
            backup_id=backup_id,
            masked=record.get("masked") is True,
        )
        masking = record.get("masking")
        if isinstance(masking, dict) and isinstance(masking.get("unlisted"), list):
            doc["unlisted"] = [str(column) for column in masking["unlisted"]]
        found.append(doc)
    return found


def last_refresh(name: str, kept: history.History) -> tuple[str | None, str | None]:
    """(when, from which backup) of the newest successful refresh of target `name`. Pure."""
    newest = _newest_refresh(name, kept)
    return (newest[0], newest[1]) if newest else (None, None)


def _newest_refresh(name: str, kept: history.History) -> tuple[str, str | None, Any] | None:
    """(when, backup id, what the refresh recorded: the cycle step's detail or the restore
    document, both with `masked` and `masking`) of the newest successful refresh of `name`."""
    refreshes: list[tuple[str, str | None, Any]] = []
    for cycle in kept.cycles:
        for step in cycle.get("steps") or []:
            if step.get("name") == f"restore:{name}" and step.get("ok"):
                detail = step.get("detail") or {}
                when = str(cycle.get("finished_at") or "")
                refreshes.append((when, detail.get("backup_id"), detail))
    for restore in kept.restores:
        if restore.get("target") == name and restore.get("status") == "success":
            when = str(restore.get("finished_at") or "")
            refreshes.append((when, restore.get("backup_id"), restore))
    refreshes = [r for r in refreshes if r[0]]
    return max(refreshes, key=lambda r: r[0]) if refreshes else None


def allowed_backup_age(settings: Settings) -> float:
    """How old the newest backup may be before the page says so: two schedule gaps plus ten
    minutes for the cycle itself, but never more than HEALTH_MAX_AGE."""
    gap = parse_schedule(settings.schedule).longest_gap_seconds()
    return float(min(settings.health_max_age, 2 * gap + CYCLE_SLACK_SECONDS))


def page_data(settings: Settings, snap: Snapshot, now: datetime | None = None) -> PageData:
    """The status page's data from what the stores said (`snap`) and the settings."""
    source = settings.source_database_url
    where = f"{source.host}:{source.port}/{source.database}" if source else "—"
    drill_schedule = settings.drill_schedule
    return PageData(
        title=f"orchestrator — {source.database if source else 'status'}",
        generated_at=now or datetime.now(UTC),
        schedule=parse_schedule(settings.schedule).describe(),
        drill_schedule=parse_schedule(drill_schedule).describe() if drill_schedule else None,
        max_backup_age_seconds=allowed_backup_age(settings),
        source=where,
        cycles=[cast(CycleDoc, c) for c in snap.history.cycles],
        drills=[cast(DrillDoc, d) for d in snap.history.drills],
        backups=[cast(BackupDoc, b) for b in snap.backups[:PAGE_BACKUPS]],
        targets=targets(settings, snap.history),
    )


def render_page(settings: Settings, now: datetime | None = None) -> str:
    """The status page as one HTML document, from the stores as they are now."""
    return render_status_page(page_data(settings, read_snapshot(settings), now))
