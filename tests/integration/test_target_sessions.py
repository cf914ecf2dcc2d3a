"""A dev server whose settings differ from the source's (DateStyle SQL, DMY, IntervalStyle
sql_standard, a time zone with a half-hour offset, small statement, lock and idle timeouts,
a search_path naming no schema):
masked, subsetted loads still give the right values; a read-only server fails clearly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Clusters, backed_up_with_suggested_rules
from tests.harness import postgres
from tests.harness.postgres import Cluster
from tests.harness.targets import fresh_target

pytestmark = pytest.mark.integration

ODD_SETTINGS = (
    '-c "datestyle=SQL, DMY" -c intervalstyle=sql_standard -c timezone=Asia/Kolkata '
    "-c statement_timeout=300 -c lock_timeout=100 -c idle_in_transaction_session_timeout=200"
)
SOURCE_SQL = """
CREATE TABLE people (id int PRIMARY KEY, email text, born date, seen timestamptz,
    waited interval, at timestamp);
INSERT INTO people SELECT g, 'p' || g || '@x.example', date '1990-01-31' + g,
    timestamptz '2026-03-29 01:30:00+00' + g * interval '1 hour',
    interval '-1 day +2 hours' * g, timestamp '2026-01-31 23:00' + g * interval '1 hour'
FROM generate_series(1, 30) g;
CREATE TABLE visits (id int PRIMARY KEY, person int REFERENCES people, at date);
INSERT INTO visits SELECT g, 1 + g % 30, date '2026-12-31' - g FROM generate_series(1, 60) g;
"""
RULES = """
unlisted_columns: fail
tables:
  public.people:
    id: keep
    email: email
    born: {transform: date_shift, days: 10}
    seen: {transform: date_shift, days: 10}
    waited: keep
    at: {transform: date_shift, days: 10}
  public.visits: {id: keep, person: keep, at: {transform: date_shift, days: 10}}
subset:
  tables:
    public.people: {where: "born < date '1990-02-20'"}
"""
# read back in one style whatever the server's
AS_ISO = "SET datestyle = ISO; SET timezone = UTC; SET intervalstyle = postgres; "


@pytest.fixture(scope="module")
def odd(clusters: Clusters) -> Iterator[Cluster]:
    cluster = postgres.start_cluster(15, clusters.bins[15], ODD_SETTINGS)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def loaded(clusters: Clusters, odd: Cluster, tmp_path_factory) -> dict:
    """A masked, subsetted restore of the source into a dev database on the odd server."""
    tmp = tmp_path_factory.mktemp("sessions")
    source = clusters.get(17)
    db = f"sessions_{uuid.uuid4().hex[:8]}"
    source.create_database(db)
    source.psql(SOURCE_SQL, db)
    dev = fresh_target(odd)
    orch, _suggested = backed_up_with_suggested_rules(
        clusters, tmp, source.url(db), odd.url(dev), "sessions-mask-key-0123456789abcdef"
    )
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    odd.psql("ALTER ROLE postgres SET search_path = nowhere")  # no schema of that name
    try:
        orch.ok("restore", "--target", "dev", "--mask-rules", str(rules))
    finally:
        odd.psql("ALTER ROLE postgres RESET search_path")
    return {"orch": orch, "source": source, "db": db, "dev": dev}


def rows(cluster: Cluster, database: str, query: str) -> dict[str, list[str]]:
    return {
        line.split("|")[0]: line.split("|")[1:]
        for line in cluster.psql(AS_ISO + query, database).splitlines()
    }


def test_masked_dates_and_kept_intervals_load_right_into_an_odd_server(loaded, odd: Cluster):
    query = "SELECT id, born, seen, waited, at FROM public.people ORDER BY id"
    before, after = rows(loaded["source"], loaded["db"], query), rows(odd, loaded["dev"], query)
    assert 10 < len(after) < 30
    for key, (born, seen, waited, at) in after.items():
        old_born, old_seen, old_waited, old_at = before[key]
        assert waited == old_waited  # '-1 days +02:00:00' read as PostgreSQL wrote it
        assert seen[10:] == old_seen[10:] and at[10:] == old_at[10:]  # time of day kept
        for new, old in ((born, old_born), (seen[:10], old_seen[:10]), (at[:10], old_at[:10])):
            days = abs(int(odd.psql(f"SELECT date '{new}' - date '{old}'")))
            assert 1 <= days <= 10
    assert odd.psql(
        "SELECT count(*) FROM public.visits v JOIN public.people p ON p.id = v.person",
        loaded["dev"],
    )


def test_a_read_only_server_fails_the_restore_clearly(loaded, odd: Cluster):
    odd.psql("ALTER DATABASE postgres SET default_transaction_read_only = on", "template1")
    try:
        result = loaded["orch"].run("restore", "--target", "dev")
    finally:
        odd.psql("ALTER DATABASE postgres RESET default_transaction_read_only", "template1")
    assert result.returncode == 1, result.stderr[-1500:]
    assert "read-only transaction" in result.stderr.strip().splitlines()[-1]
    assert odd.psql("SELECT count(*) FROM public.people", loaded["dev"]) != "0"


def test_a_swap_keeps_the_settings_given_to_the_target_database(
    clusters: Clusters, odd: Cluster, tmp_path
):
    source = clusters.get(17)
    db = f"settings_{uuid.uuid4().hex[:8]}"
    source.create_database(db)
    source.psql(SOURCE_SQL, db)
    dev = fresh_target(odd)
    odd.psql(
        f"""ALTER DATABASE {dev} SET search_path = 'app', '$user', public;
        ALTER DATABASE {dev} SET timezone = 'America/St_Johns';
        ALTER DATABASE {dev} SET "app.tenant" = 'dev''s';
        ALTER DATABASE {dev} SET default_transaction_read_only = on;
        ALTER ROLE postgres IN DATABASE {dev} SET work_mem = '7MB'"""
    )
    settings = (
        "SELECT coalesce(r.rolname, '-'), s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
        f"WHERE d.datname = '{dev}' ORDER BY 1"
    )
    before = odd.psql(settings)
    orch, _suggested = backed_up_with_suggested_rules(
        clusters, tmp_path, source.url(db), odd.url(dev), "settings-mask-key-0123456789abcdef"
    )
    orch.ok("restore", "--target", "dev")
    assert odd.psql(settings) == before
    assert 'search_path=app, \\"$user\\", public' in before and "app.tenant=dev's" in before
    assert odd.psql("SHOW search_path; SHOW default_transaction_read_only", dev).split() == [
        "app,",
        '"$user",',
        "public",
        "on",
    ]


def test_a_statement_timeout_on_the_source_and_target_roles_does_not_stop_a_cycle(
    clusters: Clusters, odd: Cluster, tmp_path
):
    """Production often limits its roles' statements (ALTER ROLE ... SET statement_timeout):
    the exact row counts in the dump's snapshot and the restore check's ANALYZE and counts
    run longer than that on a large table, as pg_dump's own queries would."""
    source = clusters.get(17)
    db = f"timeout_{uuid.uuid4().hex[:8]}"
    source.create_database(db)
    source.psql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g",
        db,
    )
    source.psql(f"ALTER DATABASE {db} SET statement_timeout = '5ms'")
    dev = fresh_target(odd)  # the odd server limits statements to 300 ms, locks to 100 ms
    orch, _suggested = backed_up_with_suggested_rules(
        clusters, tmp_path, source.url(db), odd.url(dev), "timeout-mask-key-0123456789abcdef"
    )
    orch.env["BACKUP_DATABASE_URL"] = odd.url(dev)
    orch.ok("restore", "--target", "backup")
    assert odd.psql("SELECT count(*) FROM public.big", dev) == "300000"
