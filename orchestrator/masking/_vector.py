"""A column of values as numpy arrays, and back to a list of bytes.

The column transforms work on every value of a block's column at once: the values joined
into one buffer, each followed by a newline (no COPY field holds a raw one, so the buffer
splits back with one `bytes.split`), with zero bytes before the first and after the last
so that fixed-size windows around any value stay inside it.

numpy is quick over long runs and slow over many short ones: an operation on an (n, 14)
array costs about as much per row as one on an (n,) array per element, so the code here
prefers whole buffers and single columns to small per-row broadcasts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Bytes = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]
NEWLINE = 0x0A
LEAD = b"\0" * 15  # before the first value (and its newline: 16 bytes)
SLACK = b"\0" * 64  # after the last value


@dataclass(frozen=True)
class Values:
    """A column of values in one buffer: value `i` is `buffer[starts[i] : starts[i] +
    lengths[i]]`, and a newline follows it; `text` is the buffer as bytes."""

    text: bytes
    buffer: Bytes
    starts: Ints
    lengths: Ints

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def ends(self) -> Ints:
        """Where each value's newline is."""
        return self.starts + self.lengths

    def item(self, index: int) -> bytes:
        """Give value `index` as bytes."""
        start = int(self.starts[index])
        return self.text[start : start + int(self.lengths[index])]

    def holding(self, byte: int) -> list[int]:
        """Give the indexes of the values that hold `byte`, in order."""
        if bytes((byte,)) not in self.text:
            return []
        found = np.searchsorted(self.ends, np.flatnonzero(self.buffer == byte))
        indexes: list[int] = np.unique(found[found < len(self)]).tolist()
        return indexes


def values_of(items: Sequence[bytes]) -> Values | None:
    """Give `items` as Values, or None when one of them holds a newline."""
    text = b"\n".join([LEAD, *items, SLACK])
    buffer = np.frombuffer(text, np.uint8)
    ends = np.flatnonzero(buffer == NEWLINE)
    if len(ends) != len(items) + 1:
        return None
    starts = ends[:-1] + 1
    return Values(text, buffer, starts, ends[1:] - starts)


def windows(values: Values, width: int, before: int = 0, rows: Ints | None = None) -> Bytes:
    """Give an (n, width) array: row `i` is the `width` bytes of the buffer from `before`
    bytes ahead of value `i` (of the values at `rows`, or all); the caller masks what lies
    outside the value. `before` is at most 16."""
    starts = values.starts if rows is None else values.starts[rows]
    buffer = values.buffer
    if len(starts) and int(starts.max()) - before + width > len(buffer):
        buffer = np.concatenate((buffer, np.zeros(width, np.uint8)))
    view = np.lib.stride_tricks.sliding_window_view(buffer, width)
    gathered: Bytes = view[starts - before if before else starts]
    return gathered


@functools.cache
def leading_mask(width: int) -> npt.NDArray[np.bool_]:
    """A (width + 1, width) table: row n is True in its first n places (n <= width)."""
    return np.arange(width)[None, :] < np.arange(width + 1)[:, None]


@functools.cache
def keep_mask(width: int) -> Bytes:
    """`leading_mask` as bytes, 0xFF for True: `rows &= keep_mask(w).take(lengths, 0)`
    keeps each row's first `length` bytes and zeroes the rest."""
    return leading_mask(width).astype(np.uint8) * np.uint8(0xFF)


def translate(array: Bytes, table: bytes) -> Bytes:
    """Give `array` with every byte mapped through `table` (256 bytes), read-only: C's
    `bytes.translate` is several times quicker than numpy's `take` for this."""
    mapped: Bytes = np.frombuffer(array.tobytes().translate(table), np.uint8)
    return mapped.reshape(array.shape)


def split_rows(rows: Bytes) -> list[bytes]:
    """Give each row of an (n, width) array of bytes without newlines as bytes."""
    count, width = rows.shape
    lines = np.empty((count, width + 1), np.uint8)
    lines[:, :width] = rows
    lines[:, width] = NEWLINE
    return split_lines(lines)


def split_lines(lines: Bytes | bytes) -> list[bytes]:
    """Give the lines of bytes that each end in a newline, without the newlines."""
    parts = (lines if isinstance(lines, bytes) else lines.tobytes()).split(b"\n")
    parts.pop()
    return parts
