"""restore and drill against real clusters of different majors: nothing a target had is lost."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Clusters, Orchestrator, all_bin_dirs, load_sample
from tests.harness import postgres
from tests.harness.targets import CHECK_SQL, databases, fresh_target, old_content
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


ROLE_PASSWORD = "role-pw-123"


def role_owned_target(cluster, createdb: bool) -> tuple[str, str]:
    """A target database owned by a new login role (CREATEDB or not) holding keep_me;
    give (database, URL that connects as that role)."""
    role = f"app_{uuid.uuid4().hex[:6]}"
    right = "CREATEDB" if createdb else "NOCREATEDB"
    cluster.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}' {right}")
    database = f"owned_{uuid.uuid4().hex[:6]}"
    cluster.psql(f"CREATE DATABASE {database} OWNER {role}")
    cluster.psql(
        f"SET ROLE {role}; CREATE TABLE keep_me (v text); "
        "INSERT INTO keep_me VALUES ('old content')",
        database,
    )
    return database, cluster.url(database, user=role, password=ROLE_PASSWORD)


def give_orders_to_a_role_targets_lack(source, database: str) -> None:
    """Make sales.orders owned by app_owner, a role the target servers do not have."""
    source.psql(
        "DO $$ BEGIN CREATE ROLE app_owner; EXCEPTION WHEN duplicate_object THEN "
        "NULL; END $$; ALTER TABLE sales.orders OWNER TO app_owner",
        database,
    )


SCHEMA_SQL = """
SELECT string_agg(format('%s.%s.%s %s %s %s', table_schema, table_name, column_name, data_type,
                         is_nullable, coalesce(column_default, '')), E'\n'
                  ORDER BY table_schema, table_name, column_name)
FROM information_schema.columns WHERE table_schema IN ('public', 'sales')
UNION ALL
SELECT string_agg(format('%s %s', conname, pg_get_constraintdef(c.oid)), E'\n' ORDER BY conname)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE n.nspname IN ('public', 'sales')
UNION ALL
SELECT string_agg(format('%s.%s', schemaname, viewname), ',' ORDER BY schemaname, viewname)
FROM pg_views WHERE schemaname IN ('public', 'sales')
UNION ALL
SELECT string_agg(indexdef, E'\n' ORDER BY indexdef) FROM pg_indexes
WHERE schemaname IN ('public', 'sales')
"""


def schema_of(cluster, database: str) -> str:
    """Columns, constraints, views and indexes: comparable across server majors."""
    return cluster.psql(SCHEMA_SQL, database)


@pytest.fixture(scope="module")
def archived(clusters: Clusters, tmp_path_factory):
    """A PG17 source with sample data and one backup of it in a folder store, shared by the
    module's tests: restores and drills read the archive and never change it."""
    source = clusters.get(17)
    db = load_sample(source)
    home = tmp_path_factory.mktemp("restore-archive")
    store = f"file://{home}/store"
    orch = Orchestrator(
        home,
        {
            "PG_BIN_DIRS": all_bin_dirs(clusters),
            "STORAGE_URL": store,
            "SOURCE_DATABASE_URL": source.url(db),
        },
    )
    orch.ok("init")
    return {"source": source, "db": db, "store": store, "id": orch.ok("backup").stdout.strip()}


@pytest.fixture
def setup(archived, clusters: Clusters, orch_factory):
    """The module's backup, and fresh targets on PG15 (backup) and PG14 (dev)."""
    source, db = archived["source"], archived["db"]
    backup_c, dev_c = clusters.get(15), clusters.get(14)
    backup_db, dev_db = fresh_target(backup_c), fresh_target(dev_c)

    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=backup_c.url(backup_db),
        DEV_DATABASE_URL=dev_c.url(dev_db),
        STORAGE_URL=archived["store"],
    )
    return {
        "source": source,
        "db": db,
        "backup": backup_c,
        "backup_db": backup_db,
        "dev": dev_c,
        "dev_db": dev_db,
        "orch": orch,
        "id": archived["id"],
    }


def test_swap_restore_into_older_major_equals_the_source(setup):
    s = setup
    result = s["orch"].ok("restore", "--target", "backup")
    assert "by swap" in result.stdout and "_previous" in result.stdout
    assert s["backup"].psql(CHECK_SQL, s["backup_db"]) == s["source"].psql(CHECK_SQL, s["db"])
    assert schema_of(s["backup"], s["backup_db"]) == schema_of(s["source"], s["db"])
    assert old_content(s["backup"], f"{s['backup_db']}_previous") == "old content"
    assert not [d for d in databases(s["backup"]) if "__restore_" in d]
    # the harmless transaction_timeout error of pg_restore 17 into 15 was logged, not fatal
    assert "transaction_timeout" in result.stderr


def test_second_restore_rotates_the_previous_copy(setup):
    s = setup
    s["orch"].ok("restore", "--target", "dev")
    s["dev"].psql("CREATE TABLE marker (v int)", s["dev_db"])
    s["orch"].ok("restore", "--target", "dev", "--from", s["id"])
    names = databases(s["dev"])
    assert f"{s['dev_db']}_previous" in names and f"{s['dev_db']}_previous_2" not in names
    assert s["dev"].psql("SELECT count(*) FROM marker", f"{s['dev_db']}_previous") == "0"
    assert not [d for d in names if "__old_" in d or "__restore_" in d]


def test_copy_that_ages_out_is_dropped_before_restoring_even_if_the_restore_fails(setup, tmp_path):
    """Make room first: the copy a swap would drop goes before pg_restore starts (the
    checkpoint its DROP forces then finds little to write), so the server needs room for
    one copy less; a failed restore still leaves the target as it was."""
    s = setup
    s["orch"].ok("restore", "--target", "dev")
    previous = f"{s['dev_db']}_previous"
    assert old_content(s["dev"], previous) == "old content"
    body = '"$REAL" "$@"\necho "pg_restore: error: injected failure" >&2\nexit 1\n'
    wrapped = wrapped_restore(tmp_path, s["source"].bin_dir, body)
    result = s["orch"].run("restore", "--target", "dev", extra_env={"PG_BIN_DIRS": str(wrapped)})
    assert result.returncode == 1 and "injected failure" in result.stderr.splitlines()[-1]
    assert "restore.made_room" in result.stderr
    assert result.stderr.index("restore.made_room") < result.stderr.index("pg_restore --no-pass")
    names = databases(s["dev"])
    assert previous not in names and not [d for d in names if "__restore_" in d]
    assert s["dev"].psql("SELECT count(*) FROM public.customers", s["dev_db"]) == "2000"


def test_copy_that_cannot_be_dropped_early_only_warns(setup):
    """A copy the role may not drop (another role owns it) is left for the swap, which
    then fails on it as before: the target stays as it was."""
    s = setup
    database, url = role_owned_target(s["backup"], createdb=True)
    s["backup"].psql(f"CREATE DATABASE {database}_previous")  # owned by the superuser
    result = s["orch"].run("restore", "--target", url)
    assert result.returncode == 1
    assert "restore.make_room_failed" in result.stderr
    assert f"{database}_previous" in databases(s["backup"])
    assert old_content(s["backup"], database) == "old content"
    assert not [d for d in databases(s["backup"]) if "__restore_" in d]


def test_target_that_did_not_exist_is_created(setup):
    s = setup
    new_db = f"brand_new_{uuid.uuid4().hex[:6]}"
    s["orch"].ok("restore", "--target", s["backup"].url(new_db), "--jobs", "1")
    assert s["backup"].psql("SELECT count(*) FROM public.customers", new_db) == "2000"
    assert f"{new_db}_previous" not in databases(s["backup"])


def test_open_sessions_do_not_block_the_swap(setup):
    s = setup
    idle = psycopg.connect(s["backup"].url(s["backup_db"]), autocommit=True)
    in_tx = psycopg.connect(s["backup"].url(s["backup_db"]))
    in_tx.execute("SELECT * FROM keep_me FOR UPDATE")
    try:
        s["orch"].ok("restore", "--target", "backup")
    finally:
        for conn in (idle, in_tx):
            with contextlib.suppress(psycopg.Error):
                conn.close()
    assert s["backup"].psql("SELECT count(*) FROM sales.orders", s["backup_db"]) == "5000"


def wrapped_restore(tmp_path: Path, real_bin: Path, body: str) -> Path:
    """A bin folder whose pg_restore runs `body` (bash) for restores."""
    return wrap_tool(tmp_path / "wrapped-bin", real_bin, "pg_restore", body)


@pytest.mark.parametrize("target", ["backup", "dev"])
def test_pg_restore_killed_midway_leaves_the_target_intact(setup, tmp_path, target):
    s = setup
    body = '"$REAL" "$@" &\nchild=$!\nsleep 0.2\nkill -KILL $child\nkill -KILL $$\n'
    wrapped = wrapped_restore(tmp_path, s["source"].bin_dir, body)
    result = s["orch"].run("restore", "--target", target, extra_env={"PG_BIN_DIRS": str(wrapped)})
    assert result.returncode == 1
    assert "pg_restore was killed by signal SIGKILL" in result.stderr.splitlines()[-1]
    cluster, db = s[target], s[f"{target}_db"]
    assert old_content(cluster, db) == "old content"
    assert not [d for d in databases(cluster) if "__restore_" in d]


@pytest.mark.parametrize("strategy", ["swap", "transaction"])
def test_restore_failing_on_the_target_keeps_the_previous_content(clusters, orch_factory, strategy):
    source = clusters.get(15)
    db = load_sample(source)
    give_orders_to_a_role_targets_lack(source, db)
    target_c = clusters.get(14)  # has no role app_owner
    target_db = fresh_target(target_c)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        BACKUP_DATABASE_URL=target_c.url(target_db),
        BACKUP_RESTORE_OWNERS="true",
        BACKUP_RESTORE_STRATEGY=strategy,
    )
    orch.ok("backup")
    result = orch.run("restore", "--target", "backup")
    assert result.returncode == 1
    assert 'role "app_owner" does not exist' in result.stderr.splitlines()[-1]
    assert old_content(target_c, target_db) == "old content"
    assert "customers" not in target_c.psql(
        "SELECT string_agg(relname, ',') FROM pg_class", target_db
    )
    assert not [d for d in databases(target_c) if "__restore_" in d]


def test_transaction_strategy_round_trip_for_a_role_without_createdb(clusters, orch_factory):
    source = clusters.get(17)
    db = load_sample(source)
    target_c = clusters.get(17)
    target_db, url = role_owned_target(target_c, createdb=False)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), BACKUP_DATABASE_URL=url)
    orch.ok("backup")
    result = orch.ok("restore", "--target", "backup")
    assert "by transaction" in result.stdout
    assert target_c.psql(CHECK_SQL, target_db) == source.psql(CHECK_SQL, db)
    # --clean drops only what the archive holds; the unrelated old table stays
    assert old_content(target_c, target_db) == "old content"


def test_post_restore_sql_runs_before_the_swap(setup, tmp_path):
    s = setup
    scrub = tmp_path / "scrub.sql"
    scrub.write_text(
        "UPDATE public.customers SET email = 'user' || id || '@scrubbed.invalid', "
        "phone = NULL;\nCREATE ROLE dev_reader_x NOLOGIN;\n"
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO dev_reader_x;\n"
    )
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # a dev user polling the dev database during the restore
        while not stop.is_set():
            try:
                with psycopg.connect(s["dev"].url(s["dev_db"]), connect_timeout=2) as conn:
                    row = conn.execute("SELECT min(email) FROM public.customers").fetchone()
                    seen.append(row[0])
            except psycopg.Error:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        s["orch"].ok("restore", "--target", "dev", extra_env={"DEV_POST_RESTORE_SQL": str(scrub)})
    finally:
        stop.set()
        watcher.join()
    emails = s["dev"].psql(
        "SELECT string_agg(DISTINCT split_part(email, '@', 2), ',') FROM public.customers",
        s["dev_db"],
    )
    assert emails == "scrubbed.invalid"
    assert all(e.endswith("@scrubbed.invalid") for e in seen if e)


def test_a_target_url_naming_dev_gets_what_target_dev_gets(setup, tmp_path):
    """Without masking rules: DEV_POST_RESTORE_SQL runs and DEV_KEEP_PREVIOUS applies (the
    URL's defaults would keep one previous copy and run no SQL), and it counts as dev."""
    s = setup
    scrub = tmp_path / "scrub.sql"
    scrub.write_text("UPDATE public.customers SET email = 'user' || id || '@scrubbed.invalid';\n")
    env = {"DEV_POST_RESTORE_SQL": str(scrub), "DEV_KEEP_PREVIOUS": "2"}
    as_url = s["dev"].url(s["dev_db"], host="localhost")
    for _ in range(2):
        assert " into dev (" in s["orch"].ok("restore", "--target", as_url, extra_env=env).stdout
    emails = "SELECT string_agg(DISTINCT split_part(email, '@', 2), ',') FROM public.customers"
    assert s["dev"].psql(emails, s["dev_db"]) == "scrubbed.invalid"
    names = databases(s["dev"])
    assert {f"{s['dev_db']}_previous", f"{s['dev_db']}_previous_2"} <= names
    assert old_content(s["dev"], f"{s['dev_db']}_previous_2") == "old content"


def test_failing_post_restore_sql_leaves_dev_intact(setup, tmp_path):
    s = setup
    bad = tmp_path / "bad.sql"
    bad.write_text("UPDATE public.customers SET email = NULL;\n")  # violates NOT NULL
    result = s["orch"].run(
        "restore", "--target", "dev", extra_env={"DEV_POST_RESTORE_SQL": str(bad)}
    )
    assert result.returncode == 1
    assert "psql exited with code 3" in result.stderr.splitlines()[-1]
    assert "null value" in result.stderr.splitlines()[-1]
    assert old_content(s["dev"], s["dev_db"]) == "old content"
    assert not [d for d in databases(s["dev"]) if "__restore_" in d]


def guard_cases(s) -> list[str]:
    src = s["source"]
    return [
        src.url(s["db"]),
        src.url(s["db"], host="localhost"),
        src.url(s["db"]).replace("postgresql://", "postgres://") + "?sslmode=disable",
        f"postgresql://{postgres.SUPERUSER}:x@[::1]:{src.port}/{s['db']}",
    ]


def test_production_guard_refuses_every_spelling_of_the_source(setup):
    s = setup
    before = s["source"].psql(CHECK_SQL, s["db"])
    for spelling in guard_cases(s):
        result = s["orch"].run("restore", "--target", spelling)
        assert result.returncode == 2, spelling
        assert "refusing to restore into the source database" in result.stderr
    # a configured target that is really the source
    result = s["orch"].run(
        "restore",
        "--target",
        "backup",
        extra_env={"RAILWAY_BACKUP_DB_URL": s["source"].url(s["db"]), "BACKUP_DATABASE_URL": ""},
    )
    assert result.returncode == 2
    assert s["source"].psql(CHECK_SQL, s["db"]) == before
    assert not [d for d in databases(s["source"]) if "__restore_" in d]


def test_guard_uses_the_cluster_identity_when_urls_differ(setup):
    s = setup
    # no SOURCE_DATABASE_URL at all: the backup's recorded source identity still protects it
    result = s["orch"].run(
        "restore", "--target", s["source"].url(s["db"]), extra_env={"SOURCE_DATABASE_URL": ""}
    )
    assert result.returncode == 2
    assert "system identifier" in result.stderr


def test_local_copy_is_checked_before_use(setup, tmp_path):
    s = setup
    copy = tmp_path / "copy.dump"
    s["orch"].ok("fetch", s["id"], "-o", str(copy))
    s["orch"].ok("restore", "--target", "dev", "--from", s["id"], "--dump", str(copy))
    with copy.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"corrupt")
    result = s["orch"].run("restore", "--target", "dev", "--from", s["id"], "--dump", str(copy))
    assert result.returncode == 1 and "sha256" in result.stderr


def test_drill_reports_and_cleans_up(setup):
    s = setup
    before = databases(s["backup"])
    result = s["orch"].ok("drill", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["backup_id"] == s["id"] and report["tables"] == 7
    listed = json.loads(s["orch"].ok("list", "--json").stdout)[0]
    assert report["rows"] == listed["rows"]
    assert report["rto_seconds"] >= report["restore_seconds"] > 0
    assert databases(s["backup"]) == before
    human = s["orch"].ok("drill", "--target-url", s["dev"].url("postgres")).stdout
    assert re.search(r"RTO\s+\d+\.\d s", human) and "drill OK" in human
    # production down: the drill runs without the cycle lock, and says so (README: Drills)
    down = {"SOURCE_DATABASE_URL": f"postgresql://u:pw@127.0.0.1:1/{s['db']}"}
    unlocked = s["orch"].ok("drill", "--from", s["id"], extra_env=down)
    assert "drill OK" in unlocked.stdout and '"event": "drill.unlocked"' in unlocked.stderr


def test_restore_without_targets_configured_names_the_variable(orch_factory, clusters):
    result = orch_factory().run("restore", "--target", "dev")
    assert result.returncode == 2
    assert "DEV_DATABASE_URL is not set" in result.stderr
    result = orch_factory().run("restore", "--target", "mysql://x")
    assert result.returncode == 2 and "--target" in result.stderr


def test_single_transaction_treats_every_error_as_fatal(setup, tmp_path):
    s = setup
    body = (
        'echo "pg_restore: error: could not execute query: ERROR:  must be owner of '
        'extension plpgsql" >&2\nexit 1\n'
    )
    wrapped = wrapped_restore(tmp_path, s["source"].bin_dir, body)
    target_db = fresh_target(s["source"])  # a PostgreSQL 17 target: pg_restore 17 may use it
    result = s["orch"].run(
        "restore",
        "--target",
        "backup",
        extra_env={
            "PG_BIN_DIRS": str(wrapped),
            "BACKUP_RESTORE_STRATEGY": "transaction",
            "BACKUP_DATABASE_URL": s["source"].url(target_db),
        },
    )
    assert result.returncode == 1
    assert "rolled back" in result.stderr.splitlines()[-1]
    assert old_content(s["source"], target_db) == "old content"


def test_sessions_the_role_may_not_end_fail_the_swap_and_keep_the_target(clusters, orch_factory):
    source = clusters.get(17)
    db = load_sample(source)
    target_c = clusters.get(15)
    target_db, url = role_owned_target(target_c, createdb=True)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), RESTORE_SESSION_WAIT="2", BACKUP_DATABASE_URL=url
    )
    orch.ok("backup")
    superuser_session = psycopg.connect(target_c.url(target_db), autocommit=True)
    try:
        result = orch.run("restore", "--target", "backup")
    finally:
        superuser_session.close()
    assert result.returncode == 1
    assert "still has sessions after 2s" in result.stderr.splitlines()[-1]
    assert old_content(target_c, target_db) == "old content"
    assert not [d for d in databases(target_c) if "__restore_" in d]


def test_restorer_checks_the_guard_on_its_own_connection(setup, monkeypatch):
    from orchestrator import conninfo
    from orchestrator.errors import ConfigError
    from orchestrator.operations import restore as restore_action
    from orchestrator.operations.common import client_for
    from orchestrator.operations.fetch import find_backup
    from orchestrator.settings import load_settings

    s = setup
    for key, value in s["orch"].env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SOURCE_DATABASE_URL")
    job = load_settings(None).job()
    manifest = find_backup(job, s["id"]).manifest
    target = job.adhoc_target(conninfo.parse(s["source"].url(s["db"])))
    client = client_for(job, "pg_restore", manifest.dump_major, "test")
    restorer = restore_action.Restorer(job, target, manifest, client, Path("/nonexistent"))
    with pytest.raises(ConfigError, match="system identifier"):
        restorer.run()
    assert not [d for d in databases(s["source"]) if "__restore_" in d]


def test_maintenance_database_cannot_be_the_target(setup):
    s = setup
    result = s["orch"].run("restore", "--target", s["backup"].url("postgres"))
    assert result.returncode == 2 and "MAINTENANCE_DATABASE" in result.stderr


def test_missing_maintenance_database_falls_back_to_template1(setup):
    s = setup
    result = s["orch"].ok(
        "restore", "--target", "dev", extra_env={"MAINTENANCE_DATABASE": "no_such_maintenance_db"}
    )
    assert "by swap" in result.stdout
    assert s["dev"].psql("SELECT count(*) FROM sales.orders", s["dev_db"]) == "5000"


@pytest.mark.parametrize("owners", ["false", "true"])
def test_transaction_strategy_with_a_newer_pg_restore_than_the_server(
    clusters, orch_factory, owners
):
    source = clusters.get(17)
    db = load_sample(source)
    give_orders_to_a_role_targets_lack(source, db)
    target_c = clusters.get(15)  # no role app_owner here
    target_db, url = role_owned_target(target_c, createdb=False)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), BACKUP_RESTORE_OWNERS=owners, BACKUP_DATABASE_URL=url
    )
    orch.ok("backup")
    result = orch.run("restore", "--target", "backup")
    if owners == "false":
        assert result.returncode == 0, result.stderr[-2000:]
        assert "by transaction" in result.stdout
        assert target_c.psql(CHECK_SQL, target_db) == source.psql(CHECK_SQL, db)
    else:  # owners this role may not set: psql stops at the first error, all is rolled back
        assert result.returncode == 1
        assert "psql exited with code 3" in result.stderr.splitlines()[-1]
        assert "ERROR:" in result.stderr.splitlines()[-1]
        assert "customers" not in target_c.psql(
            "SELECT string_agg(relname, ',') FROM pg_class", target_db
        )
    assert old_content(target_c, target_db) == "old content"


@pytest.mark.parametrize("cancelled", [1, 3], ids=["cancelled-once", "cancelled-every-time"])
def test_a_failed_restore_drops_its_staging_copy_even_when_a_stop_cancels_the_drop(
    setup, monkeypatch, cancelled
):
    """A stop request cancels every open connection's query; under load that cancel can
    land on the DROP of the half-restored copy. The drop is tried again on a new
    connection; a copy that still stays is named in a `restore.staging_left` warning."""
    import structlog.testing

    from orchestrator.errors import OrchestratorError
    from orchestrator.operations import restore as restore_action
    from orchestrator.postgres import queries

    s = setup
    name, restorer = _failing_restore_into_a_fresh_dev_target(s, monkeypatch)
    real, tries = queries.drop_database, []

    def cancelled_drop(conn, database, server_major):
        if "__restore_" in database:
            tries.append(database)
            if len(tries) <= cancelled:
                raise psycopg.errors.QueryCanceled("canceling statement due to user request")
        real(conn, database, server_major)

    monkeypatch.setattr(queries, "drop_database", cancelled_drop)
    monkeypatch.setattr(restore_action, "STAGING_DROP_PAUSE", 0.0)
    with structlog.testing.capture_logs() as logs, pytest.raises(OrchestratorError):
        restorer.run()  # pg_restore cannot read the archive: the load fails
    left = [d for d in databases(s["dev"]) if d.startswith(f"{name}__restore_")]
    warned = [e for e in logs if e["event"] == "restore.staging_left"]
    if cancelled < restore_action.STAGING_DROP_ATTEMPTS:
        assert left == [] and warned == [] and len(tries) == cancelled + 1
    else:
        assert [w["database"] for w in warned] == left == tries[:1]
        assert "canceling statement" in warned[0]["error"]
        s["dev"].psql(f'DROP DATABASE "{left[0]}"')
    assert old_content(s["dev"], name) == "old content"  # the target stays as it was


def test_a_stop_landing_as_the_staging_copy_is_created_still_drops_it(setup, monkeypatch):
    """In `restore` the SIGTERM handler raises in the thread that runs the restore, which
    may be the moment CREATE DATABASE has committed on the server but not yet returned."""
    import signal

    from orchestrator.errors import Interrupted
    from orchestrator.postgres import queries

    s = setup
    name, restorer = _failing_restore_into_a_fresh_dev_target(s, monkeypatch)
    real = queries.create_database

    def stopped_as_created(conn, database, *locale):
        real(conn, database, *locale)
        raise Interrupted("stopped by SIGTERM", signal.SIGTERM)

    monkeypatch.setattr(queries, "create_database", stopped_as_created)
    with pytest.raises(Interrupted):
        restorer.run()
    assert [d for d in databases(s["dev"]) if d.startswith(f"{name}__restore_")] == []
    assert old_content(s["dev"], name) == "old content"


def _failing_restore_into_a_fresh_dev_target(s, monkeypatch):
    """A fresh dev target and a Restorer of the module's backup into it, in this process,
    whose load fails (no archive at its path); give the target's name and the Restorer."""
    from orchestrator import conninfo
    from orchestrator.operations import restore as restore_action
    from orchestrator.operations.common import client_for
    from orchestrator.operations.fetch import find_backup
    from orchestrator.settings import load_settings

    for key, value in s["orch"].env.items():
        monkeypatch.setenv(key, value)
    job = load_settings(None).job()
    manifest = find_backup(job, s["id"]).manifest
    name = fresh_target(s["dev"])
    target = job.adhoc_target(conninfo.parse(s["dev"].url(name)))
    client = client_for(job, "pg_restore", manifest.dump_major, "test")
    return name, restore_action.Restorer(job, target, manifest, client, Path("/nonexistent"))
