"""A subset's decisions: which rows of each filtered table are kept, decided on the rows as
they stream from the archive (pg_restore's COPY data, parents before children). Only the
key values other tables reference are held in memory, for the rows kept; never a row.

One pass, the usual case: the masking filter drops each block's rows the subset does not
keep as it streams them (`Scanner.dropper`), before masking the rest, so the archive is
read once. Two passes when a foreign key is set to NULL (`set_null`, which resolves a
cycle): its target may come later in the stream, so a first pass (`Scanner.consume`)
gives, per data table, one flag per row in archive order (kept or dropped) and, per key
set to NULL, one flag per row: no value of any row. The load then streams the archive
again and applies the flags (`stream.SubsetApplier`), masking the kept rows on the way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from orchestrator.masking._fields import Ints, Lines, integers, kept_lines, lines_of
from orchestrator.masking.predicate import Mask, Predicate, engine, share
from orchestrator.masking.stream import FilterError, _Reader, decode_field, parse_copy_line
from orchestrator.masking.subset import Edge, SubsetPlan, TableSubset
from orchestrator.masking.transforms import comparable
from orchestrator.schema_facts import Column, SchemaFacts

KeyTuple = tuple[str, ...]  # column names
RawKey = tuple[bytes, ...]  # a key's values as COPY text
NULL = b"\\N"


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


INTEGER_TYPES = ("int2", "int4", "int8")


class KeyStore:
    """The kept values of one referenced column tuple. A single integer column is kept as a
    numpy array (membership of a whole column at once); anything else as a set of the
    values' COPY text."""

    def __init__(self, integer: bool) -> None:
        self.integer = integer
        self.raw: set[RawKey] = set()
        self.parts: list[Ints] = []
        self._sorted: Ints | None = None

    def add_ints(self, values: Ints) -> None:
        """Remember these integer values (an integer store only)."""
        self.parts.append(values)
        self._sorted = None

    def add_raw(self, keys: Iterator[RawKey]) -> None:
        """Remember these keys, given as COPY text."""
        if self.integer:
            self.add_ints(np.array([int(k[0]) for k in keys], dtype=np.int64))
        else:
            self.raw.update(keys)

    def holds_ints(self, values: Ints) -> Mask:
        """For each integer value, whether it is kept."""
        if self._sorted is None:
            self._sorted = np.unique(np.concatenate(self.parts)) if self.parts else _NO_INTS
        found = self._sorted
        if not len(found):
            return np.zeros(len(values), dtype=bool)
        at = np.minimum(np.searchsorted(found, values), len(found) - 1)
        held: Mask = found[at] == values
        return held

    def holds_raw(self, keys: list[RawKey | None]) -> Mask:
        """For each key (None: it holds a NULL and points nowhere), whether it may stay."""
        if self.integer:
            present = [k for k in keys if k is not None]
            found = iter(self.holds_ints(np.array([int(k[0]) for k in present], np.int64)))
            return np.fromiter((k is None or bool(next(found)) for k in keys), bool, len(keys))
        return np.fromiter((k is None or k in self.raw for k in keys), bool, len(keys))


_NO_INTS = np.zeros(0, dtype=np.int64)


class Scanner:
    """Decides, row by row, what the subset keeps of the COPY data of the filtered tables
    (pg_restore's script, parents before children). `key` (MASK_KEY's bytes) seeds
    `percent:`; `con` (from `predicate.engine()`) evaluates `where:` conditions.

    Two ways to use it: `consume` reads a whole script and gives one flag per row (the first
    of two passes, needed when keys are set to NULL: their targets are known only at the
    end), or `dropper` decides each COPY's blocks as the filter streams them (one pass)."""

    def __init__(self, plan: SubsetPlan, facts: SchemaFacts, key: bytes, con: Any = None) -> None:
        self.plan, self.facts, self.key, self.con = plan, facts, key, con
        # the kept values of every column tuple another table references, per root table
        self.known: dict[tuple[str, KeyTuple], KeyStore] = {}
        self.pending: list[tuple[TableKept, Edge, _Nulls]] = []
        self.tables: dict[str, TableKept] = {}
        self.started: set[str] = set()  # root tables whose rows have come
        # root tables a table's keys pointed to before any of their rows came (taken as
        # holding none: a partitioned table without partitions has no COPY), by that table
        self.missing: dict[str, str] = {}

    @property
    def needs_engine(self) -> bool:
        """Whether some table has a `where:` condition (the caller opens `engine()`)."""
        return any(t.condition is not None and t.condition.where for t in self.plan.tables.values())

    @property
    def one_pass(self) -> bool:
        """Whether rows can be decided as they stream (no key is set to NULL)."""
        return not any(t.nulls for t in self.plan.tables.values())

    def store(self, table: str, columns: KeyTuple) -> KeyStore:
        """The kept values of `columns` of root table `table` (empty until it is read)."""
        found = self.known.get((table, columns))
        if found is None:
            described = self.facts.tables.get(table)
            column = described.column(columns[0]) if described and len(columns) == 1 else None
            integer = column is not None and column.base_type in INTEGER_TYPES
            found = self.known[(table, columns)] = KeyStore(integer)
        return found

    def decider(self, table: str, columns: list[str], hold: bool = False) -> _Decider | None:
        """The decider of the COPY of data table `table` with `columns`; None when the
        table is kept whole. A table its keys point to whose rows have not come is taken
        as holding none (the archive may have no COPY of it). Raises FilterError when rows
        come of a table that an earlier one's keys pointed to (that one's rows were
        decided without them)."""
        subset = self.plan.filtered(table, self.facts)
        if subset is None:
            return None
        if subset.key in self.missing:
            child = self.missing[subset.key]
            raise FilterError(
                f"{child}: its rows came before those of {subset.key}, which it references"
            )
        for edge in subset.filters:
            if edge.parent != subset.key and edge.parent not in self.started:
                self.missing.setdefault(edge.parent, table)
        self.started.add(subset.key)
        return _Decider(self, table, columns, subset, self.con, hold)

    def dropper(self, table: str, columns: list[str]) -> Dropper | None:
        """What drops the rows of data table `table` the subset does not keep, block by
        block as they stream; None when the table is kept whole. Needs `one_pass`."""
        assert self.one_pass, "keys set to NULL need two passes"
        decide = self.decider(table, columns, hold=True)
        return Dropper(decide) if decide is not None else None

    def consume(self, source: BinaryIO) -> dict[str, TableKept]:
        """Read every COPY of `source`; give the verdict of each filtered data table.

        Raises FilterError when the stream is cut inside COPY data or a table comes before
        one it references, and PredicateError when a condition cannot be evaluated.
        """
        reader = _Reader(source)
        with engine() if self.needs_engine else contextlib.nullcontext() as con:
            self.con = con
            while line := reader.line():
                if not line.startswith(b"COPY "):
                    reader.settle(line)
                    continue
                header = parse_copy_line(reader.whole(line))
                decide = self.decider(header.table, header.columns)
                if decide is None:
                    for _block in reader.rows():  # a table kept whole: nothing to decide
                        pass
                    continue
                self.tables[header.table] = self._table(decide, reader)
        self._resolve_nulls()
        return self.tables

    def _table(self, decide: _Decider, reader: _Reader) -> TableKept:
        flags = [decide(block) for block in reader.rows() if block]
        kept = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
        found = TableKept(decide.key, decide.subset.key, decide.columns, kept)
        for edge, values in decide.nullable.items():
            self.pending.append((found, edge, values))
        return found

    def _resolve_nulls(self) -> None:
        """Flag the kept rows whose `set_null` key points to a dropped row (every target is
        known only once every table was read: a cycle's back edge points forward)."""
        for table, edge, pending in self.pending:
            flags = np.zeros(table.rows, dtype=bool)
            known = self.store(edge.parent, edge.parent_columns)
            for rows, keys in pending.batches:
                flags[rows] = ~known.holds_raw(keys)
            for rows, ints in pending.int_batches:
                flags[rows] = ~known.holds_ints(ints)
            table.nulled[edge.columns] = flags & table.kept


@dataclass
class _Nulls:
    """A `set_null` key's values in the kept rows that hold one, by row number."""

    batches: list[tuple[Ints, list[RawKey | None]]] = field(default_factory=list)
    int_batches: list[tuple[Ints, Ints]] = field(default_factory=list)


class _Decider:
    """Decides the rows of one data table, block by block of COPY lines. Keys are compared
    as COPY text (a key and the column it references have one type, so one text form), or
    as integers a whole column at a time when the key is one integer column; only the
    fields a decision needs are cut out of a line."""

    def __init__(
        self,
        scanner: Scanner,
        key: str,
        columns: list[str],
        subset: TableSubset,
        con: Any,
        hold: bool = False,
    ) -> None:
        self.scanner, self.subset, self.columns, self.key, self.con = (
            scanner,
            subset,
            columns,
            key,
            con,
        )
        facts = scanner.facts
        condition = subset.condition
        self.predicate = (
            Predicate(subset.key, _columns(facts, key, subset.key, columns), condition.where)
            if condition is not None and condition.where is not None
            else None
        )
        self.percent = condition.percent if condition is not None else None
        root = facts.tables.get(subset.key)
        unique = root.unique[0] if root is not None and root.unique else ()
        self.position = {name: index for index, name in enumerate(columns)}
        # keys are compared as text: citext, caseless and char(n) values equal to PostgreSQL
        # are not
        self.comparable = {
            c.name: fold
            for c in _columns(facts, key, subset.key, columns)
            if (fold := comparable(c.compared_as)) is not None
        }
        self.share_by = [self.position[c] for c in unique if c in self.position]
        self.seen = 0
        self.nullable: dict[Edge, _Nulls] = {e: _Nulls() for e in subset.nulls}
        self.referenced = scanner.plan.referenced.get(subset.key, ())
        # kept keys go to the stores at once, or are held (a Dropper stores them at the end)
        self.hold = hold
        self.held: dict[KeyTuple, _Held] = {}

    def __call__(self, block: bytes) -> Mask:
        """One flag per line of `block` (whole COPY lines): kept or dropped."""
        return self.decide(lines_of(block, len(self.columns)))

    def decide(self, lines: Lines) -> Mask:
        """One flag per line of `lines`; remembers the kept rows' keys other tables need."""
        count = len(lines)
        keep = np.ones(count, dtype=bool)
        cut = _Cut(self, lines)
        if self.predicate is not None:
            values = [[decode_field(f) for f in cut.fields(i)] for i in range(len(self.columns))]
            keep &= self.predicate.holds(values, self.con)
        if self.percent is not None:
            keys = cut.row_keys(self.share_by)
            keep &= share(self.scanner.key, self.subset.key, keys, self.percent)
        for edge in self.subset.filters:
            keep &= cut.points_to(edge, self.scanner.store(edge.parent, edge.parent_columns))
        self._remember(cut, keep)
        self.seen += count
        return keep

    def _remember(self, cut: _Cut, keep: Mask) -> None:
        for columns in self.referenced:
            store = self.scanner.store(self.subset.key, columns)
            held = self.held.setdefault(columns, _Held()) if self.hold else None
            ints = cut.ints(columns) if store.integer else None
            if ints is not None:
                values = ints[0][keep & ~ints[1]]
                if held is None:
                    store.add_ints(values)
                else:
                    held.ints.append(values)
                continue
            keys = cut.keys(columns)
            found = [k for k, kept in zip(keys, keep, strict=True) if kept and k]
            if held is None:
                store.add_raw(iter(found))
            else:
                held.raw.extend(found)
        for edge, pending in self.nullable.items():
            rows = np.flatnonzero(keep) + self.seen
            ints = cut.ints(edge.columns)
            if ints is not None:
                chosen = keep & ~ints[1]
                pending.int_batches.append((np.flatnonzero(chosen) + self.seen, ints[0][chosen]))
            else:
                keys = cut.keys(edge.columns)
                pending.batches.append((rows, [keys[i] for i in np.flatnonzero(keep)]))


class Dropper:
    """Drops the rows of one COPY the subset does not keep as its blocks stream (the one
    pass: decided and dropped at once, never written anywhere before). Blocks may be
    decided in any order and in forked workers: a table's rows only look up the keys of
    tables that came before it (a table referencing itself needs `set_null`, so two
    passes), and the keys it keeps for later tables are held here, handed back from the
    workers with the rows dropped (`take_counts`), and stored once its last block is in
    (`finish`). Not forkable while a condition's engine is open."""

    in_workers = True

    def __init__(self, decide: _Decider) -> None:
        self.decide, self.dropped = decide, 0
        self.forkable = not decide.scanner.needs_engine

    def __call__(self, block: bytes) -> bytes:
        """The lines of `block` (whole COPY lines) that the subset keeps."""
        lines = lines_of(block, len(self.decide.columns))
        keep = self.decide.decide(lines)
        self.dropped += len(lines) - int(np.count_nonzero(keep))
        return kept_lines(lines, keep)

    def take_counts(self) -> dict[str, Any]:
        """The rows dropped and the keys kept since the last call."""
        taken = {"dropped": self.dropped, "held": self.decide.held}
        self.dropped, self.decide.held = 0, {}
        return taken

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add what a copy of this dropper (in a worker) dropped and kept."""
        self.dropped += counts["dropped"]
        for columns, held in counts["held"].items():
            mine = self.decide.held.setdefault(columns, _Held())
            mine.ints += held.ints
            mine.raw += held.raw

    def finish(self) -> None:
        """Store the keys the table kept, for the tables that reference it."""
        for columns, held in self.decide.held.items():
            store = self.decide.scanner.store(self.decide.subset.key, columns)
            for values in held.ints:
                store.add_ints(values)
            store.add_raw(iter(held.raw))
        self.decide.held = {}


@dataclass
class _Held:
    """Keys of one referenced column tuple kept by a dropper, not yet stored."""

    ints: list[Ints] = field(default_factory=list)
    raw: list[RawKey] = field(default_factory=list)


class _Cut:
    """The fields of one block's lines, cut out on demand: a whole column at once with
    numpy, line by line only when a field needs it."""

    def __init__(self, decider: _Decider, lines: Lines) -> None:
        self.decider, self.lines = decider, lines
        self._split: list[list[bytes]] | None = None

    def split(self) -> list[list[bytes]]:
        if self._split is None:
            self._split = [line.split(b"\t") for line in self.lines.block.split(b"\n")[:-1]]
        return self._split

    def fields(self, index: int) -> list[bytes]:
        """Field `index` of every line, as COPY text."""
        if self.lines.tabs is not None:
            block = self.lines.block
            starts, ends = self.lines.field(index)
            return [block[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        return [row[index] for row in self.split()]

    def row_keys(self, positions: list[int]) -> list[bytes]:
        """Each line's key for `percent:` as COPY text: its primary key's fields joined by
        tabs, or the whole line."""
        if not positions:
            return self.lines.block.split(b"\n")[:-1]
        if len(positions) == 1:
            return self.fields(positions[0])
        columns = [self.fields(i) for i in positions]
        return [b"\t".join(row) for row in zip(*columns, strict=True)]

    def keys(self, names: KeyTuple) -> list[RawKey | None]:
        """Each line's key of `names` as COPY text; None when it holds a NULL."""
        columns = [self._comparable(name) for name in names]
        return [None if NULL in row else row for row in zip(*columns, strict=True)]

    def _comparable(self, name: str) -> list[bytes]:
        """Column `name` of every line as COPY text, written as its type compares it."""
        values = self.fields(self.decider.position[name])
        fold = self.decider.comparable.get(name)
        return values if fold is None else [v if v == NULL else fold(v) for v in values]

    def ints(self, names: KeyTuple) -> tuple[Ints, Mask] | None:
        """The one integer column `names` as int64 and its NULLs; None when not that."""
        if len(names) != 1 or self.lines.tabs is None:
            return None
        return integers(self.lines, self.decider.position[names[0]])

    def points_to(self, edge: Edge, store: KeyStore) -> Mask:
        """Whether each line's key of `edge` is NULL or points to a kept row."""
        ints = self.ints(edge.columns) if store.integer else None
        if ints is not None:
            values, null = ints
            return null | store.holds_ints(values)
        return store.holds_raw(self.keys(edge.columns))


def _columns(facts: SchemaFacts, key: str, root: str, names: list[str]) -> list[Column]:
    """The facts of the COPY's `names` (the partition's own, else its root's); a column
    the facts do not know is text to a condition."""
    described = facts.tables.get(key) or facts.tables.get(root)
    found = []
    for name in names:
        column = described.column(name) if described is not None else None
        found.append(column or Column(name=name, type="text", base_type="text", category="S"))
    return found


def summary(tables: dict[str, TableKept]) -> dict[str, Any]:
    """Rows kept of rows in the archive, per filtered data table, for reports."""
    return {key: {"kept": t.kept_rows, "rows": t.rows} for key, t in sorted(tables.items())}
