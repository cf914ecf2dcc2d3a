"""The status page's small text helpers: loose values and cleaning secrets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.dashboard.text import as_number, clean, first_line, parse_time, safe


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
