"""How backups are laid out: object keys and ids, table keys with odd names, the tables
an archive's TOC holds data for, and upload part sizes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import catalog
from orchestrator.errors import ConfigError
from orchestrator.postgres import pg_restore
from orchestrator.storage.base import ObjectInfo
from orchestrator.storage.s3 import MAX_PARTS, part_size_for, stream_parts
from orchestrator.table_names import split_table_key, table_key

TOC = """;
; Archive created at 2026-11-25 09:00:00 UTC
;     dbname: shop
;
218; 1259 16390 TABLE public customers postgres
3380; 0 16390 TABLE DATA public customers postgres
3381; 0 16400 TABLE DATA public Mixed Case table postgres
3382; 0 16410 TABLE DATA sales orders app_owner
3383; 0 16420 SEQUENCE SET public customers_id_seq postgres
"""


def test_table_data_tables_match_names_with_spaces():
    known = [
        ("public", "customers"),
        ("public", "Mixed Case table"),
        ("public", "Mixed"),
        ("sales", "orders"),
        ("sales", "unused"),
    ]
    assert pg_restore.table_data_tables(TOC, known) == [
        ("public", "Mixed Case table"),
        ("public", "customers"),
        ("sales", "orders"),
    ]
    assert pg_restore.toc_entries(TOC, "TABLE") == ["public customers postgres"]


def test_key_layout_and_ids():
    when = datetime(2026, 3, 7, 6, 0, 5, tzinfo=UTC)
    backup_id = catalog.new_backup_id("my db/ü", when)
    assert backup_id == "my_db-20260307T060005Z"
    assert catalog.dump_key_for(backup_id) == "my_db/2026/03/07/my_db-20260307T060005Z.dump"
    assert catalog.manifest_key_for(backup_id).endswith("/my_db-20260307T060005Z.manifest.json")
    assert catalog.is_manifest_key(catalog.manifest_key_for(backup_id))
    assert not catalog.is_manifest_key("x/notes.manifest.json")
    with pytest.raises(ConfigError, match="is not a backup id"):
        catalog.dump_key_for("../../etc/passwd")


def test_foreign_objects_are_everything_not_laid_out_by_us():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [
        "shop/2026/01/01/shop-20260101T000000Z.dump",
        "shop/2026/01/01/shop-20260101T000000Z.manifest.json",
        "notes.txt",
        "shop/2026/01/01/export.sql",
        "shop/random.dump",
    ]
    foreign = catalog.foreign_objects(ObjectInfo(k, 1, when) for k in keys)
    assert [o.key for o in foreign] == [
        "notes.txt",
        "shop/2026/01/01/export.sql",
        "shop/random.dump",
    ]


@pytest.mark.parametrize("size", [0, 1, 8 * 2**20, 80 * 2**30, 5 * 2**40])
def test_part_size_keeps_uploads_under_the_part_limit(size):
    part = part_size_for(size)
    assert part >= 8 * 2**20 and part % 2**20 == 0
    assert -(-size // part) < MAX_PARTS


@pytest.mark.parametrize(
    ("size", "concurrency", "part_mib", "held"),
    [
        (0, 4, 5, 2),  # S3's smallest part, two held: 10 MiB
        (160 * 2**20, 4, 5, 2),
        (160 * 2**20, 1, 5, 1),  # never more than S3_MAX_CONCURRENCY
        (44 * 2**30, 4, 6, 1),  # larger parts, fewer held
        (5 * 2**40, 4, 583, 1),  # one part alone is over the budget: still one at a time
    ],
)
def test_stream_parts_keep_memory_within_the_budget(size, concurrency, part_mib, held):
    part, at_once = stream_parts(size, concurrency)
    assert (part // 2**20, at_once) == (part_mib, held)
    assert -(-size // part) < MAX_PARTS


@pytest.mark.parametrize(
    ("schema", "table", "key"),
    [
        ("public", "customers", "public.customers"),
        ("public", "Mixed Case table", "public.Mixed Case table"),
        ("a.b", "t", '"a.b".t'),
        ("s", 'we"ird.name', 's."we""ird.name"'),
        ("", "t", ".t"),
    ],
)
def test_table_keys_round_trip(schema, table, key):
    assert table_key(schema, table) == key
    assert split_table_key(key) == (schema, table)


@pytest.mark.parametrize("bad", ["nodot", "a.b.c", '"unclosed.t'])
def test_malformed_table_keys(bad):
    with pytest.raises(ValueError):
        split_table_key(bad)


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ((), (), True),
        ((("AWS_CA_BUNDLE", "/etc/ca.pem"),), (), True),
        ((), (("AWS_DATA_PATH", "/opt/models"),), False),
    ],
)
def test_stores_share_one_loader_of_service_models_unless_one_has_its_own_path(
    first, second, shared
):
    """Each loader holds a parsed copy of the S3 model (12 MiB): two stores keep one."""
    from orchestrator.storage.s3 import _session

    loaders = [_session(v)._session.get_component("data_loader") for v in (first, second)]
    assert (loaders[0] is loaders[1]) is shared
