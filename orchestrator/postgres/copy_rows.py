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
import threading
from pathlib import Path
from typing import BinaryIO

DATA_FILE = re.compile(r"^(?P<id>\d+)\.dat(?:\.(?P<method>gz|zst|lz4))?$")
_END = re.compile(rb"\n\\\.\n(\n*)\Z")  # the end line, then pg_dump's blank lines
_CHUNK = 1024 * 1024


def dump_id(name: str) -> int | None:
    """The TOC entry a data file holds (its dump id), or None for other files."""
    match = DATA_FILE.match(name)
    return int(match["id"]) if match else None


def count_rows(
    path: Path, closed: threading.Event | None = None, abandon: threading.Event | None = None
) -> int | None:
    """Give the rows of the data file at `path`, or None when its compression cannot be
    read here (lz4) or it does not end as pg_dump ends a table's data.

    With `closed`, the file may still be written: it is read as it grows, waiting for more
    until `closed` is set (then what is left is read), or `abandon` (Abandoned is raised
    then). Memory stays within a few read buffers whatever the file's size or compression
    ratio. Raises OSError when it cannot be read, zstandard's or zlib's errors when it is
    damaged."""
    match = DATA_FILE.match(path.name)
    if match is None or match["method"] == "lz4":
        return None
    newlines, tail = 0, b"\n"  # a line start before the first byte
    with path.open("rb") as raw:
        source: BinaryIO = raw if closed is None else _Growing(raw, closed, abandon)  # type: ignore[assignment]
        reader = _decompressed(source, match["method"])
        while chunk := reader.read(_CHUNK):
            newlines += chunk.count(b"\n")
            tail = (tail + chunk)[-64:]
    end = _END.search(tail)
    return None if end is None else newlines - 1 - len(end[1])


class Abandoned(Exception):
    """A file was given up before it was closed (the dump ended otherwise)."""


class _Growing:
    """A file another process is still writing, read as it grows: a read at its current
    end waits for more until `closed` is set, or raises Abandoned once `abandon` is."""

    def __init__(
        self, raw: BinaryIO, closed: threading.Event, abandon: threading.Event | None
    ) -> None:
        self._raw = raw
        self._closed = closed
        self._abandon = abandon

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._abandon is not None and self._abandon.is_set():
                raise Abandoned
            if self._closed.is_set():
                return self._raw.read(size)  # everything was written before the close
            data = self._raw.read(size)
            if data:
                return data
            self._closed.wait(POLL)

    def readable(self) -> bool:
        return True


POLL = 0.05  # seconds between looks at a file that has not grown


def _decompressed(source: BinaryIO, method: str | None) -> BinaryIO:
    if method == "zst":
        import zstandard  # only for zstd dumps (pg_dump 16+'s default here)

        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    if method == "gz":
        return gzip.GzipFile(fileobj=source)  # type: ignore[return-value]
    return source
