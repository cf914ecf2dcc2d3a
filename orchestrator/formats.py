"""How the tool writes instants, durations and sizes: one form each, for alerts, CLI and page.

Pure functions of their arguments (no clock, no I/O). Durations read as a stopwatch would
(`4.2 s`, `3 min 05 s`), spans in one unit as a person would say them (`26 h`, `4 d`),
sizes in binary units (`89.2 MiB`), instants as ISO-8601 UTC ending in Z for records and
`2026-11-25 06:00 UTC` for people.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "ago",
    "human_age",
    "human_seconds",
    "human_size",
    "iso_z",
    "parse_size",
    "stamp",
    "utc",
]

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>(?:[KMGT]i?)?B?)\s*$", re.IGNORECASE)


def utc(moment: datetime) -> datetime:
    """Give `moment` as an aware datetime in UTC; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """Give `moment` in UTC to the second, ISO-8601 ending in Z, as records write times."""
    return utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def stamp(moment: datetime) -> str:
    """Give `moment` to the minute for people: `2026-11-25 06:00 UTC`."""
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def human_size(size: float) -> str:
    """Give a byte count in binary units: `512 B`, `89.2 MiB`, `1.4 GiB` (TiB at most)."""
    for unit in _SIZE_UNITS[:-1]:
        if abs(size) < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {_SIZE_UNITS[-1]}"


def parse_size(text: str) -> int:
    """Give the byte count a person wrote: `512`, `800MB`, `1.5 GiB`, `2g` (K, M, G and T
    are binary multiples, with or without `i` and `B`, in any case). Raises ValueError
    naming the accepted forms."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 800MB, 1.5GiB or 2G")
    unit = match["unit"].upper().rstrip("B").rstrip("I")
    power = " KMGT".index(unit) if unit else 0
    return int(float(match["number"]) * 1024**power)


def human_seconds(seconds: float) -> str:
    """Give a duration as a stopwatch would: `4.2 s`, `3 min 05 s`, `1 h 02 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _one_decimal(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def human_age(seconds: float) -> str:
    """Give a span (its sign ignored) in one unit, rounded as a person would say it:
    `40 s`, `25 min`, `26 h`, `30.5 h`, `4 d`."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 120 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{_one_decimal(seconds / 3600)} h"
    return f"{_one_decimal(seconds / 86400)} d"


def ago(moment: datetime, now: datetime) -> str:
    """Give how long before `now` `moment` was: `3 h ago`, `just now` (under a minute
    either way), `in 5 min`."""
    seconds = (utc(now) - utc(moment)).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    return f"{human_age(seconds)} ago" if seconds > 0 else f"in {human_age(seconds)}"
