"""Subset conditions mean what PostgreSQL would mean: each condition runs in PostgreSQL on
the source and through a subset's first pass on a real archive of it, and both keep the
same rows. LIKE's backslash escape, exact numeric(p,s), timestamptz with offsets and zone
names, date arithmetic, booleans, uuid, intervals in pg_dump's style, bytea as its text.

One backup holds one copy of the rows per condition (table c00, c01...), so a single
pg_restore and scan decide them all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from orchestrator.masking.rules import load_rules
from orchestrator.masking.subset_flags import RowFlags
from orchestrator.operations import subset as subset_operation
from orchestrator.postgres import clients
from tests.conftest import Clusters, all_bin_dirs, fetched_backup
from tests.harness.postgres import Cluster

pytestmark = pytest.mark.integration

ROWS = r"""
CREATE TABLE base (
    id int PRIMARY KEY, name text, amount numeric(30,2), ratio numeric, seen timestamptz,
    born date, flag boolean, u uuid, span interval, raw bytea
);
INSERT INTO base VALUES
 (1, 'a_b', 1234567890123456789012345678.01, 0.1, '2026-10-25 00:30:00+00', '2026-01-01',
  true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '-1 days +02:00:00', '\x0102'),
 (2, 'axb', 1234567890123456789012345678.02, 0.25, '2026-10-25 01:30:00+00', '2026-03-29',
  false, '7fffffff-ffff-ffff-ffff-ffffffffffff', '1 mon', '\x00'),
 (3, 'a\_b', 1234567890123456789012345678.00, 0.3, '2026-03-29 01:30:00+02', '2026-06-30',
  NULL, '80000000-0000-0000-0000-000000000000', '30 days', NULL),
 (4, 'a\xb', 0.01, 1e-20, '2026-03-28 23:30:00-01', '2026-12-31', true,
  '00000000-0000-0000-0000-000000000000', '25 hours', '\xdeadbeef'),
 (5, '50%', -0.01, 123456789012345678, '2026-10-25 02:30:00+01', '2024-02-29', false,
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '1 year 2 mons -3 days +04:05:06.5', '\x'),
 (6, '50 percent', NULL, NULL, NULL, NULL, true, NULL, '-00:00:01', '\x0102'),
 (7, 'A_B', 99999999999999999999999999.99, 2, 'infinity', '2026-04-01', false,
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '31 days', '\x41'),
 (8, 'a%b', 1, 1.0000000000000001, '2026-10-25 01:00:00+00', '2026-03-30', true,
  'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00:00:00', '\x4142');
"""

CONDITIONS = [
    # LIKE: the backslash escapes, as in PostgreSQL (DuckDB's LIKE alone has no escape)
    r"name LIKE 'a\_b'",
    r"name LIKE '50\%'",
    r"name NOT LIKE 'a\_%'",
    r"name ILIKE 'A\_B'",
    r"name NOT ILIKE 'a\_b'",
    r"name LIKE 'a!_b' ESCAPE '!'",
    r"name LIKE 'a\\_b'",
    "name LIKE 'a_b' OR name ~ '^50'",
    "lower(name) IN ('axb', 'a%b')",
    # numeric(30,2) is exact; a numeric without precision is a double
    "amount = 1234567890123456789012345678.01",
    "amount > 1234567890123456789012345678.01",
    "amount BETWEEN -0.01 AND 1",
    "ratio < 0.3",
    "ratio > 1e17",
    # timestamptz: offsets, zone names (a daylight saving change), dates
    "seen >= timestamptz '2026-10-25 02:30:00+02'",
    "seen < timestamptz '2026-10-25 02:30:00 Europe/Berlin'",
    "seen < timestamptz '2026-03-29 03:30:00 Europe/Berlin'",
    "seen > '2026-10-25 01:00:00'",
    "seen::date = date '2026-10-25'",
    "seen = 'infinity'",
    # date arithmetic
    "born + 30 > date '2026-07-01'",
    "born - date '2026-01-01' < 100",
    "born + interval '1 month' >= timestamp '2026-04-29'",
    "extract(dow FROM born) = 0",
    # booleans
    "flag",
    "NOT flag",
    "flag IS NOT TRUE",
    # uuid
    "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'",
    "u < '80000000-0000-0000-0000-000000000000'",
    "u::text LIKE 'a%'",
    # intervals, as pg_dump writes them ('-1 days +02:00:00')
    "span > interval '1 day'",
    "span < interval '0'",
    "span = interval '1 mon'",
    "span > interval '30 days'",
    "span >= interval '1 year'",
    # bytea: its text (hex)
    r"raw = '\x0102'",
    "raw IS NULL",
]


@dataclass
class Decided:
    cluster: Cluster
    database: str
    flags: dict[str, RowFlags]


def _table(index: int) -> str:
    return f"c{index:02d}"


@pytest.fixture(scope="module")
def decided(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Decided:
    cluster, database = clusters.get(17), "conditions_src"
    cluster.create_database(database)
    copies = "".join(
        f"CREATE TABLE {_table(i)} AS SELECT * FROM base ORDER BY id;\n"
        f"ALTER TABLE {_table(i)} ADD PRIMARY KEY (id);\n"
        for i in range(len(CONDITIONS))
    )
    cluster.psql(ROWS + copies, database=database)
    work = tmp_path_factory.mktemp("conditions")
    archive, manifest = fetched_backup(clusters, cluster.url(database), work)
    tables = "".join(
        f"    public.{_table(i)}: {{where: '{where.replace(chr(39), chr(39) * 2)}'}}\n"
        for i, where in enumerate(CONDITIONS)
    )
    subset = load_rules(f"unlisted_columns: keep\nsubset:\n  tables:\n{tables}", "R").subset
    assert subset is not None
    found = clients.discover(all_bin_dirs(clusters).split(":"), "pg_restore")
    client = clients.choose(found, 17, "pg_restore", "test")
    (work / "scan").mkdir()
    key = "conditions-key-0123456789abcdef0"
    scanned = subset_operation.scan(client, archive, manifest, subset, key, work / "scan")
    return Decided(cluster, database, scanned.flags)


@pytest.mark.parametrize("index", range(len(CONDITIONS)), ids=CONDITIONS)
def test_a_condition_keeps_the_rows_postgresql_would_keep(decided: Decided, index: int) -> None:
    where = CONDITIONS[index]
    held = decided.cluster.psql(
        f"SET TimeZone = 'UTC';\nSELECT id FROM {_table(index)} WHERE {where} ORDER BY id",
        database=decided.database,
    ).split()
    postgres = [int(row) for row in held if row != "SET"]
    kept = decided.flags[f"public.{_table(index)}"].kept
    assert list(np.flatnonzero(kept) + 1) == postgres
