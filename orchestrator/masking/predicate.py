"""Subset conditions: SQL boolean expressions on one table's own columns, parsed, type-checked
against the column types the manifest recorded, and evaluated on rows as they stream from the
archive, by DuckDB (an embedded SQL engine) rather than a hand-written parser.

Why DuckDB: it parses exactly one expression (`duckdb.SQLExpression`, so `true) OR (...`
cannot smuggle in another statement), binds it against typed columns (an unknown column
or `created_at > 5` on a date is an error before anything runs), speaks the SQL people
write in a PostgreSQL `WHERE` (`date '2026-06-01'`, `<>`, `ILIKE`, `IN`, `BETWEEN`,
`lower()`, `->>` on JSON) and evaluates a batch of thousands of rows in one vectorised
call. It runs in this process, on values held in memory only: no raw row is written
anywhere, and no connection to production is needed.

Rows arrive as COPY text (what pg_dump wrote); each column is cast from that text to the
DuckDB type matching its PostgreSQL type (`TRY_CAST`: a value DuckDB cannot read, such as
a BC date, is NULL to the condition, which then does not hold: a subset only ever drops
more). Types without a counterpart (arrays, bytea, ranges, enums...) are text.

A condition means what PostgreSQL would make of it: LIKE escapes with the backslash
(rewritten on DuckDB's syntax tree, `as_postgres`), numeric(p,s) is an exact DECIMAL when
p <= 38, intervals are read in pg_dump's style, and the engine's time zone is UTC.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import ConfigError

if TYPE_CHECKING:  # pydantic stays out of the filter's start-up
    from orchestrator.schema_facts import Column

# PostgreSQL base types (schema_facts.Column.base_type) and the DuckDB type a condition
# sees them as; everything else is text (VARCHAR).
DUCK_TYPES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "oid": "BIGINT",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "numeric": "DOUBLE",  # numeric(p,s) with p <= 38: DECIMAL(p,s) (see duck_type)
    "money": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "time": "TIME",
    "interval": "INTERVAL",
    "uuid": "UUID",
    "json": "JSON",
    "jsonb": "JSON",
}
Mask = np.ndarray[Any, np.dtype[np.bool_]]
DECIMAL_DIGITS = 38  # DuckDB's widest DECIMAL
# PostgreSQL's LIKE family has the backslash as its escape character unless ESCAPE says
# otherwise; DuckDB's has none: each becomes its DuckDB function taking one
WITH_ESCAPE = {
    "~~": "like_escape",
    "!~~": "not_like_escape",
    "~~*": "ilike_escape",
    "!~~*": "not_ilike_escape",
}
# functions a condition's text parses to that mean something else in PostgreSQL
REFUSED = {
    "regexp_full_match": "SIMILAR TO reads its pattern as a POSIX regular expression here, "
    "not as PostgreSQL does: use LIKE or ~",
}


class PredicateError(ConfigError):
    """A condition that does not parse, names another column, or is not boolean."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def engine() -> Iterator[Any]:
    """A DuckDB connection for the time of one piece of work, closed after: an open
    connection in a process that other threads fork from (the `sh` library forks in Python)
    has been seen to break those forks, so none is kept."""
    import duckdb  # loaded only by subsets: it costs commands that do not use them 0.1 s

    # no files, no network: a condition sees the batch of rows it is given and nothing else
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": 1,
        "enable_external_access": False,
    }
    con = duckdb.connect(":memory:", config=config)
    try:
        # a timestamptz written without its offset is read in UTC, wherever this runs
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def duck_type(column: Column) -> str:
    """The DuckDB type a condition sees `column` as (arrays and unknown types: VARCHAR)."""
    if column.category == "A":
        return "VARCHAR"
    if column.base_type == "numeric" and (decimal := _decimal(column.type)) is not None:
        return decimal
    return DUCK_TYPES.get(column.base_type, "VARCHAR")


def _decimal(formatted: str) -> str | None:
    """DECIMAL(p,s) for a column whose format_type() is `numeric(p,s)` or `numeric(p)`
    with p <= 38 (exact, as in PostgreSQL); None otherwise (unconstrained, wider, or a
    domain: DOUBLE)."""
    head, _, rest = formatted.partition("(")
    digits = rest.removesuffix(")").split(",")
    if head != "numeric" or not rest.endswith(")") or not all(d.isdigit() for d in digits):
        return None
    precision, scale = int(digits[0]), int(digits[1]) if len(digits) > 1 else 0
    if not 0 <= scale <= precision <= DECIMAL_DIGITS:
        return None
    return f"DECIMAL({precision},{scale})"


def _typed(value: str, column: Column, cast: str = "TRY_CAST") -> str:
    """`value` as the condition sees `column`, named after it: cast to its DuckDB type
    (an interval read in pg_dump's style), compared whatever the case for citext and
    without its padding for char(n), as PostgreSQL compares them."""
    if column.base_type == "interval":  # '-1 days +02:00:00' (pg_dump's style): no '+'
        value = f"replace({value}, ' +', ' ')"
    typed = f"{cast}({value} AS {duck_type(column)})"
    if column.compared_as in ("citext", "caseless"):  # a collation ignoring case too
        typed += " COLLATE NOCASE"
    elif column.base_type == "bpchar":
        typed = f"rtrim({typed}, ' ')"
    return f"{typed} AS {_quote(column.name)}"


class Predicate:
    """A compiled condition of table `table` (a table key, for messages) on its `columns`
    (those the COPY data holds, in its order)."""

    def __init__(self, table: str, columns: Sequence[Column], where: str) -> None:
        import duckdb

        self.table = table
        self.columns = [c for c in columns if not c.generated]
        _distinct_whatever_the_case(table, [c.name for c in self.columns])
        try:
            duckdb.SQLExpression(where)
        except duckdb.Error as exc:
            raise PredicateError(f"{table}: where: does not parse: {_first_line(exc)}") from None
        typed = ", ".join(_typed("NULL", c, "CAST") for c in self.columns)
        try:
            with engine() as con:
                self.where = as_postgres(table, where, con)
                self.expression = duckdb.SQLExpression(self.where)
                kind = con.sql(f"SELECT {typed} LIMIT 0").select(self.expression).types[0]
        except duckdb.Error as exc:
            raise PredicateError(f"{table}: where: {_first_line(exc)}") from None
        if str(kind) != "BOOLEAN":
            raise PredicateError(f"{table}: where: gives {kind}, not a boolean")

    def holds(self, values: Sequence[Sequence[str | None]], con: Any) -> Mask:
        """For each row of `values` (one list per column, COPY text or None for NULL), True
        when the condition holds (NULL counts as not holding); `con` comes from `engine()`."""
        rows = len(values[0]) if values else 0
        if rows == 0:
            return np.zeros(0, dtype=bool)
        batch = {f"c{i}": np.array(column, dtype=object) for i, column in enumerate(values)}
        con.register("subset_batch", batch)
        try:
            cast = ", ".join(_typed(f"c{i}", c) for i, c in enumerate(self.columns))
            typed = con.sql(f"SELECT {cast} FROM subset_batch")
            import duckdb

            held = typed.select(duckdb.SQLExpression(f"coalesce(({self.where}), false)"))
            result = held.fetchnumpy()
        finally:
            con.unregister("subset_batch")
        return np.asarray(next(iter(result.values())), dtype=bool)


def as_postgres(table: str, where: str, con: Any) -> str:
    """`where` (one expression that parses) as DuckDB must read it to mean what PostgreSQL
    would: each LIKE, ILIKE and their NOT without ESCAPE escapes with the backslash.
    Rewritten on DuckDB's own syntax tree (json_serialize_sql, then back to text), never on
    the text. Raises PredicateError when it uses something PostgreSQL reads otherwise
    (SIMILAR TO), or is not one expression."""
    tree = json.loads(
        con.execute("SELECT json_serialize_sql(?)", ["SELECT " + where]).fetchone()[0]
    )
    statements = tree.get("statements") or [{}]
    node = statements[0].get("node") or {}
    if tree.get("error") or len(statements) != 1 or len(node.get("select_list", ())) != 1:
        raise PredicateError(f"{table}: where: is not one expression")
    before = json.dumps(tree)
    refused = _with_escapes(node["select_list"][0])
    if refused is not None:
        raise PredicateError(f"{table}: where: {REFUSED[refused]}")
    if json.dumps(tree) == before:  # no LIKE: the text as written
        return where
    text: str = con.execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]).fetchone()[
        0
    ]
    return text.removeprefix("SELECT ")


def _with_escapes(node: Any) -> str | None:
    """Give each LIKE-family call inside `node` (a serialized expression, changed in place)
    the backslash as its escape; give the name of a REFUSED function found, else None."""
    if isinstance(node, list):
        return next((found for item in node if (found := _with_escapes(item))), None)
    if not isinstance(node, dict):
        return None
    name = node.get("function_name") if node.get("class") == "FUNCTION" else None
    if name in REFUSED:
        return str(name)
    found = next((f for value in node.values() if (f := _with_escapes(value))), None)
    if name in WITH_ESCAPE:
        node["function_name"] = WITH_ESCAPE[name]
        node["qualified_name"] = {"path": [WITH_ESCAPE[name]]}
        escape = {"kind": "STRING", "text": "\\"}
        constant = {"class": "CONSTANT", "type": "VALUE_CONSTANT", "alias": "", "literal": escape}
        node["arguments"].append({"name": "", "expression": constant})
    return found


def parse_problems(conditions: dict[str, str]) -> list[str]:
    """One line for each of `conditions` (by table) that does not parse as one SQL
    expression, the table first, as `Predicate` words it; none when all parse."""
    import duckdb

    found = []
    for table, where in sorted(conditions.items()):
        try:
            duckdb.SQLExpression(where)
        except duckdb.Error as exc:
            found.append(f"{table}: where: does not parse: {_first_line(exc)}")
    return found


def _distinct_whatever_the_case(table: str, names: list[str]) -> None:
    """Raise PredicateError when two of `names` differ only in case: DuckDB resolves a
    name whatever its case, so a condition would read one of them for the other."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise PredicateError(
                f"{table}: where: columns {_quote(other)} and {_quote(name)} differ only in "
                "case, which conditions cannot tell apart"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def share(
    key: bytes, table: str, row_keys: Sequence[bytes], percent: float
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """For each row (its key as UTF-8 COPY text: primary key fields joined by tabs, or the
    whole line), True when it is among the `percent` per cent kept: decided by a keyed hash
    of the table and the row's key, so the same rows are kept on every refresh with one
    MASK_KEY, and another key keeps other rows."""
    limit = int(percent / 100 * 2**64)
    prefix = hashlib.blake2b(table.encode(), key=key[:64], digest_size=32).digest()
    keyed = hashlib.blake2b(key=prefix, digest_size=8)  # copied: the key is absorbed once

    def hashed(text: bytes) -> bytes:
        state = keyed.copy()
        state.update(text)
        return state.digest()

    digests = b"".join(map(hashed, row_keys))
    return np.frombuffer(digests, dtype=">u8") < limit
