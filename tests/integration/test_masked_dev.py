"""Masked dev copies against real servers: rows are masked between the archive and the dev
server, so raw values are found nowhere in dev's data directory (heap, WAL, statistics);
constraints and joins hold; refreshes are deterministic per key; a new column stops the dev
refresh and nothing else; `mask suggest` and `mask check` work from the archive alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Clusters, Orchestrator, all_bin_dirs, s3_env
from tests.harness import postgres
from tests.harness.postgres import Cluster
from tests.harness.recorder import Recorder
from tests.harness.targets import fresh_target, old_content, raw_values_in_data_directory

pytestmark = pytest.mark.integration

KEY = "dev-mask-key-0123456789abcdef"
OTHER_KEY = "another-mask-key-fedcba9876543210"
ROWS = 300

PII_SQL = f"""
CREATE SCHEMA sales;
CREATE TABLE public.customers (
    id bigint PRIMARY KEY,
    email varchar(120) NOT NULL UNIQUE,
    full_name text NOT NULL,
    phone text,
    birth_date date,
    profile jsonb,
    tier text NOT NULL DEFAULT 'basic'
);
INSERT INTO public.customers
SELECT g, 'rawmail' || g || '@corp-secret.example', 'Rawname Person' || g,
       '+44 20 7946 ' || lpad(g::text, 4, '0'), date '1980-01-01' + g,
       jsonb_build_object(
           'contact', jsonb_build_object('email', 'rawjson' || g || '@corp-secret.example'),
           'n', g),
       CASE WHEN g % 2 = 0 THEN 'gold' ELSE 'basic' END
FROM generate_series(1, {ROWS}) g;

-- a natural key: the e-mail is the primary key, referenced from another table
CREATE TABLE public.accounts (email varchar(120) PRIMARY KEY, plan text NOT NULL);
INSERT INTO public.accounts SELECT email, tier FROM public.customers;
CREATE TABLE public.logins (
    id bigint PRIMARY KEY,
    account_email varchar(120) NOT NULL REFERENCES public.accounts (email),
    at timestamptz NOT NULL
);
INSERT INTO public.logins SELECT g, 'rawmail' || (1 + g % {ROWS}) || '@corp-secret.example',
    timestamptz '2025-01-01' + g * interval '1 minute' FROM generate_series(1, {ROWS * 3}) g;

-- a partitioned table whose rules apply to its partitions
CREATE TABLE sales.orders (
    id bigint NOT NULL, placed date NOT NULL, buyer_email text NOT NULL, amount int NOT NULL
) PARTITION BY RANGE (placed);
CREATE TABLE sales.orders_h1 PARTITION OF sales.orders
    FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE sales.orders_h2 PARTITION OF sales.orders
    FOR VALUES FROM ('2025-07-01') TO ('2026-01-01');
INSERT INTO sales.orders
SELECT g, date '2025-01-01' + (g % 365), 'rawbuyer' || g || '@corp-secret.example', g * 7
FROM generate_series(1, {ROWS}) g;

-- e-mail addresses in a column whose name says nothing
CREATE TABLE public.notes (id int PRIMARY KEY, misc text);
INSERT INTO public.notes
SELECT g, 'rawmisc' || g || '@corp-secret.example' FROM generate_series(1, 50) g;

-- a large object holding personal data, referenced by oid
CREATE TABLE public.documents (id int PRIMARY KEY, doc oid NOT NULL);
INSERT INTO public.documents VALUES (1, lo_from_bytea(0, 'rawblob scan of a passport'));

CREATE TABLE public.products (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.products SELECT g, 'product ' || g FROM generate_series(1, 20) g;
ANALYZE;
"""

RULES = """\
unlisted_columns: fail
tables:
  public.customers:
    id: keep
    email: email
    full_name: full_name
    phone: phone
    birth_date: {transform: date_shift, days: 30}
    profile: {transform: json, paths: {"contact.email": email}}
    tier: keep
  public.accounts:
    email: email
    plan: keep
  public.logins:
    id: keep
    at: keep            # account_email follows its foreign key to accounts.email
  sales.orders:
    id: keep
    placed: keep
    buyer_email: email
    amount: keep
  public.notes:
    id: keep
    misc: hash
  public.products: keep
  public.documents: keep
"""

RAW = [
    "rawmail7@corp-secret.example",
    "Rawname Person7",
    "+44 20 7946 0007",
    "rawjson7@",
    "rawbuyer7@",
    "rawmisc7@",
    "rawblob scan",
]
MASKED_SQL = """
SELECT md5(string_agg(
    email || full_name || coalesce(phone, '') || birth_date || profile::text, ',' ORDER BY id))
FROM public.customers
"""


@dataclass
class Masked:
    source: Cluster
    db: str
    dev: Cluster
    dev_db: str
    backup: Cluster
    backup_db: str
    orch: Orchestrator
    rules: Path
    tmp: Path

    def psql(self, sql: str) -> str:
        return self.dev.psql(sql, self.dev_db)


@pytest.fixture(scope="module")
def dev_cluster(clusters: Clusters) -> Iterator[Cluster]:
    """A dev server of its own: its data directory must hold nothing but masked copies."""
    cluster = postgres.start_cluster(17, clusters.bins[17])
    yield cluster
    cluster.stop()


def masked_setup(clusters: Clusters, dev: Cluster, make_orch, tmp: Path, store: dict) -> Masked:
    """A source holding the PII sample, fresh dev and backup targets, a rules file in `tmp`
    and an orchestrator (`make_orch(**settings)`) set to them and to the store `store`."""
    source = clusters.get(17)
    db = f"pii_{tmp.name[-8:].replace('-', '_')}"
    source.create_database(db)
    source.psql(PII_SQL, db)
    backup_c = clusters.get(15)
    dev_db, backup_db = fresh_target(dev), fresh_target(backup_c)
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    orch = make_orch(
        SOURCE_DATABASE_URL=source.url(db),
        DEV_DATABASE_URL=dev.url(dev_db),
        BACKUP_DATABASE_URL=backup_c.url(backup_db),
        DEV_MASK_RULES=str(rules),
        MASK_KEY=KEY,
        **store,
    )
    return Masked(source, db, dev, dev_db, backup_c, backup_db, orch, rules, tmp)


@pytest.fixture
def masked(clusters: Clusters, dev_cluster, s3_server, bucket, orch_factory, tmp_path) -> Masked:
    return masked_setup(clusters, dev_cluster, orch_factory, tmp_path, s3_env(s3_server, bucket))


@pytest.fixture(scope="module")
def backed_up(clusters: Clusters, dev_cluster, s3_server, tmp_path_factory) -> Masked:
    """One masked setup and one backup whose rules fit (`mask check` says so), shared by the
    checks of bad rules files: `mask check` only reads the archive."""
    tmp = tmp_path_factory.mktemp("checked")

    def make_orch(**settings: str) -> Orchestrator:
        work = tmp / "cwd"
        work.mkdir()
        return Orchestrator(work, {"PG_BIN_DIRS": all_bin_dirs(clusters), **settings})

    m = masked_setup(
        clusters, dev_cluster, make_orch, tmp, s3_env(s3_server, s3_server.new_bucket())
    )
    m.orch.ok("backup")
    assert "the rules fit" in m.orch.ok("mask", "check").stdout
    return m


def test_dev_gets_masked_rows_with_constraints_and_joins_intact_and_no_raw_value(masked: Masked):
    m = masked
    assert raw_values_in_data_directory(m.dev, RAW) == []  # nothing raw there to begin with
    result = m.orch.ok("pipeline", "--json")
    report = json.loads(result.stdout)
    assert report["status"] == "success", result.stderr[-3000:]
    steps = {s["name"]: s for s in report["steps"]}
    masking = steps["restore:dev"]["detail"]["masking"]
    assert masking["unlisted"] == [] and len(masking["rules_sha256"]) == 64  # every column listed
    assert masking["tables"]["public.customers"] == {
        "columns": ["email", "full_name", "phone", "birth_date", "profile"],
        "rows": ROWS,
    }
    assert masking["tables"]["public.logins"]["columns"] == ["account_email"]
    assert {"sales.orders_h1", "sales.orders_h2"} <= set(masking["tables"])
    assert "detail" not in steps["restore:backup"] or not steps["restore:backup"]["detail"].get(
        "masked"
    )

    # every masked value differs from its source row; counts, constraints and joins hold
    source_rows = m.source.psql(
        "SELECT id, email, full_name, phone, birth_date FROM public.customers ORDER BY id", m.db
    )
    dev_rows = m.psql(
        "SELECT id, email, full_name, phone, birth_date FROM public.customers ORDER BY id"
    )
    for src, dst in zip(source_rows.splitlines(), dev_rows.splitlines(), strict=True):
        src_id, *src_values = src.split("|")
        dst_id, *dst_values = dst.split("|")
        assert src_id == dst_id
        assert all(a != b for a, b in zip(src_values, dst_values, strict=True)), (src, dst)
    for table in (
        "public.customers",
        "public.accounts",
        "public.logins",
        "sales.orders",
        "public.notes",
        "public.products",
    ):
        query = f"SELECT count(*) FROM {table}"
        assert m.psql(query) == m.source.psql(query, m.db)
    joins = (
        "SELECT count(*) FROM public.logins l JOIN public.accounts a ON a.email = l.account_email"
    )
    assert m.psql(joins) == m.source.psql(joins, m.db) == str(ROWS * 3)
    by_email = "SELECT count(*) FROM public.customers c JOIN public.accounts a ON a.email = c.email"
    assert m.psql(by_email) == str(ROWS)  # the same input masks to the same output in two tables
    constraints = (
        "SELECT count(*) FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace"
    )
    assert m.psql(constraints) == m.source.psql(constraints, m.db)
    assert (
        m.psql("SELECT count(*) FROM public.customers WHERE email !~ '^[a-z0-9]+@example\\.com$'")
        == "0"
    )
    assert (
        m.psql(
            "SELECT profile->'contact'->>'email' LIKE '%@example.com' FROM public.customers LIMIT 1"
        )
        == "t"
    )
    assert m.psql("SELECT name FROM public.products WHERE id = 3") == "product 3"  # kept as is
    # large objects: created, owned and referenced as before, but empty (large_objects: skip)
    assert m.psql("SELECT length(lo_get(doc)) FROM public.documents") == "0"

    # nothing raw in dev's files, WAL or statistics; the backup target holds the raw copy
    assert raw_values_in_data_directory(m.dev, RAW) == []
    assert m.backup.psql("SELECT email FROM public.customers WHERE id = 7", m.backup_db) == RAW[0]
    described = "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
    comment = m.psql(f"{described} WHERE datname = '{m.dev_db}'")
    assert comment.startswith(
        f"orchestrator: MASKED copy of backup {steps['dump']['detail']['backup_id']}"
    )
    assert masking["rules_sha256"] in comment and "unlisted columns: none" in comment
    status = json.loads(m.orch.ok("status", "--json").stdout)
    dev = next(t for t in status["targets"] if t["name"] == "dev")
    assert dev["masked"] is True and dev["unlisted"] == []
    assert KEY not in result.stderr + result.stdout + json.dumps(status)


def test_large_objects_keep_their_contents_only_when_the_rules_say_so(masked: Masked):
    """Into another server (given by URL with --mask-rules): dev's must never hold raw data."""
    m = masked
    m.orch.ok("backup")
    keeping = m.tmp / "keep-lo.yaml"
    keeping.write_text("large_objects: keep\n" + RULES)
    other = fresh_target(m.backup)
    m.orch.ok("restore", "--target", m.backup.url(other), "--mask-rules", str(keeping))
    query = "SELECT convert_from(lo_get(doc), 'UTF8') FROM public.documents"
    assert m.backup.psql(query, other) == "rawblob scan of a passport"
    assert (
        m.backup.psql("SELECT email LIKE '%@example.com' FROM public.customers LIMIT 1", other)
        == "t"
    )


def test_refreshes_are_identical_under_one_key_and_unrelated_under_another(masked: Masked):
    m = masked
    m.orch.ok("pipeline")
    first = m.psql(MASKED_SQL)
    restored = m.orch.ok("restore", "--target", "dev").stdout
    assert "; unlisted columns: none" in restored
    assert m.psql(MASKED_SQL) == first
    m.orch.ok("restore", "--target", "dev", extra_env={"MASK_KEY": OTHER_KEY})
    assert m.psql(MASKED_SQL) != first
    assert m.psql("SELECT count(*) FROM public.customers") == str(ROWS)


def test_a_parallel_backup_gives_the_same_masked_copy_as_a_single_file_one(masked: Masked):
    """A directory-format backup (DUMP_JOBS) is masked table by table as the custom format
    is: the same rows under one key, nothing raw in dev's files, every constraint made."""
    m = masked
    m.orch.ok("pipeline", extra_env={"DUMP_JOBS": "1"})
    single = m.psql(MASKED_SQL)
    report = json.loads(m.orch.ok("pipeline", "--json", extra_env={"DUMP_JOBS": "3"}).stdout)
    assert report["status"] == "success"
    newest = json.loads(m.orch.ok("list", "--json").stdout)[0]
    assert (newest["format"], newest["jobs"]) == ("directory", 3) and newest["files"] > 8
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["dump"]["detail"]["backup_id"] == newest["id"]
    assert m.psql(MASKED_SQL) == single
    assert m.psql("SELECT count(*) FROM public.logins") == str(ROWS * 3)
    constraints = "SELECT contype, count(*) FROM pg_constraint GROUP BY 1 ORDER BY 1"
    assert m.psql(constraints) == m.source.psql(constraints, m.db)
    assert raw_values_in_data_directory(m.dev, RAW) == []
    assert "the rules fit" in m.orch.ok("mask", "check").stdout  # read from the folder
    suggested = m.tmp / "from-a-folder.yaml"
    m.orch.ok("mask", "suggest", "-o", str(suggested))
    assert "email" in suggested.read_text() and "rawmisc" not in suggested.read_text()


def test_a_new_unlisted_column_stops_only_the_dev_refresh(masked: Masked):
    m = masked
    m.source.psql("ALTER TABLE public.customers ADD COLUMN passport text DEFAULT 'rawpass'", m.db)
    sink = Recorder()
    try:
        result = m.orch.run(
            "pipeline", "--json", extra_env={"NOTIFY_WEBHOOK_URL": f"{sink.url}/hook"}
        )
    finally:
        sink.stop()
    assert result.returncode == 1
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    assert (
        steps["upload"]["ok"] and steps["restore:backup"]["ok"] and not steps["restore:dev"]["ok"]
    )
    assert "public.customers.passport" in steps["restore:dev"]["error"]
    assert "unlisted" in steps["restore:dev"]["error"]
    assert old_content(m.dev, m.dev_db) == "old content"
    assert raw_values_in_data_directory(m.dev, ["rawpass", *RAW]) == []
    hook = json.loads(next(r.body for r in sink.requests if r.path == "/hook"))
    assert "public.customers.passport" in hook["text"]


KEPT_UNLISTED = [
    "public.customers.tier",
    "public.products.id",
    "public.products.name",
    "sales.orders_h1.amount",
    "sales.orders_h2.amount",
]
KEEP_RULES = (
    RULES.replace("unlisted_columns: fail", "unlisted_columns: keep")
    .replace("    tier: keep\n", "")
    .replace("  public.products: keep\n", "")
    .replace("    amount: keep\n", "")
)


def test_unlisted_columns_kept_are_named_in_every_record_of_the_refresh(masked: Masked):
    """Under `unlisted_columns: keep` the columns no rule names reach dev as they are: the
    report, the webhook, status, the page, the database's comment and the CLI name each."""
    m = masked
    m.rules.write_text(KEEP_RULES)
    sink = Recorder()
    try:
        hooked = {"NOTIFY_WEBHOOK_URL": f"{sink.url}/hook", "NOTIFY_ON_SUCCESS": "true"}
        report = json.loads(m.orch.ok("pipeline", "--json", extra_env=hooked).stdout)
    finally:
        sink.stop()
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["restore:dev"]["detail"]["masking"]["unlisted"] == KEPT_UNLISTED
    hook = json.loads(next(r.body for r in sink.requests if r.path == "/hook"))
    hook_steps = {s["name"]: s for s in hook["steps"]}
    assert hook_steps["restore:dev"]["detail"]["masking"]["unlisted"] == KEPT_UNLISTED
    assert m.psql("SELECT tier FROM public.customers WHERE id = 2") == "gold"  # kept indeed
    described = "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
    comment = m.psql(f"{described} WHERE datname = '{m.dev_db}'")
    assert f"unlisted columns: 5 kept as they are: {', '.join(KEPT_UNLISTED)};" in comment
    status = json.loads(m.orch.ok("status", "--json").stdout)
    assert next(t for t in status["targets"] if t["name"] == "dev")["unlisted"] == KEPT_UNLISTED
    page = m.tmp / "status.html"
    m.orch.ok("report", "--html", str(page))
    shown = page.read_text()
    assert "unlisted columns kept as they are (5)" in shown
    assert all(f"<code>{column}</code>" in shown for column in KEPT_UNLISTED)
    restored = m.orch.ok("restore", "--target", "dev").stdout
    assert f"unlisted columns: 5 kept as they are: {', '.join(KEPT_UNLISTED)}" in restored


@pytest.mark.parametrize(
    ("rules", "location"),
    [
        (
            RULES.replace(
                "  public.products: keep\n", "  public.nowhere: keep\n  public.products: keep\n"
            ),
            "public.nowhere",
        ),
        (
            RULES.replace("    tier: keep\n", "    tier: keep\n    shoe_size: keep\n"),
            "public.customers.shoe_size",
        ),
        (
            RULES.replace(
                "    birth_date: {transform: date_shift, days: 30}", "    birth_date: email"
            ),
            "public.customers.birth_date",
        ),
        (
            RULES.replace("    full_name: full_name", "    full_name: set_null"),
            "public.customers.full_name",
        ),
        (
            RULES.replace(
                "    at: keep            # account_email follows its foreign key to accounts.email",
                "    at: keep\n    account_email: keep",
            ),
            "public.logins.account_email",
        ),
        (RULES.replace("    misc: hash\n", ""), "public.notes.misc"),
        (RULES.replace("    phone: phone", "    phone: telephone"), "public.customers.phone"),
    ],
)
def test_mask_check_names_each_bad_rule_and_exits_2(backed_up: Masked, rules: str, location: str):
    m = backed_up  # a backup whose rules fit
    bad = m.tmp / f"bad-{location}.yaml"
    bad.write_text(rules)
    result = m.orch.run("mask", "check", "--rules", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert any(line.startswith(f"{location}:") for line in result.stdout.splitlines()), (
        result.stdout
    )


def test_mask_suggest_finds_personal_data_by_name_and_by_value(masked: Masked):
    m = masked
    m.orch.ok("backup")
    out = m.tmp / "suggested.yaml"
    m.orch.ok("mask", "suggest", "-o", str(out))
    text = out.read_text()
    lines = {line.strip().split(":")[0]: line for line in text.splitlines() if ":" in line}
    assert "email" in lines["email"] and "#" in lines["email"]
    misc = lines["misc"]
    assert (
        "keep" not in misc.split("#")[0] and "e-mail" in misc.split("#")[1]
    )  # found by its values
    assert "keep" in lines["plan"] and "keep" in lines["amount"]
    assert "rawmail" not in text and "Rawname" not in text  # no sampled value in the file
    check = m.orch.run("mask", "check", "--rules", str(out))
    assert check.returncode == 0, check.stdout
    assert m.orch.run("mask", "suggest", "-o", str(out)).returncode == 2  # never overwrites


def test_masking_misconfiguration_fails_before_the_dump(masked: Masked):
    m = masked
    for env, setting in (
        ({"MASK_KEY": "short"}, "MASK_KEY"),
        ({"DEV_MASK_RULES": str(m.tmp / "missing.yaml")}, "DEV_MASK_RULES"),
    ):
        result = m.orch.run("pipeline", extra_env=env)
        assert result.returncode == 2 and setting in result.stderr.splitlines()[-1]
        assert "short" not in result.stderr
    assert json.loads(m.orch.ok("list", "--json").stdout) == []
    result = m.orch.run("restore", "--target", "backup", "--mask-rules", str(m.rules))
    assert result.returncode == 2 and "never masked" in result.stderr


def test_planner_statistics_in_the_archive_never_reach_a_masked_copy(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    """pg_dump 18 writes column statistics (histograms of raw values) with --statistics; a
    masked copy gets statistics from ANALYZE of the masked rows instead."""
    source = clusters.get(18)
    source.create_database("pii18")
    source.psql(PII_SQL, "pii18")
    dev = postgres.start_cluster(18, clusters.bins[18])
    try:
        dev_db = fresh_target(dev)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        orch = orch_factory(
            SOURCE_DATABASE_URL=source.url("pii18"),
            DEV_DATABASE_URL=dev.url(dev_db),
            DEV_MASK_RULES=str(rules),
            MASK_KEY=KEY,
            PG_DUMP_EXTRA_ARGS="--statistics",
            **s3_env(s3_server, bucket),
        )
        orch.ok("pipeline")
        archive = tmp_path / "archive.dump"
        orch.ok("fetch", "latest", "-o", str(archive))
        script = subprocess.run(
            [str(clusters.bins[18] / "pg_restore"), "--file=-", str(archive)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert (
            "STATISTICS DATA" in script and "corp-secret" in script.split("STATISTICS DATA", 1)[1]
        )
        histograms = (
            "SELECT count(*) FROM pg_stats WHERE histogram_bounds::text LIKE '%corp-secret%'"
        )
        assert dev.psql(histograms, dev_db) == "0"
        assert (
            dev.psql("SELECT count(*) FROM pg_stats WHERE tablename = 'customers'", dev_db) != "0"
        )
        assert raw_values_in_data_directory(dev, RAW) == []
    finally:
        dev.stop()


def test_dev_reached_another_way_still_gets_only_masked_data(masked: Masked):
    """The dev database named by URL is restored as dev: with DEV_MASK_RULES,
    DEV_POST_RESTORE_SQL and DEV_KEEP_PREVIOUS; a drill, which restores the raw backup, is
    refused on the dev server."""
    m = masked
    m.orch.ok("backup")
    grant = m.tmp / "grant.sql"
    grant.write_text("CREATE TABLE post_restore_ran ();\n")
    as_url = m.dev.url(m.dev_db, host="localhost")
    env = {"DEV_POST_RESTORE_SQL": str(grant), "DEV_KEEP_PREVIOUS": "0"}
    out = m.orch.ok("restore", "--target", as_url, extra_env=env).stdout
    assert " into dev (" in out and "masked public.customers" in out
    assert m.psql("SELECT count(*) FROM public.customers WHERE email LIKE 'rawmail%'") == "0"
    assert m.psql("SELECT to_regclass('public.post_restore_ran') IS NOT NULL") == "t"
    assert f"{m.dev_db}_previous" not in m.dev.psql(
        "SELECT string_agg(datname, ' ') FROM pg_database"
    )
    refused = m.orch.run("drill", "--target-url", m.dev.url("postgres"))
    assert refused.returncode == 2 and "dev server" in refused.stderr.splitlines()[-1]
    assert raw_values_in_data_directory(m.dev, RAW) == []


def test_mask_commands_never_ask_production(masked: Masked):
    m = masked
    m.orch.ok("backup")
    gone = {"SOURCE_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/" + m.db}  # its name only
    assert "the rules fit" in m.orch.ok("mask", "check", extra_env=gone).stdout
