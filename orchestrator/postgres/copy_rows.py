"""Rows in the data files of a directory-format dump, counted on this host.

A table's data file is COPY text (one row a line: newlines inside values are written as
`\\n`) ended by a line `\\.`, compressed as the dump is. Counting its lines while pg_dump
writes the others gives the manifest's row counts without a second scan of every table on
the source (`SELECT count(*)` reads the whole table again, doubling the read on
production during a backup of a large database).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable
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
    """Give the rows of the finished data file at `path`, or None when its compression
    cannot be read here (lz4) or it does not end as pg_dump ends a table's data. Raises
    OSError when it cannot be read, zstandard's or zlib's errors when it is damaged."""
    counter = RowCounter.of(path)
    return None if counter is None else counter.finish()


class RowCounter:
    """Counts one data file's rows while pg_dump writes it: `feed()` reads what has been
    written since the last call (decompressing as it goes), `finish()` the rest once the
    file is closed. Thread-safe; the file stays open until `finish()`."""

    def __init__(self, path: Path, decompress: Callable[[bytes], bytes]) -> None:
        self._raw: BinaryIO | None = path.open("rb")
        self._decompress = decompress
        self._newlines = 0
        self._tail = b"\n"  # a line start before the first byte
        self._lock = threading.Lock()

    @classmethod
    def of(cls, path: Path) -> RowCounter | None:
        """A counter for the data file at `path`, or None for a file that is no table's
        data or whose compression cannot be read here (lz4)."""
        match = DATA_FILE.match(path.name)
        if match is None or match["method"] == "lz4":
            return None
        return cls(path, _decompressor(match["method"]))

    def feed(self) -> None:
        """Read and count what has been written since the last call."""
        with self._lock:
            while self._raw is not None and (chunk := self._raw.read(_CHUNK)):
                data = self._decompress(chunk)
                self._newlines += data.count(b"\n")
                self._tail = (self._tail + data)[-64:]

    def finish(self) -> int | None:
        """Read the rest of the closed file; give its rows, or None when it does not end
        as pg_dump ends a table's data."""
        self.feed()
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
        end = _END.search(self._tail)
        return None if end is None else self._newlines - 1 - len(end[1])

    def close(self) -> None:
        """Let go of the file without a count."""
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None


def _decompressor(method: str | None) -> Callable[[bytes], bytes]:
    if method == "zst":
        import zstandard  # only for zstd dumps (pg_dump 16+'s default here)

        return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress
    if method == "gz":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    return lambda data: data
