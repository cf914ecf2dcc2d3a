"""pg_dump and pg_restore command lines: no password in argv, every option, the
compression chosen, the one header line that breaks older servers neutralised."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import conninfo
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.dump import (
    AUTO_JOBS,
    DumpOptions,
    choose_jobs,
    compression_for,
    dump_argv,
)


def clients(*versions: str) -> list[ClientSet]:
    return [ClientSet(Path(f"/pg/{v}/bin"), v, int(v.split(".")[0])) for v in versions]


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


def test_several_jobs_dump_the_directory_format_into_a_folder():
    source = conninfo.parse("postgresql://app@h/prod")
    argv = dump_argv(clients("17.2")[0], source, Path("/w/id.d"), "snap", DumpOptions(jobs=3))
    assert argv[1:5] == ["--format=directory", "--jobs=3", "--no-password", "--file=/w/id.d"]
    one = dump_argv(clients("17.2")[0], source, Path("/w/id.dump"), "snap", DumpOptions(jobs=1))
    assert one[1:3] == ["--format=custom", "--no-password"] and "--jobs=1" not in one


GIB = 1024**3


@pytest.mark.parametrize(
    ("setting", "size", "jobs", "why"),
    [
        (
            None,
            GIB - 1,
            1,
            "DUMP_JOBS=auto: the database holds 1024.0 MiB, under DUMP_PARALLEL_FROM",
        ),
        (
            None,
            GIB,
            AUTO_JOBS,
            "DUMP_JOBS=auto: the database holds 1.0 GiB, from DUMP_PARALLEL_FROM=1.0 GiB on",
        ),
        (None, 300 * GIB, AUTO_JOBS, "DUMP_JOBS=auto: the database holds 300.0 GiB, from"),
        (1, 300 * GIB, 1, "DUMP_JOBS=1 (the database holds 300.0 GiB)"),
        (8, 10, 8, "DUMP_JOBS=8 (the database holds 10 B)"),
    ],
)
def test_jobs_are_the_setting_else_parallel_from_a_size_on(setting, size, jobs, why):
    chosen, reason = choose_jobs(setting, GIB, size)
    assert chosen == jobs and reason.startswith(why)


def test_neutralise_transaction_timeout_only_in_the_header(tmp_path):
    from orchestrator.postgres.pg_restore import neutralise_transaction_timeout

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
