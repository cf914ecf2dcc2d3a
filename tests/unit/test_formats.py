"""One written form each for instants, durations and sizes (alerts, CLI and page alike)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.formats import (
    ago,
    human_age,
    human_seconds,
    human_size,
    iso_z,
    parse_size,
    stamp,
    utc,
)

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 25, 6, 0), NOW),
        (datetime(2026, 11, 25, 7, 0, tzinfo=PARIS), NOW),
        (NOW, NOW),
    ],
)
def test_utc_takes_naive_as_utc_and_converts_aware(moment, expected):
    converted = utc(moment)
    assert converted == expected
    assert converted.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 25, 6, 0, 7, 999_999), "2026-11-25T06:00:07Z"),
        (datetime(2026, 11, 25, 7, 0, tzinfo=PARIS), "2026-11-25T06:00:00Z"),
    ],
)
def test_iso_z_gives_utc_to_the_second_ending_in_z(moment, text):
    assert iso_z(moment) == text


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 25, 6, 0, 59), "2026-11-25 06:00 UTC"),
        (datetime(2026, 11, 25, 0, 30, tzinfo=PARIS), "2026-11-24 23:30 UTC"),
    ],
)
def test_stamp_gives_utc_to_the_minute_for_people(moment, text):
    assert stamp(moment) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (93_533_184, "89.2 MiB"),
        (1.4 * 2**30, "1.4 GiB"),
        (3 * 2**40, "3.0 TiB"),
        (2048 * 2**40, "2048.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_size_uses_binary_units(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"),
        (4.25, "4.2 s"),
        (59.94, "59.9 s"),
        (60, "1 min 00 s"),
        (65, "1 min 05 s"),
        (185, "3 min 05 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (3720, "1 h 02 min"),
    ],
)
def test_human_seconds_reads_like_a_stopwatch(seconds, text):
    assert human_seconds(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (40, "40 s"),
        (119, "119 s"),
        (120, "2 min"),
        (25 * 60, "25 min"),
        (2 * 3600, "2 h"),
        (26 * 3600, "26 h"),
        (30.5 * 3600, "30.5 h"),
        (48 * 3600, "2 d"),
        (4 * 86400, "4 d"),
        (-3 * 3600, "3 h"),
    ],
)
def test_human_age_gives_one_unit(seconds, text):
    assert human_age(seconds) == text


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (NOW - timedelta(seconds=59), "just now"),
        (NOW + timedelta(seconds=59), "just now"),
        (NOW - timedelta(hours=3), "3 h ago"),
        (NOW + timedelta(minutes=5), "in 5 min"),
        (datetime(2026, 11, 25, 3, 0), "3 h ago"),
    ],
)
def test_ago_says_just_now_ago_or_in(moment, text):
    assert ago(moment, NOW) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("3 B", 3),
        ("1k", 1024),
        ("2KiB", 2048),
        ("800MB", 800 * 1024**2),
        ("1.5 GiB", 3 * 1024**3 // 2),
        ("2g", 2 * 1024**3),
        (" 1TB ", 1024**4),
    ],
)
def test_parse_size_reads_binary_units_in_any_case(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "-1G", "1.GB", "1 PB", "1iB", "G"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError, match="is not a size like"):
        parse_size(text)
