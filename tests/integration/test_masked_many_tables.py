"""Masked dev copies of a schema with many small masked tables, against real servers: one
filter serves many tables, each COPY gets the plan of exactly the table it names (odd
names, partitions), a failure in the middle of a shared stream leaves dev as it was, the
number of filter processes a load starts does not grow with the masked tables, and the
filters started beside a pre-data step that fails end with it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.masking.transforms import apply_text, compile_spec, load_key, parse_spec
from orchestrator.storage import open_storage
from tests.conftest import Clusters, Orchestrator, all_bin_dirs
from tests.harness import postgres
from tests.harness.postgres import Cluster
from tests.harness.targets import fresh_target, old_content
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration

KEY = "many-tables-mask-key-0123456789"
ROWS = 12
SMALL_TABLES = 16  # public.pii_00 .. pii_15, e-mail masked
BIG_TABLE, BIG_ROWS = "public.pii_00", 3000  # a filter of its own: the rest weigh less
BAD_TABLE, BAD_ROW = "public.pii_07", 5  # its bytea `doc` is not UTF-8 text in that row

# (table key, SQL name, transform of its email column; None: kept as it is)
ODD_TABLES = [
    ("public.Mixed Case", 'public."Mixed Case"', "hash"),
    ("odd schema.with space", '"odd schema"."with space"', "email"),
    ('public."quote""d"', 'public."quote""d"', "redact"),
    ('"a.b".c', '"a.b".c', "hash"),
    ('a."b.c"', 'a."b.c"', None),  # the same dotted text as "a.b".c, another table
    ("public.lower", "public.lower", "email"),
    ("public.LOWER", 'public."LOWER"', None),  # only its case differs from public.lower
]
PARTITIONS = [
    ("public.events Q1", 'public."events Q1"'),
    ('public."Events.p2"', 'public."Events.p2"'),
]


def _table_sql(sql_name: str, tag: str) -> str:
    bad = BAD_ROW if sql_name == BAD_TABLE else 0
    rows = BIG_ROWS if sql_name == BIG_TABLE else ROWS
    return (
        f"CREATE TABLE {sql_name} (id int PRIMARY KEY, email text NOT NULL, doc bytea);\n"
        f"INSERT INTO {sql_name} SELECT g, 'raw{tag}x' || g || '@secret.example', "
        f"CASE WHEN g = {bad} THEN '\\xfffe00'::bytea ELSE convert_to('scan ' || g, 'UTF8') END "
        f"FROM generate_series(1, {rows}) g;\n"
    )


def schema_sql() -> str:
    parts = ['CREATE SCHEMA "odd schema"; CREATE SCHEMA "a.b"; CREATE SCHEMA a;']
    parts += [_table_sql(f"public.pii_{n:02}", f"pii{n:02}") for n in range(SMALL_TABLES)]
    parts += [_table_sql(sql, f"odd{n}") for n, (_k, sql, _t) in enumerate(ODD_TABLES)]
    parts.append(
        "CREATE TABLE public.events (id int, kind text NOT NULL, email text NOT NULL)"
        " PARTITION BY LIST (kind);\n"
        """CREATE TABLE public."events Q1" PARTITION OF public.events FOR VALUES IN ('a');\n"""
        """CREATE TABLE public."Events.p2" PARTITION OF public.events FOR VALUES IN ('b');\n"""
        "INSERT INTO public.events SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, "
        f"'rawevent' || g || '@secret.example' FROM generate_series(1, {ROWS}) g;\n"
        "CREATE TABLE public.plain (id int PRIMARY KEY, v text);\n"
        "INSERT INTO public.plain SELECT g, 'plain ' || g FROM generate_series(1, 50) g;\n"
    )
    return "\n".join(parts)


def rules_text(extra: str = "") -> str:
    """unlisted_columns: keep; each masked table's email with its own transform, so a COPY
    masked with another table's plan shows; the partitioned parent's rule only."""
    lines = ["unlisted_columns: keep", "tables:"]
    lines += [f"  public.pii_{n:02}:\n    email: email" for n in range(SMALL_TABLES)]
    lines += [f"  {json.dumps(k)}:\n    email: {t or 'keep'}" for k, _s, t in ODD_TABLES]
    lines.append("  public.events:\n    email: hash")
    return "\n".join(lines) + "\n" + extra


def masked_tables() -> dict[str, tuple[str, str]]:
    """Each table whose email is masked: its SQL name and transform."""
    found = {f"public.pii_{n:02}": (f"public.pii_{n:02}", "email") for n in range(SMALL_TABLES)}
    found.update({k: (sql, t) for k, sql, t in ODD_TABLES if t is not None})
    found.update({key: (sql, "hash") for key, sql in PARTITIONS})
    return found


@dataclass
class Setup:
    source: Cluster
    db: str
    dev: Cluster
    orch: Orchestrator
    rules: Path

    def dev_db(self) -> str:
        return fresh_target(self.dev)


@pytest.fixture(scope="module")
def setup(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One source database and one backup of it, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("many")
    source = clusters.get(17)
    source.create_database("many_masked")
    source.psql(schema_sql() + "ANALYZE;", "many_masked")
    dev = postgres.start_cluster(17, clusters.bins[17])
    store = f"file://{tmp}/store"
    open_storage(store).initialise()
    (tmp / "cwd").mkdir()
    rules = tmp / "rules.yaml"
    rules.write_text(rules_text())
    env = {
        "PG_BIN_DIRS": all_bin_dirs(clusters),
        "STORAGE_URL": store,
        "SOURCE_DATABASE_URL": source.url("many_masked"),
        "DEV_MASK_RULES": str(rules),
        "MASK_KEY": KEY,
        "LOG_FORMAT": "json",
    }
    orch = Orchestrator(tmp / "cwd", env)
    orch.ok("backup")
    yield Setup(source, "many_masked", dev, orch, rules)
    dev.stop()


def refresh(s: Setup, dev_db: str, rules: str | None = None):  # type: ignore[no-untyped-def]
    if rules is not None:
        s.rules.write_text(rules)
    try:
        return s.orch.run(
            "restore", "--target", "dev", extra_env={"DEV_DATABASE_URL": s.dev.url(dev_db)}
        )
    finally:
        s.rules.write_text(rules_text())


def events(log: str, name: str) -> list[dict[str, object]]:
    """The events called `name` of a run's JSON log."""
    found = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [event for event in found if event.get("event") == name]


def filters_started(log: str) -> int:
    """The masking filter processes the run's JSON log says it started."""
    started = events(log, "command.start")
    return sum("orchestrator.masking filter" in str(e.get("command")) for e in started)


def test_every_small_masked_table_gets_its_own_plan_through_a_few_filters(setup: Setup) -> None:
    s, dev_db = setup, setup.dev_db()
    result = refresh(s, dev_db)
    assert result.returncode == 0, result.stderr[-3000:]
    key = load_key(KEY)
    expected = masked_tables()
    assert len(expected) >= 20
    for table, (sql_name, transform) in expected.items():
        raw = s.source.psql(f"SELECT id, email FROM {sql_name} ORDER BY id", s.db).splitlines()
        got = s.dev.psql(f"SELECT id, email FROM {sql_name} ORDER BY id", dev_db).splitlines()
        masker = compile_spec(parse_spec(transform), key, "text")
        want = [f"{i}|{apply_text(masker, e)}" for i, e in (r.split("|") for r in raw)]
        assert got == want, table
    for _key, sql_name, transform in ODD_TABLES:  # kept tables arrive as they are
        if transform is None:
            query = f"SELECT string_agg(email, ',' ORDER BY id) FROM {sql_name}"
            assert s.dev.psql(query, dev_db) == s.source.psql(query, s.db)
    assert s.dev.psql("SELECT count(*) FROM public.plain", dev_db) == "50"
    done = {str(e["table"]): e for e in events(result.stderr, "restore.masked_table")}
    assert set(done) == set(expected)
    for table, event in done.items():
        if table not in dict(PARTITIONS):
            rows = BIG_ROWS if table == BIG_TABLE else ROWS
            assert (event["columns"], event["rows"]) == (["email"], rows), table
    big = done[BIG_TABLE]["group"]
    assert [t for t, e in done.items() if e["group"] == big] == [BIG_TABLE]  # shared by rows
    assert filters_started(result.stderr) <= 2  # 25 masked tables, at most two filters
    comment = s.dev.psql(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{dev_db}'"
    )
    assert all(f"{table}(email)" in comment for table in expected)


def test_a_failure_in_the_middle_of_a_shared_stream_names_it_and_leaves_dev_as_it_was(
    setup: Setup,
) -> None:
    s, dev_db = setup, setup.dev_db()
    failing = rules_text().replace(
        f"  {BAD_TABLE}:\n    email: email", f"  {BAD_TABLE}:\n    email: email\n    doc: scrub"
    )
    result = refresh(s, dev_db, failing)
    assert result.returncode == 1
    assert f"{BAD_TABLE}.doc: row {BAD_ROW}" in result.stderr
    assert "@secret.example" not in result.stdout + result.stderr
    assert old_content(s.dev, dev_db) == "old content"
    assert s.dev.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{dev_db}%'") == "1"


def test_a_pre_data_step_that_fails_ends_the_filters_started_beside_it(
    setup: Setup, tmp_path: Path
) -> None:
    """The filters start with the pre-data step (their start-up overlaps it); when that
    step fails, its error is the one reported, no filter is left running and dev keeps its
    previous copy."""
    s, dev_db = setup, setup.dev_db()
    failing = wrap_tool(
        tmp_path / "bin",
        s.source.bin_dir,
        "pg_restore",
        'case "$*" in *--section=pre-data*) sleep 1; '
        'echo "pg_restore: error: could not execute query: ERROR:  disk is full" >&2; exit 1;; '
        'esac\nexec "$REAL" "$@"\n',
    )
    work = tmp_path / "work"
    result = s.orch.run(
        "restore",
        "--target",
        "dev",
        extra_env={
            "DEV_DATABASE_URL": s.dev.url(dev_db),
            "PG_BIN_DIRS": str(failing),
            "WORK_DIR": str(work),
        },
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "disk is full" in result.stdout + result.stderr
    assert "was not started" not in result.stdout  # the filters' end is not the cause
    assert filters_started(result.stderr) == 2  # they had started, beside the pre-data step
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert [line for line in ps.splitlines() if str(work) in line] == []
    assert old_content(s.dev, dev_db) == "old content"
