"""Faults found by probing whole backups and restores: a host clock that is wrong, a restore
killed where it could not clean up, odd table names, many small files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.restore_plan import staging_name
from orchestrator.storage import open_storage
from orchestrator.storage.base import S3Options
from tests.conftest import Clusters, load_sample
from tests.harness import s3
from tests.harness.running import wait_for
from tests.harness.targets import databases, fresh_target
from tests.harness.wrappers import wrap_tool

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


def staging_copies(cluster, target: str) -> list[str]:
    return [d for d in databases(cluster) if d.startswith(f"{target}__restore_")]


def test_a_staging_copy_left_by_a_killed_run_is_dropped_by_the_next_but_a_live_one_is_not(
    clusters: Clusters, orch_factory, tmp_path
):
    source, target_c = clusters.get(17), clusters.get(15)
    db, target_db = load_sample(source), fresh_target(target_c)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), BACKUP_DATABASE_URL=target_c.url(target_db)
    )
    orch.ok("backup")
    stalled = wrap_tool(tmp_path / "stalled-bin", source.bin_dir, "pg_restore", "sleep 60\n")
    first = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "restore", "--target", "backup"],
        cwd=orch.cwd,
        env=orch.environment({"PG_BIN_DIRS": str(stalled)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_for(lambda: staging_copies(target_c, target_db), 30)
        live = staging_copies(target_c, target_db)
        beside = orch.run("restore", "--target", "backup")  # refused: leaves it alone
        assert beside.returncode == 3, beside.stderr[-2000:]
        assert staging_copies(target_c, target_db) == live
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # as the OOM killer or a lost node would
        first.wait()
    assert wait_for(lambda: not sessions_on(target_c, live[0]), 10)
    assert staging_copies(target_c, target_db) == live, "a killed run cannot clean up"
    orch.ok("restore", "--target", "backup")
    assert staging_copies(target_c, target_db) == []
    assert target_c.psql("SELECT count(*) FROM sales.orders", target_db) == "5000"
    left_by_a_drill = staging_name(f"drill_{db}", "0badcafe")
    target_c.create_database(left_by_a_drill)
    orch.ok("drill")
    assert left_by_a_drill not in databases(target_c)


def sessions_on(cluster, database: str) -> int:
    return int(cluster.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_tables_whose_names_hold_line_breaks_are_counted_and_found_by_the_drill(
    clusters: Clusters, orch_factory, tmp_path, jobs
):
    source = clusters.get(17)
    db = load_sample(source)
    source.psql(
        'CREATE SCHEMA "odd\rschema"; CREATE TABLE public."line\nbreak" (id int);'
        ' INSERT INTO public."line\nbreak" VALUES (1), (2);'
        ' CREATE TABLE "odd\rschema"."cr\rname" (id int);'
        ' INSERT INTO "odd\rschema"."cr\rname" VALUES (3);',
        db,
    )
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), BACKUP_DATABASE_URL=source.url(), DUMP_JOBS=jobs
    )
    orch.ok("backup")
    stored = next((tmp_path / "store").rglob("*.manifest.json"))
    counts = json.loads(stored.read_text())["row_counts"]
    assert counts["public.line\nbreak"] == 2 and counts["odd\rschema.cr\rname"] == 1
    drill = json.loads(orch.ok("drill", "--json").stdout)
    assert drill["problems"] == [] and drill["tables"] == len(counts)


def test_small_files_reach_an_s3_store_without_waiting_a_poll_interval_each(
    s3_server, bucket, tmp_path, monkeypatch
):
    """A parallel dump stores one object per table: hundreds of small files. Each took at
    least 0.1 s (the wait polled that often), so 520 files of 11 MB took 27 s after a 2 s
    pg_dump."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_storage(f"s3://{bucket}/small", S3Options(endpoint_url=s3_server.endpoint))
    small = tmp_path / "1234.dat.zst"
    small.write_bytes(os.urandom(3000))
    store.put_file("warm-up", small)
    started = time.monotonic()
    for number in range(20):
        store.put_file(f"f{number}", small)
    assert time.monotonic() - started < 1.0
    assert store.size_of("f19") == 3000


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on a 4 MiB tmpfs, as a WORK_DIR that fills up (skipped where this process
    may not mount one)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()!r}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def test_a_full_work_dir_is_named_and_never_taken_for_a_damaged_copy(
    clusters: Clusters, orch_factory, tmp_path, small_disk
):
    source = clusters.get(17)
    db = load_sample(source)
    source.psql(
        "CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v"
        " FROM generate_series(1, 150000)",
        db,
    )
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=source.url(),
        STORAGE_URL_2=f"file://{tmp_path}/store2",
    )
    orch.ok("backup")
    full = {"WORK_DIR": str(small_disk)}
    for command in (["verify", "latest"], ["drill"]):
        result = orch.run(*command, extra_env=full)
        assert result.returncode == 1, result.stdout
        last = (result.stderr.strip().splitlines() or [""])[-1]
        assert "No space left on device" in last and "WORK_DIR" in last, last
        assert "store.fallback" not in result.stderr and "failed" not in result.stdout
    assert list(small_disk.iterdir()) == []
