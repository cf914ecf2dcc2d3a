"""Dates and timestamps as COPY writes them under DateStyle ISO, moved by whole days.

`2024-05-17`, `2024-05-17 10:00:00`, `2024-05-17 10:00:00.123+02`, `0044-03-15 BC`,
`2024-05-17 10:00:00+02 BC`, `10000-01-01` all parse; only the date part changes, the rest
of the text is kept as it is.
Years are counted on the proleptic Gregorian calendar, as PostgreSQL does, so BC dates and
years past 9999 (which `datetime.date` cannot hold) shift correctly.
"""

from __future__ import annotations

import re
from typing import TypeVar

import numpy as np
import numpy.typing as npt

N = TypeVar("N", int, "npt.NDArray[np.int64]")  # a day, or a column of them
_DATE = re.compile(rb"(\d{4,})-(\d\d)-(\d\d)")
_TIME = re.compile(rb" \d\d:\d\d:\d\d(?:\.\d{1,6})?(?:[+-]\d\d(?::\d\d(?::\d\d)?)?)?")
_INFINITE = (b"infinity", b"-infinity")
_BC = b" BC"


class NotADate(ValueError):
    """The text is not a date or timestamp in ISO output form (the message holds no value)."""


def shift(text: bytes, days: int) -> bytes:
    """Give `text` with its date moved by `days`; `infinity`/`-infinity` come back unchanged.

    Raises NotADate when `text` is not `YYYY-MM-DD`, optionally followed by a time, a UTC
    offset and ` BC`, or names a day that does not exist.
    """
    if text in _INFINITE:
        return text
    bc = text.endswith(_BC)
    body = text[: -len(_BC)] if bc else text
    match = _DATE.match(body)
    rest = body[match.end() :] if match else b""
    if match is None or (rest and _TIME.fullmatch(rest) is None):
        raise NotADate("not a date or timestamp in ISO form")
    written, month, day = (int(part) for part in match.groups())
    year = 1 - written if bc else written  # astronomical numbering: 1 BC is year 0
    if written == 0 or not 1 <= month <= 12 or not 1 <= day <= _month_length(year, month):
        raise NotADate("not an existing day")
    number = _day_number(year, month, day)
    moved = number + days
    if not _FIRST_DAY <= moved <= _LAST_DAY:  # the other way stays inside PostgreSQL's range
        moved = number - days
    year, month, day = _civil(moved)
    if year <= 0:
        return b"%04d-%02d-%02d%s%s" % (1 - year, month, day, rest, _BC)
    return b"%04d-%02d-%02d%s" % (year, month, day, rest)


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _day_number(year: N, month: N, day: N) -> N:
    """Days since 1970-01-01 of a proleptic Gregorian date (any integer year); of each
    date of whole columns too (numpy's // floors as Python's does)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + 9 - 12 * (month > 2)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    number: N = era * 146097 + day_of_era - 719468
    return number


def _civil(number: N) -> tuple[N, N, N]:
    """The (year, month, day) of a day number from `_day_number` (or of a column of them)."""
    number = number + 719468
    era = number // 146097
    day_of_era = number - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 - 12 * (shifted_month >= 10)
    return year_of_era + era * 400 + (month <= 2), month, day


_FIRST_DAY = _day_number(-4713, 11, 24)  # 4714-11-24 BC, the first day PostgreSQL knows
_LAST_DAY = _day_number(294276, 12, 31)  # the last day a timestamp can hold


_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]  # the digit positions of `YYYY-MM-DD`
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_YEAR_ONE, _YEAR_9999 = _day_number(1, 1, 1), _day_number(9999, 12, 31)
Days = npt.NDArray[np.int64]


def shift_plain_dates(values: list[bytes], days: Days) -> list[bytes] | None:
    """Give `shift(values[i], days[i])` for every value, computed for the whole column at
    once, when every value is a plain `YYYY-MM-DD` of an existing day from year 1 to 9999
    that stays in those years; None otherwise (the caller then goes value by value, which
    handles times, BC, infinity, and names the row of a value that is not a date)."""
    joined = b"".join(values)
    if len(joined) != 10 * len(values) or not values:
        return None
    text = np.frombuffer(joined, np.uint8).reshape(-1, 10)
    digits = text[:, _DIGITS].astype(np.int64) - ord("0")
    if ((digits < 0) | (digits > 9)).any() or (text[:, [4, 7]] != ord("-")).any():
        return None
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month, day = digits[:, 4] * 10 + digits[:, 5], digits[:, 6] * 10 + digits[:, 7]
    if (year < 1).any() or (month < 1).any() or (month > 12).any() or (day < 1).any():
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if (day > _DAYS_IN_MONTH[month] + (leap & (month == 2))).any():
        return None
    moved = _day_number(year, month, day) + days
    if (moved < _YEAR_ONE).any() or (moved > _YEAR_9999).any():
        return None
    return _iso_dates(*_civil(moved))


def _iso_dates(year: Days, month: Days, day: Days) -> list[bytes]:
    """`YYYY-MM-DD` of each (year, month, day), years 1 to 9999."""
    dash = np.full_like(year, ord("-") - ord("0"))
    parts = [year // 1000, year // 100 % 10, year // 10 % 10, year % 10, dash]
    parts += [month // 10, month % 10, dash, day // 10, day % 10]
    joined = (np.stack(parts, axis=1) + ord("0")).astype(np.uint8).tobytes()
    return [joined[start : start + 10] for start in range(0, len(joined), 10)]
