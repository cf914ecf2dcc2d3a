"""Subsets from a local archive, parents before children (masking.subset_scan decides). No
connection to production, no raw row written anywhere: pg_restore's output is read in
memory. Usually in one pass (`one_pass`: the masking filter decides and drops as it
streams); with keys set to NULL a first pass (`scan`) gives one flag per row for the
load to apply."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import execute
from orchestrator.catalog import Manifest
from orchestrator.errors import CommandFailed, ConfigError
from orchestrator.logs import get_logger
from orchestrator.operations.masked_load import KEY_SETTING, parents_first
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres.clients import ClientSet
from orchestrator.schema_facts import SchemaFacts
from orchestrator.table_names import table_key

if TYPE_CHECKING:
    from orchestrator.masking.subset import SubsetRules
    from orchestrator.masking.subset_flags import RowFlags

log = get_logger(__name__)


@dataclass(frozen=True)
class Scanned:
    """The first pass's result: the flags of each filtered data table (what the filters
    apply) and the rows each keeps (what the restored copy must hold)."""

    flags: dict[str, RowFlags]
    kept: dict[str, int]


@dataclass(frozen=True)
class OnePass:
    """A subset the masking filter decides as the rows stream: `given` holds the subset
    and the schema facts (its --decide), `ranks` the place of each filtered data table's
    root in the plan (parents first: the order its data must reach the filter)."""

    given: Path
    ranks: dict[str, int]


def one_pass(manifest: Manifest, rules: SubsetRules, folder: Path) -> OnePass | None:
    """The one-pass subset of `rules` for `manifest`'s backup, or None when it needs two
    passes (a foreign key set to NULL: its target may come after it in the archive).

    Raises ConfigError when the backup records no schema.
    """
    from orchestrator.masking import subset as subsets

    facts = _facts(manifest)
    plan = subsets.plan(rules, facts)
    if any(table.nulls for table in plan.tables.values()):
        return None
    return OnePass(_given(rules, facts, folder), _ranks(manifest, facts, plan.order))


def check_conditions(
    manifest: Manifest | None, rules: SubsetRules, setting: str, folder: Path
) -> None:
    """Parse and type-check the `where:` conditions of `rules` against `manifest`'s schema
    (without a manifest, before a cycle's dump: parse them only), in a child (the embedded
    engine never lives in this process, whose other threads start programs). Raises
    ConfigError naming `setting`, the table and what is wrong, as `mask check` does, when
    one does not parse or fit; CommandFailed when the child fails."""
    if all(condition.where is None for condition in rules.tables.values()):
        return
    given = _given(rules, None if manifest is None else _facts(manifest), folder)
    checked = execute.run(
        [sys.executable, "-m", "orchestrator.masking", "check", f"--subset={given}"],
        ok_codes=(0, 2),
    )
    problems = checked.stdout.splitlines()
    if checked.returncode == 0:
        return
    if not problems:  # the child could not read what it was given: not the user's doing
        raise CommandFailed("orchestrator-mask", "exited 2", checked.stderr_lines)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise ConfigError(f"{setting}: {problems[0]}{more}")


def _ranks(manifest: Manifest, facts: SchemaFacts, order: tuple[str, ...]) -> dict[str, int]:
    """Each data table of the backup whose root table is in `order` (parents first), by
    its root's place there (a partition takes its table's)."""
    rank = {root: index for index, root in enumerate(order)}
    return {
        key: found
        for table in manifest.tables
        if (found := rank.get(facts.root_of(key := table_key(*table)))) is not None
    }


def scan(
    client: ClientSet,
    archive: Path,
    manifest: Manifest,
    rules: SubsetRules,
    key: str,
    folder: Path,
    timeout: float | None = None,
) -> Scanned:
    """Read the data of the tables `rules` filter from `archive` (one pg_restore, parents
    first) through the masking program's `scan` (MASK_KEY in its environment), and give
    which rows of each filtered data table the subset keeps.

    Raises ConfigError when the backup records no schema, CommandFailed when pg_restore
    or the scan fails (a condition that cannot be evaluated names its table).
    """
    from orchestrator.masking import subset as subsets
    from orchestrator.masking import subset_flags

    facts = _facts(manifest)
    order = subsets.plan(rules, facts).order
    entries = _filtered_entries(client, archive, manifest, facts, order)
    if not entries:
        return Scanned({}, {})
    listed = pgrestore.write_list(entries, folder / "subset.list")
    given = _given(rules, facts, folder)
    out = folder / "subset-flags"
    # the conditions run in a child: the embedded engine never lives in this process,
    # whose other threads start programs (pg_restore into the backup target) meanwhile
    scanner = execute.Stage(
        [sys.executable, "-m", "orchestrator.masking", "scan", f"--subset={given}", f"--out={out}"],
        {KEY_SETTING: key},
    )
    restore = execute.Stage(
        [client.tool("pg_restore"), f"--use-list={listed}", "--file=-", str(archive)]
    )
    execute.run_pipeline([restore, scanner], timeout=timeout)
    flags = subset_flags.load(out)
    counted = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for name, numbers in sorted(counted.items()):
        log.info("subset.scanned", table=name, kept=numbers["kept"], rows=numbers["rows"])
    return Scanned(flags, {name: int(numbers["kept"]) for name, numbers in counted.items()})


def _facts(manifest: Manifest) -> SchemaFacts:
    facts = manifest.schema_facts
    if facts is None:  # a manifest from before schema facts: `mask check` refuses it first
        raise ConfigError(f"backup {manifest.id} records no schema: take a new backup to subset")
    return facts


def _given(rules: SubsetRules, facts: SchemaFacts | None, folder: Path) -> Path:
    """Write the subset and the schema facts for the masking program; give the file."""
    from orchestrator.masking import subset as subsets

    given = folder / "subset.json"
    dumped = None if facts is None else facts.model_dump()
    given.write_text(
        json.dumps({"subset": subsets.rules_to_json(rules), "facts": dumped}),
        encoding="utf-8",
    )
    return given


def _filtered_entries(
    client: ClientSet,
    archive: Path,
    manifest: Manifest,
    facts: SchemaFacts,
    order: tuple[str, ...],
) -> list[pgrestore.TocEntry]:
    """The TABLE DATA entries of the tables in `order` (root tables, parents first), in
    that order (partitions with their table, archive order among equals) among the
    backup's tables."""
    known, by_oid = manifest.tables, manifest.tables_by_oid
    entries = pgrestore.toc_list(pgrestore.list_toc(client, archive))
    # names printed unquoted may match several tables: an entry is read for any of them
    loads = [
        (entry, [table_key(*t) for t in pgrestore.entry_tables(entry, known, by_oid)])
        for entry in entries
        if entry.kind == "TABLE DATA"
    ]
    return parents_first(loads, _ranks(manifest, facts, order))
