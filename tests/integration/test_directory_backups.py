"""Parallel dumps (DUMP_JOBS): a directory-format backup stored file by file, plain and
encrypted in two stores, restored by every command and by plain tools."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import progress
from tests.conftest import Clusters, Orchestrator, load_sample, s3_env, stop_with_sigterm
from tests.harness import s3
from tests.harness.faulty_proxy import FaultyProxy
from tests.harness.folders import FolderPeak
from tests.harness.keys import KeyPair, make_key
from tests.harness.targets import CHECK_SQL, fresh_target
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration

EXTRA_SQL = """
CREATE TABLE public.docs (id int PRIMARY KEY, body oid);
INSERT INTO public.docs SELECT g, lo_from_bytea(0, convert_to(repeat('doc ' || g, 50), 'UTF8'))
  FROM generate_series(1, 3) AS g;
CREATE SEQUENCE public.invoice_no START 1000;
SELECT setval('public.invoice_no', 4242);
"""
CONTENT_SQL = (
    CHECK_SQL
    + """
UNION ALL SELECT 'docs', count(*),
  md5(string_agg(convert_from(lo_get(body), 'UTF8'), ',' ORDER BY id))
  FROM public.docs
UNION ALL SELECT 'invoice_no', last_value, '' FROM public.invoice_no
"""
)


@pytest.fixture(scope="module")
def source(clusters: Clusters) -> tuple[Any, str]:
    cluster = clusters.get(17)
    db = load_sample(cluster)
    cluster.psql(EXTRA_SQL, database=db)
    return cluster, db


def _manifest(folder: Path) -> dict[str, Any]:
    (path,) = folder.rglob("*.manifest.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_a_parallel_backup_is_stored_file_by_file_and_restores_equal_to_the_source(
    source: tuple[Any, str],
    clusters: Clusters,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    cluster, db = source
    target = clusters.get(17)
    target_db = fresh_target(target)
    store = tmp_path / "store"
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        BACKUP_DATABASE_URL=target.url(target_db),
        DUMP_JOBS="3",
        LOG_FORMAT="json",
    )
    run = orch.ok("backup")
    backup_id = run.stdout.strip()
    manifest = _manifest(store)
    assert (manifest["format"], manifest["jobs"]) == ("directory", 3)
    assert manifest["jobs_reason"].startswith("DUMP_JOBS=3")
    assert manifest["dump_key"].endswith(f"{backup_id}.d/")
    names = [f["name"] for f in manifest["files"]]
    assert "toc.dat" in names and len(names) >= 8  # a file per table with data
    stored = store / manifest["dump_key"]
    assert sorted(p.name for p in stored.iterdir()) == sorted(names)
    for file in manifest["files"]:
        data = (stored / file["name"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file["size_bytes"], file["sha256"])
    assert manifest["size_bytes"] == sum(f["size_bytes"] for f in manifest["files"])
    (files,) = [e for e in map(json.loads, run.stderr.splitlines()) if e["event"] == "backup.files"]
    assert files["reported"] == len(names) - 1  # every file as pg_dump closed it, but the TOC

    orch.ok("restore", "--target", "backup")
    assert target.psql(CONTENT_SQL, target_db) == cluster.psql(CONTENT_SQL, db)
    verified = json.loads(orch.ok("verify", backup_id, "--json").stdout)
    assert verified["ok"], verified
    fetched = Path(orch.ok("fetch", backup_id, "-o", str(tmp_path)).stdout.strip())
    assert fetched == tmp_path / f"{backup_id}.d"
    assert sorted(p.name for p in fetched.iterdir()) == sorted(names)
    assert "drill OK" in orch.ok("drill").stdout
    target.psql("DROP TABLE public.docs", target_db)
    orch.ok("restore", "--target", "backup", "--dump", str(fetched))  # the fetched folder
    assert target.psql(CONTENT_SQL, target_db) == cluster.psql(CONTENT_SQL, db)
    (fetched / names[1]).write_bytes(b"not the dump's")
    refused = orch.run("restore", "--target", "backup", "--dump", str(fetched))
    assert refused.returncode == 1 and names[1] in refused.stderr.splitlines()[-1]


def test_dump_jobs_one_keeps_the_custom_format(
    source: tuple[Any, str], orch_factory: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    cluster, db = source
    orch = orch_factory(SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS="1")
    orch.ok("backup")
    manifest = _manifest(tmp_path / "store")
    assert (manifest["format"], manifest["jobs"], manifest["files"]) == ("custom", 1, [])
    assert manifest["dump_key"].endswith(".dump")
    auto = orch_factory(SOURCE_DATABASE_URL=cluster.url(db), STORAGE_URL=f"file://{tmp_path}/auto")
    auto.ok("backup")
    reason = _manifest(tmp_path / "auto")["jobs_reason"]
    assert reason.startswith("DUMP_JOBS=auto") and "under DUMP_PARALLEL_FROM" in reason
    small = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        STORAGE_URL=f"file://{tmp_path}/small",
        DUMP_PARALLEL_FROM="1MB",
    )
    small.ok("backup")
    assert (_manifest(tmp_path / "small")["format"], _manifest(tmp_path / "small")["jobs"]) == (
        "directory",
        4,
    )


def test_an_encrypted_parallel_backup_in_two_stores_opens_with_age_and_pg_restore(
    source: tuple[Any, str],
    clusters: Clusters,
    s3_server: s3.S3Server,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    cluster, db = source
    key = make_key(tmp_path, "key")
    identity, recipient = key.identity_file, key.recipient
    bucket = s3_server.new_bucket()
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DUMP_JOBS="2",
        ARCHIVE_RECIPIENTS=recipient,
        **{
            **s3_env(s3_server, bucket),
            "STORAGE_URL": f"file://{tmp_path}/store",
            "STORAGE_URL_2": f"s3://{bucket}/dr",
            "S3_ENDPOINT_URL_2": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID_2": s3.WORKER_KEY,
            "AWS_SECRET_ACCESS_KEY_2": s3.WORKER_SECRET,
        },
    )
    backup_id = orch.ok("backup").stdout.strip()
    manifest = _manifest(tmp_path / "store")
    assert manifest["encryption"]["recipients"] == [recipient]
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"dr/{manifest['dump_key']}")  # type: ignore[attr-defined]
    s3_keys = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"])
    assert s3_keys == sorted(f"{f['name']}.age" for f in manifest["files"])

    # the README's recipe: the folder, `age -d` each file, `pg_restore -Fd -j`
    plain = tmp_path / "plain"
    plain.mkdir()
    folder = tmp_path / "store" / manifest["dump_key"]
    for sealed in folder.iterdir():
        assert not sealed.read_bytes().startswith(b"PGDMP")
        out = plain / sealed.name.removesuffix(".age")
        subprocess.run(["age", "-d", "-i", str(identity), "-o", str(out), str(sealed)], check=True)
    target = clusters.get(17)
    target_db = fresh_target(target)
    subprocess.run(
        [
            str(target.bin_dir / "pg_restore"),
            "-Fd",
            "-j",
            "2",
            "--clean",
            "--if-exists",
            "--no-owner",
            "-d",
            target.url(target_db),
            str(plain),
        ],
        check=True,
        capture_output=True,
    )
    assert target.psql(CONTENT_SQL, target_db) == cluster.psql(CONTENT_SQL, db)

    with_key = {"ARCHIVE_IDENTITY_FILE": str(identity)}
    deep = json.loads(orch.ok("verify", backup_id, "--json", extra_env=with_key).stdout)
    assert deep["ok"], deep
    again_db = fresh_target(target)
    orch.ok("restore", "--target", target.url(again_db), extra_env=with_key)
    assert target.psql(CONTENT_SQL, again_db) == cluster.psql(CONTENT_SQL, db)


def _two_folder_stores(
    source: tuple[Any, str], orch_factory: Callable[..., Orchestrator], tmp: Path, **env: str
) -> Orchestrator:
    cluster, db = source
    return orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DUMP_JOBS="2",
        STORAGE_URL=f"file://{tmp}/one",
        STORAGE_URL_2=f"file://{tmp}/two",
        **env,
    )


def test_a_file_missing_in_one_store_is_named_by_verify_and_read_from_the_other(
    source: tuple[Any, str],
    clusters: Clusters,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    cluster, db = source
    target = clusters.get(17)
    target_db = fresh_target(target)
    orch = _two_folder_stores(
        source, orch_factory, tmp_path, BACKUP_DATABASE_URL=target.url(target_db)
    )
    backup_id = orch.ok("backup").stdout.strip()
    manifest = _manifest(tmp_path / "one")
    data = max(manifest["files"], key=lambda f: f["size_bytes"])["name"]
    (tmp_path / "one" / manifest["dump_key"] / data).unlink()
    damaged = tmp_path / "two" / manifest["dump_key"] / "toc.dat"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"!")

    result = orch.run("verify", backup_id, "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["stores"] == {
        str(tmp_path / "one"): "failed",
        str(tmp_path / "two"): "failed",
    }
    (missing,) = [p for p in report["problems"] if " is missing" in p]
    assert data in missing and missing.endswith(f"in {tmp_path / 'one'}")
    (corrupt,) = [p for p in report["problems"] if "toc.dat: " in p]
    assert "sha256 differs" in corrupt and corrupt.endswith(f"in {tmp_path / 'two'}")
    assert report["checks"]["toc"] == "ok"  # toc.dat read from the store whose copy is good

    orch.ok("restore", "--target", "backup")  # each file from the store whose copy is good
    assert target.psql(CONTENT_SQL, target_db) == cluster.psql(CONTENT_SQL, db)


def test_sync_rekey_and_prune_handle_directory_backups(
    source: tuple[Any, str],
    clusters: Clusters,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    cluster, db = source
    old_key, new_key = make_key(tmp_path, "old"), make_key(tmp_path, "new")
    only_one = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DUMP_JOBS="2",
        STORAGE_URL=f"file://{tmp_path}/one",
        ARCHIVE_RECIPIENTS=old_key.recipient,
    )
    first = only_one.ok("backup").stdout.strip()
    both = _two_folder_stores(source, orch_factory, tmp_path, ARCHIVE_RECIPIENTS=old_key.recipient)
    synced = both.ok("sync").stdout
    assert synced == f"copied {first}: {tmp_path / 'one'} -> {tmp_path / 'two'}\n"
    one, two = _manifest(tmp_path / "one"), _manifest(tmp_path / "two")
    assert one == two  # the same ciphertext, file by file
    stored = sorted(p.name for p in (tmp_path / "two" / two["dump_key"]).iterdir())
    assert stored == sorted(f"{f['name']}.age" for f in two["files"])

    rekeyed = _two_folder_stores(
        source,
        orch_factory,
        tmp_path,
        ARCHIVE_RECIPIENTS=new_key.recipient,
        ARCHIVE_IDENTITY_FILE=str(old_key.identity_file),
    )
    rekeyed.ok("rekey")
    for store in ("one", "two"):
        manifest = _manifest(tmp_path / store)
        assert manifest["encryption"]["recipients"] == [new_key.recipient]
        assert manifest["dump_key"] != one["dump_key"]  # a new generation's prefix
        day = (tmp_path / store / manifest["dump_key"]).parent
        assert [p.name for p in day.iterdir() if p.is_dir()] == [
            manifest["dump_key"].rstrip("/").rsplit("/", 1)[-1]
        ]  # the old files are gone
    reader = _two_folder_stores(
        source, orch_factory, tmp_path, ARCHIVE_IDENTITY_FILE=str(new_key.identity_file)
    )
    assert json.loads(reader.ok("verify", first, "--json").stdout)["ok"]

    second = reader.ok("backup").stdout.strip()
    assert second != first
    policy = {"KEEP_LAST": "1", "KEEP_DAILY": "0", "KEEP_WEEKLY": "0", "KEEP_MONTHLY": "0"}
    pruned = json.loads(reader.ok("prune", "--json", extra_env=policy).stdout)["stores"]
    for store in pruned:
        assert [b["id"] for b in store["backups"] if not b["keep"]] == [first]
    for store in ("one", "two"):
        left = [p.as_posix() for p in (tmp_path / store).rglob("*") if p.is_file()]
        assert not any(first in key for key in left), left
        assert any(second in key for key in left)


FAULTS = {
    # the last file fails: what the store got is removed
    "a file fails": (400, lambda method, path: method == "PUT" and "/toc.dat" in path),
    # its manifests cannot be read: it may hold a backup of the same id, so nothing is
    # written under that prefix (and nothing is deleted there)
    "cannot say the id is free": (
        503,
        lambda method, path: method == "GET" and ".manifest.json" in path,
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_store_that_fails_holds_nothing_and_the_other_store_has_the_backup(
    source: tuple[Any, str],
    s3_server: s3.S3Server,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
    fault: str,
) -> None:
    cluster, db = source
    bucket = s3_server.new_bucket()
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.status, proxy.rule = FAULTS[fault]
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db),
        DUMP_JOBS="2",
        STORAGE_URL_2=f"s3://{bucket}/dr",
        S3_ENDPOINT_URL_2=proxy.endpoint,
        AWS_ACCESS_KEY_ID_2=s3.WORKER_KEY,
        AWS_SECRET_ACCESS_KEY_2=s3.WORKER_SECRET,
    )
    try:
        result = orch.run("backup")
    finally:
        proxy.stop()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "STORAGE_URL_2" in result.stderr.splitlines()[-1] and proxy.failed
    listed = s3_server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed.get("Contents", []) if "_orchestrator" not in o["Key"]] == []
    manifest = _manifest(tmp_path / "store")
    stored = tmp_path / "store" / manifest["dump_key"]
    assert len(manifest["files"]) == len(list(stored.iterdir()))
    alone = orch_factory()  # the folder store alone
    assert json.loads(alone.ok("verify", manifest["id"], "--json").stdout)["ok"]


def test_a_half_uploaded_directory_is_never_listed_and_prune_removes_it_after_its_grace(
    source: tuple[Any, str], orch_factory: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    cluster, db = source
    orch = orch_factory(SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS="2")
    backup_id = orch.ok("backup").stdout.strip()
    store = tmp_path / "store"
    manifest = _manifest(store)
    whole = store / manifest["dump_key"]
    database, stamp = backup_id.rsplit("-", 1)
    older, newer = f"{database}-{stamp[:9]}000000Z", f"{database}-{stamp[:8]}T235959Z"
    for half, age in ((older, 3 * 86400), (newer, 0)):
        folder = whole.parent / f"{half}.d"
        folder.mkdir()
        for path in list(whole.iterdir())[:3]:
            (folder / path.name).write_bytes(path.read_bytes())
            if age:
                os.utime(folder / path.name, (time.time() - age, time.time() - age))
    assert [b["id"] for b in json.loads(orch.ok("list", "--json").stdout)] == [backup_id]

    dry = json.loads(orch.ok("prune", "--dry-run", "--json").stdout)
    doomed = sorted(
        f"{manifest['dump_key'].rsplit('/', 2)[0]}/{older}.d/{p.name}"
        for p in (whole.parent / f"{older}.d").iterdir()
    )
    assert dry["orphans_removed"] == doomed
    assert all(newer in key for key in dry["unrecognised"]) and len(dry["unrecognised"]) == 3
    orch.ok("prune")
    assert not (whole.parent / f"{older}.d").exists() or not any(
        (whole.parent / f"{older}.d").iterdir()
    )
    assert len(list((whole.parent / f"{newer}.d").iterdir())) == 3  # may still be uploading
    assert sorted(p.name for p in whole.iterdir()) == sorted(f["name"] for f in manifest["files"])


FIND_OUT = 'for a in "$@"; do case "$a" in --file=*) OUT="${a#--file=}";; esac; done\n'


def _stored_files(store: Path) -> list[str]:
    return sorted(p.name for p in store.rglob("*") if p.is_file() and p.parent.name.endswith(".d"))


@pytest.mark.parametrize(
    ("command", "end"), [("backup", "fails"), ("pipeline", "fails"), ("backup", "is stopped")]
)
def test_a_parallel_dump_that_ends_badly_leaves_no_backup_and_removes_its_files(
    source: tuple[Any, str],
    clusters: Clusters,
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
    command: str,
    end: str,
) -> None:
    """pg_dump writes every data file (each stored as it closes) and then fails, or hangs
    until the run is stopped, in a backup or a cycle (where the failed step does not end
    the run): no manifest anywhere, nothing listed, no file left."""
    cluster, db = source
    after = "exit 1\n" if end == "fails" else "sleep 60\n"
    body = FIND_OUT + '"$REAL" "$@" || exit $?\nrm -f "$OUT/toc.dat"\n' + after
    wrapped = wrap_tool(tmp_path / "bin", cluster.bin_dir, "pg_dump", body)
    store = tmp_path / "store"
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS="2", PG_BIN_DIRS=str(wrapped)
    )
    if end == "fails":
        result = orch.run(command)
        assert result.returncode == 1, result.stderr[-2000:]
    else:
        proc = orch.start("backup")
        deadline = time.monotonic() + 60
        while not _stored_files(store) and time.monotonic() < deadline:
            time.sleep(0.05)  # the data files go to the store while "pg_dump" still runs
        assert _stored_files(store), "no file was stored while pg_dump ran"
        stop_with_sigterm(proc)
    assert list(store.rglob("*.manifest.json")) == []
    assert _stored_files(store) == []
    assert json.loads(orch.ok("list", "--json").stdout) == []


def test_work_dir_holds_one_copy_of_an_encrypted_parallel_dump(
    source: tuple[Any, str], orch_factory: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    key = make_key(tmp_path, "key")
    work = tmp_path / "work"
    work.mkdir()
    orch = _two_folder_stores(source, orch_factory, tmp_path, ARCHIVE_RECIPIENTS=key.recipient)
    sampler = FolderPeak(work)
    try:
        orch.ok("backup", extra_env={"WORK_DIR": str(work)})
    finally:
        peak = sampler.stop()
    manifest = _manifest(tmp_path / "one")
    plain = manifest["plain_size_bytes"]
    assert 0.9 * plain <= peak <= 1.05 * plain, f"peak {peak} for a dump of {plain} bytes"
    assert manifest == _manifest(tmp_path / "two")


def test_a_long_dump_logs_its_progress_bytes_and_tables(
    source: tuple[Any, str],
    orch_factory: Callable[..., Orchestrator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Off a terminal, a `progress` event every LOG_EVERY (30 s; here a tenth of a second)
    says what runs and how far: bytes dumped and stored, tables done of the total."""
    cluster, db = source
    monkeypatch.setattr(progress, "LOG_EVERY", 0.1)
    slow = wrap_tool(tmp_path / "bin", cluster.bin_dir, "pg_dump", '"$REAL" "$@" && sleep 1\n')
    orch = orch_factory(
        SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS="2", PG_BIN_DIRS=str(slow), LOG_FORMAT="json"
    )
    run = orch.ok("backup")
    events = [e for e in map(json.loads, run.stderr.splitlines()) if e["event"] == "progress"]
    assert events, run.stderr[-2000:]
    last_of_dump = [e for e in events if e["steps"] == ["dump"]][-1]
    manifest = _manifest(tmp_path / "store")
    data_files = [f for f in manifest["files"] if f["name"][0].isdigit()]
    assert last_of_dump["tables_done"] == last_of_dump["tables_total"] == len(data_files)
    assert last_of_dump["dumped_bytes"] == manifest["plain_size_bytes"]  # every file written
    assert last_of_dump["stored_bytes"] > 0  # the data files went up while pg_dump ran
    assert last_of_dump["kind"] == "backup"


SEQ_SCANS = "SELECT sum(seq_scan) FROM pg_stat_user_tables WHERE relname IN ('customers', 'orders')"


@pytest.mark.parametrize(("jobs", "scans"), [("2", 1), ("1", 2)])
def test_a_parallel_dump_counts_rows_from_its_files_without_reading_the_source_again(
    clusters: Clusters, orch_factory: Callable[..., Orchestrator], jobs: str, scans: int
) -> None:
    """Each table's rows are counted from its data file on this host: the source reads
    each table once (pg_dump's COPY), where a single-file dump also counts it there."""
    cluster = clusters.get(17)
    db = load_sample(cluster)
    cluster.psql("ANALYZE", db)
    before = int(cluster.psql(SEQ_SCANS, db))
    orch = orch_factory(SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS=jobs)
    orch.ok("backup")
    time.sleep(0.6)  # the dump's sessions report their statistics as they end
    after = int(cluster.psql(f"SELECT pg_stat_clear_snapshot(); {SEQ_SCANS}", db).split()[-1])
    assert after - before == 2 * scans  # two tables
    listed = json.loads(orch.ok("list", "--json").stdout)[0]
    assert listed["rows"] == int(cluster.psql(ROWS_SQL, db))


ROWS_SQL = """
SELECT (SELECT count(*) FROM public.customers) + (SELECT count(*) FROM sales.orders)
     + (SELECT count(*) FROM sales.events) + (SELECT count(*) FROM public."Mixed Case table")
     + (SELECT count(*) FROM "odd.schema"."dotted.table")
"""


def test_sync_never_mixes_files_of_copies_stored_otherwise(
    source: tuple[Any, str], orch_factory: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    """Store a holds the backup encrypted to a new key, store b the same backup to the old
    one (it was rekeyed in a only), and one of a's files is damaged: the copy into c
    refuses b's file in its place, so c gets nothing rather than a backup whose files open
    with two keys."""
    cluster, db = source
    old, new = make_key(tmp_path, "old"), make_key(tmp_path, "new")

    def stores(*names: str, key: KeyPair, identity: KeyPair | None = None) -> Orchestrator:
        urls = {"STORAGE_URL": f"file://{tmp_path}/{names[0]}"}
        urls.update(
            {f"STORAGE_URL_{i + 2}": f"file://{tmp_path}/{n}" for i, n in enumerate(names[1:])}
        )
        keys = {"ARCHIVE_RECIPIENTS": key.recipient}
        if identity is not None:
            keys["ARCHIVE_IDENTITY_FILE"] = str(identity.identity_file)
        return orch_factory(SOURCE_DATABASE_URL=cluster.url(db), DUMP_JOBS="2", **urls, **keys)

    stores("a", "b", key=old).ok("backup")
    stores("a", key=new, identity=old).ok("rekey")
    rekeyed, stale = _manifest(tmp_path / "a"), _manifest(tmp_path / "b")
    assert rekeyed["encryption"] != stale["encryption"]
    damaged = tmp_path / "a" / rekeyed["dump_key"] / f"{rekeyed['files'][0]['name']}.age"
    damaged.write_bytes(b"x" * rekeyed["files"][0]["size_bytes"])

    result = stores("a", "b", "c", key=new).run("sync")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "another encryption" in result.stderr
    left = [p for p in (tmp_path / "c").rglob("*") if p.is_file() and "_orchestrator" not in str(p)]
    assert left == []
