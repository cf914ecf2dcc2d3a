"""`orchestrator mask suggest` and `mask check`: masking rules from and against a backup.

Both work from the archive alone, never a database connection: `check` needs only the
backup's manifest (its schema facts), `suggest` also samples rows from the archive itself
(`pg_restore --file=-` of each table's data, stopped after the first rows).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from orchestrator import catalog, execute
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError
from orchestrator.job import Job
from orchestrator.logs import get_logger, with_context
from orchestrator.masking.detect import suggest_rules
from orchestrator.masking.rules import Problem, check
from orchestrator.masking.stream import sample_each, sample_rows
from orchestrator.operations.common import client_for, work_dir
from orchestrator.operations.fetch import needed_identities, plain_copy
from orchestrator.operations.masked_load import read_rules
from orchestrator.postgres import pg_restore as pgrestore
from orchestrator.postgres.clients import ClientSet
from orchestrator.postgres.pg_restore import TocEntry
from orchestrator.schema_facts import SchemaFacts
from orchestrator.table_names import table_key

log = get_logger(__name__)
SAMPLE_ROWS = 1000
SAMPLERS = 4
Samples = dict[str, dict[str, list[str | None]]]


def _find(job: Job, ref: str) -> catalog.Located:
    """Backup `ref` from the stores alone (`latest`: of the source's database when it is
    named), never asking production anything."""
    source = job.source
    return catalog.find_located(job.stores(), ref, source.database if source else None)


def facts_of(manifest: Manifest, setting: str) -> SchemaFacts:
    """The backup's schema facts; ConfigError when it was taken before they were kept."""
    if manifest.schema_facts is None:
        raise ConfigError(
            f"{setting}: backup {manifest.id} has no schema facts (taken before masked copies "
            "existed, or its catalogs could not be read then: see that backup's log); take a "
            "new backup first"
        )
    return manifest.schema_facts


def check_rules(job: Job, rules: Path | None, ref: str) -> tuple[Manifest, list[Problem]]:
    """Check a rules file (`rules`, else DEV_MASK_RULES) against backup `ref`'s schema; give
    the backup and every problem. Raises ConfigError when no file is named or it cannot be
    read or parsed."""
    path, setting = (
        (rules, "--rules") if rules is not None else (job.dev_mask_rules, "DEV_MASK_RULES")
    )
    if path is None:
        raise ConfigError("--rules: no rules file given and DEV_MASK_RULES is not set")
    loaded = read_rules(path, setting)
    manifest = _find(job, ref).manifest
    return manifest, check(loaded, facts_of(manifest, setting), list(manifest.row_counts))


def suggest(job: Job, ref: str, rows: int = SAMPLE_ROWS) -> tuple[Manifest, str]:
    """A complete rules file for backup `ref`: every table and column, personal data (found
    by column name and by sampled values) with a transform, the rest `keep`; give the
    backup and the YAML text. Needs ARCHIVE_IDENTITY_FILE for an encrypted backup."""
    located = _find(job, ref)
    manifest = located.manifest
    facts = facts_of(manifest, "--from")
    identities = needed_identities(job, located, "mask suggest")
    with work_dir(job) as folder:
        archive, used = plain_copy(located, folder, identities)
        client = client_for(
            job, "pg_restore", used.dump_major, f"written by pg_dump {used.pg_dump_version}"
        )
        samples = _sample(client, archive, used, folder, rows)
    header = (
        f"Masking rules suggested by orchestrator for backup {manifest.id}.\n"
        "Review every line: columns with a transform were found by their name or by the\n"
        "values sampled from the archive (the comment says which); everything else is kept.\n"
        "Under unlisted_columns: fail, a column added later stops the dev refresh until\n"
        "it is listed here."
    )
    data_tables = list(manifest.row_counts)
    return manifest, suggest_rules(facts, data_tables, samples, header, manifest.row_counts)


def _sample(
    client: ClientSet, archive: Path, manifest: Manifest, folder: Path, rows: int
) -> Samples:
    """The first `rows` rows of each table that holds any, read from the archive."""
    entries = pgrestore.toc_list(pgrestore.list_toc(client, archive))
    wanted: list[tuple[str, TocEntry]] = []
    known, by_oid = manifest.tables, manifest.tables_by_oid
    for entry in entries:
        if entry.kind == "TABLE DATA" and (found := pgrestore.entry_table(entry, known, by_oid)):
            key = table_key(*found)
            if manifest.row_counts.get(key):
                wanted.append((key, entry))
    # a table that holds no more rows than a sample is read whole either way: such tables
    # share SAMPLERS pg_restores (a thousand small tables took a thousand processes)
    small = [(key, entry) for key, entry in wanted if manifest.row_counts[key] <= rows]
    batches = [small[index::SAMPLERS] for index in range(SAMPLERS)]
    large = [[pair] for pair in wanted if manifest.row_counts[pair[0]] > rows]
    work = [batch for batch in batches + large if batch]
    lists = [
        pgrestore.write_list([entry for _key, entry in batch], folder / f"sample-{index}.list")
        for index, batch in enumerate(work)
    ]

    def sample(listed: Path, batch: list[tuple[str, TocEntry]]) -> Samples:
        return _sample_tables(client, archive, listed, batch, rows)

    with ThreadPoolExecutor(max_workers=SAMPLERS) as pool:
        sampled = list(pool.map(with_context(sample), lists, work))
    return {key: values for found in sampled for key, values in found.items()}


def _sample_tables(
    client: ClientSet, archive: Path, listed: Path, tables: list[tuple[str, TocEntry]], rows: int
) -> dict[str, dict[str, list[str | None]]]:
    """The first `rows` values of each column of `tables` (the TABLE DATA entries the list
    file `listed` names, in its order), by table, from one pg_restore; table by table when
    it did not give one COPY per entry."""
    argv = [client.tool("pg_restore"), f"--use-list={listed}", "--file=-", str(archive)]
    if len(tables) == 1:  # maybe a large table: stop reading after the sample
        one = execute.read_stream(argv, lambda out: sample_rows(cast(BinaryIO, out), rows))
        each = [one] if one[0] else []
    else:
        each = execute.read_stream(argv, lambda out: sample_each(cast(BinaryIO, out), rows))
    if len(each) == len(tables):
        return {
            key: {name: [row[i] for row in values] for i, name in enumerate(columns)}
            for (key, _entry), (columns, values) in zip(tables, each, strict=True)
        }
    if len(tables) == 1:  # its entry gave no COPY: nothing to sample
        return {tables[0][0]: {}}
    found: dict[str, dict[str, list[str | None]]] = {}
    for index, (key, entry) in enumerate(tables):
        alone = pgrestore.write_list([entry], Path(f"{listed}.{index}"))
        found.update(_sample_tables(client, archive, alone, [(key, entry)], rows))
    return found
