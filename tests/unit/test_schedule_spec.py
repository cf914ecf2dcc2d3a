"""SCHEDULE parsing and next runs: today's forms, cron expressions, SCHEDULE_TZ and the
daylight-saving days of Europe/Berlin."""

from __future__ import annotations

import os
import time as time_module
from collections.abc import Iterator
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from orchestrator.errors import ConfigError
from orchestrator.schedule_spec import MAX_INTERVAL_SECONDS, Schedule, parse_schedule
from orchestrator.scheduler import Scheduled, due_job
from orchestrator.settings import load_settings


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
        "daily",
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
        "06:00:00",
        "06:00,",
        "06:00,,18:00",
        "06:00 18:00",
        "6pm",
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
        f"{text!r} is not a schedule like 0 6,18 * * *, @daily, 06:00,18:00, sunday 03:00, "
        "or every 4h / every 30m / every 20s"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a schedule needs a cron expression, times of day or an interval"),
        (
            {"times": (time(6),), "every_seconds": 60},
            "a schedule needs a cron expression, times of day or an interval",
        ),
        ({"every_seconds": 0}, "a schedule interval must be positive, not 0"),
        (
            {"every_seconds": MAX_INTERVAL_SECONDS + 1},
            "a schedule interval must be at most 366 days",
        ),
        ({"times": (time(6, 0, 30),)}, "schedule times are whole minutes, not 06:00:30"),
        (
            {"times": (time(6, 0, 0, 1),)},
            "schedule times are whole minutes, not 06:00:00.000001",
        ),
        (
            {"times": (time(6, tzinfo=UTC),)},
            "schedule times are whole minutes, not 06:00:00+00:00",
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 6,18 * * *", "0 6,18 * * *"),
        ("*/30  *  * * *", "*/30 * * * *"),
        ("0 3 * * 0", "0 3 * * 0"),
        ("0 3 * * sun", "0 3 * * sun"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@YEARLY", "0 0 1 1 *"),
    ],
)
def test_cron_expressions_and_aliases(text, expected):
    parsed = parse_schedule(text, "Europe/Berlin")
    assert parsed.cron == expected and parsed.tz == "Europe/Berlin"
    assert parsed.describe() == f"cron {expected} (Europe/Berlin)"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("60 * * * *", "minute"),
        ("0 25 * * *", "hour"),
        ("0 6 32 * *", "day-of-month"),
        ("0 6 * 13 *", "month"),
        ("0 6 * * 8", "day-of-week"),
        ("0 6 31 2 *", "day-of-month"),  # a date that never comes
        ("*/0 * * * *", "minute"),
    ],
)
def test_bad_cron_field_is_named(text, field):
    with pytest.raises(ValueError, match=f"the {field} field is wrong"):
        parse_schedule(text)


@pytest.mark.parametrize("text", ["0 6 * *", "0 6 * * * *", "@often", "* *"])
def test_cron_with_wrong_shape_is_refused(text):
    with pytest.raises(ValueError, match=r"fields|is not one of"):
        parse_schedule(text)


def test_unknown_zone_is_refused():
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a time zone"):
        parse_schedule("0 6 * * *", "Mars/Olympus")


def berlin(text: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin"), fold=fold)


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


def test_a_naive_time_is_utc_whatever_the_local_zone(local_tz):
    assert TWICE.next_run(datetime(2026, 11, 25, 19)) == utc("2026-11-26T06:00:00")
    assert TWICE.next_run(datetime(2026, 11, 25, 5)) == utc("2026-11-25T06:00:00")


def runs(spec: Schedule, after: datetime, until: datetime) -> list[str]:
    """Every run of `spec` after `after` up to `until`, as UTC texts."""
    found, moment = [], after
    while (moment := spec.next_run(moment)) <= until:
        found.append(moment.strftime("%H:%M"))
    return found


# 2026-03-29: Berlin's clocks jump from 02:00 CET (01:00 UTC) to 03:00 CEST.
SPRING = (berlin("2026-03-29T00:00"), berlin("2026-03-29T06:00"))
# 2026-10-25: Berlin's clocks go back from 03:00 CEST (01:00 UTC) to 02:00 CET.
AUTUMN = (berlin("2026-10-25T00:00"), berlin("2026-10-25T06:00"))


@pytest.mark.parametrize(
    ("text", "day", "expected_utc"),
    [
        # a time that does not exist runs once, at the end of the gap (03:00 CEST = 01:00 UTC)
        ("30 2 * * *", SPRING, ["01:00"]),
        ("02:30", SPRING, ["01:00"]),
        ("0 2 * * *", SPRING, ["01:00"]),
        # times around the gap are untouched
        ("30 1 * * *", SPRING, ["00:30"]),
        ("0 3 * * *", SPRING, ["01:00"]),
        # a wildcard hour follows real time: the hour that does not exist is simply absent
        ("0 * * * *", SPRING, ["00:00", "01:00", "02:00", "03:00", "04:00"]),
        # a time that happens twice runs once, at its first occurrence (02:30 CEST)
        ("30 2 * * *", AUTUMN, ["00:30"]),
        ("02:30", AUTUMN, ["00:30"]),
        ("0 6,18 * * *", AUTUMN, ["05:00"]),  # 06:00 CET is 05:00 UTC
        # a wildcard hour follows real time: both copies of 02:00 run (00:00 and 01:00 UTC)
        ("0 * * * *", AUTUMN, ["23:00", "00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]),
    ],
)
def test_berlin_daylight_saving_days_behave_as_cron(text, day, expected_utc):
    spec = parse_schedule(text, "Europe/Berlin")
    assert runs(spec, day[0], day[1]) == expected_utc


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        # 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer
        ("0 6,18 * * *", utc("2026-03-28T06:00:00"), utc("2026-03-28T17:00:00")),
        ("0 6,18 * * *", utc("2026-03-28T17:00:00"), utc("2026-03-29T04:00:00")),
        ("06:00", utc("2026-10-25T00:00:00"), utc("2026-10-25T05:00:00")),
        ("sunday 03:00", utc("2026-10-20T00:00:00"), utc("2026-10-25T02:00:00")),
        ("@daily", utc("2026-07-01T12:00:00"), utc("2026-07-01T22:00:00")),
        ("every 4h", utc("2026-03-29T00:30:00"), utc("2026-03-29T04:30:00")),  # real time
    ],
)
def test_clock_times_are_read_in_schedule_tz(text, after, expected):
    got = parse_schedule(text, "Europe/Berlin").next_run(after)
    assert got == expected and got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "gap"),
    [
        ("0 6,18 * * *", 12 * 3600),
        ("@weekly", 7 * 86400),
        ("*/1 * * * *", 60),
        ("0 6 * * 1-5", 3 * 86400),  # Friday to Monday
        ("mon,thu 02:30", 4 * 86400),  # Thursday to Monday
        ("0 3 1,15 * *", 17 * 86400),  # the 15th to the 1st of a 31-day month
        ("@monthly", 31 * 86400),
        ("@yearly", 366 * 86400),  # 2028 is a leap year: the horizon reaches past it
    ],
)
def test_cron_longest_gap(text, gap):
    assert parse_schedule(text).longest_gap_seconds() == gap


def job(name: str, due: str) -> Scheduled:
    return Scheduled(name, Schedule(every_seconds=60), lambda: None, utc(due))


@pytest.mark.parametrize(
    ("dues", "now", "expected"),
    [
        (("2026-01-01T06:00:00", "2026-01-01T07:00:00"), "2026-01-01T05:59:59", None),
        (("2026-01-01T06:00:00", "2026-01-01T07:00:00"), "2026-01-01T06:00:00", "cycle"),
        (("2026-01-01T06:00:00", "2026-01-01T06:00:00"), "2026-01-01T06:00:00", "cycle"),
        (("2026-01-01T06:00:00", "2026-01-01T05:00:00"), "2026-01-01T06:30:00", "drill"),
    ],
)
def test_due_job_is_the_earliest_due_and_the_cycle_on_a_tie(dues, now, expected):
    jobs = [job("cycle", dues[0]), job("drill", dues[1])]
    found = due_job(jobs, utc(now))
    assert (found.name if found else None) == expected


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SCHEDULE", "0 25 * * *", "SCHEDULE: '0 25 * * *': the hour field is wrong"),
        ("DRILL_SCHEDULE", "0 6 * * 9", "DRILL_SCHEDULE: '0 6 * * 9': the day-of-week field"),
        ("SCHEDULE_TZ", "Europe/Berlinn", "SCHEDULE_TZ: 'Europe/Berlinn' is not a time zone"),
    ],
)
def test_bad_schedule_settings_are_one_line_naming_the_setting(
    variable, value, expected, monkeypatch
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(env_file=None)
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


def test_schedule_tz_applies_to_both_schedules(monkeypatch):
    monkeypatch.setenv("SCHEDULE", "0 6 * * *")
    monkeypatch.setenv("DRILL_SCHEDULE", "sunday 09:00")
    monkeypatch.setenv("SCHEDULE_TZ", "Europe/Berlin")
    settings = load_settings(env_file=None)
    drills = settings.drill_plan()
    assert (
        settings.cycle_schedule().tz == "Europe/Berlin" and drills and drills.tz == "Europe/Berlin"
    )
