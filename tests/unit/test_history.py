"""The history's keys and its own retention (newest 500 or 180 days, whichever keeps more),
and what status reads from it: each target's last refresh and the backup-age limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import history
from orchestrator.commands.status import (
    allowed_backup_age,
    health_seed,
    last_refresh,
    next_run,
    next_run_text,
    targets,
)
from orchestrator.health import DrillOutcome, Seed
from orchestrator.schedule_spec import parse_schedule
from orchestrator.settings import Settings

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def key(days_ago: float, kind: str = "cycle", run: str = "r") -> str:
    return history.key_for(kind, NOW - timedelta(days=days_ago), run)


def test_keys_sort_by_time_and_read_back() -> None:
    made = history.key_for("drill", datetime(2026, 11, 29, 3, 0, 5, tzinfo=UTC), "ab12")
    assert made == "_orchestrator/history/20261129T030005Z-drill-ab12.json"
    entry = history.parse_key(made)
    assert entry is not None and (entry.kind, entry.when.hour) == ("drill", 3)


@pytest.mark.parametrize(
    "other",
    [
        "_orchestrator/last-cycle.json",
        "_orchestrator/history/notes.txt",
        "_orchestrator/history/20261129T030005Z-party-ab12.json",
        "shop/2026/11/29/shop-20261129T030005Z.manifest.json",
    ],
)
def test_other_keys_are_not_history(other: str) -> None:
    assert history.parse_key(other) is None
    assert history.to_delete([other], NOW, keep_count=0, keep_days=0) == []


def test_run_ids_cannot_escape_the_history_folder() -> None:
    made = history.key_for("cycle", NOW, "../../x y")
    assert made.startswith("_orchestrator/history/") and "/.." not in made and " " not in made


@pytest.mark.parametrize(
    ("ages_in_days", "keep_count", "keep_days", "deleted"),
    [
        ([], 500, 180, []),
        ([1, 2, 3], 2, 180, []),  # all young: the days rule keeps them
        ([200, 300, 400], 2, 180, [400]),  # all old: the newest two are kept
        ([1, 200, 300, 400], 2, 180, [300, 400]),
        ([1, 2, 3, 200, 300], 2, 180, [200, 300]),  # the count is of the newest, young ones too
        ([179.9, 180.1], 0, 180, [180.1]),
    ],
)
def test_history_keeps_the_newest_n_or_the_last_days_whichever_keeps_more(
    ages_in_days: list[float], keep_count: int, keep_days: int, deleted: list[float]
) -> None:
    keys = [key(age, run=f"r{i}") for i, age in enumerate(ages_in_days)]
    chosen = history.to_delete(keys, NOW, keep_count, keep_days)
    assert chosen == sorted(key(age, run=f"r{ages_in_days.index(age)}") for age in deleted)


def test_the_defaults_are_500_documents_or_180_days() -> None:
    keys = [key(181 + i / 100, run=f"r{i}") for i in range(501)]
    assert history.to_delete(keys, NOW) == [keys[-1]]


def cycle(finished: str, *steps: tuple[str, bool, str | None]) -> dict[str, object]:
    return {
        "finished_at": finished,
        "steps": [{"name": n, "ok": ok, "detail": {"backup_id": b}} for n, ok, b in steps],
    }


def test_last_refresh_is_the_newest_success_by_a_cycle_or_a_manual_restore() -> None:
    kept = history.History(
        cycles=[
            cycle(
                "2026-11-30T06:05:00Z", ("restore:dev", False, "b3"), ("restore:backup", True, "b3")
            ),
            cycle("2026-11-29T18:05:00Z", ("restore:dev", True, "b2")),
        ],
        restores=[
            {
                "target": "dev",
                "status": "success",
                "finished_at": "2026-11-29T20:00:00Z",
                "backup_id": "b1",
            },
            {
                "target": "dev",
                "status": "failure",
                "finished_at": "2026-11-30T09:00:00Z",
                "backup_id": "b9",
            },
        ],
    )
    assert last_refresh("dev", kept) == ("2026-11-29T20:00:00Z", "b1")
    assert last_refresh("backup", kept) == ("2026-11-30T06:05:00Z", "b3")
    assert last_refresh("other", kept) == (None, None)


def test_status_says_masked_and_unlisted_from_what_the_newest_refresh_recorded() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DEV_DATABASE_URL="postgresql://u@dev.example/app",
        BACKUP_DATABASE_URL="postgresql://u@backup.example/app",
        DEV_MASK_RULES="/etc/rules.yaml",  # set now, but the newest dev refresh was raw
    ).job()
    masked = {"masked": True, "masking": {"unlisted": ["public.t.tier"], "tables": {}}}
    kept = history.History(
        cycles=[
            {
                "finished_at": "2026-11-30T06:05:00Z",
                "steps": [
                    {"name": "restore:backup", "ok": True, "detail": {"backup_id": "b2"}},
                    {"name": "restore:dev", "ok": True, "detail": {"backup_id": "b2", **masked}},
                ],
            }
        ],
        restores=[
            {
                "target": "dev",
                "status": "success",
                "finished_at": "2026-11-30T09:00:00Z",
                "backup_id": "b1",
                "masked": False,
                "masking": None,
            }
        ],
    )
    found = {t["name"]: t for t in targets(settings, kept)}
    assert (found["dev"]["masked"], "unlisted" in found["dev"]) == (False, False)
    kept.restores.clear()
    found = {t["name"]: t for t in targets(settings, kept)}
    assert (found["dev"]["masked"], found["dev"]["unlisted"]) == (True, ["public.t.tier"])
    assert (found["backup"]["masked"], "unlisted" in found["backup"]) == (False, False)


@pytest.mark.parametrize(
    ("schedule", "max_age", "allowed"),
    [
        ("06:00,18:00", 26 * 3600, 24 * 3600 + 600),
        ("06:00", 26 * 3600, 26 * 3600),  # two daily gaps: HEALTH_MAX_AGE is shorter
        ("every 20s", 26 * 3600, 640),
    ],
)
def test_backup_age_limit_follows_the_schedule(schedule: str, max_age: int, allowed: float) -> None:
    settings = Settings(_env_file=None, SCHEDULE=schedule, HEALTH_MAX_AGE=max_age)  # type: ignore[call-arg]
    assert allowed_backup_age(settings.job()) == allowed


@pytest.mark.parametrize(
    ("schedule", "tz", "done", "expected"),
    [
        ("0 6,18 * * *", "Europe/Berlin", [], "2026-12-05 17:00 UTC (18:00 CET, Europe/Berlin)"),
        ("0 6,18 * * *", "UTC", [], "2026-12-05 18:00 UTC"),
        ("0 6 * * *", "Europe/Berlin", [], "2026-12-06 05:00 UTC (06:00 CET, Europe/Berlin)"),
        ("every 4h", "UTC", [], "every 4h, counted from the loop's start"),
        ("every 4h", "UTC", [{"finished_at": "2026-12-05T14:00:00Z"}], "2026-12-05 18:00 UTC"),
        ("every 1h", "UTC", [{"finished_at": "2026-12-05T10:00:00Z"}], "2026-12-05 16:30 UTC"),
    ],
)
def test_next_run_is_shown_in_utc_and_schedule_tz(schedule, tz, done, expected) -> None:
    spec = parse_schedule(schedule, tz)
    now = datetime(2026, 12, 5, 16, 30, tzinfo=UTC)
    assert next_run_text(next_run(spec, done, now)) == expected


def test_health_seed_takes_the_newest_cycle_success_refreshes_and_drill() -> None:
    kept = history.History(
        cycles=[
            {
                "run_id": "new",
                "status": "failure",
                "started_at": "2026-12-05T06:00:00Z",
                "finished_at": "2026-12-05T06:05:00Z",
                "steps": [{"name": "restore:dev", "ok": False, "seconds": 1.0, "error": "down"}],
            },
            {
                "run_id": "old",
                "status": "success",
                "started_at": "2026-12-04T18:00:00Z",
                "finished_at": "2026-12-04T18:04:00Z",
                "steps": [
                    {"name": "dump", "ok": True, "seconds": 9.0, "detail": {"size_bytes": 1234}},
                    {"name": "restore:backup", "ok": True, "seconds": 5.0},
                ],
            },
        ],
        drills=[{"status": "success", "finished_at": "2026-12-01T09:00:00Z", "rto_seconds": 61.5}],
    )
    seed = health_seed(kept)
    assert seed.last_report is not None and seed.last_report.run_id == "new"
    assert not seed.last_report.ok and seed.last_report.failed_steps[0].error == "down"
    assert seed.last_success == datetime(2026, 12, 4, 18, 4, tzinfo=UTC)
    assert seed.dump_size_bytes == 1234
    assert seed.target_success == {"backup": datetime(2026, 12, 4, 18, 4, tzinfo=UTC)}
    assert seed.last_drill == DrillOutcome(True, datetime(2026, 12, 1, 9, tzinfo=UTC), 61.5)
    assert health_seed(history.History()) == Seed(target_success={})
