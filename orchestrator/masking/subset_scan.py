"""The first pass of a subset: which rows of each filtered table are kept, decided on the
rows as they stream from the archive (pg_restore's COPY data, parents before children).

What comes out is, per data table, one flag per row in archive order (kept or dropped) and,
for each foreign key in `set_null`, one flag per row (set its columns to NULL): no value of
any row. The second pass, the load, streams the same archive again and applies the flags,
masking the kept rows on the way. Only the key values other tables reference are held in
memory, for the rows kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from orchestrator.masking.predicate import Mask, Predicate, engine, share
from orchestrator.masking.stream import FilterError, _Reader, decode_field, parse_copy_line
from orchestrator.masking.subset import Edge, SubsetPlan, TableSubset
from orchestrator.schema_facts import Column, SchemaFacts

KeyTuple = tuple[str, ...]


@dataclass
class TableKept:
    """The first pass's verdict on one data table: `kept` has one flag per row of its
    COPY data, in order; `nulled` one flag per row for each `set_null` key (by its
    columns): set to NULL because its target was dropped."""

    key: str
    root: str
    columns: list[str]
    kept: Mask
    nulled: dict[KeyTuple, Mask] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows of the table in the archive."""
        return len(self.kept)

    @property
    def kept_rows(self) -> int:
        """Rows kept."""
        return int(self.kept.sum())


class Scanner:
    """Reads COPY data (pg_restore's script, filtered tables in plan order) and decides,
    row by row, what the subset keeps. `key` (MASK_KEY's bytes) seeds `percent:`."""

    def __init__(self, plan: SubsetPlan, facts: SchemaFacts, key: bytes) -> None:
        self.plan, self.facts, self.key = plan, facts, key
        # the kept values of every column tuple another table references, per root table
        self.known: dict[tuple[str, KeyTuple], set[KeyTuple]] = {}
        self.pending: list[tuple[TableKept, Edge, list[tuple[int, KeyTuple]]]] = []
        self.tables: dict[str, TableKept] = {}

    def consume(self, source: BinaryIO) -> dict[str, TableKept]:
        """Read every COPY of `source`; give the verdict of each filtered data table.

        Raises FilterError when the stream is cut inside COPY data, and PredicateError
        when a condition cannot be evaluated.
        """
        reader = _Reader(source)
        with engine() as con:
            while line := reader.line():
                if not line.startswith(b"COPY "):
                    continue
                header = parse_copy_line(line)
                subset = self.plan.filtered(header.table, self.facts)
                if subset is None:
                    for _block in reader.rows():  # a table kept whole: nothing to decide
                        pass
                    continue
                decide = _Decider(self, header.table, header.columns, subset, con)
                self.tables[header.table] = self._table(decide, reader)
        self._resolve_nulls()
        return self.tables

    def _table(self, decide: _Decider, reader: _Reader) -> TableKept:
        flags = [decide(rows) for rows in _batches(reader.rows(), len(decide.columns))]
        kept = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
        found = TableKept(decide.key, decide.subset.key, decide.columns, kept)
        for edge, values in decide.nullable.items():
            self.pending.append((found, edge, values))
        return found

    def _resolve_nulls(self) -> None:
        """Flag the kept rows whose `set_null` key points to a dropped row (every target is
        known only once every table was read: a cycle's back edge points forward)."""
        for table, edge, values in self.pending:
            flags = np.zeros(table.rows, dtype=bool)
            known = self.known.get((edge.parent, edge.parent_columns), set())
            for index, value in values:
                flags[index] = table.kept[index] and value not in known
            table.nulled[edge.columns] = flags


class _Decider:
    """Decides the rows of one data table, batch by batch."""

    def __init__(
        self, scanner: Scanner, key: str, columns: list[str], subset: TableSubset, con: Any
    ) -> None:
        self.scanner, self.subset, self.columns, self.key, self.con = (
            scanner,
            subset,
            columns,
            key,
            con,
        )
        facts = scanner.facts
        described = _columns(facts, key, subset.key, columns)
        condition = subset.condition
        self.predicate = (
            Predicate(subset.key, described, condition.where)
            if condition is not None and condition.where is not None
            else None
        )
        self.percent = condition.percent if condition is not None else None
        root = facts.tables.get(subset.key)
        unique = root.unique[0] if root is not None and root.unique else ()
        self.share_by = [columns.index(c) for c in unique if c in columns]
        self.position = {name: index for index, name in enumerate(columns)}
        self.seen = 0
        self.nullable: dict[Edge, list[tuple[int, KeyTuple]]] = {e: [] for e in subset.nulls}
        self.referenced = scanner.plan.referenced.get(subset.key, ())

    def __call__(self, rows: list[list[str | None]]) -> Mask:
        count = len(rows)
        keep = np.ones(count, dtype=bool)
        if self.predicate is not None:
            keep &= self.predicate.holds([list(c) for c in zip(*rows, strict=True)], self.con)
        if self.percent is not None:
            keep &= share(self.scanner.key, self.subset.key, self._row_keys(rows), self.percent)
        for edge in self.subset.filters:
            keep &= self._points_to_kept(edge, rows)
        self._remember(rows, keep)
        self.seen += count
        return keep

    def _row_keys(self, rows: list[list[str | None]]) -> list[str]:
        picks = self.share_by or range(len(self.columns))
        return ["\t".join("\\N" if row[i] is None else str(row[i]) for i in picks) for row in rows]

    def _values(self, row: list[str | None], names: Sequence[str]) -> KeyTuple | None:
        """The row's values of `names`; None when one is NULL (the key points nowhere)."""
        found = [row[self.position[name]] for name in names]
        return None if any(v is None for v in found) else tuple(str(v) for v in found)

    def _points_to_kept(self, edge: Edge, rows: list[list[str | None]]) -> Mask:
        known = self.scanner.known.get((edge.parent, edge.parent_columns), set())
        flags = np.ones(len(rows), dtype=bool)
        for index, row in enumerate(rows):
            value = self._values(row, edge.columns)
            if value is not None and value not in known:
                flags[index] = False
        return flags

    def _remember(self, rows: list[list[str | None]], keep: Mask) -> None:
        for columns in self.referenced:
            known = self.scanner.known.setdefault((self.subset.key, columns), set())
            for index in np.flatnonzero(keep):
                value = self._values(rows[index], columns)
                if value is not None:
                    known.add(value)
        for edge, values in self.nullable.items():
            for index in np.flatnonzero(keep):
                value = self._values(rows[index], edge.columns)
                if value is not None:
                    values.append((self.seen + int(index), value))


def _columns(facts: SchemaFacts, key: str, root: str, names: list[str]) -> list[Column]:
    """The facts of the COPY's `names` (the partition's own, else its root's); a column
    the facts do not know is text to a condition."""
    described = facts.tables.get(key) or facts.tables.get(root)
    found = []
    for name in names:
        column = described.column(name) if described is not None else None
        found.append(column or Column(name=name, type="text", base_type="text", category="S"))
    return found


BATCH_ROWS = 20_000


def _batches(blocks: Iterator[bytes], width: int) -> Iterator[list[list[str | None]]]:
    """Rows of COPY blocks as lists of decoded values, about BATCH_ROWS at a time.

    Raises FilterError when a row does not have `width` fields.
    """
    batch: list[list[str | None]] = []
    for block in blocks:
        for line in block.split(b"\n")[:-1]:
            fields = line.split(b"\t")
            if len(fields) != width:
                raise FilterError(f"a row has {len(fields)} fields, not {width}")
            batch.append([decode_field(f) for f in fields])
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def summary(tables: dict[str, TableKept]) -> dict[str, Any]:
    """Rows kept of rows in the archive, per filtered data table, for reports."""
    return {key: {"kept": t.kept_rows, "rows": t.rows} for key, t in sorted(tables.items())}
