"""Tests for orchestrator.retention: golden cases, invariants and unit tests.

Golden files live in tests/unit/golden/retention/<case>.json; run with
REGEN_GOLDEN=1 to rewrite them (then review the diff by hand).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.retention import (
    Decision,
    Duration,
    Policy,
    Snapshot,
    apply_policy,
    parse_duration,
)

GOLDEN_DIR = Path(__file__).parent / "golden" / "retention"
NEW_YORK = ZoneInfo("America/New_York")

# About 100 UTC timestamps over two years, oldest first; ids are s001, s002, ... in
# this order. A repeated line is a duplicate: two snapshots at the same second.
TIMES = (
    # 2023: roughly monthly, no backups in May, June or September
    "2023-01-10 03:00:00",
    "2023-01-25 03:00:00",
    "2023-02-14 03:00:00",
    "2023-03-01 03:00:00",
    "2023-03-31 23:30:00",
    "2023-04-15 03:00:00",
    "2023-07-04 03:00:00",
    "2023-07-20 03:00:00",
    "2023-08-08 03:00:00",
    "2023-10-02 03:00:00",
    "2023-10-30 03:00:00",
    "2023-11-15 03:00:00",
    "2023-12-24 03:00:00",
    # year boundary; 2024-01-01 04:59:59 UTC is still 2023 in New York
    "2023-12-31 23:59:59",
    "2024-01-01 00:00:00",
    "2024-01-01 04:59:59",
    # 2024: mostly Sundays (Saturday evening in New York); no Jan 21, nothing in August
    "2024-01-07 03:00:00",
    "2024-01-14 03:00:00",
    "2024-01-28 03:00:00",
    "2024-02-04 03:00:00",
    "2024-02-18 03:00:00",
    "2024-02-25 03:00:00",
    "2024-02-29 12:00:00",
    "2024-03-03 03:00:00",
    "2024-03-10 06:30:00",
    "2024-03-17 03:00:00",
    "2024-03-31 03:00:00",
    "2024-04-14 03:00:00",
    "2024-04-28 03:00:00",
    "2024-05-12 03:00:00",
    "2024-05-26 03:00:00",
    "2024-06-09 03:00:00",
    "2024-06-09 15:00:00",
    "2024-06-09 15:00:00",
    "2024-06-23 03:00:00",
    "2024-07-07 03:00:00",
    "2024-07-21 03:00:00",
    "2024-09-01 03:00:00",
    "2024-09-15 03:00:00",
    "2024-09-29 03:00:00",
    "2024-10-13 03:00:00",
    "2024-10-27 03:00:00",
    "2024-10-31 23:30:00",
    # New York falls back: 01:30 EDT, then 01:10 EST (same local hour 01)
    "2024-11-03 05:30:00",
    "2024-11-03 06:10:00",
    "2024-11-10 03:00:00",
    "2024-11-24 03:00:00",
    # 2024-12-01 03:00 UTC is still November in New York
    "2024-12-01 03:00:00",
    "2024-12-08 03:00:00",
    "2024-12-15 03:00:00",
    # dense: daily at 02:00 UTC (21:00 the day before in New York), some days more
    "2024-12-20 02:00:00",
    "2024-12-22 02:00:00",
    "2024-12-23 02:00:00",
    "2024-12-24 02:00:00",
    "2024-12-25 02:00:00",
    "2024-12-27 02:00:00",
    "2024-12-27 14:00:00",
    "2024-12-28 02:00:00",
    "2024-12-29 02:00:00",
    "2024-12-29 23:45:00",
    # Monday 2024-12-30 starts ISO week 2025-W01
    "2024-12-30 02:00:00",
    "2024-12-30 12:00:00",
    "2024-12-31 02:00:00",
    "2024-12-31 12:00:00",
    "2024-12-31 23:59:59",
    "2025-01-01 00:00:00",
    "2025-01-01 02:00:00",
    "2025-01-02 02:00:00",
    "2025-01-03 02:00:00",
    "2025-01-03 02:00:00",
    "2025-01-05 02:00:00",
    "2025-01-06 02:00:00",
    "2025-01-07 02:00:00",
    "2025-01-08 02:00:00",
    # no backups Jan 9-12 except this one, exactly 7 days before the newest
    "2025-01-11 12:00:00",
    "2025-01-13 02:00:00",
    "2025-01-14 02:00:00",
    "2025-01-14 10:00:00",
    "2025-01-14 10:15:00",
    "2025-01-14 10:45:00",
    "2025-01-14 11:05:00",
    "2025-01-15 02:00:00",
    "2025-01-15 04:30:00",
    "2025-01-15 06:00:00",
    "2025-01-15 09:30:00",
    "2025-01-15 09:30:00",
    "2025-01-16 01:00:00",
    "2025-01-16 03:00:00",
    "2025-01-16 03:20:00",
    "2025-01-16 03:40:00",
    "2025-01-16 04:00:00",
    "2025-01-16 05:00:00",
    "2025-01-17 00:30:00",
    "2025-01-17 01:30:00",
    "2025-01-17 02:30:00",
    "2025-01-17 23:00:00",
    "2025-01-18 06:00:00",
    "2025-01-18 11:00:00",
    "2025-01-18 12:00:00",
)

SNAPSHOTS = tuple(
    Snapshot(f"s{number:03d}", datetime.fromisoformat(text).replace(tzinfo=UTC))
    for number, text in enumerate(TIMES, start=1)
)
# Fed to apply_policy in a scrambled but fixed order, to exercise its sorting.
SCRAMBLED = SNAPSHOTS[1::2] + SNAPSHOTS[::-2]

CASES: dict[str, Policy] = {
    "last_1": Policy(last=1),
    "last_5": Policy(last=5),
    "last_1000_more_than_exist": Policy(last=1000),
    "hourly_6": Policy(hourly=6),
    "hourly_200": Policy(hourly=200),
    "daily_3": Policy(daily=3),
    "daily_10": Policy(daily=10),
    "weekly_4": Policy(weekly=4),
    "weekly_60": Policy(weekly=60),
    "monthly_6": Policy(monthly=6),
    "monthly_100_more_than_exist": Policy(monthly=100),
    "yearly_1": Policy(yearly=1),
    "yearly_5": Policy(yearly=5),
    "within_7d": Policy(within=parse_duration("7d")),
    "within_2w": Policy(within=parse_duration("2w")),
    "within_36h": Policy(within=parse_duration("36h")),
    "within_1m": Policy(within=parse_duration("1m")),
    "within_1y6m": Policy(within=parse_duration("1y6m")),
    "within_1y2m3d4h": Policy(within=parse_duration("1y2m3d4h")),
    "typical_l3_d7_w4_m12_y5": Policy(last=3, daily=7, weekly=4, monthly=12, yearly=5),
    "hourly_24_daily_7_weekly_8": Policy(hourly=24, daily=7, weekly=8),
    "daily_7_within_2w": Policy(daily=7, within=parse_duration("2w")),
    "last_2_within_1d": Policy(last=2, within=parse_duration("1d")),
    "daily_5_new_york": Policy(daily=5, tz=NEW_YORK),
    "hourly_200_new_york": Policy(hourly=200, tz=NEW_YORK),
    "weekly_3_new_york": Policy(weekly=3, tz=NEW_YORK),
    "monthly_6_new_york": Policy(monthly=6, tz=NEW_YORK),
    "yearly_3_new_york": Policy(yearly=3, tz=NEW_YORK),
}


def _as_json(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [
        {
            "id": d.snapshot.id,
            "created_at": d.snapshot.created_at.isoformat(),
            "keep": d.keep,
            "reasons": list(d.reasons),
        }
        for d in decisions
    ]


def _dump(rows: list[dict[str, Any]]) -> str:
    """One decision per line, so that golden diffs stay readable."""
    return "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    actual = _as_json(apply_policy(SCRAMBLED, CASES[name]))
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(actual), encoding="utf-8")
    assert actual == json.loads(path.read_text(encoding="utf-8"))


def _within_count(policy: Policy) -> int:
    if policy.within is None:
        return 0
    newest = max(s.created_at for s in SNAPSHOTS)
    start = policy.within.subtract_from(newest.astimezone(policy.tz))
    return sum(s.created_at >= start for s in SNAPSHOTS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_invariants(name: str) -> None:
    policy = CASES[name]
    decisions = apply_policy(SCRAMBLED, policy)
    kept = [d.snapshot for d in decisions if d.keep]
    removed = [d.snapshot for d in decisions if not d.keep]
    assert len(decisions) == len(SNAPSHOTS)
    assert sorted(kept + removed, key=lambda s: s.id) == list(SNAPSHOTS)
    assert not {s.id for s in kept} & {s.id for s in removed}
    assert decisions == sorted(
        decisions, key=lambda d: (d.snapshot.created_at, d.snapshot.id), reverse=True
    )
    assert decisions[0].keep
    assert decisions[0].snapshot.id == "s099"
    counts = sum(count for _, count in policy.counts())
    assert len(kept) <= counts + _within_count(policy) + 1
    assert all(d.reasons for d in decisions if d.keep)
    assert not any(d.reasons for d in decisions if not d.keep)


def test_dataset_shape() -> None:
    assert len(SNAPSHOTS) == 99
    assert len({s.id for s in SNAPSHOTS}) == len(SNAPSHOTS)
    assert len({s.created_at for s in SNAPSHOTS}) == len(SNAPSHOTS) - 3
    assert datetime(2024, 12, 30).isocalendar()[:2] == (2025, 1)
    assert sorted(SCRAMBLED, key=lambda s: s.id) == list(SNAPSHOTS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", Duration(days=7)),
        ("2w", Duration(days=14)),
        ("1w3d", Duration(days=10)),
        ("1y6m", Duration(years=1, months=6)),
        ("12h", Duration(hours=12)),
        ("36h", Duration(hours=36)),
        ("18m", Duration(months=18)),
        ("1y2m3d4h", Duration(years=1, months=2, days=3, hours=4)),
        ("0y7d", Duration(days=7)),
        ("007d", Duration(days=7)),
    ],
)
def test_parse_duration_good(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


BAD_DURATIONS = ["", "7x", "d", "7", "0d", "0y0m0d0h", "7D", " 7d", "7d ", "-7d", "+7d"]
BAD_DURATIONS += ["1.5d", "7d1y", "7d7d", "1y 2m", "\u0667d", "7d\n", "1h2d", "y7d", "1s"]


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_bad(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 7d, 2w, 1y6m or 12h"):
        parse_duration(text)


def test_duration_str_is_canonical() -> None:
    assert str(parse_duration("2w")) == "14d"
    assert str(parse_duration("1y2m3d4h")) == "1y2m3d4h"
    assert str(parse_duration("0y12h")) == "12h"


@pytest.mark.parametrize("kwargs", [{}, {"days": -1}, {"days": 1, "hours": -1}])
def test_duration_refuses_zero_and_negative(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration(**kwargs)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("1m", _utc(2024, 3, 31), _utc(2024, 2, 29)),
        ("1m", _utc(2023, 3, 31), _utc(2023, 2, 28)),
        ("1m", _utc(2024, 5, 31, 8, 30), _utc(2024, 4, 30, 8, 30)),
        ("1y", _utc(2024, 2, 29), _utc(2023, 2, 28)),
        ("1y3m", _utc(2024, 5, 31), _utc(2023, 2, 28)),
        ("1m1d", _utc(2024, 3, 31), _utc(2024, 2, 28)),
        ("13m", _utc(2024, 1, 15), _utc(2022, 12, 15)),
        ("1m", _utc(2024, 1, 31), _utc(2023, 12, 31)),
        ("1d12h", _utc(2024, 3, 1, 6), _utc(2024, 2, 28, 18)),
        ("2w", _utc(2025, 1, 18, 12), _utc(2025, 1, 4, 12)),
    ],
)
def test_subtract_from(text: str, start: datetime, expected: datetime) -> None:
    assert parse_duration(text).subtract_from(start) == expected


def test_subtract_from_days_follow_wall_clock_hours_elapsed_time() -> None:
    after_dst = datetime(2024, 3, 10, 12, tzinfo=NEW_YORK)
    day_before = parse_duration("1d").subtract_from(after_dst)
    assert (day_before.day, day_before.hour) == (9, 12)
    hours_before = parse_duration("24h").subtract_from(after_dst)
    assert (hours_before.day, hours_before.hour) == (9, 11)
    assert (after_dst.astimezone(UTC) - hours_before.astimezone(UTC)).total_seconds() == 24 * 3600


def test_subtract_from_before_year_one_raises() -> None:
    with pytest.raises(ValueError, match="before year 1"):
        parse_duration("3000y").subtract_from(_utc(2024, 1, 1))
    assert parse_duration("2023y").subtract_from(_utc(2024, 1, 1)) == _utc(
        1, 1, 1
    )  # year 1 is fine


def test_subtract_from_hours_of_a_naive_time_stay_naive() -> None:
    assert parse_duration("12h").subtract_from(datetime(2024, 3, 1, 6)) == datetime(2024, 2, 29, 18)


def test_subtract_from_one_hour_is_elapsed_time_across_a_clock_change() -> None:
    # 2024-03-10 03:30 EDT is one hour after 01:30 EST (02:00 to 03:00 never happened)
    before = parse_duration("1h").subtract_from(datetime(2024, 3, 10, 3, 30, tzinfo=NEW_YORK))
    assert before.astimezone(UTC) == _utc(2024, 3, 10, 6, 30)


def test_within_counts_calendar_months_in_the_policy_time_zone() -> None:
    # the newest is 2024-03-01 02:00 UTC, still 29 February in New York: one month back is
    # 29 January 21:00 there (30 January 02:00 UTC), where in UTC it would be 1 February
    snapshots = [Snapshot("new", _utc(2024, 3, 1, 2)), Snapshot("jan31", _utc(2024, 1, 31, 12))]
    in_new_york = apply_policy(snapshots, Policy(within=parse_duration("1m"), tz=NEW_YORK))
    in_utc = apply_policy(snapshots, Policy(within=parse_duration("1m")))
    assert [d.keep for d in in_new_york] == [True, True]
    assert [d.keep for d in in_utc] == [True, False]


def test_empty_policy_is_refused() -> None:
    assert Policy().is_empty
    assert not Policy(within=parse_duration("1h")).is_empty
    with pytest.raises(ValueError) as refused:
        apply_policy(SNAPSHOTS, Policy())
    assert str(refused.value) == "a retention policy that keeps nothing is refused"
    with pytest.raises(ValueError, match="keeps nothing is refused"):
        apply_policy([], Policy())


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="daily must be >= 0"):
        Policy(daily=-1)


def test_naive_snapshot_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Snapshot("x", datetime(2024, 1, 1))


def test_no_snapshots_gives_no_decisions() -> None:
    assert apply_policy([], Policy(last=3)) == []


def test_identical_times_are_ordered_by_id_descending() -> None:
    at = _utc(2024, 6, 1, 12)
    snapshots = [Snapshot("a", at), Snapshot("c", at), Snapshot("b", at)]
    decisions = apply_policy(snapshots, Policy(daily=1))
    assert [(d.snapshot.id, d.reasons) for d in decisions] == [
        ("c", ("daily",)),
        ("b", ()),
        ("a", ()),
    ]


def test_within_is_inclusive_and_relative_to_newest() -> None:
    snapshots = [
        Snapshot("old", _utc(2020, 1, 1)),
        Snapshot("edge", _utc(2020, 1, 1, 12)),
        Snapshot("new", _utc(2020, 1, 8, 12)),
    ]
    decisions = apply_policy(snapshots, Policy(within=parse_duration("7d")))
    assert [(d.snapshot.id, d.keep) for d in decisions] == [
        ("new", True),
        ("edge", True),
        ("old", False),
    ]
    assert decisions[0].reasons == ("within 7d",)


def test_within_longer_than_the_calendar_keeps_everything() -> None:
    decisions = apply_policy(SNAPSHOTS, Policy(within=parse_duration("5000y")))
    assert all(d.keep for d in decisions)


def test_reasons_follow_rule_order() -> None:
    policy = Policy(
        last=1, hourly=1, daily=1, weekly=1, monthly=1, yearly=1, within=Duration(hours=1)
    )
    decisions = apply_policy(SNAPSHOTS, policy)
    assert decisions[0].reasons == (
        "last",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "within 1h",
    )
    assert [d.keep for d in decisions].count(True) == 2
