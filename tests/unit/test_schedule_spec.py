"""SCHEDULE parsing, next runs, and registration on a real `schedule.Scheduler`."""

from __future__ import annotations

import os
import time as time_module
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
import schedule

from orchestrator.schedule_spec import MAX_INTERVAL_SECONDS, Schedule, apply, parse_schedule


@pytest.mark.parametrize(
    ("text", "expected", "described"),
    [
        ("06:00,18:00", Schedule(times=(time(6), time(18))), "daily at 06:00, 18:00 UTC"),
        (" 18:00 , 06:00 ", Schedule(times=(time(6), time(18))), "daily at 06:00, 18:00 UTC"),
        ("06:00,06:00,6:00", Schedule(times=(time(6),)), "daily at 06:00 UTC"),
        ("00:00", Schedule(times=(time(0),)), "daily at 00:00 UTC"),
        ("23:59", Schedule(times=(time(23, 59),)), "daily at 23:59 UTC"),
        ("every 4h", Schedule(every_seconds=4 * 3600), "every 4h"),
        ("every 30m", Schedule(every_seconds=1800), "every 30m"),
        ("every 20s", Schedule(every_seconds=20), "every 20s"),
        ("  Every   90M ", Schedule(every_seconds=5400), "every 90m"),
        ("every 120m", Schedule(every_seconds=7200), "every 2h"),
        ("every 90s", Schedule(every_seconds=90), "every 90s"),
        ("every 4 h", Schedule(every_seconds=4 * 3600), "every 4h"),
        ("sunday 03:00", Schedule(times=(time(3),), weekdays=(6,)), "on Sunday at 03:00 UTC"),
        (
            "Mon, thu 02:30,14:00",
            Schedule(times=(time(2, 30), time(14)), weekdays=(0, 3)),
            "on Monday, Thursday at 02:30, 14:00 UTC",
        ),
        (
            "mon,tue,wed,thu,fri,sat,sun 06:00",
            Schedule(times=(time(6),), weekdays=tuple(range(7))),
            "daily at 06:00 UTC",
        ),
    ],
)
def test_good_schedules(text, expected, described):
    parsed = parse_schedule(text)
    assert parsed == expected
    assert parsed.describe() == described


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "every 0m",
        "every -1h",
        "every 1.5h",
        "every 1h30m",
        "every 4d",
        "every h",
        "every4h",
        "4h",
        "24:00",
        "12:60",
        "6",
        "06:00:00",
        "06:00,",
        "06:00,,18:00",
        "06:00 18:00",
        "6pm",
        "daily",
        "06:00\n18:00",
        "\uff10\uff16:\uff10\uff10",  # full-width digits
        "sunday",
        "sundays 03:00",
        "su 03:00",
        "sunday every 4h",
        "sunday, 03:00",
        "03:00 sunday",
    ],
)
def test_bad_schedules(text):
    with pytest.raises(ValueError) as raised:
        parse_schedule(text)
    message = str(raised.value)
    assert message == (
        f"{text!r} is not a schedule like 06:00,18:00, sunday 03:00, or every 4h / every 30m "
        "/ every 20s"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a schedule needs either times of day or an interval, not both"),
        (
            {"times": (time(6),), "every_seconds": 60},
            "a schedule needs either times of day or an interval, not both",
        ),
        ({"every_seconds": 0}, "a schedule interval must be positive, not 0"),
        (
            {"every_seconds": MAX_INTERVAL_SECONDS + 1},
            "a schedule interval must be at most 366 days",
        ),
        ({"times": (time(6, 0, 30),)}, "schedule times are whole minutes in UTC, not 06:00:30"),
        (
            {"times": (time(6, 0, 0, 1),)},
            "schedule times are whole minutes in UTC, not 06:00:00.000001",
        ),
        (
            {"times": (time(6, tzinfo=UTC),)},
            "schedule times are whole minutes in UTC, not 06:00:00+00:00",
        ),
        ({"every_seconds": 60, "weekdays": (0,)}, "weekdays need times of day"),
        ({"times": (time(6),), "weekdays": (7,)}, "weekdays are 0 (Monday) to 6 (Sunday)"),
        ({"times": (time(6),), "weekdays": (-1,)}, "weekdays are 0 (Monday) to 6 (Sunday)"),
    ],
)
def test_schedule_rejects_inconsistent_values(kwargs, message):
    with pytest.raises(ValueError) as raised:
        Schedule(**kwargs)
    assert str(raised.value) == message


def test_the_longest_interval_and_the_extreme_weekdays_are_allowed():
    assert Schedule(every_seconds=MAX_INTERVAL_SECONDS).every_seconds == MAX_INTERVAL_SECONDS
    assert Schedule(times=(time(6),), weekdays=(6, 0)).weekdays == (0, 6)
    assert parse_schedule("every 1s").every_seconds == 1


def test_schedule_sorts_and_dedupes_times_and_weekdays():
    assert Schedule(times=(time(18), time(6), time(18))).times == (time(6), time(18))
    assert Schedule(times=(time(3),), weekdays=(3, 0, 3)).weekdays == (0, 3)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


TWICE = Schedule(times=(time(6), time(18)))
SUNDAYS = Schedule(times=(time(3),), weekdays=(6,))


@pytest.mark.parametrize(
    ("spec", "gap"),
    [
        (TWICE, 12 * 3600),
        (Schedule(times=(time(6), time(8))), 22 * 3600),
        (Schedule(every_seconds=20), 20),
        (SUNDAYS, 7 * 86400),
        (Schedule(times=(time(3),), weekdays=(0, 3)), 4 * 86400),  # Thursday to Monday
    ],
)
def test_longest_gap_between_runs(spec, gap):
    assert spec.longest_gap_seconds() == gap


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        (TWICE, utc("2026-11-25T05:59:59"), utc("2026-11-25T06:00:00")),
        (TWICE, utc("2026-11-25T06:00:00"), utc("2026-11-25T18:00:00")),  # strictly after
        (TWICE, utc("2026-11-25T12:00:00"), utc("2026-11-25T18:00:00")),
        (TWICE, utc("2026-11-25T18:00:00"), utc("2026-11-26T06:00:00")),  # across midnight
        (TWICE, utc("2026-12-31T23:00:00"), utc("2027-01-01T06:00:00")),  # across the year
        (TWICE, utc("2028-02-28T19:00:00"), utc("2028-02-29T06:00:00")),  # leap day
        (
            Schedule(times=(time(0),)),
            utc("2026-11-25T00:00:00"),
            utc("2026-11-26T00:00:00"),
        ),
        (
            Schedule(times=(time(23, 59),)),
            utc("2026-11-25T23:59:30"),
            utc("2026-11-26T23:59:00"),
        ),
        (Schedule(every_seconds=20), utc("2026-11-25T23:59:50"), utc("2026-11-26T00:00:10")),
        (
            # an aware non-UTC input is converted: 07:30+02:00 is 05:30 UTC
            TWICE,
            datetime.fromisoformat("2026-11-25T07:30:00+02:00"),
            utc("2026-11-25T06:00:00"),
        ),
        (TWICE, datetime(2026, 11, 25, 19), utc("2026-11-26T06:00:00")),  # naive is UTC
        # 2026-11-25 is a Wednesday
        (SUNDAYS, utc("2026-11-25T12:00:00"), utc("2026-11-29T03:00:00")),
        (SUNDAYS, utc("2026-11-29T03:00:00"), utc("2026-12-06T03:00:00")),  # strictly after
        (SUNDAYS, utc("2026-11-29T02:59:00"), utc("2026-11-29T03:00:00")),
    ],
)
def test_next_run(spec, after, expected):
    got = spec.next_run(after)
    assert got == expected and got.tzinfo is UTC


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kolkata"])
def local_tz(request) -> Iterator[str]:
    """Run the test with the process's local timezone set to each of these."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time_module.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time_module.tzset()


def local_naive(moment: datetime) -> datetime:
    """`schedule` keeps next_run as a naive local time."""
    return moment.astimezone().replace(tzinfo=None)


def test_apply_times_of_day_are_utc_whatever_the_local_zone(local_tz):
    scheduler = schedule.Scheduler()
    calls: list[int] = []
    spec = parse_schedule("18:00, 06:00, 12:30")
    apply(spec, scheduler, lambda: calls.append(1))

    assert len(scheduler.jobs) == 3
    assert {job.unit for job in scheduler.jobs} == {"days"}
    assert sorted(job.at_time for job in scheduler.jobs) == [time(6), time(12, 30), time(18)]
    assert all("orchestrator-cycle" in job.tags for job in scheduler.jobs)
    expected = local_naive(spec.next_run(datetime.now(UTC)))
    assert scheduler.next_run is not None
    assert abs(scheduler.next_run - expected) < timedelta(seconds=2)
    assert calls == []


def test_apply_weekdays_registers_one_job_per_day_and_time(local_tz):
    scheduler = schedule.Scheduler()
    spec = parse_schedule("sun,wed 03:00")
    apply(spec, scheduler, lambda: None, tag="orchestrator-drill")
    assert sorted(job.start_day for job in scheduler.jobs) == ["sunday", "wednesday"]
    assert all("orchestrator-drill" in job.tags for job in scheduler.jobs)
    expected = local_naive(spec.next_run(datetime.now(UTC)))
    assert scheduler.next_run is not None
    assert abs(scheduler.next_run - expected) < timedelta(seconds=2)


@pytest.mark.parametrize(("text", "seconds"), [("every 20s", 20), ("every 4h", 14400)])
def test_apply_interval(text, seconds):
    scheduler = schedule.Scheduler()
    before = datetime.now()
    apply(parse_schedule(text), scheduler, lambda: None)
    [job] = scheduler.jobs
    assert job.unit == "seconds" and job.interval == seconds
    assert scheduler.next_run is not None
    assert abs(scheduler.next_run - (before + timedelta(seconds=seconds))) < timedelta(seconds=2)


def test_a_naive_time_is_utc_whatever_the_local_zone(local_tz):
    assert TWICE.next_run(datetime(2026, 11, 25, 19)) == utc("2026-11-26T06:00:00")
    assert TWICE.next_run(datetime(2026, 11, 25, 5)) == utc("2026-11-25T06:00:00")


def test_apply_interval_tags_its_job():
    scheduler = schedule.Scheduler()
    apply(parse_schedule("every 4h"), scheduler, lambda: None, tag="orchestrator-drill")
    assert [job.tags for job in scheduler.jobs] == [{"orchestrator-drill"}]


def test_applied_job_runs_when_due():
    scheduler = schedule.Scheduler()
    calls: list[int] = []
    apply(Schedule(every_seconds=1), scheduler, lambda: calls.append(1))
    scheduler.run_all()
    assert calls == [1]
