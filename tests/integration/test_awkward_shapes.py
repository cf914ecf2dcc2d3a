"""Shapes of real schemas that the other masking tests do not have, end to end through the
CLI against real servers (source PostgreSQL 17, dev the oldest major, 14): `mask suggest`
writes rules that `mask check` accepts and a masked restore loads, every foreign key valid,
with no raw value of a masked column anywhere in dev's files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Clusters, Orchestrator, backed_up_with_suggested_rules
from tests.harness import postgres
from tests.harness.postgres import Cluster
from tests.harness.targets import raw_values_in_data_directory

pytestmark = pytest.mark.integration

KEY = "awkward-mask-key-0123456789abcdef"

SHAPES_SQL = """
CREATE EXTENSION citext;

-- a table without columns, and one whose only column was dropped: both hold rows
CREATE TABLE public.nocols ();
INSERT INTO public.nocols DEFAULT VALUES;
INSERT INTO public.nocols DEFAULT VALUES;
CREATE TABLE public.allgone (x int);
INSERT INTO public.allgone VALUES (1), (2), (3);
ALTER TABLE public.allgone DROP COLUMN x;

-- a citext key referenced in another case: citext compares lower(value)
CREATE TABLE public.cust (email citext PRIMARY KEY);
INSERT INTO public.cust SELECT 'Citext' || g || '@raw-mail.example' FROM generate_series(1, 20) g;
CREATE TABLE public.cust_orders (id int PRIMARY KEY, email citext REFERENCES public.cust);
INSERT INTO public.cust_orders
SELECT g, upper('Citext' || (1 + g % 20) || '@raw-mail.example') FROM generate_series(1, 40) g;

-- a jsonb map keyed by e-mail addresses
CREATE TABLE public.acl (id int PRIMARY KEY, owners jsonb);
INSERT INTO public.acl SELECT g, jsonb_build_object('keyed' || g || '@raw-mail.example', 'owner')
FROM generate_series(1, 20) g;

-- a composite type holding an e-mail address beside a street
CREATE TYPE public.address AS (street text, email text);
CREATE TABLE public.person (id int PRIMARY KEY, home public.address);
INSERT INTO public.person
SELECT g, ROW(g || ' Main St, "B"', 'record' || g || '@raw-mail.example')::public.address
FROM generate_series(1, 20) g;

-- partitions of two levels with default partitions, a key on the partitioned table and a
-- key referencing it (a parallel pg_restore adds keys only after every index attachment)
CREATE TABLE public.events (id int, at date, kind text, user_id int REFERENCES public.person,
    PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (kind);
CREATE TABLE public.events_2026_a PARTITION OF public.events_2026 FOR VALUES IN ('a');
CREATE TABLE public.events_2026_rest PARTITION OF public.events_2026 DEFAULT;
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
INSERT INTO public.events SELECT g, date '2025-11-01' + g, substr('ab', 1 + g % 2, 1), 1 + g % 20
FROM generate_series(1, 200) g;
CREATE TABLE public.event_refs (id int PRIMARY KEY, ev_id int, ev_at date, ev_kind text,
    FOREIGN KEY (ev_id, ev_at, ev_kind) REFERENCES public.events);
INSERT INTO public.event_refs SELECT id, id, at, kind FROM public.events;
ALTER TABLE public.event_refs RENAME CONSTRAINT event_refs_ev_id_ev_at_ev_kind_fkey TO refs_fk;
COMMENT ON CONSTRAINT refs_fk ON public.event_refs IS 'each ref names one event';
"""

RAW = ["Citext7@", "CITEXT7@", "keyed7@", "record7@"]


@dataclass
class Shapes:
    source: Cluster
    db: str
    dev: Cluster
    dev_db: str
    orch: Orchestrator
    tmp: Path
    suggested: str
    restored: str  # what the masked restore printed


@pytest.fixture(scope="module")
def shapes(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shapes]:
    """A source holding the shapes, one backup of it, the rules `mask suggest` wrote for it,
    and one masked restore with them into a dev server of its own (the oldest major)."""
    tmp = tmp_path_factory.mktemp("shapes")
    source = clusters.get(17)
    db = f"shapes_{uuid.uuid4().hex[:8]}"
    source.create_database(db)
    source.psql(SHAPES_SQL, db)
    dev = postgres.start_cluster(14, clusters.bins[14])
    try:
        dev_db = "dev"
        dev.create_database(dev_db)
        orch, rules = backed_up_with_suggested_rules(
            clusters, tmp, source.url(db), dev.url(dev_db), KEY
        )
        suggested = rules.read_text()
        done = orch.run("restore", "--target", "dev")
        yield Shapes(source, db, dev, dev_db, orch, tmp, suggested, done.stdout + done.stderr)
    finally:
        dev.stop()


def in_dev(shapes: Shapes, sql: str) -> str:
    return shapes.dev.psql(sql, shapes.dev_db)


def test_the_suggested_rules_fit_and_load_into_dev(shapes: Shapes) -> None:
    assert "the rules fit" in shapes.orch.ok("mask", "check").stdout
    assert shapes.restored.startswith("restored "), shapes.restored[-3000:]


def test_every_foreign_key_is_restored_and_valid(shapes: Shapes) -> None:
    keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
    assert in_dev(shapes, keys) == shapes.source.psql(keys, shapes.db) != "0"
    comment = "SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = "
    assert in_dev(shapes, comment + "'refs_fk'") == "each ref names one event"


@pytest.mark.parametrize(("table", "rows"), [("public.nocols", 2), ("public.allgone", 3)])
def test_a_table_without_columns_keeps_its_rows_in_a_masked_copy(
    shapes: Shapes, table: str, rows: int
) -> None:
    assert f"  {table}: {{}}" in shapes.suggested.splitlines()
    assert in_dev(shapes, f"SELECT count(*) FROM {table}") == str(rows)


def test_a_citext_key_referenced_in_another_case_stays_referenced(shapes: Shapes) -> None:
    joined = "SELECT count(*) FROM public.cust_orders o JOIN public.cust c USING (email)"
    assert in_dev(shapes, joined) == "40"
    assert in_dev(shapes, "SELECT count(*) FROM public.cust WHERE email LIKE '%@example.com'") == (
        "20"
    )


def test_a_jsonb_map_keyed_by_e_mail_addresses_is_scrubbed_keys_included(shapes: Shapes) -> None:
    owners = next(line for line in shapes.suggested.splitlines() if "owners:" in line)
    assert "other_strings: scrub" in owners and "object keys hold e-mail addresses" in owners
    keys = "SELECT DISTINCT k FROM public.acl, jsonb_object_keys(owners) k"
    assert all(key.endswith("@example.com") for key in in_dev(shapes, keys).split())


def test_a_composite_value_holding_an_e_mail_address_is_scrubbed_inside(shapes: Shapes) -> None:
    home = next(line for line in shapes.suggested.splitlines() if "home:" in line)
    assert home.startswith("    home: scrub  # e-mail addresses inside")
    fields = "SELECT (home).street || '|' || (home).email FROM public.person WHERE id = 7"
    street, email = in_dev(shapes, fields).split("|")
    assert street == '7 Main St, "B"' and email.endswith("@example.com")


def test_a_subset_keeps_the_rows_whose_citext_key_is_kept_in_another_case(
    shapes: Shapes,
) -> None:
    rules = shapes.tmp / "subset.yaml"
    rules.write_text(shapes.suggested + "subset:\n  tables:\n    public.cust: {percent: 50}\n")
    target = "subset_citext"
    shapes.dev.create_database(target)
    shapes.orch.ok("restore", "--target", shapes.dev.url(target), "--mask-rules", str(rules))

    def count(sql: str) -> int:
        return int(shapes.dev.psql(sql, target))

    kept = count("SELECT count(*) FROM public.cust")
    assert 0 < kept < 20
    assert count("SELECT count(*) FROM public.cust_orders") == 2 * kept
    joined = "SELECT count(*) FROM public.cust_orders JOIN public.cust USING (email)"
    assert count(joined) == 2 * kept


def test_no_raw_value_of_a_masked_column_reaches_dev(shapes: Shapes) -> None:
    assert shapes.restored.startswith("restored ")
    assert raw_values_in_data_directory(shapes.dev, RAW) == []
