"""Databases that are not UTF8 (LATIN1, SQL_ASCII, EUC_JP), end to end through the CLI
against real servers: backups, plain restores and masked restores keep every character and
mask what the rules say, whatever the source's and the target's encodings."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import Clusters, Orchestrator, all_bin_dirs
from tests.harness.postgres import Cluster

pytestmark = pytest.mark.integration

KEY = "encodings-mask-key-0123456789abcdef"


def create_database(cluster: Cluster, encoding: str) -> str:
    """A new database in `encoding` (C locale, so any encoding is allowed); give its name."""
    name = f"{encoding.lower()}_{uuid.uuid4().hex[:8]}"
    cluster.psql(
        f"CREATE DATABASE {name} ENCODING '{encoding}' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    return name


def run_sql(cluster: Cluster, sql: str, database: str, client_encoding: str = "UTF8") -> str:
    """Run `sql` (written in `client_encoding`) on `database`; give psql's output."""
    saved = os.environ.get("PGCLIENTENCODING")
    os.environ["PGCLIENTENCODING"] = client_encoding
    try:
        return cluster.psql(sql, database)
    finally:
        if saved is None:
            os.environ.pop("PGCLIENTENCODING")
        else:
            os.environ["PGCLIENTENCODING"] = saved


def orchestrator(clusters: Clusters, tmp: Path, **env: str) -> Orchestrator:
    work = tmp / f"cwd-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    store = f"file://{tmp}/store"
    orch = Orchestrator(
        work,
        {"PG_BIN_DIRS": all_bin_dirs(clusters), "STORAGE_URL": store, "MASK_KEY": KEY, **env},
    )
    orch.ok("init")
    return orch


def test_a_sql_ascii_database_is_backed_up_and_restored(clusters: Clusters, tmp_path: Path):
    source = clusters.get(17)
    db, target = create_database(source, "SQL_ASCII"), create_database(source, "SQL_ASCII")
    run_sql(
        source, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'Müßig')", db
    )
    orch = orchestrator(
        clusters,
        tmp_path,
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=source.url(target),
    )
    orch.ok("backup")
    orch.ok("restore", "--target", "backup")
    assert run_sql(source, "SELECT v FROM t", target) == "Müßig"


LOCALE = "SELECT pg_encoding_to_char(encoding), datcollate, to_jsonb(d) ->> 'datlocprovider', "
LOCALE += "to_jsonb(d) ->> 'daticulocale' FROM pg_database d WHERE datname = "


def test_a_restore_keeps_the_encoding_and_locale_of_the_database_it_replaces(
    clusters: Clusters, tmp_path: Path
):
    source = clusters.get(17)
    db, target = create_database(source, "SQL_ASCII"), create_database(source, "SQL_ASCII")
    # bytes that are no UTF-8: a SQL_ASCII database holds whatever its clients sent
    run_sql(source, "CREATE TABLE t (v text); INSERT INTO t VALUES (E'Ren\\351e')", db, "SQL_ASCII")
    old, icu = clusters.get(14), clusters.get(15)
    latin1 = create_database(old, "LATIN1")
    icu.psql(
        "CREATE DATABASE icu_target TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' "
        "LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'"
    )
    orch = orchestrator(
        clusters,
        tmp_path,
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=source.url(target),
        DEV_DATABASE_URL=old.url(latin1),
    )
    orch.ok("backup")
    orch.ok("restore", "--target", "backup")
    assert source.psql(f"{LOCALE}'{target}'") == "SQL_ASCII|C|c|"
    assert run_sql(source, "SELECT encode(v::bytea, 'hex') FROM t", target) == "52656ee965"
    orch.ok("restore", "--target", "dev")
    assert old.psql(f"{LOCALE}'{latin1}'") == "LATIN1|C||"
    orch.ok("restore", "--target", icu.url("icu_target"))
    assert icu.psql(f"{LOCALE}'icu_target'") == "UTF8|C|i|de-DE"
