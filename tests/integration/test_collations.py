"""Nondeterministic ICU collations on key columns, end to end through the CLI against a real
server (PostgreSQL 15: the builds of 17 and 18 here lack ICU): a key compared whatever its
case ('User1@Mail.example' referenced as 'user1@mail.example') masks alike in its
references, subsets keep the rows that reference it in another case, and conditions
compare such a column as the server does."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import Clusters, backed_up_with_suggested_rules

pytestmark = pytest.mark.integration

MAJOR = 15
SCHEMA = """
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE COLLATION ai (provider = icu, locale = 'und-u-ks-level1', deterministic = false);
CREATE TABLE customers (id int UNIQUE, email text COLLATE ci PRIMARY KEY,
    code text COLLATE "C" UNIQUE, name text);
INSERT INTO customers
SELECT g, 'User' || g || '@Mail.example', 'c' || g, 'Name ' || g FROM generate_series(1, 40) g;
CREATE TABLE orders (id int PRIMARY KEY, email text COLLATE ci REFERENCES customers,
    code text REFERENCES customers (code));
INSERT INTO orders
SELECT g, lower('User' || (1 + g % 40) || '@Mail.example'), 'c' || (1 + g % 40)
FROM generate_series(1, 80) g;
CREATE TABLE tags (tag text COLLATE ai UNIQUE);
INSERT INTO tags VALUES ('Café'), ('Straße');
"""
RULES = """
unlisted_columns: fail
tables:
  public.customers: {id: keep, email: email, code: keep, name: full_name}
  public.orders: {id: keep, email: email, code: keep}
  public.tags: {tag: keep}
"""


@pytest.fixture(scope="module")
def collated(clusters: Clusters, tmp_path_factory) -> dict:
    """A source with the collations, a backup of it and an orchestrator for a dev database
    on the same server."""
    tmp = tmp_path_factory.mktemp("collations")
    server = clusters.get(MAJOR)
    db, dev = f"coll_{uuid.uuid4().hex[:8]}", f"coll_dev_{uuid.uuid4().hex[:8]}"
    server.create_database(db)
    server.create_database(dev)
    server.psql(SCHEMA, db)
    orch, _suggested = backed_up_with_suggested_rules(
        clusters, tmp, server.url(db), server.url(dev), "collations-mask-key-0123456789abcdef"
    )
    return {"orch": orch, "server": server, "db": db, "dev": dev, "tmp": tmp}


def restore_dev(collated: dict, subset: str = "") -> None:
    path: Path = collated["tmp"] / f"rules-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(RULES + subset)
    collated["orch"].ok("mask", "check", "--rules", str(path))
    collated["orch"].ok("restore", "--target", "dev", "--mask-rules", str(path))


def test_a_key_compared_whatever_its_case_masks_alike_in_its_references(collated):
    restore_dev(collated)
    server, dev = collated["server"], collated["dev"]
    joined = "SELECT count(*) FROM orders o JOIN customers c ON c.email = o.email"
    assert server.psql(joined, dev) == "80"
    masked = "SELECT count(*) FROM customers WHERE email COLLATE \"C\" LIKE '%mail.example'"
    assert server.psql(masked, dev) == "0"


def test_a_subset_keeps_the_rows_that_reference_a_kept_key_in_another_case(collated):
    restore_dev(collated, "subset:\n  tables:\n    public.customers: {percent: 50}\n")
    server, dev, db = collated["server"], collated["dev"], collated["db"]
    kept = server.psql("SELECT string_agg(id::text, ',') FROM customers", dev)
    assert 5 < len(kept.split(",")) < 35
    expected = server.psql(
        "SELECT count(*) FROM orders o JOIN customers c ON c.email = o.email "
        f"WHERE c.id IN ({kept})",
        db,
    )
    assert server.psql("SELECT count(*) FROM orders", dev) == expected


def test_a_condition_on_a_caseless_column_keeps_what_postgresql_keeps(collated):
    condition = "email >= 'user2' AND email < 'USER3'"
    restore_dev(collated, f'subset:\n  tables:\n    public.customers: {{where: "{condition}"}}\n')
    server, db = collated["server"], collated["db"]
    expected = server.psql(f"SELECT count(*) FROM customers WHERE {condition}", db)
    assert expected == "11"
    assert server.psql("SELECT count(*) FROM customers", collated["dev"]) == expected


def test_masking_a_key_whose_collation_ignores_accents_is_refused(collated):
    path: Path = collated["tmp"] / "accents.yaml"
    path.write_text(RULES.replace("{tag: keep}", "{tag: hash}"))
    result = collated["orch"].run("mask", "check", "--rules", str(path))
    assert result.returncode == 2, result.stderr[-1500:]
    assert "public.tags.tag" in result.stdout + result.stderr
    assert "differ in more than case" in result.stdout + result.stderr
