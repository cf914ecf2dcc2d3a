"""Retention on damaged stores: whatever the KEEP_* rules say, a store keeps its newest
backup whose dump objects are all there, at their sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Clusters, load_sample

pytestmark = pytest.mark.integration

KEEP_ONE = {"KEEP_LAST": "1", "KEEP_DAILY": "0", "KEEP_WEEKLY": "0", "KEEP_MONTHLY": "0"}


def _dump_of(store: Path, backup_id: str) -> Path:
    manifest = json.loads(next(store.rglob(f"{backup_id}.manifest.json")).read_text())
    return store / manifest["dump_key"]


@pytest.mark.parametrize("damage", ["missing", "short"])
def test_prune_keeps_a_stores_last_whole_backup_when_the_newer_ones_are_damaged(
    clusters: Clusters, orch_factory, tmp_path: Path, damage: str
):
    source = clusters.get(15)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(load_sample(source)),
        STORAGE_URL_2=f"file://{tmp_path}/store2",
    )
    whole, *damaged = [orch.ok("backup").stdout.strip() for _ in range(3)]
    first = tmp_path / "store"
    for backup_id in damaged:  # lost or cut short in the first store alone
        dump = _dump_of(first, backup_id)
        if damage == "missing":
            dump.unlink()
        else:
            dump.write_bytes(dump.read_bytes()[:-10])
    pruned = orch.ok("prune", "--json", extra_env=KEEP_ONE)
    kept = {
        doc["store"]: [(b["id"], b["reasons"]) for b in doc["backups"] if b["keep"]]
        for doc in json.loads(pruned.stdout)["stores"]
    }
    assert kept[str(first)] == [(damaged[-1], ["last"]), (whole, ["newest whole backup"])]
    assert kept[str(tmp_path / "store2")] == [(damaged[-1], ["last"])]
    assert _dump_of(first, whole).exists()
    assert orch.run("verify", whole).returncode == 0
