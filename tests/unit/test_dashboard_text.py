"""The status page's small text helpers: human units, loose values, and cleaning secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.dashboard.text import (
    ago,
    as_number,
    clean,
    first_line,
    human_age,
    human_seconds,
    human_size,
    parse_time,
    safe,
)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (93_533_184, "89.2 MiB"),
        (3 * 2**40, "3.0 TiB"),
    ],
)
def test_human_size_uses_binary_units(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.25, "4.2 s"),
        (59.94, "59.9 s"),
        (65, "1 min 05 s"),
        (3599, "59 min 59 s"),
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
        (25 * 60, "25 min"),
        (26 * 3600, "26 h"),
        (30.5 * 3600, "30.5 h"),
        (4 * 86400, "4 d"),
        (-3 * 3600, "3 h"),
    ],
)
def test_human_age_gives_one_unit(seconds, text):
    assert human_age(seconds) == text


def test_ago_says_just_now_ago_or_in():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert ago(now - timedelta(seconds=30), now) == "just now"
    assert ago(now - timedelta(hours=3), now) == "3 h ago"
    assert ago(now + timedelta(minutes=5), now) == "in 5 min"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T06:00:00Z", datetime(2026, 11, 25, 6, tzinfo=UTC)),
        ("2026-11-25T08:00:00+02:00", datetime(2026, 11, 25, 6, tzinfo=UTC)),
        ("2026-11-25T06:00:00", datetime(2026, 11, 25, 6, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
        (1764050400, None),
    ],
)
def test_parse_time_gives_utc_or_none(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.5, 2.5), (True, None), ("4", None), (float("nan"), None), (None, None)],
)
def test_as_number_takes_only_finite_numbers(value, expected):
    assert as_number(value) == expected


def test_first_line_skips_blank_lines_and_cuts_long_ones():
    assert first_line("\n  \n first \nsecond") == "first"
    assert first_line("x" * 400) == "x" * 299 + "…"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@db:5432/shop", "postgresql://db:5432/shop"),
        ("postgresql://u@db/shop", "postgresql://db/shop"),
        ("at postgres://u:p@ss@db/x now", "at postgres://db/x now"),  # an unencoded @
        ("postgres://u:pa/ss@db/x", "postgres://db/x"),  # an unencoded /
        ("https://hc.io/ping/abc?token=t0k", "https://hc.io/ping/abc?…"),
        ("host=db password='a b' user=x", "host=db password=*** user=x"),
        ("PGPASSWORD=pw1 pg_dump", "PGPASSWORD=*** pg_dump"),
        ("aws_secret_access_key: k3y, region", "aws_secret_access_key: ***, region"),
        ("FATAL: password authentication failed", "FATAL: password authentication failed"),
        ("mailto:ops@example.com", "mailto:ops@example.com"),
    ],
)
def test_clean_masks_secrets_and_cuts_credentials_from_urls(text, expected):
    assert clean(text) == expected


def test_safe_escapes_after_cleaning():
    assert safe('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
