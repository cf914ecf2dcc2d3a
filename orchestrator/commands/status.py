"""`orchestrator status` and the status page: recent backups, the newest one's age, the
cycles, drills and target refreshes kept in the history, and the page rendered from them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from orchestrator import catalog, channels, history
from orchestrator.dashboard import PageData, render_status_page
from orchestrator.errors import Interrupted, OrchestratorError
from orchestrator.formats import iso_z
from orchestrator.health import DrillOutcome, Seed
from orchestrator.job import TARGET_NAMES, Job
from orchestrator.logs import get_logger
from orchestrator.notify import CycleReport, StepReport, safe_url
from orchestrator.operations.listing import located_summary
from orchestrator.operations.restore import target_server
from orchestrator.records import BackupDoc, CycleDoc, DrillDoc, RunningDoc, TargetDoc
from orchestrator.schedule_spec import Schedule, check_zone
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

    backups: list[BackupDoc] = field(default_factory=list)
    newest_age_seconds: float | None = None
    last_cycle: CycleDoc | None = None
    cycles: list[CycleDoc] = field(default_factory=list)
    drills: list[DrillDoc] = field(default_factory=list)
    targets: list[TargetDoc] = field(default_factory=list)
    next_cycle: dict[str, Any] | None = None
    next_drill: dict[str, Any] | None = None
    notify: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """What the stores say now: every backup (newest first) and the history."""

    backups: list[BackupDoc]
    history: history.History


def read_snapshot(job: Job, stores: list[NamedStore] | None = None) -> Snapshot:
    """Read the backups and the history of the source's database (of every database when
    SOURCE_DATABASE_URL is unset: several jobs may share the stores) from the stores.
    Raises the stores' errors when none can be listed."""
    stores = stores if stores is not None else job.stores()
    source = job.source
    database = source.database if source else None
    backups, _failed = catalog.list_located(stores, database)
    return Snapshot([located_summary(b) for b in backups], history.load(stores, database))


def status(job: Job, now: datetime | None = None) -> Status:
    """Give recent backups (newest first, across every store), the newest one's age, the
    last cycle, the recent cycles and drills, and each target's last successful refresh;
    of the source's database when SOURCE_DATABASE_URL is set."""
    stores = job.stores()
    snap = read_snapshot(job, stores)
    result = Status(
        backups=snap.backups[:RECENT],
        cycles=snap.history.cycles[:RECENT_RUNS],
        drills=snap.history.drills[:RECENT_RUNS],
        targets=targets(job, snap.history),
    )
    when = now or datetime.now(UTC)
    result.notify = alert_channels(job)
    result.next_cycle = next_run(job.schedule.cycles, snap.history.cycles, when)
    drills = job.schedule.drills
    result.next_drill = next_run(drills, snap.history.drills, when) if drills else None
    created = history.parse_moment(snap.backups[0].get("created_at")) if snap.backups else None
    if created is not None:
        result.newest_age_seconds = round((when - created).total_seconds(), 1)
    result.last_cycle = snap.history.cycles[0] if snap.history.cycles else _last_cycle(stores)
    return result


def _last_cycle(stores: list[NamedStore]) -> CycleDoc | None:
    """The last cycle as versions before the history kept it wrote it (read only: a cycle
    is now written once, to the history)."""
    for store in stores:
        try:
            found = json.loads(store.storage.get_bytes(LAST_CYCLE_KEY))
            return cast(CycleDoc, found) if isinstance(found, dict) else None
        except Interrupted:
            raise
        except (OrchestratorError, ValueError):
            continue
    return None


def targets(job: Job, kept: history.History) -> list[TargetDoc]:
    """Each configured target with its last successful refresh (by a cycle or a manual
    restore), from the history: when, from which backup, whether that refresh was masked
    and, for a masked one, the unlisted columns it recorded as kept."""
    found = []
    for name in TARGET_NAMES:
        url = job.url_of(name)
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


def alert_channels(job: Job) -> list[str]:
    """Where alerts go, as may be shown: `webhook https://host`, `slack://`,
    `mailto://smtp.example.com` (scheme and host only; never a token or password)."""
    found = [f"webhook {safe_url(job.alerts.webhook_url)}"] if job.alerts.webhook_url else []
    return found + [channels.label(url) for url in job.alerts.notify_urls]


def next_run(
    spec: Schedule, done: Sequence[CycleDoc] | Sequence[DrillDoc], now: datetime
) -> dict[str, Any]:
    """When `spec` runs next after `now`: `schedule` (its description), `utc` (ISO, Z),
    `local` (`YYYY-MM-DD HH:MM ZONE` in the schedule's zone) and `tz`. An interval counts
    from the newest finished run in `done` (newest first); with none, `utc` and `local`
    are None (the loop counts from its own start). Pure."""
    found: dict[str, Any] = {"schedule": spec.describe(), "tz": spec.tz, "utc": None, "local": None}
    if spec.is_interval:
        last = next(
            (history.parse_moment(d.get("finished_at")) for d in done if d.get("finished_at")), None
        )
        if last is None:
            return found
        due = max(now, spec.next_run(last))
    else:
        due = spec.next_run(now)
    local = due.astimezone(check_zone(spec.tz))
    found["utc"] = iso_z(due)
    found["local"] = f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
    return found


def next_run_text(found: dict[str, Any] | None) -> str | None:
    """`2026-12-05 17:00 UTC (18:00 CET, Europe/Berlin)`, or the schedule alone when the
    time is not known; None when nothing is scheduled. Pure."""
    if found is None:
        return None
    if found["utc"] is None:
        return f"{found['schedule']}, counted from the loop's start"
    utc = str(found["utc"]).replace("T", " ").removesuffix(":00Z") + " UTC"
    if found["tz"] == "UTC":
        return utc
    return f"{utc} ({str(found['local']).split(' ', 1)[1]}, {found['tz']})"


def health_seed(kept: history.History) -> Seed:
    """What /healthz and /metrics start from after a restart, from the history: the newest
    cycle, the newest successful one (its end and dump size), each target's last refresh
    (by a cycle or a manual restore) and the newest drill. Pure."""
    cycles = [cycle_report(doc) for doc in kept.cycles]
    good = next((report for report in cycles if report.ok), None)
    dump = good.step("dump") if good else None
    size = dump.detail.get("size_bytes") if dump else None
    refreshed = {name: last_refresh(name, kept)[0] for name in TARGET_NAMES}
    drill = kept.drills[0] if kept.drills else None
    drill_end = history.parse_moment(drill.get("finished_at")) if drill else None
    return Seed(
        last_report=cycles[0] if cycles else None,
        last_success=good.finished_at if good else None,
        dump_size_bytes=size if isinstance(size, int | float) else None,
        target_success={
            name: moment
            for name, when in refreshed.items()
            if (moment := history.parse_moment(when)) is not None
        },
        last_drill=DrillOutcome(
            drill.get("status") == "success", drill_end, drill.get("rto_seconds")
        )
        if drill and drill_end
        else None,
    )


def cycle_report(doc: CycleDoc) -> CycleReport:
    """A cycle kept in the history as the report it was written from. Pure."""
    started = history.parse_moment(doc.get("started_at")) or datetime.fromtimestamp(0, UTC)
    report = CycleReport(
        run_id=str(doc.get("run_id") or "-"),
        started_at=started,
        finished_at=history.parse_moment(doc.get("finished_at")),
        error=doc.get("error"),
    )
    for step in doc.get("steps") or []:
        report.steps.append(
            StepReport(
                name=str(step.get("name")),
                ok=bool(step.get("ok")),
                seconds=float(step.get("seconds") or 0),
                error=step.get("error"),
                detail=dict(step.get("detail") or {}),
            )
        )
    return report


def allowed_backup_age(job: Job) -> float:
    """How old the newest backup may be before the page says so: two schedule gaps plus ten
    minutes for the cycle itself, but never more than HEALTH_MAX_AGE."""
    gap = job.schedule.cycles.longest_gap_seconds()
    return float(min(job.schedule.health_max_age, 2 * gap + CYCLE_SLACK_SECONDS))


def page_data(
    job: Job, snap: Snapshot, now: datetime | None = None, running: RunningDoc | None = None
) -> PageData:
    """The status page's data from what the stores said (`snap`), the settings and what
    runs now (`running`)."""
    source = job.source
    where = f"{source.host}:{source.port}/{source.database}" if source else "—"
    drills = job.schedule.drills
    when = now or datetime.now(UTC)
    next_drill = next_run(drills, snap.history.drills, when) if drills else None
    return PageData(
        title=f"orchestrator — {source.database if source else 'status'}",
        generated_at=when,
        schedule=job.schedule.cycles.describe(),
        drill_schedule=drills.describe() if drills else None,
        next_cycle=next_run_text(next_run(job.schedule.cycles, snap.history.cycles, when)),
        next_drill=next_run_text(next_drill),
        alerts=", ".join(alert_channels(job)) or None,
        max_backup_age_seconds=allowed_backup_age(job),
        source=where,
        cycles=snap.history.cycles,
        drills=snap.history.drills,
        backups=snap.backups[:PAGE_BACKUPS],
        targets=targets(job, snap.history),
        running=running,
    )


def render_page(job: Job, now: datetime | None = None) -> str:
    """The status page as one HTML document, from the stores as they are now."""
    return render_status_page(page_data(job, read_snapshot(job), now))
