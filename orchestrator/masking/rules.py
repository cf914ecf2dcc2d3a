"""The masking rules file: what happens to each column of the dev copy, checked against the
schema of a backup before anything is restored.

```yaml
unlisted_columns: fail        # fail (default) | keep
large_objects: skip           # skip (default) | keep
tables:
  public.customer:
    email: email
    birth_date: {transform: date_shift, days: 30}
  public.audit_log: keep      # the whole table as it is, columns added later too
```

A partitioned table's rule covers its partitions (the nearest named ancestor wins; a
partition named itself uses its own rule only). A foreign-key column that no rule names
follows the masked column it references, so linked values stay linked; a listed one must
agree with it. `load_rules` reads the file, `check` lists every problem against a schema,
`plan` resolves the rules into one TablePlan per table whose data the archive holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import ConfigError
from orchestrator.masking._yaml import SAFE_LOADER
from orchestrator.masking.plan import UNLISTED_POLICIES, ColumnPlan, TablePlan, location
from orchestrator.masking.subset import Condition, SubsetRules
from orchestrator.masking.transforms import (
    SpecError,
    TransformSpec,
    fit_problem,
    parse_spec,
)
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table
from orchestrator.table_names import column_key, split_column_key, split_table_key, table_key

LARGE_OBJECT_POLICIES = ("skip", "keep")
TOP_LEVEL_KEYS = ("unlisted_columns", "large_objects", "tables", "subset")
SUBSET_KEYS = ("tables", "keep_whole", "set_null")
UNLISTED_MESSAGE = "not listed in the rules (unlisted_columns: fail)"
KEEP = TransformSpec("keep")


class RulesError(ConfigError):
    """The rules file cannot be read: one line naming the setting and, when known, the line."""


class RulesProblems(ConfigError):
    """The rules do not fit the schema (see `check`); `problems` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"masking rules: {first.location}: {first.message}{more}")
        self.problems = problems


@dataclass(frozen=True)
class ColumnRule:
    """A column's rule as written (checked by `check`), and its line in the file."""

    spec: object
    line: int


@dataclass(frozen=True)
class TableRule:
    """A table's rule: the whole table kept, or rules by column."""

    keep_all: bool = False
    columns: dict[str, ColumnRule] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Rules:
    """A loaded rules file; `sha256` is of its text, to record which rules made a copy."""

    unlisted: str = "fail"
    large_objects: str = "skip"
    tables: dict[str, TableRule] = field(default_factory=dict)
    subset: SubsetRules | None = None
    sha256: str = ""


@dataclass(frozen=True, order=True)
class Problem:
    """One way the rules do not fit the schema, at "schema.table" or "schema.table.column"."""

    location: str
    message: str


# --- loading ----------------------------------------------------------------------------


class _Reader:
    """Walks the YAML node tree, so every error can name its line and duplicate keys are
    caught (plain YAML loading silently keeps the last)."""

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader, setting: str) -> None:
        self.loader, self.setting = loader, setting

    def error(self, node: yaml.Node, message: str) -> RulesError:
        return RulesError(f"{self.setting}: line {node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """Give (key text, key node, value node) of a mapping, refusing repeated keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, f"a key of {what} must be a name")
            key = str(key_node.value)  # the text as written: a column called `on` stays "on"
            if key in seen:
                raise self.error(key_node, f"{key!r} appears twice in {what}")
            seen.add(key)
            yield key, key_node, value_node

    def data(self, node: yaml.Node) -> Any:
        """Give the plain data of a node (mappings checked for repeated keys)."""
        if isinstance(node, yaml.MappingNode):
            return {key: self.data(value) for key, _, value in self.mapping(node, "a rule")}
        if isinstance(node, yaml.SequenceNode):
            return [self.data(item) for item in node.value]
        return self.loader.construct_object(node, deep=True)

    def choice(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> str:
        value = self.data(node)
        if value not in allowed:
            raise self.error(node, f"{key} must be {' or '.join(allowed)}")
        return str(value)

    def rules(self, root: yaml.Node, sha256: str) -> Rules:
        settings: dict[str, Any] = {"sha256": sha256}
        for key, key_node, value in self.mapping(root, "the rules file"):
            if key == "unlisted_columns":
                settings["unlisted"] = self.choice(value, key, UNLISTED_POLICIES)
            elif key == "large_objects":
                settings["large_objects"] = self.choice(value, key, LARGE_OBJECT_POLICIES)
            elif key == "tables":
                settings["tables"] = self.tables(value)
            elif key == "subset":
                settings["subset"] = self.subset(value)
            else:
                allowed = ", ".join(TOP_LEVEL_KEYS)
                raise self.error(key_node, f"unknown key {key!r} (allowed: {allowed})")
        return Rules(**settings)

    def tables(self, node: yaml.Node) -> dict[str, TableRule]:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            return {}
        tables: dict[str, TableRule] = {}
        for name, key_node, value in self.mapping(node, "tables"):
            try:
                key = table_key(*split_table_key(name))
            except ValueError:
                raise self.error(key_node, f"{name!r} is not a schema.table name") from None
            if key in tables:
                raise self.error(key_node, f"{key} appears twice in tables")
            tables[key] = self.table(key, value)
        return tables

    def subset(self, node: yaml.Node) -> SubsetRules:
        found: dict[str, Any] = {"line": node.start_mark.line + 1}
        for key, key_node, value in self.mapping(node, "subset"):
            if key == "tables":
                found["tables"] = {
                    self.table_name(name, name_node, "subset.tables"): self.condition(name, cond)
                    for name, name_node, cond in self.mapping(value, "subset.tables")
                }
            elif key == "keep_whole":
                found["keep_whole"] = tuple(
                    self.table_name(str(self.data(item)), item, "keep_whole")
                    for item in self.sequence(value, "subset.keep_whole")
                )
            elif key == "set_null":
                found["set_null"] = tuple(
                    self.column_name(item) for item in self.sequence(value, "subset.set_null")
                )
            else:
                raise self.error(
                    key_node, f"unknown key {key!r} in subset (allowed: {', '.join(SUBSET_KEYS)})"
                )
        return SubsetRules(**found)

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return list(node.value)

    def table_name(self, name: str, node: yaml.Node, what: str) -> str:
        try:
            return table_key(*split_table_key(name))
        except ValueError:
            raise self.error(node, f"{name!r} in {what} is not a schema.table name") from None

    def column_name(self, node: yaml.Node) -> str:
        text = str(self.data(node))
        try:
            table, column = split_column_key(text)
        except ValueError:
            table, column = "", ""
        if not column:
            raise self.error(node, f"{text!r} in subset.set_null is not schema.table.column")
        return column_key(table, column)

    def condition(self, name: str, node: yaml.Node) -> Condition:
        line = node.start_mark.line + 1
        given = self.data(node)
        if not isinstance(given, dict) or set(given) - {"where", "percent"} or len(given) != 1:
            raise self.error(
                node, f"{name}: a subset condition is {{where: ...}} or {{percent: N}}"
            )
        if "where" in given:
            if not isinstance(given["where"], str) or not given["where"].strip():
                raise self.error(node, f"{name}: where: must be a SQL boolean expression")
            return Condition(where=given["where"].strip(), line=line)
        percent = given["percent"]
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise self.error(node, f"{name}: percent: must be a number from 0 to 100")
        return Condition(percent=float(percent), line=line)

    def table(self, key: str, node: yaml.Node) -> TableRule:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and node.value == "keep":
            return TableRule(keep_all=True, line=line)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{key}: a table rule is keep or a mapping of columns")
        columns = {
            name: ColumnRule(self.data(value), value.start_mark.line + 1)
            for name, _, value in self.mapping(node, key)
        }
        return TableRule(columns=columns, line=line)


def load_rules(text: str, setting: str) -> Rules:
    """Give the rules in `text`, the content of the file named by `setting`.

    Raises RulesError, one line naming `setting` and the line, when the text is not YAML
    or not shaped like a rules file. Transform names and parameters are checked by `check`
    (against the columns they apply to), so that every such problem is reported at once.
    """
    loader = SAFE_LOADER(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise RulesError(f"{setting}: the rules file is empty")
        return _Reader(loader, setting).rules(root, hashlib.sha256(text.encode()).hexdigest())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise RulesError(f"{setting}: {where}not valid YAML: {exc.problem}") from None
    except yaml.YAMLError:
        raise RulesError(f"{setting}: not valid YAML") from None
    finally:
        loader.dispose()


# --- resolving columns ------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    """What happens to one column: `spec` None means no rule covers it (or the rule is
    invalid: `valid` False); `listed` says a rule names it; `location` is where that rule
    is or belongs; `via` the masked key a foreign-key column follows."""

    spec: TransformSpec | None
    listed: bool
    location: str
    via: str | None = None
    valid: bool = True


class _Resolver:
    """Answers "what happens to table.column" for any table of the schema, with the rule
    problems found on the way (unknown tables and columns, bad specs, type misfits)."""

    def __init__(self, rules: Rules, schema: SchemaFacts) -> None:
        self.rules, self.schema = rules, schema
        self.specs: dict[tuple[str, str], TransformSpec] = {}
        self.problems: set[Problem] = set()
        self.resolved: dict[tuple[str, str], _Resolved] = {}
        self.resolving: set[tuple[str, str]] = set()
        for key, rule in rules.tables.items():
            self._read_rule(key, rule)

    def _read_rule(self, key: str, rule: TableRule) -> None:
        table = self.schema.tables.get(key)
        if table is None:
            self.problems.add(Problem(key, "unknown table (not in the backup's schema)"))
            return
        unique = table.key_columns()
        for name, column_rule in rule.columns.items():
            column = table.column(name)
            if column is None:
                self.problems.add(Problem(location(key, name), f"unknown column of {key}"))
                continue
            try:
                spec = parse_spec(column_rule.spec)
            except SpecError as exc:
                self.problems.add(Problem(location(key, name), str(exc)))
                continue
            misfit = fit_problem(spec, column, name in unique)
            if misfit is not None:
                self.problems.add(Problem(location(key, name), misfit))
                continue
            self.specs[(key, name)] = spec

    def rule_table(self, key: str) -> str | None:
        """The nearest of `key` and its partition ancestors that a rule names."""
        seen: set[str] = set()
        current: str | None = key
        while current is not None and current not in seen:
            if current in self.rules.tables and current in self.schema.tables:
                return current
            seen.add(current)
            table = self.schema.tables.get(current)
            current = table.parent if table is not None else None
        return None

    def foreign_keys(self, key: str) -> list[ForeignKey]:
        """The foreign keys of `key` and of the partitioned tables above it."""
        keys: list[ForeignKey] = []
        seen: set[str] = set()
        current: str | None = key
        while current is not None and current not in seen:
            seen.add(current)
            table = self.schema.tables.get(current)
            if table is None:
                break
            keys += [fk for fk in table.foreign_keys if fk not in keys]
            current = table.parent
        return keys

    def resolve(self, key: str, column: str) -> _Resolved:
        """What happens to `key`.`column` (memoized; a foreign-key cycle ends as unlisted)."""
        node = (key, column)
        if node not in self.resolved:
            if node in self.resolving:
                return _Resolved(None, False, self._home(key, column))
            self.resolving.add(node)
            self.resolved[node] = self._resolve(key, column)
            self.resolving.discard(node)
        return self.resolved[node]

    def _home(self, key: str, column: str) -> str:
        return location(self.rule_table(key) or self.schema.root_of(key), column)

    def _resolve(self, key: str, column: str) -> _Resolved:
        named = self.rule_table(key)
        home = self._home(key, column)
        if named is not None:
            rule = self.rules.tables[named]
            if rule.keep_all:
                return _Resolved(KEEP, True, home)
            if column in rule.columns:
                spec = self.specs.get((named, column))
                return _Resolved(spec, True, home, valid=spec is not None)
        followed = self.followed(key, column)
        if followed:
            via, spec = followed[0]
            return _Resolved(spec, False, home, via=via)
        return _Resolved(None, False, home)

    def followed(self, key: str, column: str) -> list[tuple[str, TransformSpec]]:
        """The masked keys (location, spec) that `column` references, one per distinct spec."""
        found: list[tuple[str, TransformSpec]] = []
        for fk, referenced in self.references(key, column):
            spec = self.resolve(fk.references, referenced).spec
            if spec is not None and spec.masks and all(spec != seen for _, seen in found):
                found.append((location(fk.references, referenced), spec))
        return found

    def references(self, key: str, column: str) -> Iterator[tuple[ForeignKey, str]]:
        """Each foreign key of `key` holding `column`, with the column it references."""
        for fk in self.foreign_keys(key):
            for own, referenced in zip(fk.columns, fk.referenced_columns, strict=False):
                if own == column:
                    yield fk, referenced


# --- checking ---------------------------------------------------------------------------


def check(
    rules: Rules, schema: SchemaFacts, data_tables: Collection[str], conditions: bool = True
) -> list[Problem]:
    """Give every problem of `rules` against `schema`, sorted; none means `plan` will work.

    `data_tables` are the tables whose data the archive holds (partitions, not their
    partitioned parents). Finds unknown tables and columns, unknown transforms and bad
    parameters, transforms that do not fit a column, foreign-key columns that disagree
    with the masked key they reference, and (under `unlisted_columns: fail`) every column
    of a data table that no rule covers; and the subset's problems, its `where:` conditions
    parsed and type-checked when `conditions` (by the embedded engine: `mask check` does;
    a restore leaves them to the subset's scanning child, so the engine never runs in a
    process whose other threads start programs).
    """
    resolver = _Resolver(rules, schema)
    problems = set(resolver.problems)
    for key in sorted(set(data_tables) - set(schema.tables)):
        problems.add(Problem(key, "has data in the archive but is not in the backup's schema"))
    for key in sorted((set(data_tables) | set(rules.tables)) & set(schema.tables)):
        problems |= _foreign_key_problems(resolver, key)
    for key in sorted(set(data_tables) & set(schema.tables)):
        problems |= _column_problems(resolver, key, schema.tables[key])
    if rules.subset is not None:
        problems |= subset_problems(rules.subset, schema, conditions)
    return sorted(problems)


def subset_problems(
    subset: SubsetRules, schema: SchemaFacts, conditions: bool = True
) -> set[Problem]:
    """The problems of a `subset:` section: its tables, keys and cycles (masking.subset),
    then (when `conditions`) each `where:` parsed and type-checked against its columns."""
    from orchestrator.masking import subset as subsets

    found = {Problem(p.where, p.message) for p in subsets.check(subset, schema)}
    if found or not conditions:
        return found
    for key, condition in sorted(subset.tables.items()):
        if condition.where is not None:
            from orchestrator.masking.predicate import Predicate, PredicateError

            try:
                Predicate(key, schema.tables[key].columns, condition.where)
            except PredicateError as exc:
                found.add(Problem(key, str(exc).removeprefix(f"{key}: ")))
    return found


def _foreign_key_problems(resolver: _Resolver, key: str) -> set[Problem]:
    """Listed foreign-key columns must mask exactly like their key (set_null always may)."""
    problems = set()
    for fk in resolver.foreign_keys(key):
        for own_name, referenced in zip(fk.columns, fk.referenced_columns, strict=False):
            own = resolver.resolve(key, own_name)
            target = resolver.resolve(fk.references, referenced)
            if not own.listed or own.spec is None or not target.valid:
                continue
            wanted = target.spec or KEEP
            if own.spec == wanted or own.spec.name == "set_null":
                continue
            where = location(fk.references, referenced)
            if wanted.masks:
                message = (
                    f"inconsistent with its masked key {where}: give it the same transform "
                    f"({wanted.describe()}), or leave it out of the rules to follow the key"
                )
            else:
                message = f"masked, but its key {where} is kept: the values would not match"
            problems.add(Problem(own.location, message))
    return problems


def _column_problems(resolver: _Resolver, key: str, table: Table) -> set[Problem]:
    """Unlisted columns (under fail) and followed transforms that do not fit the column."""
    problems = set()
    for column in table.columns:
        if column.generated:
            continue
        resolved = resolver.resolve(key, column.name)
        if resolved.via is not None:
            problems |= _follow_problems(resolver, key, column, resolved)
        elif resolved.spec is None and not resolved.listed and resolver.rules.unlisted == "fail":
            problems.add(Problem(resolved.location, UNLISTED_MESSAGE))
    return problems


def _follow_problems(
    resolver: _Resolver, key: str, column: Column, resolved: _Resolved
) -> set[Problem]:
    followed = resolver.followed(key, column.name)
    if len(followed) > 1:
        keys = ", ".join(where for where, _ in followed)
        return {Problem(resolved.location, f"references masked keys that disagree: {keys}")}
    assert resolved.spec is not None
    misfit = fit_problem(
        resolved.spec, column, column.name in resolver.schema.tables[key].key_columns()
    )
    if misfit is None:
        return set()
    return {Problem(resolved.location, f"follows its masked key {resolved.via}, but {misfit}")}


# --- planning ---------------------------------------------------------------------------


def plan(rules: Rules, schema: SchemaFacts, data_tables: Collection[str]) -> dict[str, TablePlan]:
    """Give the TablePlan of every table in `data_tables`, keyed by table.

    Raises RulesProblems when `check` finds any problem (conditions left to the scan).
    """
    problems = check(rules, schema, data_tables, conditions=False)
    if problems:
        raise RulesProblems(problems)
    resolver, lengths = _Resolver(rules, schema), _LinkedLengths(schema)
    return {key: _table_plan(resolver, lengths, key) for key in sorted(data_tables)}


def _table_plan(resolver: _Resolver, lengths: _LinkedLengths, key: str) -> TablePlan:
    columns = {}
    for column in resolver.schema.tables[key].columns:
        if column.generated:
            continue
        resolved = resolver.resolve(key, column.name)
        spec = resolved.spec or KEEP
        max_length = column.max_length
        if spec.masks:
            max_length = _linked_length(resolver, lengths.group(key, column.name), spec)
        columns[column.name] = ColumnPlan(
            spec.name, dict(spec.params), column.compared_as, max_length, resolved.via
        )
    named = resolver.rule_table(key)
    keep_all = named is not None and resolver.rules.tables[named].keep_all
    unlisted = "keep" if keep_all else resolver.rules.unlisted
    return TablePlan(key, columns, unlisted)


def _linked_length(
    resolver: _Resolver, group: list[tuple[str, str]], spec: TransformSpec
) -> int | None:
    """The smallest max_length among the linked columns masked with `spec`, so that a value
    is cut the same way in every table that holds it (kept or nulled links do not count)."""
    limits = []
    for key, name in group:
        table = resolver.schema.tables.get(key)
        column = table.column(name) if table is not None else None
        if column is None or column.max_length is None:
            continue
        if resolver.resolve(key, name).spec == spec:
            limits.append(column.max_length)
    return min(limits, default=None)


class _LinkedLengths:
    """Groups of columns that hold the same values: linked by foreign keys, or a partition's
    column and its parent's."""

    def __init__(self, schema: SchemaFacts) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}
        for key, table in schema.tables.items():
            for column in table.columns:
                if table.parent is not None:
                    self._join((key, column.name), (table.parent, column.name))
            for fk in table.foreign_keys:
                for own, referenced in zip(fk.columns, fk.referenced_columns, strict=False):
                    self._join((key, own), (fk.references, referenced))
        self.groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for node in self.parent:
            self.groups.setdefault(self._root(node), []).append(node)

    def _root(self, node: tuple[str, str]) -> tuple[str, str]:
        while self.parent.get(node, node) != node:
            node = self.parent[node]
        return node

    def _join(self, one: tuple[str, str], other: tuple[str, str]) -> None:
        first, second = self._root(one), self._root(other)
        self.parent.setdefault(second, second)
        if first != second:
            self.parent[first] = second

    def group(self, key: str, column: str) -> list[tuple[str, str]]:
        """The columns linked with `key`.`column`, itself included."""
        return self.groups.get(self._root((key, column)), [(key, column)])


def masked_columns(plans: dict[str, TablePlan]) -> dict[str, list[str]]:
    """Give the masked columns of each table that has any (the tables the filter must see)."""
    return {key: plan.masked_columns() for key, plan in plans.items() if plan.masked_columns()}
