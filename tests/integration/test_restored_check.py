"""The check every restore makes (ANALYZE, exact row counts), shared over several
connections, against a real server: every relation analyzed, every difference named, the
first failure raised, whatever the number of connections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from orchestrator import catalog, conninfo
from orchestrator.catalog import Manifest
from orchestrator.operations.restored import verify_restored

pytestmark = pytest.mark.integration

# many small tables, one large one, a partitioned table (its parent holds no rows of its
# own), odd names and a materialized view: the relations a database-wide ANALYZE visits
SCHEMA = '''
CREATE SCHEMA "odd schema";
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 40000) g;
CREATE TABLE "odd schema"."Mixed ""Case""" (id int, v text);
INSERT INTO "odd schema"."Mixed ""Case""" SELECT g, 'x' FROM generate_series(1, 7) g;
CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE events_b PARTITION OF events FOR VALUES FROM ('2025-07-01') TO ('2026-01-01');
INSERT INTO events SELECT g, date '2025-01-01' + g % 2 * 200 FROM generate_series(1, 3000) g;
CREATE MATERIALIZED VIEW big_summary AS SELECT id % 10 AS k, count(*) FROM big GROUP BY 1;
DO $$ BEGIN
  FOR i IN 1..30 LOOP
    EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, v text)', i);
    EXECUTE format('INSERT INTO small_%s SELECT g, g::text FROM generate_series(1, %s) g', i, i);
  END LOOP;
END $$;
'''
COUNTS = {
    "public.big": 40000,
    'odd schema."Mixed ""Case"""': 7,
    "public.events": 0,
    "public.events_a": 1500,
    "public.events_b": 1500,
    **{f"public.small_{i}": i for i in range(1, 31)},
}


def manifest_of(counts: dict[str, int]) -> Manifest:
    """A manifest whose only use here is its row counts."""
    created = datetime(2026, 12, 5, tzinfo=UTC)
    backup_id = catalog.new_backup_id("checked", created)
    return Manifest(
        id=backup_id,
        created_at=created,
        database="checked",
        dump_key=catalog.dump_key_for(backup_id),
        size_bytes=1,
        sha256="0" * 64,
        server_version="17.2",
        server_version_num=170002,
        pg_dump_version="17.2",
        duration_seconds=1.0,
        row_counts=counts,
    )


@pytest.fixture
def restored(clusters):
    """A fresh database holding SCHEMA on PostgreSQL 17, nothing analyzed yet."""
    cluster = clusters.get(17)
    name = f"checked_{uuid.uuid4().hex[:8]}"
    cluster.psql(f'CREATE DATABASE "{name}"')
    cluster.psql(SCHEMA, name)
    yield cluster, name
    cluster.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("jobs", [1, 3])
def test_every_relation_is_analyzed_and_every_table_counted(restored, jobs):
    cluster, name = restored
    checked = verify_restored(
        conninfo.parse(cluster.url(name)), manifest_of(COUNTS), "target", analyze=True, jobs=jobs
    )
    assert checked.problems == []
    assert (checked.tables, checked.rows) == (len(COUNTS), sum(COUNTS.values()))
    never = cluster.psql(
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_stat_user_tables"
        " WHERE last_analyze IS NULL",
        name,
    )
    assert never == ""  # the partitioned parent and the materialized view too
    summary = "SELECT count(*) FROM pg_stats WHERE tablename = 'big_summary'"
    assert cluster.psql(summary, name) != "0"


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_missing_row_and_a_missing_table_are_named(restored, jobs):
    cluster, name = restored
    cluster.psql("DELETE FROM small_17 WHERE id = 3; DROP TABLE small_5", name)
    checked = verify_restored(
        conninfo.parse(cluster.url(name)), manifest_of(COUNTS), "target", jobs=jobs
    )
    assert checked.problems == [
        "public.small_17: expected 17 rows, found 16",
        "public.small_5: expected 5 rows, found missing",
    ]


def test_a_statement_failing_on_another_connection_is_raised(restored):
    cluster, name = restored
    role = f"reader_{uuid.uuid4().hex[:6]}"
    cluster.psql(
        f"CREATE ROLE {role} LOGIN PASSWORD 'pw-1'; GRANT SELECT ON ALL TABLES IN SCHEMA public"
        f' TO {role}; GRANT USAGE ON SCHEMA "odd schema" TO {role}',
        name,
    )  # but no SELECT on "odd schema"."Mixed ""Case""": its count fails
    target = conninfo.parse(cluster.url(name, user=role, password="pw-1"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Mixed"):
        verify_restored(target, manifest_of(COUNTS), "target", jobs=3)
