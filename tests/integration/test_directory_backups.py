"""Parallel dumps (DUMP_JOBS): a directory-format backup stored file by file, plain and
encrypted in two stores, restored by every command and by plain tools."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Clusters, Orchestrator, load_sample, s3_env
from tests.harness import s3
from tests.harness.keys import make_key
from tests.harness.targets import CHECK_SQL, fresh_target

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
    )
    backup_id = orch.ok("backup").stdout.strip()
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

    orch.ok("restore", "--target", "backup")
    assert target.psql(CONTENT_SQL, target_db) == cluster.psql(CONTENT_SQL, db)
    verified = json.loads(orch.ok("verify", backup_id, "--json").stdout)
    assert verified["ok"], verified
    fetched = Path(orch.ok("fetch", backup_id, "-o", str(tmp_path)).stdout.strip())
    assert fetched == tmp_path / f"{backup_id}.d"
    assert sorted(p.name for p in fetched.iterdir()) == sorted(names)


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
