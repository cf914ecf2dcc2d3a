"""SCHEDULE and DRILL_SCHEDULE: times of day in UTC (`06:00,18:00`), on chosen weekdays
(`sunday 03:00`, `mon,thu 02:30`), or an interval (`every 4h`).

`parse_schedule` reads the text, `Schedule.next_run` says when the next run is due (pure,
UTC), and `apply` registers a job on a `schedule.Scheduler`. Times of day are registered
with the `UTC` timezone (the `schedule` library resolves it through `pytz`), so they mean
UTC whatever the process's local timezone is.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import schedule

__all__ = ["Schedule", "apply", "parse_schedule"]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_EVERY = re.compile(r"every\s+(?P<n>[0-9]+)\s*(?P<unit>[smh])", re.IGNORECASE)
_TIME = re.compile(r"(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})")
_DAYS_THEN_TIMES = re.compile(r"(?P<days>[A-Za-z]+(?:\s*,\s*[A-Za-z]+)*)\s+(?P<times>[0-9].*)")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
JOB_TAG = "orchestrator-cycle"
FORMS = "06:00,18:00, sunday 03:00, or every 4h / every 30m / every 20s"


MAX_INTERVAL_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True)
class Schedule:
    """Either times of day in UTC (sorted, distinct; on `weekdays` only when given, 0 is
    Monday) or an interval in seconds, not both.

    Raises `ValueError` when neither or both are given, when the interval is not positive,
    when a time has seconds, microseconds or a timezone, or when weekdays come without times.
    """

    times: tuple[time, ...] = ()
    every_seconds: int | None = None
    weekdays: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.times) == (self.every_seconds is not None):
            raise ValueError("a schedule needs either times of day or an interval, not both")
        if self.every_seconds is not None and self.every_seconds <= 0:
            raise ValueError(f"a schedule interval must be positive, not {self.every_seconds}")
        if self.every_seconds is not None and self.every_seconds > MAX_INTERVAL_SECONDS:
            raise ValueError("a schedule interval must be at most 366 days")
        for moment in self.times:
            if moment.second or moment.microsecond or moment.tzinfo is not None:
                raise ValueError(f"schedule times are whole minutes in UTC, not {moment}")
        if self.weekdays and not self.times:
            raise ValueError("weekdays need times of day")
        if any(not 0 <= day <= 6 for day in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        if list(self.times) != sorted(set(self.times)):
            object.__setattr__(self, "times", tuple(sorted(set(self.times))))
        if list(self.weekdays) != sorted(set(self.weekdays)):
            object.__setattr__(self, "weekdays", tuple(sorted(set(self.weekdays))))

    def describe(self) -> str:
        """Give a short human description: `daily at 06:00, 18:00 UTC`, `every 4h`, or
        `on Sunday at 03:00 UTC`."""
        if self.every_seconds is not None:
            return f"every {_interval_text(self.every_seconds)}"
        at = ", ".join(t.strftime("%H:%M") for t in self.times) + " UTC"
        if self.weekdays and len(self.weekdays) < len(DAY_NAMES):
            days = ", ".join(DAY_NAMES[d].capitalize() for d in self.weekdays)
            return f"on {days} at {at}"
        return f"daily at {at}"

    def longest_gap_seconds(self) -> float:
        """The longest time between two consecutive runs (an interval's length; for times of
        day, the widest gap over a week, wrapping around)."""
        if self.every_seconds is not None:
            return float(self.every_seconds)
        start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
        runs = [self.next_run(start)]
        while runs[-1] < start + timedelta(days=15):
            runs.append(self.next_run(runs[-1]))
        return max((b - a).total_seconds() for a, b in itertools.pairwise(runs))

    def next_run(self, after: datetime) -> datetime:
        """Give the first run strictly after `after`, as an aware UTC datetime.

        A naive `after` is taken to be UTC. For an interval this is `after` plus the
        interval (the loop counts intervals from registration and from each run's end).
        """
        after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        if self.every_seconds is not None:
            return after + timedelta(seconds=self.every_seconds)
        day = after.date()
        for offset in range(8):
            date = day + timedelta(days=offset)
            if self.weekdays and date.weekday() not in self.weekdays:
                continue
            for moment in self.times:
                candidate = datetime.combine(date, moment, tzinfo=UTC)
                if candidate > after:
                    return candidate
        raise AssertionError("unreachable: a later time exists within a week")


def _interval_text(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_schedule(text: str) -> Schedule:
    """Read a SCHEDULE or DRILL_SCHEDULE value and give the `Schedule`.

    Accepts times of day in UTC, `HH:MM` (24h) separated by commas, spaces allowed,
    duplicates dropped (`06:00, 18:00`), optionally after weekday names (full or their
    first three letters, comma-separated: `sunday 03:00`, `mon,thu 02:30`); or one
    interval with a single unit and a positive whole number: `every 4h`, `every 30m`,
    `every 20s`. Raises `ValueError` with a one-line message naming the text otherwise.
    """
    cleaned = text.strip()
    problem = f"{text!r} is not a schedule like {FORMS}"
    every = _EVERY.fullmatch(cleaned)
    if every:
        seconds = int(every["n"]) * _UNIT_SECONDS[every["unit"].lower()]
        if seconds <= 0:
            raise ValueError(problem)
        return Schedule(every_seconds=seconds)
    weekdays: tuple[int, ...] = ()
    on_days = _DAYS_THEN_TIMES.fullmatch(cleaned)
    if on_days:
        weekdays = tuple(_weekday(name, problem) for name in on_days["days"].split(","))
        cleaned = on_days["times"]
    return Schedule(times=_times(cleaned, problem), weekdays=weekdays)


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


def apply(
    schedule_obj: Schedule,
    scheduler: schedule.Scheduler,
    job: Callable[[], None],
    tag: str = JOB_TAG,
) -> None:
    """Register `job` on `scheduler` according to `schedule_obj`, tagged `tag`.

    Times of day become `scheduler.every().day.at("HH:MM", "UTC")` jobs (one per time, or
    one per weekday and time: `every().sunday.at(...)`; the `schedule` library needs `pytz`
    for the timezone); an interval becomes `scheduler.every(n).seconds`. Raises whatever
    `schedule` raises for a job it cannot register (not expected for a valid `Schedule`).
    """
    if schedule_obj.every_seconds is not None:
        scheduler.every(schedule_obj.every_seconds).seconds.do(job).tag(tag)
        return
    for moment in schedule_obj.times:
        at = moment.strftime("%H:%M")
        if not schedule_obj.weekdays or len(schedule_obj.weekdays) == len(DAY_NAMES):
            scheduler.every().day.at(at, "UTC").do(job).tag(tag)
            continue
        for day in schedule_obj.weekdays:
            getattr(scheduler.every(), DAY_NAMES[day]).at(at, "UTC").do(job).tag(tag)
