"""An archive's table of contents is listed once per archive as it is: the dump step and
each target's restore share one `pg_restore --list`, and a changed archive is listed again."""

from __future__ import annotations

import os
import subprocess

import pytest

from orchestrator import execute
from orchestrator.postgres import clients
from orchestrator.postgres import pg_restore as pgrestore
from tests.conftest import Clusters, all_bin_dirs
from tests.harness import postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dumped(clusters: Clusters, tmp_path_factory):
    """A small database dumped in both formats, and the pg_restore to list them."""
    source = clusters.get(17)
    source.create_database("listed")
    source.psql("CREATE TABLE a (id int); CREATE TABLE b (id int)", "listed")
    folder = tmp_path_factory.mktemp("toc")
    env = {**os.environ, "PGPASSWORD": postgres.PASSWORD, "PGSSLMODE": "disable"}
    url = source.url("listed", password=None)
    for fmt, name in (("c", "one.dump"), ("d", "one.d")):
        pg_dump = str(source.bin_dir / "pg_dump")
        subprocess.run([pg_dump, f"-F{fmt}", f"--file={folder / name}", url], env=env, check=True)
    client = clients.discover(all_bin_dirs(clusters).split(":"), "pg_restore")[0]
    return source, client, folder, env, url


@pytest.fixture
def listings(monkeypatch):
    """The pg_restore --list runs made (they still run)."""
    runs: list[list[str]] = []
    real = execute.run

    def counted(argv, **kwargs):
        if "--list" in argv:
            runs.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(execute, "run", counted)
    return runs


@pytest.mark.parametrize("name", ["one.dump", "one.d"])
def test_an_archive_is_listed_once_until_it_changes(dumped, listings, name):
    source, client, folder, env, url = dumped
    archive = folder / name
    first = pgrestore.list_toc(client, archive)
    assert "TABLE public a" in first
    assert pgrestore.list_toc(client, archive) == first
    assert len(listings) == 1

    source.psql("CREATE TABLE c (id int)", "listed")
    subprocess.run(["rm", "-rf", str(archive)], check=True)
    fmt = "d" if archive.suffix == ".d" else "c"
    pg_dump = str(source.bin_dir / "pg_dump")
    subprocess.run([pg_dump, f"-F{fmt}", f"--file={archive}", url], env=env, check=True)
    again = pgrestore.list_toc(client, archive)
    assert "TABLE public c" in again and len(listings) == 2
    source.psql("DROP TABLE c", "listed")
