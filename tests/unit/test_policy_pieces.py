"""Pure pieces: client choice, pg_dump argv, TOC parsing, key layout, part sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import catalog, conninfo
from orchestrator.errors import ConfigError
from orchestrator.names import split_table_key, table_key
from orchestrator.postgres import restore
from orchestrator.postgres.clients import ClientSet, choose, discover, parse_version
from orchestrator.postgres.dump import DumpOptions, compression_for, dump_argv
from orchestrator.storage.base import ObjectInfo
from orchestrator.storage.s3 import MAX_PARTS, part_size_for


def clients(*versions: str) -> list[ClientSet]:
    return [ClientSet(Path(f"/pg/{v}/bin"), v, int(v.split(".")[0])) for v in versions]


@pytest.mark.parametrize(
    ("available", "needed", "chosen"),
    [
        (("17.2", "16.4", "15.8"), 16, "16.4"),
        (("15.8", "17.2"), 16, "17.2"),
        (("18.1", "17.2"), 14, "17.2"),
        (("17.2", "17.0"), 17, "17.2"),  # first found wins among the same major
        (("14.1",), 14, "14.1"),
    ],
)
def test_choose_same_major_else_nearest_newer(available, needed, chosen):
    assert choose(clients(*available), needed, "pg_dump", "why").version == chosen


@pytest.mark.parametrize(("available", "found"), [(("15.8", "14.1"), "14.1, 15.8"), ((), "none")])
def test_choose_refuses_older_clients_naming_versions(available, found):
    with pytest.raises(ConfigError) as caught:
        choose(clients(*available), 17, "pg_dump", "the source runs 17.2")
    message = str(caught.value)
    assert message.startswith("PG_BIN_DIRS: pg_dump 17 or newer is needed (the source runs 17.2)")
    assert f"found: {found}" in message


@pytest.mark.parametrize(
    ("output", "parsed"),
    [
        ("pg_dump (PostgreSQL) 17.11\n", ("17.11", 17)),
        ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", ("15.18", 15)),
        ("pg_restore (PostgreSQL) 18beta1", ("18", 18)),
        ("something else", None),
    ],
)
def test_parse_version(output, parsed):
    assert parse_version(output) == parsed


def _fake_tool(path: Path, version_line: str) -> None:
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)


def test_discovery_probes_each_folder_once_and_skips_debians_pg_wrapper(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    _fake_tool(real / "pg_dump", "pg_dump (PostgreSQL) 42.1")
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    wrapped = tmp_path / "wrapped"
    wrapped.mkdir()
    _fake_tool(tmp_path / "pg_wrapper", "pg_dump (PostgreSQL) 43.0")
    (wrapped / "pg_dump").symlink_to(tmp_path / "pg_wrapper")

    loop = tmp_path / "loop"  # a PATH entry that is a symlink loop is passed over
    loop.symlink_to(loop)

    found = discover([str(loop), str(real), str(alias), str(wrapped)])

    assert [c for c in found if c.bin_dir.is_relative_to(tmp_path)] == [ClientSet(real, "42.1", 42)]


@pytest.mark.parametrize(
    ("setting", "major", "chosen"),
    [
        (None, 17, "zstd"),
        (None, 16, "zstd"),
        (None, 15, None),
        (None, 14, None),
        ("gzip", 17, "gzip"),
        ("6", 15, "6"),
        ("none", 17, "none"),
        ("lz4", 16, "lz4"),
    ],
)
def test_compression_is_the_setting_else_zstd_from_pg_dump_16(setting, major, chosen):
    assert compression_for(setting, major) == chosen


def test_dump_argv_has_no_password_and_all_options():
    source = conninfo.parse("postgresql://app:topsecret@h:5433/prod?sslmode=require")
    argv = dump_argv(
        clients("17.2")[0],
        source,
        Path("/w/out.dump"),
        "00000003-1",
        DumpOptions(
            compress="zstd:3",
            exclude_tables=("audit.*",),
            exclude_table_data=("logs",),
            extra_args=("--no-comments",),
        ),
    )
    assert argv == [
        "/pg/17.2/bin/pg_dump",
        "--format=custom",
        "--no-password",
        "--file=/w/out.dump",
        "--dbname=postgresql://app@h:5433/prod?sslmode=require",
        "--snapshot=00000003-1",
        "--compress=zstd:3",
        "--exclude-table=audit.*",
        "--exclude-table-data=logs",
        "--no-comments",
    ]
    assert not any("topsecret" in arg for arg in argv)


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
    assert restore.table_data_tables(TOC, known) == [
        ("public", "Mixed Case table"),
        ("public", "customers"),
        ("sales", "orders"),
    ]
    assert restore.toc_entries(TOC, "TABLE") == ["public customers postgres"]


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


def test_neutralise_transaction_timeout_only_in_the_header(tmp_path):
    from orchestrator.postgres.restore import neutralise_transaction_timeout

    script = tmp_path / "s.sql"
    body = (
        b"--\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\nSET x = 1;\n"
        b"COPY public.t (v) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
    )
    script.write_bytes(body)
    assert neutralise_transaction_timeout(script) is True
    patched = script.read_bytes()
    assert len(patched) == len(body)
    assert patched.count(b"SET transaction_timeout = 0;") == 1  # the data row is untouched
    assert b"\n--T transaction_timeout = 0;\n" in patched
    data_only = tmp_path / "d.sql"
    data_only.write_bytes(b"COPY public.t (v) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n")
    assert neutralise_transaction_timeout(data_only) is False
