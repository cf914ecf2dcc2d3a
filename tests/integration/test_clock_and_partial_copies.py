"""Faults found by probing whole backups: a host clock that is wrong, a store whose copy of a
parallel backup lost files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Clusters, load_sample

pytestmark = pytest.mark.integration

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def clock_off_by(offset: str) -> dict[str, str]:
    """The environment that makes a process (and its children) see the clock moved by
    `offset` (libfaketime's form: `+30d`, `-2h`)."""
    if not LIBFAKETIME.exists():
        pytest.fail("libfaketime is not installed: run scripts/bootstrap, which installs it")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": offset, "FAKETIME_DONT_RESET": "1"}


def test_a_backup_made_while_the_host_clock_ran_ahead_is_not_dated_in_the_future(
    clusters: Clusters, orch_factory
):
    source = clusters.get(17)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    ahead = orch.ok_process("backup", extra_env=clock_off_by("+30d"))
    fresh = orch.ok("backup").stdout.strip()
    listed = json.loads(orch.ok("list", "--json").stdout)
    assert listed[0]["id"] == fresh, "the backup made now must be the newest"
    created = datetime.fromisoformat(listed[1]["created_at"].replace("Z", "+00:00"))
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)
    assert "backup.clock_skew" in ahead.stderr and '"host_ahead_seconds": 2592' in ahead.stderr
