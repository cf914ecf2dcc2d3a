"""Dates and timestamps as COPY writes them under DateStyle ISO, moved by whole days.

`2024-05-17`, `2024-05-17 10:00:00`, `2024-05-17 10:00:00.123+02`, `0044-03-15 BC`,
`2024-05-17 10:00:00+02 BC`, `10000-01-01` all parse; only the date part changes, the rest
of the text is kept as it is.
Years are counted on the proleptic Gregorian calendar, as PostgreSQL does, so BC dates and
years past 9999 (which `datetime.date` cannot hold) shift correctly.
"""

from __future__ import annotations

import re

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


def _day_number(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any integer year)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil(number: int) -> tuple[int, int, int]:
    """The (year, month, day) of a day number from `_day_number`."""
    number += 719468
    era = number // 146097
    day_of_era = number - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


_FIRST_DAY = _day_number(-4713, 11, 24)  # 4714-11-24 BC, the first day PostgreSQL knows
_LAST_DAY = _day_number(294276, 12, 31)  # the last day a timestamp can hold
