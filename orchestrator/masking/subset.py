"""Subsets of a dev copy: which tables a rules file's `subset:` section filters, in which
order, and through which foreign keys. Pure: no I/O, no database.

Semantics (Greenmask's, made explicit):
- a row of a table with a condition (`where:` or `percent:`) is kept when it holds;
- a row is kept only if every foreign key it holds whose columns are all non-null points to
  a kept row (MATCH SIMPLE: a NULL anywhere in the key points nowhere and keeps the row),
  so children of dropped rows are dropped, transitively;
- tables no condition reaches (through those foreign keys) are kept whole;
- a foreign key named in `set_null` does not drop its row: when its target was dropped,
  its columns become NULL instead. That is how a cycle of foreign keys (a self-reference
  included) is broken; an unbroken cycle is refused, never loaded with a broken reference;
- `keep_whole` tables must arrive complete: one that holds a foreign key into a filtered
  table is refused.

Partitions are filtered as their partitioned table: a condition names the partitioned
table and applies to the rows of each partition, and a key that references it references
the rows of all its partitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.masking._yaml import yaml_key
from orchestrator.schema_facts import ForeignKey, SchemaFacts
from orchestrator.table_names import column_key, split_column_key


@dataclass(frozen=True)
class Condition:
    """What keeps a row of one table: a SQL boolean expression on its own columns
    (`where`), or a deterministic share of its rows (`percent`, 0-100)."""

    where: str | None = None
    percent: float | None = None
    line: int = 0


@dataclass(frozen=True)
class SubsetRules:
    """The `subset:` section of a rules file, as written (table keys normalised)."""

    tables: dict[str, Condition] = field(default_factory=dict)
    keep_whole: tuple[str, ...] = ()
    set_null: tuple[str, ...] = ()  # `schema.table.column`: a column of a foreign key
    line: int = 0


@dataclass(frozen=True)
class Edge:
    """A foreign key of `child` (its `columns`) into `parent` (its `parent_columns`); both
    are root tables (a partition's key is its partitioned table's)."""

    child: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]

    def describe(self) -> str:
        """`public.orders (customer_id) -> public.customers (id)`."""
        return (
            f"{self.child} ({', '.join(self.columns)}) -> "
            f"{self.parent} ({', '.join(self.parent_columns)})"
        )


@dataclass(frozen=True)
class TableSubset:
    """How one filtered table is filtered: its own condition, the foreign keys that drop
    its rows (`filters`), those that are set to NULL instead (`nulls`)."""

    key: str
    condition: Condition | None
    filters: tuple[Edge, ...] = ()
    nulls: tuple[Edge, ...] = ()


@dataclass(frozen=True)
class SubsetPlan:
    """The filtered tables in an order where every table comes after the tables its
    `filters` point to, and for each table the column tuples other tables reference (whose
    kept values must be remembered)."""

    order: tuple[str, ...] = ()
    tables: dict[str, TableSubset] = field(default_factory=dict)
    referenced: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    def filtered(self, key: str, facts: SchemaFacts) -> TableSubset | None:
        """The subset of data table `key` (a partition: its partitioned table's), or None
        when it is kept whole."""
        return self.tables.get(facts.root_of(key))


@dataclass(frozen=True)
class SubsetProblem:
    """Something wrong with the subset: `where` names the table (or `subset`)."""

    where: str
    message: str


def edges(facts: SchemaFacts) -> list[Edge]:
    """Every foreign key between root tables, once (a partitioned table's keys are also
    listed on its partitions; a key of a partition counts as its root's)."""
    found: dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], Edge] = {}
    for key, table in facts.tables.items():
        for fk in table.foreign_keys:
            edge = _edge(facts, key, fk)
            found.setdefault((edge.child, edge.columns, edge.parent, edge.parent_columns), edge)
    return list(found.values())


def _edge(facts: SchemaFacts, key: str, fk: ForeignKey) -> Edge:
    return Edge(facts.root_of(key), fk.columns, facts.root_of(fk.references), fk.referenced_columns)


def _broken(edge: Edge, set_null: Collection[str]) -> bool:
    return any(column_key(edge.child, column) in set_null for column in edge.columns)


def reached(rules: SubsetRules, facts: SchemaFacts) -> set[str]:
    """The root tables some condition reaches: those with one, and those holding a foreign
    key (not in set_null) into a reached table, transitively."""
    found = {facts.root_of(key) for key in rules.tables}
    links = [e for e in edges(facts) if not _broken(e, rules.set_null)]
    grew = True
    while grew:
        more = {e.child for e in links if e.parent in found and e.child not in found}
        found |= more
        grew = bool(more)
    return found


def check(rules: SubsetRules, facts: SchemaFacts) -> list[SubsetProblem]:
    """Every problem of `rules` against the archive's schema: unknown tables or set_null
    columns, a condition on a partition or a keep_whole table, a percent out of range, a
    keep_whole table holding a key into a filtered table, an unbroken cycle of keys.
    (Conditions themselves are parsed and type-checked by `masking.predicate`.)"""
    problems = [*_name_problems(rules, facts), *_set_null_problems(rules, facts)]
    if problems:
        return problems
    found = reached(rules, facts)
    for key in rules.keep_whole:
        if key in found:
            why = next((e for e in edges(facts) if e.child == key and e.parent in found), None)
            detail = f" ({why.describe()})" if why else ""
            problems.append(
                SubsetProblem(
                    key,
                    "is in keep_whole but holds a foreign key into a filtered table"
                    f"{detail}: list the key in subset.set_null or drop it from keep_whole",
                )
            )
    cycle = _cycle(rules, facts, found)
    if cycle:
        path = " -> ".join(cycle)
        problems.append(
            SubsetProblem(
                cycle[0],
                f"foreign keys form a cycle among filtered tables ({path}): name one nullable "
                "key of it in subset.set_null (set to NULL when its target is dropped)",
            )
        )
    return problems


def _name_problems(rules: SubsetRules, facts: SchemaFacts) -> list[SubsetProblem]:
    problems = []
    for key, condition in rules.tables.items():
        table = facts.tables.get(key)
        if table is None:
            problems.append(SubsetProblem(key, "is not a table of this backup"))
        elif table.parent is not None:
            problems.append(
                SubsetProblem(key, f"is a partition: name its partitioned table {table.parent}")
            )
        elif condition.percent is not None and not 0 <= condition.percent <= 100:
            problems.append(SubsetProblem(key, "percent must be between 0 and 100"))
        elif (condition.where is None) == (condition.percent is None):
            problems.append(SubsetProblem(key, "give either where: or percent:"))
    for key in rules.keep_whole:
        if key not in facts.tables:
            problems.append(SubsetProblem(key, "(keep_whole) is not a table of this backup"))
        elif key in rules.tables:
            problems.append(SubsetProblem(key, "has a condition and is in keep_whole"))
    return problems


def _set_null_problems(rules: SubsetRules, facts: SchemaFacts) -> list[SubsetProblem]:
    problems = []
    for name in rules.set_null:
        key, column = split_column_key(name)
        table = facts.tables.get(key)
        if table is None or table.column(column) is None:
            problems.append(SubsetProblem(name, "(set_null) is not a column of this backup"))
            continue
        fks = [fk for fk in table.foreign_keys if column in fk.columns]
        if not fks:
            problems.append(SubsetProblem(name, "(set_null) is not part of a foreign key"))
        for fk in fks:
            not_null = [c for c in fk.columns if (col := table.column(c)) and col.not_null]
            if not_null:
                problems.append(
                    SubsetProblem(
                        name,
                        f"(set_null) cannot be set to NULL: {', '.join(not_null)} is NOT NULL",
                    )
                )
    return problems


def _cycle(rules: SubsetRules, facts: SchemaFacts, found: set[str]) -> list[str] | None:
    """A cycle of filtering keys among the `found` tables, as a path that returns to its
    start; None when there is none."""
    links = [
        e
        for e in edges(facts)
        if e.child in found and e.parent in found
        if not _broken(e, rules.set_null)
    ]
    parents: dict[str, list[str]] = {}
    for e in links:
        parents.setdefault(e.child, []).append(e.parent)
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for parent in sorted(parents.get(node, [])):
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state and (found_cycle := visit(parent, [*path, parent])):
                return found_cycle
        state[node] = 2
        return None

    for start in sorted(found):
        if start not in state and (result := visit(start, [start])):
            return result
    return None


def plan(rules: SubsetRules, facts: SchemaFacts) -> SubsetPlan:
    """The plan of `rules` (checked: `check` gave no problem): filtered tables parents
    first, each with its condition, filtering keys and keys set to NULL."""
    found = reached(rules, facts)
    all_edges = [e for e in edges(facts) if e.child in found and e.parent in found]
    filters = [e for e in all_edges if not _broken(e, rules.set_null)]
    nulls = [e for e in all_edges if _broken(e, rules.set_null)]
    order = _parents_first(found, filters)
    tables = {
        key: TableSubset(
            key,
            rules.tables.get(key),
            tuple(e for e in filters if e.child == key),
            tuple(e for e in nulls if e.child == key),
        )
        for key in order
    }
    referenced: dict[str, list[tuple[str, ...]]] = {}
    for e in all_edges:
        columns = referenced.setdefault(e.parent, [])
        if e.parent_columns not in columns:
            columns.append(e.parent_columns)
    return SubsetPlan(order, tables, {k: tuple(v) for k, v in referenced.items()})


def _parents_first(found: set[str], filters: list[Edge]) -> tuple[str, ...]:
    """`found` in an order where each table follows the parents its filters point to
    (ties by name, so the order is stable). The filters have no cycle (checked)."""
    waiting = {
        key: {e.parent for e in filters if e.child == key and e.parent != key} for key in found
    }
    order: list[str] = []
    while waiting:
        ready = sorted(key for key, parents in waiting.items() if not parents - set(order))
        if not ready:  # a cycle slipped past `check`: refuse rather than guess
            raise ValueError(f"foreign keys form a cycle among {', '.join(sorted(waiting))}")
        order += ready
        for key in ready:
            del waiting[key]
    return tuple(order)


def rules_to_json(rules: SubsetRules) -> dict[str, Any]:
    """`rules` as JSON values (for the scanning child process)."""
    return dataclasses.asdict(rules)


def rules_from_json(found: dict[str, Any]) -> SubsetRules:
    """The SubsetRules `rules_to_json` gave. Raises ValueError when the shape is wrong."""
    try:
        return SubsetRules(
            tables={key: Condition(**c) for key, c in found["tables"].items()},
            keep_whole=tuple(found["keep_whole"]),
            set_null=tuple(found["set_null"]),
            line=int(found.get("line", 0)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a subset: {exc}") from None


LOOKUP_ROWS = 1000  # a table this small that others reference reads as a lookup table


def _self_references(facts: SchemaFacts, links: list[Edge], table: str) -> list[str]:
    """A column of each key of `table` into itself whose columns are all nullable (set to
    NULL, it breaks the cycle a self-reference is), as set_null names it."""
    described = facts.tables.get(table)
    found = []
    for edge in links:
        columns = [described.column(c) if described else None for c in edge.columns]
        if edge.child == edge.parent == table and all(c and not c.not_null for c in columns):
            found.append(column_key(table, edge.columns[0]))
    return sorted(found)


def hint(facts: SchemaFacts, row_counts: Mapping[str, int]) -> list[str]:
    """A commented-out `subset:` section for `mask suggest` (no subset unless the user
    uncomments it): the lookup tables to keep whole (at most LOOKUP_ROWS rows, referenced
    by another table, holding keys only into other lookups) and the largest other table
    that others reference, as the one to filter. [] when the schema has no such table.
    A nullable key of that table into itself is set to NULL (`set_null`). Uncommented, it
    passes `check` unless the schema has another cycle of keys."""
    rows: dict[str, int] = {}
    for key, count in row_counts.items():
        root = facts.root_of(key)
        rows[root] = rows.get(root, 0) + count
    links = edges(facts)
    referenced = {e.parent for e in links if e.child != e.parent}
    small = {k for k in referenced if rows.get(k, 0) <= LOOKUP_ROWS}
    lookups = sorted(k for k in small if all(e.parent in small for e in links if e.child == k))
    others = [k for k in referenced if k not in lookups and rows.get(k, 0) > 0]
    if not others:
        return []
    chosen = max(others, key=lambda k: (rows.get(k, 0), k))
    lines = [
        "# A referentially intact slice for dev (README: Subsets): uncomment to keep 10 % of",
        f"# {chosen} and only the rows that reference what is kept; lookup tables stay whole.",
        "# subset:",
        "#   tables:",
        f"#     {yaml_key(chosen)}: {{percent: 10}}",
    ]
    if lookups:
        lines.append(f"#   keep_whole: [{', '.join(map(yaml_key, lookups))}]")
    nulls = _self_references(facts, links, chosen)
    if nulls:
        lines.append(f"#   set_null: [{', '.join(map(yaml_key, nulls))}]")
    return lines
