"""date_shift on a column of plain dates, computed at once, gives exactly what the one-value
path gives, and leaves to it every value it does not handle."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest

from orchestrator.masking import _dates


def _one_by_one(values: list[bytes], days: list[int]) -> list[bytes]:
    return [_dates.shift(value, offset) for value, offset in zip(values, days, strict=True)]


def test_a_column_of_plain_dates_shifts_as_each_date_alone_would() -> None:
    rng = random.Random(21)
    first, last = date(2, 1, 1).toordinal(), date(9998, 12, 31).toordinal()
    values = [date.fromordinal(rng.randint(first, last)).isoformat().encode() for _ in range(5000)]
    values += [b"2024-02-29", b"2000-02-29", b"1900-02-28", b"2023-12-31", b"0001-12-31"]
    values += [b"9998-06-30", b"1970-01-01", b"2025-03-01", b"1600-02-29", b"2024-01-31"]
    days = [rng.choice([-365, -31, -30, -1, 1, 29, 30, 31, 365]) for _ in values]
    out = _dates.shift_plain_dates(values, np.array(days, np.int64))
    assert out == _one_by_one(values, days)


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        (b"2024-05-17 10:00:00", 3),  # a timestamp: value by value
        (b"0044-03-15 BC", 3),
        (b"infinity", 3),
        (b"2023-02-29", 3),  # not an existing day: the one-value path names the row
        (b"2024-04-31", 3),
        (b"2024-13-01", 3),
        (b"0000-01-01", 3),
        (b"2024-1x-01", 3),
        (b"2024/01/01", 3),
        (b"0001-01-02", -5),  # would leave year 1: BC is written by the one-value path
        (b"9999-12-30", 5),
    ],
)
def test_values_it_does_not_handle_go_back_to_the_one_value_path(value: bytes, offset: int) -> None:
    column = [b"2024-01-01", value, b"2024-01-02"]
    assert _dates.shift_plain_dates(column, np.array([1, offset, 1], np.int64)) is None


def test_an_empty_column_is_left_to_the_one_value_path() -> None:
    assert _dates.shift_plain_dates([], np.array([], np.int64)) is None
