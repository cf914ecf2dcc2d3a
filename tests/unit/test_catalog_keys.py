"""The archive's key layout: which keys are dumps of which backup, and what is foreign."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.errors import IntegrityError
from orchestrator.storage import ObjectInfo
from orchestrator.storage.local import LocalStorage
from tests.harness.backups import put_backup

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
        f"{FOLDER}/{ID}.d/",  # the prefix itself is no object
        f"{FOLDER}/{ID}.d/sub/toc.dat",  # pg_dump writes no folders inside its own
        f"{FOLDER}/{ID}.XYZ.d/toc.dat",
        f"shop/2026/11/29/{ID}.d/toc.dat",
        f"{FOLDER}/{ID}.dd/toc.dat",
    ],
)
def test_other_keys_are_not_dumps_of_a_backup(key: str) -> None:
    assert catalog.dump_backup_id(key) is None


@pytest.mark.parametrize(
    ("generation", "name", "key"),
    [
        (None, "toc.dat", f"{FOLDER}/{ID}.d/toc.dat"),
        (None, "3456.dat.zst", f"{FOLDER}/{ID}.d/3456.dat.zst"),
        (None, "3456.dat.gz.age", f"{FOLDER}/{ID}.d/3456.dat.gz.age"),
        ("0a1b2c3d", "blobs_1.toc.age", f"{FOLDER}/{ID}.0a1b2c3d.d/blobs_1.toc.age"),
    ],
)
def test_directory_dump_files_follow_the_layout(
    generation: str | None, name: str, key: str
) -> None:
    assert catalog.dir_key_for(ID, generation) + name == key
    assert catalog.dump_backup_id(key) == ID


def _file(name: str, sha: str, plain: str | None = None) -> catalog.DumpFile:
    return catalog.DumpFile(
        name=name, size_bytes=1, sha256=sha, plain_size_bytes=1, plain_sha256=plain or sha
    )


def test_a_directory_digest_changes_with_any_file_and_not_with_order() -> None:
    files = [_file("toc.dat", "a" * 64, "1" * 64), _file("3456.dat", "b" * 64, "2" * 64)]
    digest = catalog.files_digest(files)
    assert digest == catalog.files_digest(list(reversed(files)))
    assert catalog.files_digest(files, plain=True) not in (digest, catalog.files_digest([]))
    changed = [files[0], _file("3456.dat", "c" * 64, "2" * 64)]
    assert catalog.files_digest(changed) != digest
    assert catalog.files_digest(changed, plain=True) == catalog.files_digest(files, plain=True)
    renamed = [files[0], _file("3457.dat", "b" * 64, "2" * 64)]
    assert catalog.files_digest(renamed) != digest


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x y"])
def test_a_file_name_pg_dump_does_not_write_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a file name"):
        _file(name, "a" * 64)


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
        f"{FOLDER}/{ID}.d/toc.dat",
        f"{FOLDER}/{ID}.0a1b2c3d.d/4000.dat.zst.age",
    ]
    foreign = [o.key for o in catalog.foreign_objects(ObjectInfo(k, 1, when) for k in keys)]
    assert foreign == [f"{FOLDER}/readme.txt", f"{FOLDER}/{ID}.dump.bak"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"format": "directory", "dump_key": f"{FOLDER}/{ID}.d/"}, "no files"),
        (
            {
                "format": "directory",
                "dump_key": f"{FOLDER}/{ID}.d/",
                "files": [_file("3456.dat", "a" * 64).model_dump()],
            },
            "no table of contents",
        ),
        ({"files": [_file("toc.dat", "a" * 64).model_dump()]}, "files of a single-file dump"),
    ],
)
def test_a_manifest_whose_files_do_not_match_its_format_is_no_backup(
    tmp_path: Path, changes: dict[str, object], why: str
) -> None:
    storage = LocalStorage(tmp_path, "STORAGE_URL")
    storage.initialise()
    stored = put_backup(storage, "shop", "2026-11-30T06:00:00")
    assert stored.id == ID
    key = stored.manifest_key
    storage.put_bytes(key, json.dumps({**json.loads(stored.to_json()), **changes}).encode())
    with pytest.raises(IntegrityError, match="a directory dump lists its files"):
        catalog.read_manifest(storage, key)
    assert catalog.list_backups(storage) == [], why
