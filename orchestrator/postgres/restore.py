"""pg_restore: reading an archive's table of contents (argv builders and runs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from orchestrator import execute
from orchestrator.postgres.clients import ClientSet

TableName = tuple[str, str]


def list_toc(client: ClientSet, archive: Path) -> str:
    """Give `pg_restore --list` of `archive`; raises CommandFailed when it cannot be read."""
    return execute.run([client.tool("pg_restore"), "--list", str(archive)], timeout=600).stdout


_LONGER_KINDS = {
    "TABLE": ("DATA ",),
    "SEQUENCE": ("SET ", "OWNED BY "),
    "MATERIALIZED VIEW": ("DATA ",),
}
_TOC_LINE = re.compile(r"^\d+;\s+\d+\s+\d+\s+(?P<rest>.*)$")


def toc_entries(toc: str, kind: str) -> list[str]:
    """Give "<schema> <name> <owner>" of each TOC entry of `kind` ("TABLE DATA", "TABLE", ...)."""
    entries = []
    for line in toc.splitlines():
        match = _TOC_LINE.match(line)
        if not match or not match["rest"].startswith(f"{kind} "):
            continue
        rest = match["rest"][len(kind) + 1 :]
        if not rest.startswith(_LONGER_KINDS.get(kind, ())):
            entries.append(rest)
    return entries


def table_data_tables(toc: str, known: Iterable[TableName]) -> list[TableName]:
    """Give the tables of `known` whose data the archive holds.

    TOC lines print names unquoted ("public my table owner"), so names are matched against
    the known (schema, table) pairs, longest first, rather than split on spaces.
    """
    candidates = sorted(known, key=lambda t: len(t[0]) + len(t[1]), reverse=True)
    found: list[TableName] = []
    for rest in toc_entries(toc, "TABLE DATA"):
        for schema, table in candidates:
            if rest.startswith(f"{schema} {table} ") or rest == f"{schema} {table}":
                found.append((schema, table))
                break
    return sorted(found)
