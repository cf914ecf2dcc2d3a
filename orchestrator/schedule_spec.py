"""The SCHEDULE setting: times of day in UTC (`06:00,18:00`) or an interval (`every 4h`).

`parse_schedule` reads the text, `Schedule.next_run` says when the next cycle is due (pure,
UTC), and `apply` registers a job on a `schedule.Scheduler`. Times of day are registered
with the `UTC` timezone (the `schedule` library resolves it through `pytz`), so they mean
UTC whatever the process's local timezone is.
"""

from __future__ import annotations

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
JOB_TAG = "orchestrator-cycle"


MAX_INTERVAL_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True)
class Schedule:
    """Either times of day in UTC (sorted, distinct) or an interval in seconds, not both.

    Raises `ValueError` when neither or both are given, when the interval is not positive,
    or when a time has seconds, microseconds or a timezone.
    """

    times: tuple[time, ...] = ()
    every_seconds: int | None = None

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
        if list(self.times) != sorted(set(self.times)):
            object.__setattr__(self, "times", tuple(sorted(set(self.times))))

    def describe(self) -> str:
        """Give a short human description: `daily at 06:00, 18:00 UTC` or `every 4h`."""
        if self.every_seconds is not None:
            return f"every {_interval_text(self.every_seconds)}"
        return "daily at " + ", ".join(t.strftime("%H:%M") for t in self.times) + " UTC"

    def next_run(self, after: datetime) -> datetime:
        """Give the first run strictly after `after`, as an aware UTC datetime.

        A naive `after` is taken to be UTC. For an interval this is `after` plus the
        interval (the loop counts intervals from registration and from each run's end).
        """
        after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        if self.every_seconds is not None:
            return after + timedelta(seconds=self.every_seconds)
        day = after.date()
        for offset in (0, 1):
            for moment in self.times:
                candidate = datetime.combine(day + timedelta(days=offset), moment, tzinfo=UTC)
                if candidate > after:
                    return candidate
        raise AssertionError("unreachable: a later time exists on the next day")


def _interval_text(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_schedule(text: str) -> Schedule:
    """Read a SCHEDULE value and give the `Schedule`.

    Accepts times of day in UTC, `HH:MM` (24h) separated by commas, spaces allowed,
    duplicates dropped (`06:00, 18:00`); or one interval with a single unit and a positive
    whole number: `every 4h`, `every 30m`, `every 20s`. Raises `ValueError` with a
    one-line message naming the text otherwise.
    """
    cleaned = text.strip()
    problem = f"{text!r} is not a schedule like 06:00,18:00 or every 4h / every 30m / every 20s"
    every = _EVERY.fullmatch(cleaned)
    if every:
        seconds = int(every["n"]) * _UNIT_SECONDS[every["unit"].lower()]
        if seconds <= 0:
            raise ValueError(problem)
        return Schedule(every_seconds=seconds)
    times: set[time] = set()
    for part in cleaned.split(","):
        match = _TIME.fullmatch(part.strip())
        if not match:
            raise ValueError(problem)
        hour, minute = int(match["h"]), int(match["m"])
        if hour > 23 or minute > 59:
            raise ValueError(problem)
        times.add(time(hour, minute))
    return Schedule(times=tuple(sorted(times)))


def apply(schedule_obj: Schedule, scheduler: schedule.Scheduler, job: Callable[[], None]) -> None:
    """Register `job` on `scheduler` according to `schedule_obj`.

    Times of day become `scheduler.every().day.at("HH:MM", "UTC")` jobs (one per time;
    the `schedule` library needs `pytz` for the timezone); an interval becomes
    `scheduler.every(n).seconds`. Every job is tagged `orchestrator-cycle`. Raises
    whatever `schedule` raises for a job it cannot register (not expected for a valid
    `Schedule`).
    """
    if schedule_obj.every_seconds is not None:
        scheduler.every(schedule_obj.every_seconds).seconds.do(job).tag(JOB_TAG)
        return
    for moment in schedule_obj.times:
        scheduler.every().day.at(moment.strftime("%H:%M"), "UTC").do(job).tag(JOB_TAG)
