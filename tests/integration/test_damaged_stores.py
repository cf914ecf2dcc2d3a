"""One store's copy damaged, the other whole: verify names the bad store, whichever way the
backup is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Clusters, load_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_stores(clusters: Clusters, tmp_path_factory) -> tuple[Path, str]:
    """A source database with sample data (shared by the module's tests) and a folder."""
    source = clusters.get(15)
    return tmp_path_factory.mktemp("two-stores"), source.url(load_sample(source))


@pytest.mark.parametrize("damage", [b'{"id": "cut', b"\x00\xffnot json at all"])
@pytest.mark.parametrize("ref", ["latest", "by id"])
def test_verify_names_a_store_whose_manifest_is_unreadable(
    two_stores, orch_factory, tmp_path: Path, damage: bytes, ref: str
):
    _home, source_url = two_stores
    second = tmp_path / "store2"
    orch = orch_factory(SOURCE_DATABASE_URL=source_url, STORAGE_URL_2=second.as_uri())
    backup_id = orch.ok("backup").stdout.strip()
    (manifest,) = second.rglob("*.manifest.json")
    manifest.write_bytes(damage)
    verified = orch.run("verify", backup_id if ref == "by id" else "latest")
    assert verified.returncode == 1, verified.stdout
    assert f"store {second} could not be asked: manifest {manifest} is invalid" in verified.stdout
    assert f"copy in {tmp_path / 'store'}: ok" in verified.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("damage", ["missing", "short"])
def test_sync_replaces_a_copy_whose_dump_is_missing_or_cut_short_from_a_whole_one(
    two_stores, orch_factory, tmp_path: Path, jobs: str, damage: str
):
    _home, source_url = two_stores
    first, second = tmp_path / "store", tmp_path / "store2"
    orch = orch_factory(
        SOURCE_DATABASE_URL=source_url, STORAGE_URL_2=second.as_uri(), DUMP_JOBS=jobs
    )
    backup_id = orch.ok("backup").stdout.strip()
    victim = max(
        (
            p
            for p in first.rglob("*")
            if p.is_file() and ".manifest" not in p.name and "_orchestrator" not in str(p)
        ),
        key=lambda p: p.stat().st_size,
    )
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:-10])
    assert orch.run("verify", backup_id).returncode == 1
    synced = orch.ok("sync")
    assert f"copied {backup_id}: {second} -> {first}" in synced.stdout
    verified = orch.run("verify", backup_id)
    assert verified.returncode == 0, verified.stdout
    assert orch.ok("sync").stdout.strip() == "every store holds every backup"


def test_list_names_a_manifest_it_cannot_read_and_exits_1(two_stores, orch_factory, tmp_path):
    _home, source_url = two_stores
    second = tmp_path / "store2"
    orch = orch_factory(SOURCE_DATABASE_URL=source_url, STORAGE_URL_2=second.as_uri())
    backup_id = orch.ok("backup").stdout.strip()
    (manifest,) = second.rglob("*.manifest.json")
    manifest.write_bytes(b"{")
    listed = orch.run("list", "--json")
    assert listed.returncode == 1
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["stores"]) == (backup_id, [str(tmp_path / "store")])
    last = listed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"orchestrator: error: STORAGE_URL_2 ({second}): manifest {manifest}")
    assert "is invalid" in last
