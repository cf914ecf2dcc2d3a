"""Odd inputs and shared stores: jobs for two databases in one store, settings read from an
env file, malformed values, device outputs, dangling links, two backups in one second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.storage import open_storage
from tests.conftest import Clusters, initialised, load_sample
from tests.harness import postgres, s3
from tests.harness.backups import put_backup

pytestmark = pytest.mark.integration


def test_pipeline_prunes_only_its_own_database(clusters: Clusters, orch_factory, tmp_path):
    source = clusters.get(15)
    db = load_sample(source)
    store = initialised(open_storage(f"file://{tmp_path}/store"))
    others = [put_backup(store, "otherdb", f"2026-01-{day:02d}T06:00:00") for day in (1, 2, 3)]
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        KEEP_LAST="1",
        KEEP_DAILY="0",
        KEEP_WEEKLY="0",
        KEEP_MONTHLY="0",
    )
    orch.ok("pipeline")
    orch.ok("pipeline")
    keys = {o.key for o in store.list()}
    assert all(m.manifest_key in keys and m.dump_key in keys for m in others)
    assert len(json.loads(orch.ok("list", "--json", "--database", db).stdout)) == 1


def test_all_zero_policy_stops_the_pipeline_before_dumping(
    clusters: Clusters, orch_factory, tmp_path
):
    source = clusters.get(15)
    zero = {k: "0" for k in ("KEEP_LAST", "KEEP_DAILY", "KEEP_WEEKLY", "KEEP_MONTHLY")}
    orch = orch_factory(SOURCE_DATABASE_URL=source.url("postgres"), **zero)
    result = orch.run("pipeline")
    assert result.returncode == 2 and "keeps nothing" in result.stderr
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.dump"))


def test_aws_and_pg_variables_in_the_env_file_reach_the_clients(
    clusters: Clusters, s3_server, bucket, orch_factory
):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory()
    (orch.cwd / "prod.env").write_text(
        f"SOURCE_DATABASE_URL={source.url(db, password=None)}\n"
        f"PGPASSWORD='{postgres.PASSWORD}'\n"
        f"STORAGE_URL=s3://{bucket}/viaenv\nS3_ENDPOINT_URL={s3_server.endpoint}\n"
        f"AWS_ACCESS_KEY_ID={s3.ACCESS_KEY}\nAWS_SECRET_ACCESS_KEY={s3.SECRET_KEY}\n"
        "AWS_REGION=us-east-1\n"
    )
    orch.env.pop("STORAGE_URL")
    result = orch.run("--env-file", "prod.env", "backup")
    assert result.returncode == 0, result.stderr[-2000:]
    assert s3.SECRET_KEY not in result.stderr


def test_missing_env_file_given_explicitly_is_refused(orch_factory):
    result = orch_factory().run("--env-file", "typo.env", "list")
    assert result.returncode == 2 and "--env-file: typo.env is not a file" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("S3_ENDPOINT_URL", "minio:9000", "S3_ENDPOINT_URL: must start with http"),
        ("STORAGE_URL", "s3://my bucket/x", "STORAGE_URL: the bucket must be a plain bucket"),
        ("STORAGE_URL", "s3://KEY:SECRETX@bucket/x", "STORAGE_URL: the bucket must be a plain"),
        ("SOURCE_DATABASE_URL", "postgresql://u:pa\u2100ssword@host/db", "is not a valid URL"),
        ("SCHEDULE", "every 99999999999999999999h", "SCHEDULE:"),
        ("WORK_DIR", "/etc/passwd", "WORK_DIR: cannot make a work folder"),
    ],
)
def test_odd_settings_are_one_line_config_errors(
    variable, value, expected, orch_factory, clusters: Clusters
):
    env = {"SOURCE_DATABASE_URL": clusters.get(15).url("postgres"), variable: value}
    result = orch_factory(**env).run("backup")
    assert result.returncode == 2, result.stderr[-1500:]
    last = result.stderr.strip().splitlines()[-1]
    assert expected in last and "Traceback" not in result.stderr
    assert "SECRETX" not in result.stderr and "ssword" not in result.stderr


def test_unknown_aws_profile_is_a_config_error(orch_factory, s3_server, bucket):
    result = orch_factory(
        STORAGE_URL=f"s3://{bucket}/p", S3_ENDPOINT_URL=s3_server.endpoint, AWS_PROFILE="nope"
    ).run("list")
    assert result.returncode == 2 and "AWS_PROFILE" in result.stderr


def test_fetch_refuses_device_outputs_and_reports_missing_dump_objects(
    clusters: Clusters, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    backup_id = orch.ok("backup").stdout.strip()
    result = orch.run("fetch", backup_id, "-o", "/dev/null")
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert Path("/dev/null").is_char_device()
    result = orch.run("fetch", backup_id, "-o", "/proc/no-such-dir/x.dump")
    assert result.returncode == 2 and "--output" in result.stderr
    next((tmp_path / "store").rglob("*.dump")).unlink()
    result = orch.run("fetch", backup_id, "-o", str(tmp_path / "x.dump"))
    assert result.returncode == 1 and "dump object" in result.stderr and "missing" in result.stderr


def test_folder_store_survives_dangling_symlinks_and_naive_timestamps(orch_factory, tmp_path):
    store = initialised(open_storage(f"file://{tmp_path}/store"))
    good = put_backup(store, "shop", "2026-02-01T06:00:00")
    (tmp_path / "store" / "shop" / "broken-link").symlink_to(tmp_path / "nowhere")
    naive = put_backup(store, "shop", "2026-02-02T06:00:00")
    path = tmp_path / "store" / naive.manifest_key
    path.write_text(path.read_text().replace('"2026-02-02T06:00:00Z"', '"2026-02-02T06:00:00"'))
    copied = tmp_path / "store" / "old" / good.manifest_key
    copied.parent.mkdir(parents=True)
    copied.write_text((tmp_path / "store" / good.manifest_key).read_text())
    listed = json.loads(orch_factory().ok("list", "--json").stdout)
    assert [b["id"] for b in listed] == [naive.id, good.id]


def test_back_to_back_backups_in_one_second_get_distinct_ids(clusters: Clusters, orch_factory):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    ids = [orch.ok("backup").stdout.strip() for _ in range(3)]
    assert len(set(ids)) == 3
