"""Rows of a directory dump's data file, counted from its COPY text on this host."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zstandard

from orchestrator.postgres.copy_rows import Abandoned, count_rows, dump_id

END = b"\\.\n\n\n"  # what pg_dump writes after a table's rows


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


ROWS = b"1\tline\\nbreak\n2\t\\N\n3\ta\\\\.\n"  # an escaped newline, a NULL, a value ending in \.


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (END, 0),
        (ROWS + END, 3),
        (b"x\n" * 300_000 + END, 300_000),  # across many read chunks
        (b"\\.\n", 0),  # no blank lines after the end line
        (ROWS + b"\\.\n", 3),
        (b"only\\.\n" + END, 1),
    ],
)
def test_rows_are_the_lines_before_the_end_line(
    tmp_path: Path, suffix: str, data: bytes, rows: int
) -> None:
    assert count_rows(_write(tmp_path, f"3456.dat{suffix}", data)) == rows


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("3456.dat", ROWS),  # cut short: no end line
        ("3456.dat", ROWS + b"\\.\nmore\n"),
        ("3456.dat", b""),
        ("3456.dat.lz4", ROWS + END),  # lz4 is not read here: the server counts
        ("toc.dat", ROWS + END),
        ("blob_16385.dat", b"raw bytes"),
    ],
)
def test_what_cannot_be_counted_here_gives_none(tmp_path: Path, name: str, data: bytes) -> None:
    assert count_rows(_write(tmp_path, name, data)) is None


@pytest.mark.parametrize("cut", [4, 12])
def test_a_damaged_compressed_file_gives_no_count(tmp_path: Path, cut: int) -> None:
    """A file cut short or damaged is never counted wrong: no count, or an error."""
    path = tmp_path / "3456.dat.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(ROWS + END)[:-cut])
    with contextlib.suppress(zstandard.ZstdError):
        assert count_rows(path) is None


@pytest.mark.parametrize(
    ("name", "entry"),
    [("3456.dat", 3456), ("7.dat.gz", 7), ("12.dat.zst", 12), ("12.dat.lz4", 12)],
)
def test_a_data_file_names_its_toc_entry(name: str, entry: int) -> None:
    assert dump_id(name) == entry


@pytest.mark.parametrize("name", ["toc.dat", "blob_3.dat", "blobs_1.toc", "3456.dat.bz2", "x.dat"])
def test_other_files_name_no_entry(name: str) -> None:
    assert dump_id(name) is None


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_a_file_is_counted_while_it_is_written(tmp_path: Path, suffix: str) -> None:
    """Read as it grows (cut anywhere, even inside a compressed block) and finished once
    it is closed, a file gives what a count of the finished file gives."""
    if suffix == ".zst":
        compress: Any = zstandard.ZstdCompressor().compressobj()
    elif suffix == ".gz":
        compress = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    else:
        compress = None
    path = tmp_path / f"77.dat{suffix}"
    path.write_bytes(b"")
    closed = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        counting = pool.submit(count_rows, path, closed)
        rows = [f"{n}\tvalue {n}\\n escaped\n".encode() for n in range(20_000)]
        with path.open("ab") as out:
            for start in range(0, len(rows), 997):
                block = b"".join(rows[start : start + 997])
                out.write(compress.compress(block) if compress else block)
                out.flush()
                time.sleep(0.002)
            out.write(compress.compress(END) + compress.flush() if compress else END)
        assert not counting.done()  # still waiting for more
        closed.set()
        assert counting.result(timeout=10) == 20_000 == count_rows(path)


def test_a_file_given_up_before_it_is_closed_gives_no_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "78.dat", ROWS)  # no end line yet: pg_dump still writes it
    abandon = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        counting = pool.submit(count_rows, path, threading.Event(), abandon)
        time.sleep(0.1)
        abandon.set()
        with pytest.raises(Abandoned):
            counting.result(timeout=5)
