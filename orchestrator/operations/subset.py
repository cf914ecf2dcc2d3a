"""Subset, first pass: stream the data of the filtered tables from a local archive, parents
before children, and decide which rows the subset keeps (masking.subset_scan). No
connection to production, no raw row written anywhere: pg_restore's output is read in
memory, and what comes out is one flag per row."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, cast

from orchestrator import execute
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError
from orchestrator.logs import get_logger
from orchestrator.masking.subset import SubsetPlan
from orchestrator.masking.subset_scan import Scanner, TableKept
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres.clients import ClientSet
from orchestrator.table_names import table_key

log = get_logger(__name__)


def scan(
    client: ClientSet,
    archive: Path,
    manifest: Manifest,
    plan: SubsetPlan,
    key: bytes,
    folder: Path,
) -> dict[str, TableKept]:
    """Read the data of `plan`'s tables from `archive` in one pg_restore, in the plan's
    order, and give which rows of each filtered data table the subset keeps.

    Raises CommandFailed when pg_restore fails, FilterError when its output is cut, and
    PredicateError when a condition cannot be evaluated.
    """
    facts = manifest.schema_facts
    if facts is None:  # a manifest from before schema facts: `mask check` refuses it first
        raise ConfigError(f"backup {manifest.id} records no schema: take a new backup to subset")
    rank = {root: index for index, root in enumerate(plan.order)}
    wanted = []
    entries = pgrestore.toc_list(pgrestore.list_toc(client, archive))
    for position, entry in enumerate(entries):
        if entry.kind != "TABLE DATA":
            continue
        roots = {
            facts.root_of(table_key(*t)) for t in pgrestore.entry_tables(entry, manifest.tables)
        }
        ranks = [rank[root] for root in roots if root in rank]
        if ranks:  # names printed unquoted may match several tables: read them all
            wanted.append((min(ranks), position, entry))
    if not wanted:
        return {}
    listed = pgrestore.write_list([e for _r, _p, e in sorted(wanted)], folder / "subset.list")
    argv = [client.tool("pg_restore"), f"--use-list={listed}", "--file=-", str(archive)]
    scanner = Scanner(plan, facts, key)
    found = execute.read_stream(argv, lambda out: scanner.consume(cast(BinaryIO, out)))
    for name, table in sorted(found.items()):
        log.info("subset.scanned", table=name, kept=table.kept_rows, rows=table.rows)
    return found
