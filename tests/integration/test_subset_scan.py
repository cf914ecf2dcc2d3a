"""A subset's first pass on a real archive: the rows each filtered table keeps, decided from
the archive alone, through composite and self-referencing keys, partitions, odd names, a
NULL key (MATCH SIMPLE) and a key set to NULL when its target is dropped; compared with
what SQL on the source says the same semantics keep."""

from __future__ import annotations

import pytest

from orchestrator.masking.rules import load_rules
from orchestrator.masking.subset import check
from orchestrator.operations import subset as subset_operation
from orchestrator.postgres import clients
from tests.conftest import Clusters, all_bin_dirs, fetched_backup
from tests.harness.subset_shop import KEPT_USERS, RULES, SCHEMA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scanned(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory):
    cluster = clusters.get(17)
    database = "subset_src"
    cluster.create_database(database)
    cluster.psql(SCHEMA, database=database)
    work = tmp_path_factory.mktemp("subset")
    archive, manifest = fetched_backup(clusters, cluster.url(database), work)
    subset = load_rules(RULES, "DEV_MASK_RULES").subset
    assert subset is not None and manifest.schema_facts is not None
    assert check(subset, manifest.schema_facts) == []
    found_clients = clients.discover(all_bin_dirs(clusters).split(":"), "pg_restore")
    client = clients.choose(found_clients, 17, "pg_restore", "test")
    key = "subset-key-0123456789abcdef01234"
    (work / "one").mkdir()
    (work / "two").mkdir()
    found = subset_operation.scan(client, archive, manifest, subset, key, work / "one")
    again = subset_operation.scan(client, archive, manifest, subset, key, work / "two")
    return cluster, database, found, again


def _count(cluster, database: str, sql: str) -> int:
    return int(cluster.psql(sql, database=database).strip())


@pytest.mark.parametrize(
    ("table", "expected_sql"),
    [
        ("public.users", f"SELECT count(*) FROM public.users WHERE {KEPT_USERS}"),
        (
            "public.orders",
            f"SELECT count(*) FROM public.orders o WHERE o.user_id IS NULL OR o.user_id IN "
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
        ),
        (
            "public.order_items",
            "SELECT count(*) FROM public.order_items i WHERE i.order_id IS NULL OR EXISTS ("
            "SELECT 1 FROM public.orders o WHERE (o.id, o.shop) = (i.order_id, i.shop) AND "
            "(o.user_id IS NULL OR o.user_id IN "
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})))",
        ),
        (
            "public.shipments",
            "SELECT count(*) FROM public.shipments s JOIN public.order_items i ON i.id = s.item_id "
            "WHERE i.order_id IS NULL OR EXISTS (SELECT 1 FROM public.orders o WHERE "
            "(o.id, o.shop) = (i.order_id, i.shop) AND (o.user_id IS NULL OR o.user_id IN "
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})))",
        ),
        (
            "public.events_2026",
            f"SELECT count(*) FROM public.events_2026 WHERE user_id IN "
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
        ),
        (
            "public.events_2027",
            f"SELECT count(*) FROM public.events_2027 WHERE user_id IN "
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
        ),
        (
            '"Odd Schema"."Notes ""q"" x"',
            f'SELECT count(*) FROM "Odd Schema"."Notes ""q"" x" WHERE user_id IN '
            f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
        ),
    ],
)
def test_each_filtered_table_keeps_exactly_the_rows_the_semantics_say(scanned, table, expected_sql):
    cluster, database, found, _again = scanned
    key = next(k for k in found.flags if k.replace('"', "") == table.replace('"', ""))
    assert found.kept[key] == _count(cluster, database, expected_sql)
    assert int(found.flags[key].kept.sum()) == found.kept[key]
    assert len(found.flags[key].kept) == _count(cluster, database, f"SELECT count(*) FROM {table}")


def test_lookups_are_kept_whole_and_never_scanned(scanned):
    _cluster, _database, found, _again = scanned
    assert "public.countries" not in found.flags


def test_a_set_null_key_whose_target_is_dropped_is_flagged_not_the_row(scanned):
    _cluster, _database, found, _again = scanned
    users = found.flags["public.users"]
    nulled = users.nulled[("referrer_id",)]
    assert int(nulled.sum()) == 1  # user 7 (kept) referred by user 2 (dropped)
    assert users.kept[nulled].all()


def test_a_percent_keeps_the_same_share_of_rows_on_every_run(scanned):
    _cluster, _database, found, again = scanned
    big = found.flags["public.big"]
    assert 2500 < found.kept["public.big"] < 3500
    assert (big.kept == again.flags["public.big"].kept).all()
