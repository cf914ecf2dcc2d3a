"""Realistic status-page data: a month of twice-daily cycles with one failure, weekly drills
with one failure, two stores, encrypted backups. Deterministic (seeded), so screenshots
and assertions do not move.

Cycle documents are made by the real `CycleReport.as_dict()`, so their shape is the one
the history will hold.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from orchestrator.dashboard import BackupDoc, CycleDoc, DrillDoc, PageData, TargetDoc
from orchestrator.notify import CycleReport, StepReport

NOW = datetime(2026, 11, 25, 7, 12, 30, tzinfo=UTC)
DATABASE = "shop"
STORES = ("s3-main", "r2-offsite")
FAILED_CYCLE = 3  # index (newest first) of the cycle whose restore:dev failed
FAILED_DRILL = 2  # index (newest first) of the drill that found a row-count difference
DEV_ERROR = (
    'pg_restore: error: could not execute query: ERROR:  relation "public.orders_2026" '
    "does not exist\nCommand was: ALTER TABLE ONLY public.orders_2026 ..."
)
DRILL_PROBLEM = "row count differs for public.orders: manifest 120433, restored 120401"
MIB = 1024 * 1024


def backup_id(when: datetime) -> str:
    """The id a dump started at `when` gets (as catalog.new_backup_id makes it)."""
    return f"{DATABASE}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _cycle(rng: random.Random, started: datetime, index: int, fail_dev: bool) -> CycleDoc:
    size = int((78 + index * 0.45 + rng.uniform(-0.6, 0.6)) * MIB)
    dump = rng.uniform(55, 72)
    upload = rng.uniform(14, 24)
    backup = rng.uniform(95, 125)
    dev = rng.uniform(130, 170) if not fail_dev else rng.uniform(40, 60)
    ident = backup_id(started + timedelta(seconds=2))
    steps = [
        StepReport("dump", True, dump, detail={"backup_id": ident, "size_bytes": size}),
        StepReport(
            "upload",
            True,
            upload,
            detail={"key": f"{DATABASE}/{ident}.dump", "stores": dict.fromkeys(STORES, "ok")},
        ),
        StepReport(
            "restore:backup",
            True,
            backup,
            detail={"target": "backup", "strategy": "swap", "previous": f"{DATABASE}_prev"},
        ),
        StepReport(
            "restore:dev",
            not fail_dev,
            dev,
            error=DEV_ERROR if fail_dev else None,
            detail={} if fail_dev else {"target": "dev", "strategy": "swap", "previous": None},
        ),
        StepReport("prune", True, rng.uniform(0.6, 1.6), detail={"removed": 1}),
    ]
    wall = dump + max(upload, backup, dev) + steps[-1].seconds + rng.uniform(1.5, 3.5)
    report = CycleReport(
        run_id=f"{rng.getrandbits(48):012x}",
        started_at=started,
        steps=steps,
        finished_at=started + timedelta(seconds=wall),
    )
    return cast(CycleDoc, report.as_dict())


def cycles(count: int = 60, now: datetime = NOW) -> list[CycleDoc]:
    """Give `count` cycles at 06:00 and 18:00 UTC before `now`, newest first; the one at
    index FAILED_CYCLE failed in restore:dev."""
    rng = random.Random(7)
    newest = now.replace(hour=6 if now.hour < 18 else 18, minute=0, second=0, microsecond=0)
    starts = [newest - timedelta(hours=12 * i) for i in range(count)]
    made = [
        _cycle(rng, start, count - i, fail_dev=i == FAILED_CYCLE) for i, start in enumerate(starts)
    ]
    return made


def drills(count: int = 8, now: datetime = NOW) -> list[DrillDoc]:
    """Give weekly drills (Sundays 09:00 UTC before `now`), newest first; the one at index
    FAILED_DRILL found a row-count difference."""
    rng = random.Random(11)
    sunday = (now - timedelta(days=(now.weekday() + 1) % 7)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    if sunday > now:
        sunday -= timedelta(days=7)
    made: list[DrillDoc] = []
    for i in range(count):
        started = sunday - timedelta(days=7 * i)
        fetch, restore, verify = rng.uniform(8, 14), rng.uniform(95, 130), rng.uniform(3, 6)
        failed = i == FAILED_DRILL
        made.append(
            {
                "status": "failure" if failed else "success",
                "run_id": f"{rng.getrandbits(48):012x}",
                "started_at": _iso(started),
                "finished_at": _iso(started + timedelta(seconds=fetch + restore + verify + 2)),
                "backup_id": backup_id(started.replace(hour=6) + timedelta(seconds=2)),
                "server": "postgresql://drill@backup-db.internal:5432/postgres",
                "fetch_seconds": round(fetch, 3),
                "restore_seconds": round(restore, 3),
                "verify_seconds": round(verify, 3),
                "rto_seconds": round(fetch + restore, 3),
                "tables": 42,
                "rows": 1_254_310 + 1_000 * (count - i),
                "problems": [DRILL_PROBLEM] if failed else [],
                "error": None,
            }
        )
    return made


def backups(history: list[CycleDoc], keep: int = 28) -> list[BackupDoc]:
    """Give the backups the cycles left (the newest `keep`), newest first: in both stores,
    encrypted, except the oldest few, made before the offsite store and encryption."""
    made: list[BackupDoc] = []
    for index, cycle in enumerate(history[:keep]):
        dump = cycle["steps"][0]
        old = index >= keep - 4
        made.append(
            {
                "id": dump["detail"]["backup_id"],
                "created_at": cycle["started_at"],
                "size_bytes": dump["detail"]["size_bytes"],
                "stores": [STORES[0]] if old else list(STORES),
                "encrypted": not old,
            }
        )
    return made


def targets(history: list[CycleDoc]) -> list[TargetDoc]:
    """Give the backup and dev targets as the newest successful restore of each left them."""
    made: list[TargetDoc] = []
    for name, server, masked in (
        ("backup", "backup-db.internal:5432", False),
        ("dev", "dev-db.internal:5432", True),
    ):
        cycle = next(
            c
            for c in history
            if any(s["name"] == f"restore:{name}" and s["ok"] for s in c["steps"])
        )
        made.append(
            {
                "name": name,
                "database": DATABASE,
                "server": server,
                "last_refresh_at": cycle["finished_at"],
                "backup_id": cycle["steps"][0]["detail"]["backup_id"],
                "masked": masked,
            }
        )
    return made


def page_data(now: datetime = NOW, **changes: Any) -> PageData:
    """Give the realistic page data at `now`; `changes` replace fields of PageData."""
    history = cycles(now=now)
    fields: dict[str, Any] = {
        "title": f"orchestrator — {DATABASE}",
        "generated_at": now,
        "schedule": "daily at 06:00, 18:00 UTC",
        "drill_schedule": "weekly on Sunday at 09:00 UTC",
        "max_backup_age_seconds": 26 * 3600.0,
        "source": "ep-quiet-lab-123456.eu-central-1.aws.neon.tech/shop",
        "cycles": history,
        "drills": drills(now=now),
        "backups": backups(history),
        "targets": targets(history),
    }
    fields.update(changes)
    return PageData(**fields)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
