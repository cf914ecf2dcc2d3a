"""backup -> list -> fetch -> plain pg_restore, against real PostgreSQL and real S3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.operations.dump import LocalDump
from orchestrator.operations.upload import with_unused_id
from orchestrator.schema_facts import SchemaFacts
from orchestrator.storage.local import LocalStorage
from orchestrator.storage.multi import NamedStore
from tests.conftest import Clusters, initialised, load_sample, s3_env
from tests.harness import postgres
from tests.harness.backups import put_backup
from tests.harness.targets import CHECK_SQL

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("major", [17, 15])
def test_round_trip_through_s3(
    major, clusters: Clusters, s3_server, bucket, orch_factory, tmp_path: Path
):
    source = clusters.get(major)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), **s3_env(s3_server, bucket))

    backup_id = orch.ok("backup").stdout.strip()
    assert backup_id.startswith(f"{db}-")

    listed = json.loads(orch.ok("list", "--json").stdout)
    assert [b["id"] for b in listed] == [backup_id]
    entry = listed[0]
    assert entry["key"].startswith(f"{db}/") and entry["key"].endswith(".dump")
    assert entry["server_version"].startswith(str(major))
    assert entry["pg_dump_version"].startswith(str(major))
    for name in ("created_at", "database", "size_bytes", "sha256"):
        assert entry[name]

    # a plain S3 client sees the dump and its manifest at the documented keys
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"])
    manifest_key = f"prod/{entry['key'].removesuffix('.dump')}.manifest.json"
    assert keys == sorted([f"prod/{entry['key']}", manifest_key])
    manifest = json.loads(
        s3_server.client().get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    )
    # zstd where pg_dump has it (16+), else pg_dump's default
    assert manifest["compression"] == ("zstd" if major >= 16 else None)
    assert manifest["encryption"] is None
    assert (manifest["plain_sha256"], manifest["plain_size_bytes"]) == (
        manifest["sha256"],
        manifest["size_bytes"],
    )
    check_schema_facts(SchemaFacts.model_validate(manifest["schema_facts"]))

    out = tmp_path / "fetched.dump"
    assert orch.ok("fetch", "latest", "-o", str(out)).stdout.strip() == str(out)
    assert not list(tmp_path.glob(".fetched*"))

    # plain pg_restore, no orchestrator involved
    restored = f"restored_{major}"
    source.create_database(restored)
    subprocess.run(
        [str(source.bin_dir / "pg_restore"), "--no-owner", "-d", source.url(restored), str(out)],
        check=True,
        capture_output=True,
    )
    assert source.psql(CHECK_SQL, restored) == source.psql(CHECK_SQL, db)

    assert "OK" in orch.ok("verify", backup_id).stdout


def check_schema_facts(facts: SchemaFacts) -> None:
    """The sample data's tables as the manifest describes them."""
    customers = facts.tables["public.customers"]
    email = customers.column("email")
    assert email is not None and (email.base_type, email.category, email.not_null) == (
        "text",
        "S",
        True,
    )
    assert set(customers.unique) == {("id",), ("email",)}
    (fk,) = facts.tables["sales.orders"].foreign_keys
    assert (fk.columns, fk.references, fk.referenced_columns) == (
        ("customer_id",),
        "public.customers",
        ("id",),
    )
    assert facts.tables["sales.events"].partitioned
    assert facts.tables["sales.events_2025h1"].parent == "sales.events"
    assert facts.tables['"odd.schema"."dotted.table"'].column('quote"d') is not None
    placed = facts.tables["sales.orders"].column("placed_on")
    assert placed is not None and (placed.base_type, placed.category) == ("date", "D")


def test_manifest_counts_rows_in_the_dump_snapshot(
    clusters: Clusters, orch_factory, tmp_path: Path
):
    source = clusters.get(17)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    backup_id = orch.ok("backup").stdout.strip()
    manifest_path = next((tmp_path / "store").rglob(f"{backup_id}.manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["row_counts"] == {
        '"odd.schema"."dotted.table"': 7,
        "public.Mixed Case table": 100,
        "public.customers": 2000,
        "public.empty_table": 0,
        "sales.events_2025h1": int(source.psql("SELECT count(*) FROM sales.events_2025h1", db)),
        "sales.events_2025h2": int(source.psql("SELECT count(*) FROM sales.events_2025h2", db)),
        "sales.orders": 5000,
    }
    assert (
        manifest["sha256"]
        and manifest["size_bytes"] == (tmp_path / "store" / manifest["dump_key"]).stat().st_size
    )
    assert manifest["created_at"].endswith("Z") or manifest["created_at"].endswith("+00:00")
    assert postgres.PASSWORD not in manifest_path.read_text()


def test_tables_whose_data_is_excluded_are_not_counted(
    clusters: Clusters, orch_factory, tmp_path: Path
):
    """With exclusions the rows are counted after the dump, from its table of contents."""
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        PG_DUMP_EXCLUDE_TABLE_DATA="public.customers",
        PG_DUMP_EXCLUDE_TABLES="public.empty_table",
    )
    backup_id = orch.ok("backup").stdout.strip()
    manifest_path = next((tmp_path / "store").rglob(f"{backup_id}.manifest.json"))
    counts = json.loads(manifest_path.read_text())["row_counts"]
    assert "public.customers" not in counts and "public.empty_table" not in counts
    assert counts["sales.orders"] == 5000 and counts["public.Mixed Case table"] == 100


def test_a_dump_whose_id_is_taken_is_named_one_second_later(tmp_path: Path):
    """Ids have one-second resolution: a second run in the same second (or two) moves on."""
    store = initialised(LocalStorage(tmp_path / "store"))
    taken = put_backup(store, "shop", "2026-11-25T06:00:00")
    put_backup(store, "shop", "2026-11-25T06:00:01")
    dump = LocalDump(tmp_path / "x.dump", taken.model_copy(update={"sha256": "other"}))
    elsewhere = initialised(LocalStorage(tmp_path / "second"))
    put_backup(elsewhere, "shop", "2026-11-25T06:00:02")  # taken in another store: also skipped
    stores = [
        NamedStore("one", "STORAGE_URL", store),
        NamedStore("two", "STORAGE_URL_2", elsewhere),
    ]
    renamed = with_unused_id(stores, dump).manifest
    assert renamed.id == "shop-20261125T060003Z" and renamed.sha256 == "other"
    assert renamed.created_at.isoformat() == "2026-11-25T06:00:03+00:00"
    assert renamed.dump_key == catalog.dump_key_for(renamed.id)
    free = put_backup(initialised(LocalStorage(tmp_path / "empty")), "shop", "2026-11-25T07:00:00")
    assert (
        with_unused_id(
            [NamedStore("x", "STORAGE_URL", initialised(LocalStorage(tmp_path / "other")))],
            LocalDump(dump.path, free),
        ).manifest
        == free
    )
