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
    if len(parts) != 2 or quoted:
        raise ValueError(f"{key!r} is not a schema.table name")
    return parts[0], parts[1]
