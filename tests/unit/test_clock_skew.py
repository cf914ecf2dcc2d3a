"""catalog.clock_skew: when the host's clock is far enough from the source server's to say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.catalog import clock_skew

SERVER = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (SERVER, None),
        (SERVER + timedelta(seconds=59), None),
        (SERVER + timedelta(minutes=1), None),
        (SERVER + timedelta(minutes=1, seconds=1), timedelta(minutes=1, seconds=1)),
        (SERVER - timedelta(minutes=1, seconds=1), -timedelta(minutes=1, seconds=1)),
        (SERVER + timedelta(days=30), timedelta(days=30)),
        (SERVER - timedelta(hours=3), -timedelta(hours=3)),
        # the same moment in another zone is no skew; a naive time is read as UTC
        (SERVER.astimezone(timezone(timedelta(hours=-5))), None),
        (SERVER.replace(tzinfo=None), None),
        (SERVER.replace(tzinfo=None) + timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_clock_skew_is_reported_only_past_a_minute(host, expected):
    assert clock_skew(host, SERVER) == expected
