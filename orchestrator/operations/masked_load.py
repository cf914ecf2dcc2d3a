"""Masked copies: a restore in which the rows of masked tables are rewritten between the
archive and the server, so no raw value of a masked column ever reaches it.

The archive is restored in its three sections into the new (staging) database:

1. pre-data: tables, types, functions (no rows, no indexes or constraints yet);
2. data: the tables whose columns are all kept, by pg_restore; beside it, the tables with a
   masked column, shared out by rows into at most two groups of about equal size (more
   only when RESTORE_JOBS and the cores allow), each group through one
   `pg_restore --file=- -L GROUP | python -m orchestrator.masking filter | psql`: one
   filter (it gets the group's plans, and MASK_KEY in its environment) and one transaction
   for every table of its group, so a schema's many small masked tables pay the filter's
   start-up (an interpreter, numpy, cryptography) once per group, not once per table.
   The filters start with step 1 and wait on their input (`execute.Gate`): their start-up
   uses the core the serial pre-data step leaves idle, and the rows flow once it is done;
3. post-data: indexes, constraints, triggers, materialized views (refreshed over the masked
   rows), so a broken uniqueness or foreign key fails the restore before the swap.

Planner statistics that pg_dump 18+ may write (`STATISTICS DATA`: most common values, i.e.
raw values) are never restored into a masked copy; ANALYZE computes them from the masked
rows. Large objects keep their metadata but not their contents unless the rules say
`large_objects: keep`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import execute
from orchestrator.catalog import Manifest
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, JobError
from orchestrator.job import Job, TargetSettings
from orchestrator.logs import get_logger, with_context
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.pg_restore import RestoreOptions, TocEntry
from orchestrator.schema_facts import SchemaFacts
from orchestrator.setting_files import setting_file_text

if TYPE_CHECKING:  # the masking core loads only when a target is masked (see load_masking)
    from orchestrator.masking.plan import TablePlan
    from orchestrator.masking.rules import Problem, Rules
    from orchestrator.masking.subset_flags import RowFlags
    from orchestrator.operations.subset import OnePass

log = get_logger(__name__)
SHOWN_PROBLEMS = 20
KEY_SETTING = "MASK_KEY"
FILTERS = 2  # masking pipelines at most, on two cores or fewer; more cores: one per 2 cores
NEVER_IN_A_MASKED_COPY = ("STATISTICS DATA",)  # raw most-common values and histograms


@dataclass(frozen=True)
class Masking:
    """Rules loaded and the key checked, for one target."""

    rules: Rules
    key: str
    setting: str
    workers: int


class MaskingRefused(JobError):
    """The rules do not fit the backup's schema (a new column, a bad rule): nothing was
    loaded into the target."""

    def __init__(self, setting: str, backup_id: str, problems: list[Problem]) -> None:
        shown = "; ".join(f"{p.location}: {p.message}" for p in problems[:SHOWN_PROBLEMS])
        more = (
            f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        )
        super().__init__(
            f"{setting} does not fit backup {backup_id}, nothing was loaded: {shown}{more}"
        )
        self.problems = problems


def load_masking(job: Job, target: TargetSettings) -> Masking | None:
    """The target's masking (None when it has no rules file), its rules file read once per
    job (the preflight and the restore see the same rules). Raises ConfigError naming the
    setting when the rules file cannot be read or parsed, or MASK_KEY is unset or short."""
    path, setting = target.mask_rules, target.mask_setting
    if path is None:
        return None
    rules = job.remember(f"mask-rules:{path}", lambda: read_rules(path, setting))
    from orchestrator.masking.transforms import load_key

    key = job.restore.mask_key
    load_key(key)  # ConfigError naming MASK_KEY, never its value
    assert key is not None
    return Masking(rules, key, target.mask_setting, job.restore.mask_workers)


def read_rules(path: Path, setting: str) -> Rules:
    """The rules file `setting` names, read and parsed. Raises ConfigError naming `setting`
    when it cannot be read or parsed."""
    # imported here: numpy and cryptography cost every other command 0.2 s and 25 MiB
    from orchestrator.masking.rules import load_rules

    return load_rules(setting_file_text(path, setting), setting)


def plans_for(masking: Masking, manifest: Manifest) -> dict[str, TablePlan]:
    """Each data table's plan for `manifest`. Raises ConfigError when the backup has no
    schema facts, MaskingRefused when the rules do not fit its schema (unlisted columns
    under `unlisted_columns: fail` among them)."""
    facts = manifest.schema_facts
    if facts is None:
        raise ConfigError(
            f"{masking.setting}: backup {manifest.id} has no schema facts (taken before masked "
            "copies existed, or its catalogs could not be read then: see that backup's log); "
            "take a new backup, masking needs its schema"
        )
    data_tables = list(manifest.row_counts)
    from orchestrator.masking.rules import check, plan

    problems = check(masking.rules, facts, data_tables, conditions=False)
    if problems:
        raise MaskingRefused(masking.setting, manifest.id, problems)
    counted = manifest.row_counts  # weighs each table when masked tables are shared out
    return {
        key: replace(table_plan, rows=counted.get(key))
        for key, table_plan in plan(masking.rules, facts, data_tables).items()
    }


@dataclass
class MaskedLoad:
    """One masked restore of `archive` into the empty database `target`."""

    client: ClientSet
    target: ConnInfo
    archive: Path
    options: RestoreOptions
    masking: Masking
    plans: dict[str, TablePlan]
    folder: Path
    tables_of: Callable[[TocEntry], list[str]]
    subset: dict[str, RowFlags] = field(default_factory=dict)  # by data table: rows kept
    decide: OnePass | None = None  # or a subset the filter decides as the rows stream
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self) -> list[str]:
        """Restore the three sections, masked tables through the filters; give the harmless
        errors pg_restore ignored. Raises JobError/CommandFailed at the first failure."""
        entries = pgrestore.toc_list(pgrestore.list_toc(self.client, self.archive))
        tables = {e: self.tables_of(e) for e in entries if e.kind == "TABLE DATA"}
        _one_table_each(tables)
        masked = {e.line: chosen for e, keys in tables.items() if (chosen := self._masked(keys))}
        kept = [e for e in entries if e.line not in masked and not self._never(e)]
        listed = pgrestore.write_list(kept, self.folder / "restore.list")
        groups = self._groups([e for e in entries if e.line in masked], masked)
        # the filters start with the pre-data step (their imports on the core it leaves
        # idle); their tables exist once it is done, and the gate lets the rows flow
        gate = execute.Gate()
        with ThreadPoolExecutor(max_workers=1 + len(groups)) as pool:
            copies = [
                pool.submit(with_context(self._copy), group, masked, index, gate)
                for index, group in enumerate(groups)
            ]
            try:
                ignored = self._section("pre-data", listed)
            except BaseException:
                gate.abandon()
                raise
            gate.open()
            data = pool.submit(with_context(self._section), "data", listed)
            for copy in copies:
                copy.result()
            ignored += data.result()
        ignored += self._section("post-data", listed)
        return sorted(set(ignored))

    def _masked(self, keys: list[str]) -> list[str]:
        """Of the tables `keys` a TABLE DATA entry may load (`tables_of`), those with a
        plan; [] when none of them has a masked column or a subset. TOC lines print names
        unquoted, so an entry can read as more than one table: when any of them is masked,
        the entry goes through the filter with the plan of each, and the filter masks the
        COPY with the plan of the table its header names exactly (a guess either way could
        load raw rows)."""
        masked = any((p := self.plans.get(k)) is not None and p.masked_columns() for k in keys)
        filtered = any(self._filtered(k) for k in keys)  # a subset drops rows on the way too
        return [k for k in keys if k in self.plans] if masked or filtered else []

    def _groups(self, chosen: list[TocEntry], masked: dict[str, list[str]]) -> list[list[TocEntry]]:
        """The masked entries shared out by the rows the backup holds (`share_out`) into
        one group per filter, each in archive order. A subset decided in one pass takes a
        group of its own: its tables, parents first."""
        from orchestrator.masking.plan import share_out

        cores = os.cpu_count() or 1
        count = max(1, min(self.options.jobs, max(FILTERS, cores // 2)))
        decided = self._decided(chosen, masked)
        rest = [entry for entry in chosen if entry not in decided]
        weights = {entry.line: self._rows(masked[entry.line]) for entry in rest}
        if decided:
            count = max(1, count - 1)
        shared = [set(group) for group in share_out(weights, count)] if weights else []
        groups = [[entry for entry in rest if entry.line in group] for group in shared]
        return [decided, *groups] if decided else groups

    def _decided(self, chosen: list[TocEntry], masked: dict[str, list[str]]) -> list[TocEntry]:
        """The entries of the tables the one-pass subset filters, parents first (archive
        order among equals): how its filter must read them."""
        if self.decide is None:
            return []
        return parents_first([(entry, masked[entry.line]) for entry in chosen], self.decide.ranks)

    def _filtered(self, key: str) -> bool:
        """Whether data table `key` is one the subset filters."""
        return key in self.subset or (self.decide is not None and key in self.decide.ranks)

    def _rows(self, keys: list[str]) -> int:
        """The rows the backup holds for an entry (the most of the tables it may load)."""
        return max((self.plans[key].rows or 0 for key in keys), default=0)

    def _never(self, entry: TocEntry) -> bool:
        if entry.kind in NEVER_IN_A_MASKED_COPY:
            return True
        return entry.kind == "BLOBS" and self.masking.rules.large_objects != "keep"

    def _section(self, section: str, listed: Path) -> list[str]:
        options = RestoreOptions(
            jobs=self.options.jobs,
            no_owner=self.options.no_owner,
            no_acl=self.options.no_acl,
            timeout=self.options.timeout,
            section=section,
            use_list=listed,
            work_dir=self.folder,
        )
        return pgrestore.run_restore(self.client, self.target, self.archive, options)

    def _copy(
        self, group: list[TocEntry], masked: dict[str, list[str]], index: int, gate: execute.Gate
    ) -> None:
        """Load one group of masked tables: archive -> one filter -> psql, in one
        transaction; the filter starts at once, the rest when `gate` opens. Raises
        CommandFailed when a stage fails (the filter's error names the table, column and
        row) or the gate is abandoned, JobError when an entry's data never reached the
        filter."""
        from orchestrator.masking.plan import plans_to_json

        keys = sorted({key for entry in group for key in masked[entry.line]})
        plan_file = self.folder / f"plans-{index}.json"
        plan_file.write_text(plans_to_json(self.plans[key] for key in keys), encoding="utf-8")
        stats_file = self.folder / f"stats-{index}.json"
        listed = pgrestore.write_list(group, self.folder / f"entries-{index}.list")
        argv = [
            sys.executable,
            "-m",
            "orchestrator.masking",
            "filter",
            f"--plan={plan_file}",
            f"--stats={stats_file}",
            f"--workers={self.masking.workers}",
        ]
        flags = {key: self.subset[key] for key in keys if key in self.subset}
        if self.decide is not None and any(key in self.decide.ranks for key in keys):
            argv.append(f"--decide={self.decide.given}")
        elif flags:
            from orchestrator.masking import subset_flags

            argv.append(f"--subset={subset_flags.save(self.folder / f'subset-{index}', flags)}")
        middle = execute.Stage(argv, {KEY_SETTING: self.masking.key}, early=True)
        stages = pgrestore.copy_stages(self.client, self.target, self.archive, listed, middle)
        execute.run_pipeline(stages, timeout=self.options.timeout, gate=gate)
        found: dict[str, dict[str, Any]] = json.loads(stats_file.read_text(encoding="utf-8"))[
            "tables"
        ]
        for entry in group:
            if not any(key in found for key in masked[entry.line]):
                raise JobError(f"the archive's data of {entry.rest!r} never reached the filter")
        for table, done in sorted(found.items()):
            if done.get("masked_columns") or self._filtered(table):
                self._record(table, done, index)

    def _record(self, table: str, found: dict[str, Any], group: int) -> None:
        """Keep what filter `group` did to `table`: its masked columns, rows, items scrubbed."""
        self.stats[table] = {"columns": found["masked_columns"], "rows": found.get("rows", 0)}
        if found.get("scrubbed"):
            self.stats[table]["scrubbed"] = found["scrubbed"]
        if self._filtered(table):
            self.stats[table]["dropped"] = found.get("dropped", 0)
        log.info("restore.masked_table", table=table, group=group, **self.stats[table])


def parents_first(
    entries: list[tuple[TocEntry, list[str]]], ranks: dict[str, int]
) -> list[TocEntry]:
    """Of `entries` (each with the tables it may load), those loading a table `ranks`
    places (a subset's data tables by their root's place, parents first), ordered by
    their lowest place, archive order among equals: how a subset must read them."""
    ranked = [
        (min(found), position, entry)
        for position, (entry, keys) in enumerate(entries)
        if (found := [ranks[key] for key in keys if key in ranks])
    ]
    return [entry for _rank, _position, entry in sorted(ranked, key=lambda r: r[:2])]


def _one_table_each(tables: dict[TocEntry, list[str]]) -> None:
    """Raise JobError when a TABLE DATA entry (`tables`: each one's tables it may load)
    matches no table of the manifest, or two entries can only be one and the same table:
    the manifest then lacks a table whose name prints like another's (`s."a b"` and
    `"s a".b`; backups before schema facts recorded oids), and its rows would be loaded
    unchecked as the other's."""
    seen: dict[str, TocEntry] = {}
    for entry, keys in tables.items():
        if not keys:
            raise JobError(f"the archive's entry {entry.rest!r} matches no table of the manifest")
        if len(keys) == 1 and (other := seen.setdefault(keys[0], entry)) is not entry:
            raise JobError(
                f"the archive's entries {other.line!r} and {entry.line!r} both read as "
                f"table {keys[0]}: take a new backup (it ties each entry to its table)"
            )


def unlisted_kept(
    rules: Rules, facts: SchemaFacts | None, plans: dict[str, TablePlan]
) -> list[str]:
    """Give the columns ("schema.table.column", sorted) that reach the copy as they are
    because no rule names them (`unlisted_columns: keep`): each column the plan keeps that
    neither a column rule nor a whole-table `keep` (of the table, or of a partitioned table
    above it) names; a column that follows a masked key is masked, so never among them.
    [] when the plan has none."""
    from orchestrator.masking.plan import location

    found = []
    for key, table_plan in plans.items():
        named = _rule_table(rules, facts, key) if facts is not None else key
        rule = rules.tables.get(named) if named is not None else None
        if rule is not None and rule.keep_all:
            continue
        listed = rule.columns if rule is not None else {}
        found += [
            location(key, name)
            for name, column in table_plan.columns.items()
            if column.transform == "keep" and name not in listed
        ]
    return sorted(found)


def _rule_table(rules: Rules, facts: SchemaFacts, key: str) -> str | None:
    """The nearest of `key` and the partitioned tables above it that a rule names."""
    seen: set[str] = set()
    current: str | None = key
    while current is not None and current not in seen:
        if current in rules.tables:
            return current
        seen.add(current)
        table = facts.tables.get(current)
        current = table.parent if table is not None else None
    return None


def masking_report(
    masking: Masking, stats: dict[str, dict[str, Any]], unlisted: list[str]
) -> dict[str, Any]:
    """What a masked restore did, for its report, the webhook and status: the rules file's
    sha256, the masked columns and rows per table, the items scrubbed per column (counted
    by the filter; only for columns that scrub), and the columns kept because no rule
    names them (`unlisted_kept`)."""
    return {
        "rules_sha256": masking.rules.sha256,
        "tables": {table: stats[table] for table in sorted(stats)},
        "unlisted": list(unlisted),
    }


def unlisted_text(unlisted: list[str]) -> str:
    """The unlisted columns kept, for people: "none", or their count and names."""
    return f"{len(unlisted)} kept as they are: {', '.join(unlisted)}" if unlisted else "none"


def database_comment(
    backup_id: str,
    when: str,
    masking: Masking | None,
    stats: dict[str, Any],
    unlisted: list[str],
) -> str:
    """The COMMENT ON DATABASE of a restored copy: which backup, when, and for a masked copy
    which rules, what they masked and which unlisted columns they kept, so anyone connected
    to it can tell."""
    if masking is None:
        return f"orchestrator: copy of backup {backup_id}, restored {when}"
    tables = "; ".join(f"{t}({_columns_of(s)})" for t, s in sorted(stats.items()))
    return (
        f"orchestrator: MASKED copy of backup {backup_id}, restored {when}; rules sha256 "
        f"{masking.rules.sha256}; unlisted columns: {unlisted_text(unlisted)}; "
        f"masked: {tables or 'nothing'}"
    )[:4000]


def _columns_of(stats: dict[str, Any]) -> str:
    """The masked columns of one table for the comment, with the items each one scrubbed,
    and for a subset's table the rows kept and dropped: `email, notes: 412 items scrubbed,
    subset kept 120 rows, dropped 880`."""
    scrubbed = stats.get("scrubbed", {})
    parts = [
        f"{name}: {scrubbed[name]} items scrubbed" if name in scrubbed else name
        for name in stats.get("columns", [])
    ]
    if "dropped" in stats:  # a subset's table: how many of its rows it kept
        parts.append(f"subset kept {stats.get('rows', 0)} rows, dropped {stats['dropped']}")
    return ", ".join(parts)
