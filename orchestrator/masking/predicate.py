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
"""

from __future__ import annotations

import contextlib
import hashlib
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
    "numeric": "DOUBLE",
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
        yield con
    finally:
        con.close()


def duck_type(column: Column) -> str:
    """The DuckDB type a condition sees `column` as (arrays and unknown types: VARCHAR)."""
    if column.category == "A":
        return "VARCHAR"
    return DUCK_TYPES.get(column.base_type, "VARCHAR")


def _typed(value: str, column: Column, cast: str = "TRY_CAST") -> str:
    """`value` as the condition sees `column`, named after it: cast to its DuckDB type,
    compared whatever the case for citext and without its padding for char(n), as
    PostgreSQL compares them."""
    typed = f"{cast}({value} AS {duck_type(column)})"
    if column.base_type == "citext":
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
            self.expression = duckdb.SQLExpression(where)
        except duckdb.Error as exc:
            raise PredicateError(f"{table}: where: does not parse: {_first_line(exc)}") from None
        self.where = where
        typed = ", ".join(_typed("NULL", c, "CAST") for c in self.columns)
        try:
            with engine() as con:
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
