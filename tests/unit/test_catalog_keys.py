"""The archive's key layout: which keys are dumps of which backup, and what is foreign."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import catalog
from orchestrator.storage import ObjectInfo

ID = "shop-20261130T060000Z"
FOLDER = "shop/2026/11/30"


@pytest.mark.parametrize(
    ("encrypted", "generation", "key"),
    [
        (False, None, f"{FOLDER}/{ID}.dump"),
        (True, None, f"{FOLDER}/{ID}.dump.age"),
        (True, "0a1b2c3d", f"{FOLDER}/{ID}.0a1b2c3d.dump.age"),
    ],
)
def test_dump_keys_follow_the_layout(encrypted: bool, generation: str | None, key: str) -> None:
    assert catalog.dump_key_for(ID, encrypted, generation) == key
    assert catalog.dump_backup_id(key) == ID


@pytest.mark.parametrize(
    "key",
    [
        f"{FOLDER}/{ID}.manifest.json",
        f"{FOLDER}/{ID}.dump.gz",
        f"{FOLDER}/{ID}.XYZ.dump.age",  # a generation is 8 lowercase hex digits
        f"shop/2026/11/29/{ID}.dump",  # another day's folder
        f"other/2026/11/30/{ID}.dump",
        f"{ID}.dump",
        "notes.txt",
    ],
)
def test_other_keys_are_not_dumps_of_a_backup(key: str) -> None:
    assert catalog.dump_backup_id(key) is None


def test_the_manifest_key_comes_from_the_id_whatever_the_dump_is_called() -> None:
    assert catalog.manifest_key_for(ID) == f"{FOLDER}/{ID}.manifest.json"


def test_foreign_objects_skip_dumps_manifests_and_state() -> None:
    when = datetime(2026, 11, 30, tzinfo=UTC)
    keys = [
        f"{FOLDER}/{ID}.dump",
        f"{FOLDER}/{ID}.dump.age",
        f"{FOLDER}/{ID}.0a1b2c3d.dump.age",
        f"{FOLDER}/{ID}.manifest.json",
        "_orchestrator/last-cycle.json",
        f"{FOLDER}/readme.txt",
        f"{FOLDER}/{ID}.dump.bak",
    ]
    foreign = [o.key for o in catalog.foreign_objects(ObjectInfo(k, 1, when) for k in keys)]
    assert foreign == [f"{FOLDER}/readme.txt", f"{FOLDER}/{ID}.dump.bak"]
