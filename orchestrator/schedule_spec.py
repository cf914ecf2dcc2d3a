"""SCHEDULE and DRILL_SCHEDULE: cron expressions (`0 6,18 * * *`, `*/30 * * * *`, `@daily`),
times of day (`06:00,18:00`), on chosen weekdays (`sunday 03:00`, `mon,thu 02:30`), or an
interval (`every 4h`), all in one time zone (SCHEDULE_TZ, default UTC).

`parse_schedule` reads the text and `Schedule.next_run` says when the next run is due
(pure, in UTC). Cron expressions are evaluated by `cronsim` (the evaluator healthchecks.io
uses); times of day are turned into cron expressions, so both behave on daylight-saving
days as Debian's cron does: a time that does not exist that day (02:30 on the spring
change) runs once at the first minute after the gap, a time that happens twice (02:30 on
the autumn change) runs once, at its first occurrence; expressions with a wildcard hour
(`*/30 * * * *`) follow real time and so run in both copies of the repeated hour.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from orchestrator.formats import utc

__all__ = ["Schedule", "check_zone", "parse_schedule"]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_EVERY = re.compile(r"every\s+(?P<n>[0-9]+)\s*(?P<unit>[smh])", re.IGNORECASE)
_TIME = re.compile(r"(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})")
_DAYS_THEN_TIMES = re.compile(r"(?P<days>[A-Za-z]+(?:\s*,\s*[A-Za-z]+)*)\s+(?P<times>[0-9].*)")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FORMS = "06:00,18:00, sunday 03:00, or every 4h / every 30m / every 20s"
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_START = re.compile(r"^\s*[@0-9*]")


MAX_INTERVAL_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True)
class Schedule:
    """One of: a cron expression (`cron`, five fields), times of day (sorted, distinct; on
    `weekdays` only when given, 0 is Monday), or an interval in seconds. Clock times are
    read in the IANA zone `tz`.

    Raises `ValueError` when not exactly one form is given, when the interval is not
    positive, when a time has seconds, microseconds or a timezone, when weekdays come
    without times, when `tz` is not a zone, or when `cron` is not a valid expression.
    """

    times: tuple[time, ...] = ()
    every_seconds: int | None = None
    weekdays: tuple[int, ...] = ()
    cron: str | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if [bool(self.times), self.every_seconds is not None, self.cron is not None].count(
            True
        ) != 1:
            raise ValueError("a schedule needs a cron expression, times of day or an interval")
        if self.every_seconds is not None and self.every_seconds <= 0:
            raise ValueError(f"a schedule interval must be positive, not {self.every_seconds}")
        if self.every_seconds is not None and self.every_seconds > MAX_INTERVAL_SECONDS:
            raise ValueError("a schedule interval must be at most 366 days")
        for moment in self.times:
            if moment.second or moment.microsecond or moment.tzinfo is not None:
                raise ValueError(f"schedule times are whole minutes, not {moment}")
        if self.weekdays and not self.times:
            raise ValueError("weekdays need times of day")
        if any(not 0 <= day <= 6 for day in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        check_zone(self.tz)
        if self.cron is not None:
            _check_cron(self.cron)
        if list(self.times) != sorted(set(self.times)):
            object.__setattr__(self, "times", tuple(sorted(set(self.times))))
        if list(self.weekdays) != sorted(set(self.weekdays)):
            object.__setattr__(self, "weekdays", tuple(sorted(set(self.weekdays))))

    @property
    def is_interval(self) -> bool:
        """True for `every 4h`: runs counted from the loop's start and each run's end."""
        return self.every_seconds is not None

    def describe(self) -> str:
        """Give a short human description: `daily at 06:00, 18:00 UTC`, `every 4h`,
        `on Sunday at 03:00 UTC`, or `cron 0 6,18 * * * (Europe/Berlin)`."""
        if self.every_seconds is not None:
            return f"every {_interval_text(self.every_seconds)}"
        if self.cron is not None:
            return f"cron {self.cron} ({self.tz})"
        at = ", ".join(t.strftime("%H:%M") for t in self.times) + f" {self.tz}"
        if self.weekdays and len(self.weekdays) < len(DAY_NAMES):
            days = ", ".join(DAY_NAMES[d].capitalize() for d in self.weekdays)
            return f"on {days} at {at}"
        return f"daily at {at}"

    def longest_gap_seconds(self) -> float:
        """The longest time between two consecutive runs (an interval's length; for clock
        schedules, the widest gap over the next 15 days from a Monday in January, or over a
        year when runs are rarer than weekly)."""
        if self.every_seconds is not None:
            return float(self.every_seconds)
        start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
        runs = [self.next_run(start)]
        horizon = timedelta(days=15)
        while runs[-1] < start + horizon or len(runs) < 3:
            runs.append(self.next_run(runs[-1]))
            if len(runs) > 2 and runs[-1] - start > timedelta(days=800):
                break
        return max((b - a).total_seconds() for a, b in itertools.pairwise(runs))

    def expressions(self) -> tuple[str, ...]:
        """The cron expressions this clock schedule stands for (none for an interval)."""
        if self.cron is not None:
            return (self.cron,)
        days = ",".join(str((d + 1) % 7) for d in self.weekdays) if self.weekdays else "*"
        return tuple(f"{t.minute} {t.hour} * * {days}" for t in self.times)

    def next_run(self, after: datetime) -> datetime:
        """Give the first run strictly after `after`, as an aware UTC datetime.

        A naive `after` is taken to be UTC. For an interval this is `after` plus the
        interval (the loop counts intervals from its start and from each run's end).
        """
        after = utc(after)
        if self.every_seconds is not None:
            return after + timedelta(seconds=self.every_seconds)
        local = after.astimezone(ZoneInfo(self.tz))
        return min(_next_cron(expression, local) for expression in self.expressions())


def _next_cron(expression: str, after: datetime) -> datetime:
    """The first time strictly after aware `after` that `expression` fires, in UTC."""
    found: datetime = next(CronSim(expression, after))
    return found.astimezone(UTC)


def check_zone(name: str) -> ZoneInfo:
    """Give the IANA zone `name`; raise ValueError saying what is wrong when it is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone name like Europe/Berlin or UTC") from None


def _check_cron(expression: str) -> None:
    """Raise ValueError naming the field of `expression` that is wrong."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has 5 "
            f"({' '.join(CRON_FIELDS)}) or is one of {', '.join(ALIASES)}"
        )
    try:
        CronSim(expression, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"{expression!r}: {_field_problem(str(exc))}") from None


def _field_problem(message: str) -> str:
    """cronsim's `Bad hour` as `the hour field is wrong`."""
    for name in CRON_FIELDS:
        if message.lower() == f"bad {name}":
            return f"the {name} field is wrong (fields: {' '.join(CRON_FIELDS)})"
    return message


def _interval_text(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_schedule(text: str, tz: str = "UTC") -> Schedule:
    """Read a SCHEDULE or DRILL_SCHEDULE value and give the `Schedule`, clock times in `tz`.

    Accepts a cron expression of five fields (`0 6,18 * * *`, `*/30 * * * *`,
    `0 3 * * sun`) or an alias (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`);
    times of day, `HH:MM` (24h) separated by commas, spaces allowed, duplicates dropped
    (`06:00, 18:00`), optionally after weekday names (full or their first three letters,
    comma-separated: `sunday 03:00`, `mon,thu 02:30`); or one interval with a single unit
    and a positive whole number: `every 4h`, `every 30m`, `every 20s`. Raises `ValueError`
    with a one-line message naming the text (and the wrong cron field) otherwise.
    """
    cleaned = text.strip()
    if cleaned.startswith("@") or (
        _CRON_START.match(cleaned) and ":" not in cleaned and len(cleaned.split()) > 1
    ):
        expression = " ".join(ALIASES.get(cleaned.lower(), cleaned).split())
        if cleaned.startswith("@") and cleaned.lower() not in ALIASES:
            raise ValueError(f"{text!r} is not one of {', '.join(ALIASES)}")
        return Schedule(cron=expression, tz=tz)
    problem = f"{text!r} is not a schedule like 0 6,18 * * *, @daily, {FORMS}"
    every = _EVERY.fullmatch(cleaned)
    if every:
        seconds = int(every["n"]) * _UNIT_SECONDS[every["unit"].lower()]
        if seconds <= 0:
            raise ValueError(problem)
        return Schedule(every_seconds=seconds, tz=tz)
    weekdays: tuple[int, ...] = ()
    on_days = _DAYS_THEN_TIMES.fullmatch(cleaned)
    if on_days:
        weekdays = tuple(_weekday(name, problem) for name in on_days["days"].split(","))
        cleaned = on_days["times"]
    return Schedule(times=_times(cleaned, problem), weekdays=weekdays, tz=tz)


def _weekday(name: str, problem: str) -> int:
    name = name.strip().lower()
    for index, day in enumerate(DAY_NAMES):
        if name in (day, day[:3]):
            return index
    raise ValueError(problem)


def _times(cleaned: str, problem: str) -> tuple[time, ...]:
    times: set[time] = set()
    for part in cleaned.split(","):
        match = _TIME.fullmatch(part.strip())
        if not match:
            raise ValueError(problem)
        hour, minute = int(match["h"]), int(match["m"])
        if hour > 23 or minute > 59:
            raise ValueError(problem)
        times.add(time(hour, minute))
    return tuple(sorted(times))
