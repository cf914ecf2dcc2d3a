"""Target databases of the integration tests: fresh ones holding a marker row, what they
hold, and whether a value reached a cluster's files."""

from __future__ import annotations

import subprocess
import uuid

from tests.harness.postgres import Cluster

CHECK_SQL = """
SELECT 'customers', count(*), md5(string_agg(email || full_name, ',' ORDER BY id))
  FROM public.customers
UNION ALL SELECT 'orders', count(*), md5(string_agg(amount_cents::text, ',' ORDER BY id))
  FROM sales.orders
UNION ALL SELECT 'events', count(*), md5(string_agg(payload::text, ',' ORDER BY id))
  FROM sales.events
UNION ALL SELECT 'mixed', count(*), md5(string_agg("Value", ',' ORDER BY "Key"))
  FROM public."Mixed Case table"
"""


def databases(cluster) -> set[str]:
    return set(cluster.psql("SELECT datname FROM pg_database").split())


def fresh_target(cluster, content: str = "old content") -> str:
    name = f"tgt_{uuid.uuid4().hex[:8]}"
    cluster.create_database(name)
    cluster.psql(f"CREATE TABLE keep_me (v text); INSERT INTO keep_me VALUES ('{content}')", name)
    return name


def old_content(cluster, database: str) -> str:
    return cluster.psql("SELECT v FROM keep_me", database)


def raw_values_in_data_directory(cluster: Cluster, needles: list[str]) -> list[str]:
    """The needles found anywhere in the cluster's data directory (heap, WAL, catalogs)."""
    cluster.psql("CHECKPOINT")
    found = []
    for needle in needles:
        hit = subprocess.run(
            ["grep", "-rlaF", needle, str(cluster.data)],
            capture_output=True,
            text=True,
            check=False,
        )
        found += [f"{needle} in {line}" for line in hit.stdout.splitlines()]
    return found
