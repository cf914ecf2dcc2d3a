"""Subsetted dev copies from the archive alone: the pipeline's dev restore and
`restore --target URL --mask-rules` keep exactly the rows the subset's semantics say,
masked, with every foreign key restored and valid; the backup target stays whole; rules
that do not fit are refused, naming the table, before dev is touched.

Every test runs on two shops: one whose self-reference is set to NULL (decided in a first
pass, then applied by the load) and one without it (decided by the filter as the rows
stream, in one pass)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.masking.rules import load_rules
from orchestrator.storage import open_storage
from tests.conftest import Clusters, Orchestrator, all_bin_dirs
from tests.harness.postgres import Cluster
from tests.harness.subset_shop import KEPT_USERS, RULES, SCHEMA
from tests.harness.targets import raw_values_in_data_directory

pytestmark = pytest.mark.integration

KEY = "subset-mask-key-0123456789abcdef"
MASKED_RULES = RULES.replace(
    "unlisted_columns: keep\n",
    "unlisted_columns: keep\ntables:\n"
    "  public.big: {pad: redact}\n  public.users: {email: email}\n",
)
OTHER_KEY = "another-mask-key-0123456789abcdef"
RAW_PADS = "SELECT count(*) FROM public.big WHERE pad = repeat('x', 20)"
TABLES = (
    "public.countries",
    "public.users",
    "public.orders",
    "public.order_items",
    "public.events",
    '"Odd Schema"."Notes ""q"" x"',
    "public.big",
)


ONE_PASS_SCHEMA = SCHEMA + "ALTER TABLE public.users DROP COLUMN referrer_id;\n"
SET_NULL = "  set_null: [public.users.referrer_id]\n"


@dataclass
class Shop:
    passes: int  # 2: a key set to NULL needs a first pass; 1: decided as the rows stream
    cluster: Cluster  # the source and the backup target
    devs: Cluster  # dev alone: its files must never hold a raw masked value
    source: str
    dev: str
    backup: str
    orch: Orchestrator
    work: Path
    cycle: dict[str, object]
    log: str  # the pipeline's log lines

    def rules(self, text: str) -> str:
        """`text` (rules with the shop's set_null) as this shop's rules."""
        return text if self.passes == 2 else text.replace(SET_NULL, "")


SHOPS = {"two-passes": 2, "one-pass": 1}
# for tests about keys set to NULL or cycles: only the shop that has them (the same instance)
TWO_PASS_SHOP_ONLY = pytest.mark.parametrize("shop", [2], ids=["two-passes"], indirect=True)


@pytest.fixture(scope="module", params=list(SHOPS.values()), ids=list(SHOPS))
def shop(
    clusters: Clusters, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    passes: int = request.param
    cluster, devs = clusters.get(17), clusters.get(18)
    work = tmp_path_factory.mktemp("subset-dev")
    source, dev, backup = (f"shop{passes}_{role}" for role in ("src", "dev", "backup"))
    for name in (source, backup):
        cluster.create_database(name)
    devs.create_database(dev)
    cluster.psql(SCHEMA if passes == 2 else ONE_PASS_SCHEMA, database=source)
    rules = work / "rules.yaml"
    rules.write_text(MASKED_RULES if passes == 2 else MASKED_RULES.replace(SET_NULL, ""))
    store = work / "store"
    open_storage(store.as_uri()).initialise()
    orch = Orchestrator(
        work,
        {
            "SOURCE_DATABASE_URL": cluster.url(source),
            "BACKUP_DATABASE_URL": cluster.url(backup),
            "DEV_DATABASE_URL": devs.url(dev),
            "DEV_MASK_RULES": str(rules),
            "MASK_KEY": KEY,
            "STORAGE_URL": store.as_uri(),
            "PG_BIN_DIRS": all_bin_dirs(clusters),
        },
    )
    done = orch.ok("pipeline", "--json")
    yield Shop(
        passes, cluster, devs, source, dev, backup, orch, work, json.loads(done.stdout), done.stderr
    )


def count(cluster: Cluster, database: str, sql: str) -> int:
    return int(cluster.psql(sql, database=database).strip())


EXPECTED = {
    "public.users": f"SELECT count(*) FROM public.users WHERE {KEPT_USERS}",
    "public.orders": "SELECT count(*) FROM public.orders WHERE user_id IS NULL OR user_id IN "
    f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
    "public.events": "SELECT count(*) FROM public.events WHERE user_id IN "
    f"(SELECT id FROM public.users WHERE {KEPT_USERS})",
    "public.countries": "SELECT count(*) FROM public.countries",
    '"s a".b': 'SELECT count(*) FROM "s a".b WHERE id <= 3',
    's."a b"': 'SELECT count(*) FROM s."a b" WHERE b_id <= 3',  # its name prints as the above
    "public.claims": "SELECT count(*) FROM public.claims WHERE refund_id IS NULL",
    "public.shipments": "SELECT count(*) FROM public.shipments s "
    "JOIN public.order_items i ON i.id = s.item_id WHERE i.order_id IS NULL OR EXISTS ("
    "SELECT 1 FROM public.orders o WHERE (o.id, o.shop) = (i.order_id, i.shop) AND "
    f"(o.user_id IS NULL OR o.user_id IN (SELECT id FROM public.users WHERE {KEPT_USERS})))",
}


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_dev_holds_exactly_the_rows_the_subset_keeps(shop: Shop, table: str) -> None:
    expected = count(shop.cluster, shop.source, EXPECTED[table])
    assert count(shop.devs, shop.dev, f"SELECT count(*) FROM {table}") == expected


def test_the_backup_target_is_never_subsetted(shop: Shop) -> None:
    for table in TABLES:
        sql = f"SELECT count(*) FROM {table}"
        assert count(shop.cluster, shop.backup, sql) == count(shop.cluster, shop.source, sql)


def test_every_foreign_key_is_restored_and_valid_on_the_subset(shop: Shop) -> None:
    sql = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
    assert count(shop.devs, shop.dev, sql) == count(shop.cluster, shop.source, sql) > 0
    orphans = (
        "SELECT count(*) FROM public.order_items i WHERE i.order_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM public.orders o WHERE (o.id, o.shop) = (i.order_id, i.shop))"
    )
    assert count(shop.devs, shop.dev, orphans) == 0


def test_a_subset_without_keys_set_to_null_reads_the_archive_once(shop: Shop) -> None:
    decided, scanned = "subset.decided" in shop.log, "subset.scanned" in shop.log
    assert (decided, scanned) == ((True, False) if shop.passes == 1 else (False, True))


@TWO_PASS_SHOP_ONLY
def test_a_set_null_key_is_null_where_its_target_was_dropped_and_kept_elsewhere(shop: Shop) -> None:
    referrers = shop.devs.psql(
        "SELECT id || ':' || coalesce(referrer_id::text, '-') FROM public.users "
        "WHERE id IN (7, 8) ORDER BY id",
        database=shop.dev,
    ).split()
    assert referrers == ["7:-", "8:6"]


def test_kept_rows_are_masked_and_a_share_is_a_share(shop: Shop) -> None:
    big = count(shop.devs, shop.dev, "SELECT count(*) FROM public.big")
    assert 2500 < big < 3500
    raw = count(shop.devs, shop.dev, "SELECT count(*) FROM public.big WHERE pad = repeat('x', 20)")
    assert raw == 0


def test_the_cycle_report_says_how_many_rows_each_filtered_table_dropped(shop: Shop) -> None:
    steps = {step["name"]: step for step in shop.cycle["steps"]}  # type: ignore[index,union-attr]
    tables = steps["restore:dev"]["detail"]["masking"]["tables"]
    users_dropped = count(
        shop.cluster, shop.source, f"SELECT count(*) FROM public.users WHERE NOT ({KEPT_USERS})"
    )
    assert tables["public.users"]["dropped"] == users_dropped
    assert "dropped" not in steps["restore:backup"]["detail"]


def test_a_subset_alone_restores_into_a_url_without_masking_anything(shop: Shop) -> None:
    rules = shop.work / "subset-only.yaml"
    rules.write_text(shop.rules(RULES))
    other = f"shop{shop.passes}_other"
    shop.cluster.create_database(other)
    shop.orch.ok("restore", "--target", shop.cluster.url(other), "--mask-rules", str(rules))
    users = count(shop.cluster, other, "SELECT count(*) FROM public.users")
    assert users == count(shop.cluster, shop.source, EXPECTED["public.users"])
    raw = count(shop.cluster, other, RAW_PADS)
    assert 2500 < raw < 3500  # no masking rule: the share's rows arrive as they are


@pytest.mark.parametrize(
    ("subset", "message"),
    [
        (
            '  tables:\n    public.users: {where: "nope = 1"}\n'
            "  set_null: [public.users.referrer_id]\n",
            "public.users: where: Binder Error",
        ),
        (
            '  tables:\n    public.users: {where: "true"}\n  keep_whole: [public.orders]\n',
            "public.orders: is in keep_whole but holds a foreign key into a filtered table",
        ),
        (
            '  tables:\n    public.users: {where: "true"}\n',
            "public.users: foreign keys form a cycle among filtered tables",
        ),
    ],
)
@TWO_PASS_SHOP_ONLY
def test_rules_that_do_not_fit_are_refused_naming_the_table_before_dev_is_touched(
    shop: Shop, subset: str, message: str
) -> None:
    rules = shop.work / "bad.yaml"
    rules.write_text("unlisted_columns: keep\nsubset:\n" + subset)
    checked = shop.orch.run("mask", "check", "--rules", str(rules))
    assert checked.returncode == 2 and message in checked.stdout, checked.stdout
    before = count(shop.devs, shop.dev, "SELECT count(*) FROM public.users")
    refused = shop.orch.run("restore", "--target", "dev", "--mask-rules", str(rules))
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    if "where:" in message:  # a condition is configuration: one line naming it, exit 2
        assert refused.returncode == 2, refused.stderr
        assert f"--mask-rules: {message}" in refused.stderr.strip().splitlines()[-1]
        url = shop.cluster.url(f"shop{shop.passes}_other_url")
        elsewhere = shop.orch.run("restore", "--target", url, "--mask-rules", str(rules))
        assert elsewhere.returncode == 2 and message in elsewhere.stderr, elsewhere.stderr
    assert count(shop.devs, shop.dev, "SELECT count(*) FROM public.users") == before


@TWO_PASS_SHOP_ONLY
def test_a_cycle_refuses_a_condition_that_does_not_parse_before_the_dump(shop: Shop) -> None:
    rules = shop.work / "unparsable.yaml"
    rules.write_text(shop.rules(RULES).replace('{where: "', '{where: "((', 1))
    refused = shop.orch.run("pipeline", extra_env={"DEV_MASK_RULES": str(rules)})
    assert refused.returncode == 2, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "DEV_MASK_RULES: public.users: where: does not parse" in last, last
    assert '"step": "dump"' not in refused.stderr


@TWO_PASS_SHOP_ONLY
def test_a_cycle_whose_condition_does_not_fit_fails_its_dev_step_naming_it(shop: Shop) -> None:
    """The backup's schema is known only after the dump: the dev step fails, one line
    naming the setting, the table and what is wrong; the backup target is restored."""
    rules = shop.work / "misfit.yaml"
    rules.write_text(shop.rules(RULES).replace('{where: "', '{where: "nope = 1 AND ', 1))
    before = count(shop.devs, shop.dev, "SELECT count(*) FROM public.users")
    failed = shop.orch.run("pipeline", "--json", extra_env={"DEV_MASK_RULES": str(rules)})
    assert failed.returncode == 1, failed.stderr
    steps = {step["name"]: step for step in json.loads(failed.stdout)["steps"]}
    assert steps["restore:backup"]["ok"] and not steps["restore:dev"]["ok"]
    error = steps["restore:dev"]["error"]
    assert error.startswith("DEV_MASK_RULES: public.users: where: Binder Error"), error
    assert count(shop.devs, shop.dev, "SELECT count(*) FROM public.users") == before


def test_no_raw_value_of_a_masked_column_reaches_the_dev_clusters_files(shop: Shop) -> None:
    kept = shop.cluster.psql(
        f"SELECT email FROM public.users WHERE {KEPT_USERS} ORDER BY id", database=shop.source
    ).split()
    assert kept and count(shop.devs, shop.dev, "SELECT count(*) FROM public.users") == len(kept)
    assert raw_values_in_data_directory(shop.devs, kept) == []


def _big_ids(shop: Shop) -> str:
    return shop.devs.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.big", shop.dev)


def test_one_key_gives_the_same_share_every_refresh_and_another_key_another(shop: Shop) -> None:
    first = _big_ids(shop)
    shop.orch.ok("restore", "--target", "dev")
    assert _big_ids(shop) == first
    shop.orch.ok("restore", "--target", "dev", extra_env={"MASK_KEY": OTHER_KEY})
    other = _big_ids(shop)
    assert other != first and 2500 < len(other.split(",")) < 3500


@TWO_PASS_SHOP_ONLY
def test_a_subset_that_would_break_a_unique_constraint_fails_before_the_swap(shop: Shop) -> None:
    """codes.owner_id is unique with NULLS NOT DISTINCT: set to NULL for every dropped
    owner, two rows would hold the same NULL; the index is built on the staged copy, which
    fails, and dev keeps the copy it had."""
    rules = shop.work / "breaks-unique.yaml"
    rules.write_text(
        MASKED_RULES.replace(
            "[public.users.referrer_id]", "[public.users.referrer_id, public.codes.owner_id]"
        )
    )
    before = _big_ids(shop)
    failed = shop.orch.run("restore", "--target", "dev", "--mask-rules", str(rules))
    assert failed.returncode == 1, failed.stderr
    assert "codes" in failed.stderr
    assert _big_ids(shop) == before
    assert (
        count(
            shop.devs, shop.dev, "SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'"
        )
        == 0
    )


def test_an_old_backup_missing_a_table_whose_name_prints_like_another_is_refused(
    shop: Shop, tmp_path: Path
) -> None:
    """Backups before schema facts recorded oids tied TOC lines to tables by name alone,
    and `s."a b"` and `"s a".b` print alike: such a manifest counted one of them twice and
    the other not at all. A masked restore from it must not load the missing table's rows
    unchecked as the other's: it stops before loading anything, naming both entries."""
    old = tmp_path / "old-store"
    shutil.copytree(shop.work / "store", old)
    for path in old.rglob("*.manifest.json"):
        manifest = json.loads(path.read_text())
        manifest["row_counts"].pop("s a.b", None)
        tables = manifest["schema_facts"]["tables"]
        tables.pop("s a.b", None)
        for table in tables.values():
            table.pop("oid", None)
        path.write_text(json.dumps(manifest))
    rules = tmp_path / "keep-all.yaml"
    rules.write_text("unlisted_columns: keep\n")
    target = f"shop{shop.passes}_old"
    shop.cluster.create_database(target)
    refused = shop.orch.run(
        "restore",
        "--target",
        shop.cluster.url(target),
        "--mask-rules",
        str(rules),
        extra_env={"STORAGE_URL": old.as_uri()},
    )
    assert refused.returncode == 1, refused.stderr
    assert "both read as table s.a b: take a new backup" in refused.stderr
    assert count(shop.cluster, target, "SELECT count(*) FROM pg_tables WHERE schemaname = 's'") == 0


def test_verify_finds_the_data_of_both_tables_whose_names_print_alike(shop: Shop) -> None:
    checked = shop.orch.run("verify", "--json", "latest")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "missing" not in checked.stdout


def test_mask_suggest_samples_each_of_two_tables_whose_names_print_alike(shop: Shop) -> None:
    """Samples are taken per data entry: `"s a".b`'s e-mail addresses are its own, not
    `s."a b"`'s (whose name prints alike), so its column gets the e-mail transform."""
    out = shop.work / f"suggested-{shop.passes}.yaml"
    shop.orch.ok("mask", "suggest", "--from", "latest", "-o", str(out))
    rules = load_rules(out.read_text(), "test").tables
    assert rules["s a.b"].columns["contact"].spec == "email", out.read_text()
    assert set(rules["s.a b"].columns) == {"id", "b_id"}
