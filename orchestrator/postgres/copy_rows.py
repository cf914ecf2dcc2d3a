"""Rows in the data files of a directory-format dump, counted on this host.

A table's data file is COPY text (one row a line: newlines inside values are written as
`\\n`) ended by a line `\\.`, compressed as the dump is. Counting its lines while pg_dump
writes the others gives the manifest's row counts without a second scan of every table on
the source (`SELECT count(*)` reads the whole table again, doubling the read on
production during a backup of a large database).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DATA_FILE = re.compile(r"^(?P<id>\d+)\.dat(?:\.(?P<method>gz|zst|lz4))?$")
_END = re.compile(rb"\n\\\.\n(\n*)\Z")  # the end line, then pg_dump's blank lines
_CHUNK = 1024 * 1024


def dump_id(name: str) -> int | None:
    """The TOC entry a data file holds (its dump id), or None for other files."""
    match = DATA_FILE.match(name)
    return int(match["id"]) if match else None


def count_rows(path: Path) -> int | None:
    """Give the rows of the data file at `path`, or None when its compression cannot be
    read here (lz4) or it does not end as pg_dump ends a table's data. Raises OSError
    when it cannot be read, zstandard's or gzip's errors when it is damaged."""
    match = DATA_FILE.match(path.name)
    if match is None or match["method"] == "lz4":
        return None
    newlines, tail = 0, b"\n"  # a line start before the first byte
    with path.open("rb") as raw:
        for chunk in _chunks(raw, match["method"]):
            newlines += chunk.count(b"\n")
            tail = (tail + chunk)[-64:]
    end = _END.search(tail)
    return None if end is None else newlines - 1 - len(end[1])


def _chunks(raw: BinaryIO, method: str | None) -> Iterator[bytes]:
    if method == "zst":
        import zstandard  # only for zstd dumps (pg_dump 16+'s default here)

        reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(raw)
    elif method == "gz":
        reader = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    else:
        reader = raw
    while chunk := reader.read(_CHUNK):
        yield chunk
