"""Two runs at once on the same backups: one goes on, the other refuses (exit 3) naming it,
and no backup is lost, half-visible or claimed by both."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Clusters, load_sample, s3_env
from tests.harness.faulty_proxy import FaultyProxy
from tests.harness.keys import make_key
from tests.harness.targets import fresh_target
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


def test_two_backups_at_once_never_share_an_id_the_second_is_refused(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    slow = wrap_tool(tmp_path / "bin", source.bin_dir, "pg_dump", 'sleep 1\nexec "$REAL" "$@"\n')
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        DUMP_JOBS="2",  # a directory backup: its id is taken before its one-second dump
        PG_BIN_DIRS=str(slow),
        **s3_env(s3_server, bucket),
    )
    time.sleep(1.4 - time.time() % 1)  # both name their backup in the same second
    runs = [orch.start("backup") for _ in range(2)]
    done = [(*run.communicate(timeout=120), run.returncode) for run in runs]
    assert sorted(code for _out, _err, code in done) == [0, 3], [d[1][-1500:] for d in done]
    (kept,) = [out.strip() for out, _err, code in done if code == 0]
    (refused,) = [err.strip().splitlines()[-1] for _out, err, code in done if code == 3]
    assert "holds the lock of database" in refused and "backup (pid" in refused
    assert [b["id"] for b in json.loads(orch.ok("list", "--json").stdout)] == [kept]
    assert orch.run("verify", kept).returncode == 0


def test_two_restores_into_one_target_at_once_the_second_is_refused_and_dev_is_whole(
    clusters: Clusters, orch_factory, tmp_path
):
    cluster = clusters.get(15)
    db = load_sample(cluster)
    dev_db = fresh_target(cluster)
    slow = wrap_tool(tmp_path / "bin", cluster.bin_dir, "pg_restore", 'sleep 1\nexec "$REAL" "$@"')
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DEV_DATABASE_URL=cluster.url(dev_db),
        PG_BIN_DIRS=str(slow),
    )
    orch.ok("backup")
    runs = [orch.start("restore", "--target", "dev") for _ in range(2)]
    done = [(*run.communicate(timeout=120), run.returncode) for run in runs]
    assert sorted(code for _out, _err, code in done) == [0, 3], [d[1][-1500:] for d in done]
    (refused,) = [err.strip().splitlines()[-1] for _out, err, code in done if code == 3]
    assert f"another restore into {dev_db}" in refused, refused
    count = "SELECT count(*) FROM customers"
    assert cluster.psql(count, dev_db) == cluster.psql(count, db)
    names = cluster.psql("SELECT string_agg(datname, ' ') FROM pg_database").split()
    assert sorted(n for n in names if n.startswith(dev_db)) == [dev_db, f"{dev_db}_previous"]


@pytest.mark.parametrize(
    ("command", "jobs"), [("restore", "1"), ("restore", "2"), ("fetch", "2"), ("verify", "1")]
)
def test_a_read_of_a_backup_that_rekey_replaces_meanwhile_reads_the_new_copy(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path, command, jobs
):
    cluster = clusters.get(15)
    db = load_sample(cluster)
    dev_db = fresh_target(cluster)
    old, new = make_key(tmp_path, "old"), make_key(tmp_path, "new")
    both = tmp_path / "both.txt"  # the identities while the key is rotated
    both.write_text(old.identity_file.read_text() + new.identity_file.read_text())
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DEV_DATABASE_URL=cluster.url(dev_db),
        DUMP_JOBS=jobs,
        ARCHIVE_RECIPIENTS=old.recipient,
        ARCHIVE_IDENTITY_FILE=str(both),
        **s3_env(s3_server, bucket),
    )
    backup_id = orch.ok("backup").stdout.strip()
    proxy = FaultyProxy(s3_server.endpoint)
    reads: list[str] = []
    proxy.slow = lambda method, path: method == "GET" and ".age" in path and not reads.append(path)
    proxy.delay = 1.5  # each read of an encrypted object waits: the rekey goes first
    args = {
        "restore": ["--target", "dev"],
        "fetch": ["latest", "-o", str(tmp_path)],
        "verify": ["latest"],
    }[command]
    try:
        reading = orch.start(command, *args, extra_env={"S3_ENDPOINT_URL": proxy.endpoint})
        deadline = time.monotonic() + 30
        while not reads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reads, reading.communicate(timeout=5)[1][-2000:]
        orch.ok("rekey", extra_env={"ARCHIVE_RECIPIENTS": new.recipient})
        _out, err = reading.communicate(timeout=120)
    finally:
        proxy.stop()
    assert reading.returncode == 0, err[-2000:]
    if command == "fetch":
        assert (tmp_path / f"{backup_id}.d" / "toc.dat").is_file()
    if command != "restore":
        return
    count = "SELECT count(*) FROM customers"
    assert cluster.psql(count, dev_db) == cluster.psql(count, db)


def test_prune_while_a_backup_uploads_is_refused_and_the_backup_completes(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    cluster = clusters.get(15)
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(load_sample(cluster)),
        DUMP_JOBS="2",
        **s3_env(s3_server, bucket),
    )
    older = orch.ok("backup").stdout.strip()
    proxy = FaultyProxy(s3_server.endpoint)
    puts: list[str] = []
    proxy.slow = lambda method, path: (
        method == "PUT" and "toc.dat" in path and not puts.append(path)
    )
    proxy.delay = 2.0  # its data files are stored, its table of contents and manifest not yet
    try:
        running = orch.start("backup", extra_env={"S3_ENDPOINT_URL": proxy.endpoint})
        deadline = time.monotonic() + 30
        while not puts and time.monotonic() < deadline:
            time.sleep(0.02)
        assert puts, running.communicate(timeout=5)[1][-2000:]
        pruned = orch.run("prune", extra_env={"KEEP_LAST": "1", "KEEP_DAILY": "0"})
        out, err = running.communicate(timeout=60)
    finally:
        proxy.stop()
    assert pruned.returncode == 3, pruned.stdout + pruned.stderr[-2000:]
    assert "prune refused: backup (pid" in pruned.stderr.splitlines()[-1]
    assert running.returncode == 0, err[-2000:]
    newer = out.strip()
    listed = [b["id"] for b in json.loads(orch.ok("list", "--json").stdout)]
    assert listed == [newer, older]
    assert orch.run("verify", newer).returncode == 0


def test_a_restore_of_a_backup_that_prune_removes_meanwhile_says_so_and_keeps_dev(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    cluster = clusters.get(15)
    db = load_sample(cluster)
    dev_db = fresh_target(cluster)
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DEV_DATABASE_URL=cluster.url(dev_db),
        **s3_env(s3_server, bucket),
    )
    older = orch.ok("backup").stdout.strip()
    orch.ok("backup")
    proxy = FaultyProxy(s3_server.endpoint)
    reads: list[str] = []
    proxy.slow = lambda method, path: method == "GET" and ".dump" in path and not reads.append(path)
    proxy.delay = 1.0  # the read of the dump waits: the prune goes first
    try:
        restore = orch.start(
            "restore",
            "--target",
            "dev",
            "--from",
            older,
            extra_env={"S3_ENDPOINT_URL": proxy.endpoint},
        )
        deadline = time.monotonic() + 30
        while not reads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reads, restore.communicate(timeout=5)[1][-2000:]
        orch.ok("prune", extra_env={"KEEP_LAST": "1", "KEEP_DAILY": "0", "KEEP_WEEKLY": "0"})
        _out, err = restore.communicate(timeout=60)
    finally:
        proxy.stop()
    assert restore.returncode == 1
    last = err.strip().splitlines()[-1]
    assert f"backup {older} was removed while it was read" in last, last
    assert cluster.psql("SELECT v FROM keep_me", dev_db) == "old content"
