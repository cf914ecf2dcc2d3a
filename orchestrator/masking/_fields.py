"""Fields of a block of COPY lines located at once with numpy, for the subset's passes: the
bounds of each line and of one column's field in every line, integer fields parsed as a
whole column, and the block cut down to the lines kept. A COPY text line holds exactly
one tab between fields and one newline at its end (both are escaped inside values), so
the tabs of a block of `width`-field lines form a (lines, width - 1) matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
TAB, NEWLINE, BACKSLASH, MINUS = 0x09, 0x0A, 0x5C, 0x2D
MAX_DIGITS = 18  # int64 holds every 18-digit number


@dataclass(frozen=True)
class Lines:
    """A block of whole COPY lines: where each line starts and where its newline is, and
    the tab positions per line (None when the block does not have `width` fields a line)."""

    block: bytes
    array: npt.NDArray[np.uint8]
    starts: Ints
    newlines: Ints
    tabs: Ints | None

    def __len__(self) -> int:
        return len(self.newlines)

    def field(self, index: int) -> tuple[Ints, Ints]:
        """(starts, ends) of field `index` in every line. Needs `tabs`."""
        assert self.tabs is not None
        width = self.tabs.shape[1] + 1
        starts = self.starts if index == 0 else self.tabs[:, index - 1] + 1
        ends = self.newlines if index == width - 1 else self.tabs[:, index]
        return starts, ends


def lines_of(block: bytes, width: int) -> Lines:
    """Locate the lines of `block` (whole lines, each ending in a newline) and, when every
    line has `width` fields, their tabs."""
    array = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(array == NEWLINE)
    starts = np.concatenate((np.zeros(1, np.int64), newlines[:-1] + 1))
    tabs = np.flatnonzero(array == TAB) if width > 1 else np.zeros(0, np.int64)
    shaped = (
        tabs.reshape(len(newlines), width - 1) if len(tabs) == len(newlines) * (width - 1) else None
    )
    return Lines(block, array, starts, newlines, shaped)


def integers(lines: Lines, index: int) -> tuple[Ints, Bools] | None:
    """Field `index` of every line as int64, and which lines hold NULL (`\\N`) there; None
    when some field is not a plain integer of at most 18 digits (the caller then reads the
    lines one by one). Digits are read right-aligned, one place a pass (Horner), so the
    cost is a few passes over the column whatever its widths."""
    if lines.tabs is None:
        return None
    starts, ends = lines.field(index)
    array = lines.array
    lengths = ends - starts
    first_char = array[np.minimum(starts, max(array.size - 1, 0))] if array.size else starts
    null = (lengths == 2) & (first_char == BACKSLASH)
    negative = (first_char == MINUS) & ~null
    first = starts + negative
    digits = np.where(null, 1, ends - first)
    widest = int(digits.max()) if len(digits) else 0
    if widest > MAX_DIGITS or (len(digits) and int(digits.min()) < 1):
        return None
    values = np.zeros(len(starts), dtype=np.int64)
    for place in range(widest, 0, -1):  # the place-th digit from the right, leftmost first
        at = ends - place
        inside = (at >= first) & ~null
        digit = array[np.where(inside, at, 0)].astype(np.int64) - ord("0")
        if bool(((digit < 0) | (digit > 9))[inside].any()):
            return None
        values = values * 10 + np.where(inside, digit, 0)
    return np.where(negative, -values, values), null


def kept_lines(lines: Lines, keep: Bools) -> bytes:
    """The lines of `lines` whose flag in `keep` is set, in order, cut in runs."""
    if bool(keep.all()):
        return lines.block
    if not bool(keep.any()):
        return b""
    change = np.flatnonzero(np.diff(np.concatenate(([False], keep, [False])).astype(np.int8)))
    begins, stops = change[0::2], change[1::2]  # runs of kept lines: [begin, stop)
    # the runs' byte bounds as lists and the slicing in map(): a small share kept is
    # mostly runs of one line, and a Python loop over them cost twice the rest of the cut
    firsts = lines.starts[begins].tolist()
    lasts = (lines.newlines[stops - 1] + 1).tolist()
    return b"".join(map(lines.block.__getitem__, map(slice, firsts, lasts)))
