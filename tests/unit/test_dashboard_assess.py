"""The status page's verdict: healthy only with a fresh backup, a successful newest cycle
and (when there are drills) a successful newest drill; every reason is said in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.dashboard import PageData, assess

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMIT = 26 * 3600.0


def iso(hours_ago: float) -> str:
    moment = NOW - timedelta(hours=hours_ago)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def backup(hours_ago: float) -> dict[str, Any]:
    return {"id": f"shop-{hours_ago}", "created_at": iso(hours_ago), "size_bytes": 1, "stores": []}


def step(name: str, ok: bool = True, error: str | None = None, **detail: Any) -> dict[str, Any]:
    status = "success" if ok else "failure"
    return {
        "name": name,
        "status": status,
        "ok": ok,
        "seconds": 1.0,
        "error": error,
        "detail": detail,
    }


def cycle(*steps: dict[str, Any], hours_ago: float = 1, error: str | None = None) -> dict[str, Any]:
    ok = error is None and bool(steps) and all(s["ok"] for s in steps)
    return {
        "status": "success" if ok else "failure",
        "run_id": "r",
        "started_at": iso(hours_ago + 0.1),
        "finished_at": iso(hours_ago),
        "duration_seconds": 360.0,
        "steps": list(steps),
        "error": error,
    }


def drill(ok: bool = True, hours_ago: float = 5, **changes: Any) -> dict[str, Any]:
    return {
        "status": "success" if ok else "failure",
        "started_at": iso(hours_ago + 0.05),
        "finished_at": iso(hours_ago),
        "fetch_seconds": 5.0,
        "restore_seconds": 60.0,
        "rto_seconds": 65.0,
        "problems": [] if ok else ["row count differs for public.orders"],
        "error": None,
        **changes,
    }


GOOD_CYCLE = cycle(step("dump"), step("upload"), step("restore:dev"))


def data(**changes: Any) -> PageData:
    fields: dict[str, Any] = {
        "title": "t",
        "generated_at": NOW,
        "schedule": "daily",
        "max_backup_age_seconds": LIMIT,
        "source": "db/shop",
        "cycles": [GOOD_CYCLE],
        "drills": [],
        "backups": [backup(1)],
        "targets": [],
    }
    return PageData(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({}, []),
        ({"drills": [drill()]}, []),
        ({"drills": [drill(), drill(ok=False)]}, []),  # an older failed drill does not count
        ({"cycles": [GOOD_CYCLE, cycle(step("dump", False, "boom"))]}, []),  # nor a cycle
        ({"backups": [backup(26)]}, []),  # exactly at the limit is still fresh
        ({"backups": [backup(30), backup(2)]}, []),  # the newest by time, not by order
        ({"backups": [backup(30)]}, ["newest good backup is 30 h old (limit 26 h)"]),
        ({"backups": [backup(24 * 5)]}, ["newest good backup is 5 d old (limit 26 h)"]),
        ({"backups": []}, ["no backups yet"]),
        (
            {"backups": [{"id": "x", "created_at": "yesterday"}]},
            ["no backup has a readable creation time"],
        ),
        ({"cycles": []}, ["no cycles recorded yet"]),
        (
            {
                "cycles": [
                    cycle(
                        step("dump"),
                        step("restore:dev", False, "pg_restore: error: boom\nCommand was: x"),
                    )
                ]
            },
            ["last cycle failed 60 min ago: restore:dev — pg_restore: error: boom"],
        ),
        (
            {"cycles": [cycle(step("upload", False, "a"), step("restore:dev", False, "b"))]},
            ["last cycle failed 60 min ago: upload — a; restore:dev — b"],
        ),
        (
            {"cycles": [cycle(step("dump"), error="could not take the lock\nmore")]},
            ["last cycle failed 60 min ago: could not take the lock"],
        ),
        (
            {"cycles": [cycle(step("upload", False, stores={"s3": "ok", "r2": "timed out"}))]},
            ["last cycle failed 60 min ago: upload — r2: timed out"],
        ),
        ({"cycles": [{"steps": []}]}, ["last cycle's outcome is not recorded"]),
        (
            {"drills": [drill(ok=False), drill()]},
            ["last drill failed 5 h ago: row count differs for public.orders"],
        ),
        (
            {"drills": [drill(ok=False, error="pg_restore failed", problems=["x"])]},
            ["last drill failed 5 h ago: pg_restore failed"],
        ),
        (
            {
                "backups": [],
                "cycles": [cycle(step("dump", False, "no route to host"))],
                "drills": [drill(ok=False)],
            },
            [
                "no backups yet",
                "last cycle failed 60 min ago: dump — no route to host",
                "last drill failed 5 h ago: row count differs for public.orders",
            ],
        ),
    ],
)
def test_assess_gives_healthy_only_without_reasons(changes, reasons):
    headline = assess(data(**changes))
    assert headline.reasons == reasons
    assert headline.healthy is (not reasons)


def test_healthy_headline_lists_what_was_checked():
    headline = assess(data(drills=[drill()], backups=[backup(3)]))
    assert headline.facts == [
        "newest backup is 3 h old (limit 26 h)",
        "last cycle succeeded 60 min ago",
        "last drill passed 5 h ago (RTO 1 min 05 s)",
    ]


def test_reasons_never_show_a_password():
    error = "could not connect to postgresql://admin:hunter2@db.internal:5432/shop: refused"
    headline = assess(data(cycles=[cycle(step("restore:dev", False, error))]))
    (reason,) = headline.reasons
    assert "hunter2" not in reason
    assert "admin" not in reason
    assert "db.internal:5432/shop" in reason


def test_naive_generated_at_is_taken_as_utc():
    assert assess(data(generated_at=NOW.replace(tzinfo=None))).healthy
