"""How a table is named in manifests: `schema.table`, with double quotes around a part
only when it contains a dot or a double quote (`"a.b".t`), so every name round-trips."""

from __future__ import annotations


def _quote(part: str) -> str:
    if "." in part or '"' in part:
        return '"' + part.replace('"', '""') + '"'
    return part


def table_key(schema: str, table: str) -> str:
    """Give the manifest key of `schema`.`table`."""
    return f"{_quote(schema)}.{_quote(table)}"


def split_table_key(key: str) -> tuple[str, str]:
    """Give (schema, table) back from a key made by table_key; ValueError when malformed."""
    parts = _parts(key)
    if len(parts) != 2:
        raise ValueError(f"{key!r} is not a schema.table name")
    return parts[0], parts[1]


def column_key(table: str, column: str) -> str:
    """Give the name of `column` of the table whose key is `table`: `schema.table.column`,
    the column double-quoted when it contains a dot or a double quote."""
    return f"{table}.{_quote(column)}"


def split_column_key(key: str) -> tuple[str, str]:
    """Give (table key, column) back from `schema.table.column` (any part double-quoted);
    ValueError when malformed."""
    parts = _parts(key)
    if len(parts) != 3:
        raise ValueError(f"{key!r} is not a schema.table.column name")
    return table_key(parts[0], parts[1]), parts[2]


def _parts(key: str) -> list[str]:
    """The dot-separated parts of `key`, a part in double quotes holding dots and doubled
    quotes; ValueError when a quote is left open."""
    parts: list[str] = []
    current, index, quoted = "", 0, False
    while index < len(key):
        char = key[index]
        if quoted:
            if char == '"' and key[index + 1 : index + 2] == '"':
                current, index = current + '"', index + 2
                continue
            quoted = char != '"'
            current += char if quoted else ""
        elif char == '"':
            quoted = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    if quoted:
        raise ValueError(f"{key!r} leaves a double quote open")
    return parts
