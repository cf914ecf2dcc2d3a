"""Choosing PostgreSQL client binaries: the source's major or the nearest newer one,
found once per folder, never Debian's pg_wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.postgres.clients import ClientSet, choose, discover, parse_version


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
