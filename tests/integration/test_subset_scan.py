"""A subset's first pass on a real archive: the rows each filtered table keeps, decided from
the archive alone, through composite and self-referencing keys, partitions, odd names, a
NULL key (MATCH SIMPLE) and a key set to NULL when its target is dropped; compared with
what SQL on the source says the same semantics keep."""

from __future__ import annotations

import pytest

from orchestrator import catalog
from orchestrator.masking.rules import load_rules
from orchestrator.masking.subset import check, plan
from orchestrator.operations import subset as subset_operation
from orchestrator.postgres import clients
from orchestrator.storage import open_storage
from orchestrator.storage.multi import NamedStore
from tests.conftest import Clusters

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE public.countries (code text PRIMARY KEY);
INSERT INTO public.countries VALUES ('DE'), ('FR'), ('XX');

CREATE TABLE public.users (
    id int PRIMARY KEY, country text REFERENCES public.countries, created_at date NOT NULL,
    referrer_id int REFERENCES public.users);
INSERT INTO public.users
SELECT g, CASE WHEN g = 9 THEN 'XX' ELSE 'DE' END, date '2026-01-01' + (g * 30), NULL
FROM generate_series(1, 10) g;
UPDATE public.users SET referrer_id = 2 WHERE id = 7;  -- referrer dropped: set to NULL
UPDATE public.users SET referrer_id = 6 WHERE id = 8;  -- referrer kept: stays

CREATE TABLE public.orders (
    id int, shop int, user_id int REFERENCES public.users, PRIMARY KEY (id, shop));
INSERT INTO public.orders SELECT u, s, u FROM generate_series(1, 10) u, generate_series(1, 2) s;
INSERT INTO public.orders VALUES (99, 1, NULL);  -- a NULL key points nowhere: kept

CREATE TABLE public.order_items (
    order_id int, shop int, sku text, FOREIGN KEY (order_id, shop) REFERENCES public.orders);
INSERT INTO public.order_items SELECT id, shop, 'SKU-' || id FROM public.orders;
INSERT INTO public.order_items VALUES (NULL, 1, 'loose');  -- composite key with a NULL

CREATE TABLE public.events (id int, user_id int REFERENCES public.users, at date NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_2027 PARTITION OF public.events
    FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO public.events
SELECT g, 1 + g % 10, date '2026-01-01' + g FROM generate_series(1, 600) g;

CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Notes ""q"" x" (
    user_id int REFERENCES public.users, body text);
INSERT INTO "Odd Schema"."Notes ""q"" x"
SELECT 1 + g % 10, 'note' FROM generate_series(1, 50) g;

CREATE TABLE public.big (id int PRIMARY KEY, pad text);
INSERT INTO public.big SELECT g, repeat('x', 20) FROM generate_series(1, 30000) g;
"""

RULES = """\
unlisted_columns: keep
subset:
  tables:
    public.users: {where: "created_at >= date '2026-06-01' AND country <> 'XX'"}
    public.big: {percent: 10}
  keep_whole: [public.countries]
  set_null: [public.users.referrer_id]
"""
KEPT_USERS = "created_at >= date '2026-06-01' AND country <> 'XX'"


@pytest.fixture(scope="module")
def scanned(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory):
    cluster = clusters.get(17)
    database = "subset_src"
    cluster.create_database(database)
    cluster.psql(SCHEMA, database=database)
    work = tmp_path_factory.mktemp("subset")
    from tests.conftest import Orchestrator, all_bin_dirs

    store = work / "store"
    open_storage(store.as_uri()).initialise()
    orch = Orchestrator(
        work,
        {
            "SOURCE_DATABASE_URL": cluster.url(database),
            "STORAGE_URL": store.as_uri(),
            "PG_BIN_DIRS": all_bin_dirs(clusters),
        },
    )
    orch.ok("backup")
    archive = work / "archive.dump"
    orch.ok("fetch", "latest", "--output", str(archive))
    named = NamedStore("s", "STORAGE_URL", open_storage(store.as_uri()))
    located = catalog.find_located([named], "latest")
    manifest = located.manifest
    subset = load_rules(RULES, "DEV_MASK_RULES").subset
    assert subset is not None and manifest.schema_facts is not None
    assert check(subset, manifest.schema_facts) == []
    made = plan(subset, manifest.schema_facts)
    found_clients = clients.discover(all_bin_dirs(clusters).split(":"), "pg_restore")
    client = clients.choose(found_clients, 17, "pg_restore", "test")
    key = b"subset-key-0123456789abcdef01234"
    found = subset_operation.scan(client, archive, manifest, made, key, work)
    again = subset_operation.scan(client, archive, manifest, made, key, work)
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
    key = next(k for k in found if k.replace('"', "") == table.replace('"', ""))
    assert found[key].kept_rows == _count(cluster, database, expected_sql)
    assert found[key].rows == _count(cluster, database, f"SELECT count(*) FROM {table}")


def test_lookups_are_kept_whole_and_never_scanned(scanned):
    _cluster, _database, found, _again = scanned
    assert "public.countries" not in found


def test_a_set_null_key_whose_target_is_dropped_is_flagged_not_the_row(scanned):
    _cluster, _database, found, _again = scanned
    users = found["public.users"]
    nulled = users.nulled[("referrer_id",)]
    assert int(nulled.sum()) == 1  # user 7 (kept) referred by user 2 (dropped)
    assert users.kept[nulled].all()


def test_a_percent_keeps_the_same_share_of_rows_on_every_run(scanned):
    _cluster, _database, found, again = scanned
    big = found["public.big"]
    assert 2500 < big.kept_rows < 3500
    assert (big.kept == again["public.big"].kept).all()
