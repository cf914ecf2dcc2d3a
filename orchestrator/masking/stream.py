"""The COPY-script filter: pg_restore's SQL script in, the same script with masked rows out.

Lines outside COPY data pass through unchanged, except `SET transaction_timeout = 0;`
before the first COPY (servers before 17 reject it, and 0 is the default anyway). Rows are
read and written in blocks of about 1 MiB cut at a newline, so memory stays flat whatever
the table's size; within a row only the masked fields are unescaped and rewritten.

Fails closed: a COPY of another table, a column the plan does not name (under `fail`),
data as INSERT statements, a script in an encoding Python cannot read, or a stream that
ends inside the COPY data all stop the filter with a FilterError. No message ever holds a
data value.

Masking reads text as UTF-8: a script in another encoding (a LATIN1 or EUC_JP database's)
is converted to UTF-8 as it is read, its `SET client_encoding` rewritten to UTF8 (the
target's server converts back to its own encoding). SQL_ASCII names no encoding: its bytes
go through as they are, read as UTF-8 where a transform needs text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np

from orchestrator.errors import JobError
from orchestrator.masking import _euc_jp
from orchestrator.masking._fields import Lines, kept_lines, lines_of
from orchestrator.masking._scrub import Splices, regions, splice
from orchestrator.masking._vector import NEWLINE, Ints, values_of
from orchestrator.masking.plan import TablePlan, location
from orchestrator.masking.subset_flags import RowFlags
from orchestrator.masking.transforms import (
    Compiled,
    MaskKey,
    TransformError,
    compile_spec,
    within_bytes,
)
from orchestrator.table_names import table_key

BLOCK_SIZE = 1 << 20
IN_PLACE_SHARE = 0.5  # of a block's bytes in its scrubbed fields, for scrub in place
FieldFunction = Callable[[bytes], bytes]
BACKSLASH, DOT = ord("\\"), ord(".")
NULL = b"\\N"
END_OF_DATA = b"\\.\n"
DROPPED_BEFORE_COPY = b"SET transaction_timeout = 0;\n"
UTF8_NAMES = ("UTF8", "UTF-8", "UNICODE")
AS_THEY_ARE = (*UTF8_NAMES, "SQL_ASCII")  # encodings whose bytes are read without converting
# PostgreSQL's encodings (server and client-only) and the Python codec reading each as the
# server does (tests hold them to it); EUC_JIS_2004, SHIFT_JIS_2004 and BIG5 are left out:
# Python reads some of their characters as others (a test found 5, 129 and 18)
CODECS = {
    **{
        f"LATIN{n}": f"iso8859_{part}"
        for n, part in enumerate((1, 2, 3, 4, 9, 10, 13, 14, 15, 16), 1)
    },
    **{f"ISO_8859_{n}": f"iso8859_{n}" for n in (5, 6, 7, 8)},
    **{
        f"WIN{n}": f"cp{n}"
        for n in (866, 874, 1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)
    },
    "KOI8R": "koi8_r",
    "KOI8U": "koi8_u",
    "EUC_JP": _euc_jp.NAME,  # PostgreSQL reads it as eucJP-ms: Python's euc_jp does not
    "EUC_CN": "gb2312",
    "EUC_KR": "euc_kr",
    "SJIS": "cp932",
    "GBK": "gbk",
    "GB18030": "gb18030",
    "UHC": "cp949",
    "JOHAB": "johab",
}
SET_UTF8 = b"SET client_encoding = 'UTF8';\n"
_NOT_SEPARATORS = bytes(byte for byte in range(256) if byte not in b"\t\n")
_ENCODING = re.compile(rb"SET client_encoding = '([^']*)';\n?")


class FilterError(JobError):
    """The stream cannot be masked safely; the message names tables and columns only."""


class RowError(ValueError):
    """A row of a block failed: `row` counts from 1 within the block."""

    def __init__(self, row: int, column: str, reason: str) -> None:
        super().__init__(row, column, reason)
        self.row, self.column, self.reason = row, column, reason


# --- COPY text fields -------------------------------------------------------------------

_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _unescape_one(match: re.Match[bytes]) -> bytes:
    octal, hexa, char = match.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    return _SIMPLE.get(char, char)


def unescape(field: bytes) -> bytes:
    """Give the value of a COPY text field that is not NULL (`\\N`), escapes undone."""
    return _ESCAPE.sub(_unescape_one, field) if b"\\" in field else field


def escape(value: bytes) -> bytes:
    """Give `value` as a COPY text field (backslash, tab, newline, carriage return escaped)."""
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
    )


def decode_field(field: bytes) -> str | None:
    """Give the text of a COPY field, None for NULL; a byte that is no UTF-8 (only a
    SQL_ASCII database holds such) is read as U+FFFD, the replacement character."""
    return None if field == NULL else unescape(field).decode("utf-8", "replace")


# --- the per-table row function ---------------------------------------------------------


def _direct(compiled: Compiled) -> FieldFunction:
    """Give the function from a COPY field to its masked COPY field."""
    apply, plain, nullable = compiled.apply, compiled.plain, compiled.nullable
    on_null = NULL if compiled.on_null is None else escape(compiled.on_null)

    def finish(result: bytes | None) -> bytes:
        return NULL if result is None else result if plain else escape(result)

    def slow(raw: bytes) -> bytes:  # NULL is `\N`: every field needing care holds a backslash
        return on_null if raw == NULL else finish(apply(_ESCAPE.sub(_unescape_one, raw)))

    if plain and not nullable:

        def masked(raw: bytes) -> bytes:
            return slow(raw) if BACKSLASH in raw else apply(raw)  # type: ignore[return-value]

        return masked

    def masked_and_finished(raw: bytes) -> bytes:
        return slow(raw) if BACKSLASH in raw else finish(apply(raw))

    return masked_and_finished


class _Field:
    """One masked column: its transform as a COPY field function, for a column at a time.

    A transform with a column path (`Compiled.column`: the token transforms) masks a
    block's column in one call, then the fields holding a backslash (escapes, NULL) again
    one by one; a fixed one (set_null, value) fills the column; others (json) go field by
    field.
    """

    def __init__(self, compiled: Compiled) -> None:
        self.direct = _direct(compiled)
        self.bare = compiled.apply if compiled.plain and not compiled.nullable else None
        columnar = (compiled.plain or compiled.column_plain) and not compiled.nullable
        self.vector = compiled.column if columnar else None
        self.joined = compiled.joined if not compiled.nullable else None
        self.tally = compiled.tally
        self.filler = compiled.filler
        self.fixed = _fixed_field(compiled)
        self.splices = compiled.splices if not compiled.nullable else None

    def in_place(self, lines: Lines, index: int) -> Splices:
        """Give the spans of `lines`' block to rewrite for column `index` and what each
        becomes: the transform's splices in the fields without a backslash, and each field
        holding one (escapes, NULL) masked whole by `direct`."""
        assert self.splices is not None
        starts, ends = lines.field(index)
        escaped = _holding_backslash(lines, starts, ends)
        if not len(escaped):
            return self.splices(lines.block, regions(starts, ends))
        plain = np.ones(len(starts), np.bool_)
        plain[escaped] = False
        found = self.splices(lines.block, regions(starts[plain], ends[plain]))
        block = lines.block
        whole = [
            (start, end, self.direct(block[start:end]))
            for start, end in zip(starts[escaped].tolist(), ends[escaped].tolist(), strict=True)
        ]
        return _merged(found, whole)

    def column(self, parts: list[bytes]) -> list[bytes]:
        """Give the masked fields of one column of a block."""
        if self.fixed is not None:
            return [self.fixed] * len(parts)
        if self.joined is not None:
            text = b"\n".join(parts)
            if b"\\" not in text:  # no escape, no NULL: every value plain
                out = self.joined(text).split(b"\n")
                if len(out) == len(parts):
                    return out
        if self.vector is not None:
            return self._vectorized(parts)
        if self.bare is not None and b"\\" not in b"".join(parts):
            return list(map(self.bare, parts))  # type: ignore[arg-type]  # no NULL, no escape
        return list(map(self.direct, parts))

    def _vectorized(self, parts: list[bytes]) -> list[bytes]:
        """The column path, with the fields that hold a backslash (escapes, NULL) replaced
        by the transform's filler there and masked one by one."""
        assert self.vector is not None
        values, found = parts, values_of(parts)
        if found is None:  # a raw newline in a field: not COPY text, but stay correct
            return list(map(self.direct, parts))
        escaped = found.holding(BACKSLASH)
        if escaped:
            values = list(parts)
            for index in escaped:
                values[index] = self.filler
            found = values_of(values)
        out = self.vector(values, found)
        for index in escaped:
            out[index] = self.direct(parts[index])
        return out


def _holding_backslash(lines: Lines, starts: Ints, ends: Ints) -> Ints:
    """Give the rows (in order) whose field `[starts[row], ends[row])` holds a backslash."""
    if b"\\" not in lines.block:
        return np.zeros(0, np.int64)
    found = np.flatnonzero(lines.array == BACKSLASH)
    rows = np.searchsorted(lines.newlines, found)  # the row of each backslash
    inside = (found >= starts[rows]) & (found < ends[rows])
    escaped: Ints = np.unique(rows[inside])
    return escaped


def _merged(found: Splices, whole: list[tuple[int, int, bytes]]) -> Splices:
    """Give the splices of `found` and of `whole` (start, end, replacement) in one order."""
    spans = sorted([*zip(*found, strict=True), *whole])
    return [span[0] for span in spans], [span[1] for span in spans], [span[2] for span in spans]


def _fixed_field(compiled: Compiled) -> bytes | None:
    """The one field a fixed transform writes for every row, or None."""
    if not compiled.fixed:
        return None
    return NULL if compiled.on_null is None else escape(compiled.on_null)


@dataclass(frozen=True)
class BlockMasker:
    """Masks blocks of COPY rows of one table: `(block) -> block`, each row ending in `\\n`.

    Raises RowError for a row with the wrong number of fields or a value its transform
    cannot take. Not picklable (it holds closures): worker processes get it by forking.
    `in_place` says whether blocks are scrubbed in place (`_in_place`): while every masked
    column can be, until a block shows its fields hold too small a share of the bytes.
    """

    table: str
    columns: tuple[str, ...]
    fields: dict[int, _Field] = field(repr=False)
    in_place: list[bool] = field(default_factory=list, repr=False, compare=False)
    forkable: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.in_place.append(all(masked.splices is not None for masked in self.fields.values()))

    @property
    def masked(self) -> tuple[str, ...]:
        """The masked columns, in COPY order."""
        return tuple(self.columns[index] for index in self.fields)

    def take_counts(self) -> dict[str, int]:
        """Give the items each counting column (scrub) replaced since the last call, and
        count from zero again."""
        counts = {}
        for index, masked in self.fields.items():
            if masked.tally is not None:
                counts[self.columns[index]] = masked.tally.total()
                masked.tally.reset()
        return counts

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add counts taken from a copy of this masker (in a worker process)."""
        for index, masked in self.fields.items():
            if masked.tally is not None:
                masked.tally.count += counts.get(self.columns[index], 0)

    def __call__(self, block: bytes) -> bytes:
        """Give `block` with every masked field rewritten."""
        if not self.fields or not block:
            return block
        in_place = self.in_place[0]
        if (in_place or len(self.columns) > 1) and block.endswith(b"\n"):
            before = self.take_counts()
            try:
                out = self._in_place(block) if in_place else self._by_stride(block)
            except TransformError:
                out = None
            if out is None:  # masked again row by row: count those rows once
                self.take_counts()
            self.add_counts(before)
            if out is not None:
                return out
        return self._by_line(block)

    def _in_place(self, block: bytes) -> bytes | None:
        """Mask a block whose masked columns are all rewritten in place (`_Field.in_place`:
        scrub), with no split of the block into fields: only the spans that change are
        replaced. None when a row has not the table's width (tabs and newlines located
        with numpy prove every row has it).

        Items are looked for in the whole block, so when the masked fields hold less than
        IN_PLACE_SHARE of its bytes (a short note among numbers and timestamps, whose
        digits scrub would look at), the block, and the table's later ones, go by columns
        (`_by_stride`) instead.
        """
        lines = lines_of(block, len(self.columns))
        if not _shaped(lines):
            return None
        held = sum(int((ends - starts).sum()) for starts, ends in map(lines.field, self.fields))
        if held < IN_PLACE_SHARE * len(block) and len(self.columns) > 1:
            self.in_place[0] = False  # the rows of one table look alike: by columns from now on
            return self._by_stride(block)
        first, *more = [masked.in_place(lines, index) for index, masked in self.fields.items()]
        if more:
            first = _merged(first, [span for found in more for span in zip(*found, strict=True)])
        return splice(block, *first)

    def _by_stride(self, block: bytes) -> bytes | None:
        """Mask without a loop over rows; None when the block's shape is off.

        Every row has exactly width-1 tabs (COPY escapes tabs in values), so after one
        split of the whole block on tabs, column i of row r (0 < i < width-1) sits at
        r*(width-1)+i, and one call per column (`_Field.column`) rewrites it. The first and
        last fields of adjacent rows share a part, "last\\nfirst", which `_edges` takes
        apart. The block's skeleton (its tabs and newlines alone) proves every row has its
        width.
        """
        stride = len(self.columns) - 1
        skeleton = block.translate(None, _NOT_SEPARATORS)
        if skeleton != (b"\t" * stride + b"\n") * (len(skeleton) // (stride + 1)):
            return None
        parts = block.split(b"\t")
        for index, masked in self.fields.items():
            if 0 < index < stride:
                parts[index::stride] = masked.column(parts[index::stride])
        first, last = self.fields.get(0), self.fields.get(stride)
        if first is not None or last is not None:
            _edges(parts, stride, first, last)
        return b"\t".join(parts)

    def _by_line(self, block: bytes) -> bytes:
        """Mask row by row: a one-column table, or a block that fails (to name the row)."""
        lines = block.split(b"\n")
        if lines.pop():
            raise RowError(len(lines) + 1, "", "does not end with a newline")
        width = len(self.columns)
        for number, line in enumerate(lines, 1):
            values = line.split(b"\t")
            if len(values) != width:
                raise RowError(number, "", f"has {len(values)} fields, not {width}")
            for index, masked in self.fields.items():
                try:
                    values[index] = masked.direct(values[index])
                except TransformError as exc:
                    raise RowError(number, self.columns[index], str(exc)) from None
            lines[number - 1] = b"\t".join(values)
        lines.append(b"")
        return b"\n".join(lines)


class Masks(Protocol):
    """What a block runner maps over blocks: a BlockMasker, or a subset's dropper and a
    masker together (`DroppingMasker`). What it tallies (items scrubbed, rows dropped)
    is taken out of a copy in a worker process and added to the parent's; it says
    whether it may be copied into forked workers at all (`forkable`)."""

    @property
    def forkable(self) -> bool:
        """Whether it may be copied into forked workers."""

    def __call__(self, block: bytes) -> bytes:
        """The masked lines of `block` (whole COPY lines)."""

    def take_counts(self) -> dict[str, Any]:
        """What was tallied since the last call (counting from zero again)."""

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add what a copy of this (in a worker) tallied."""


RunBlocks = Callable[[Masks, Iterator[bytes]], Iterator[bytes]]


def _shaped(lines: Lines) -> bool:
    """Whether every line of `lines` (a block ending in a newline) has its width: as many
    tabs in all as lines times width - 1, the first of each line's after the line's start
    and the last before its newline (tabs come in order, so each line holds its own)."""
    if lines.tabs is None:
        return False
    if not lines.tabs.shape[1]:
        return b"\t" not in lines.block
    return bool(
        (lines.tabs[:, 0] >= lines.starts).all() and (lines.tabs[:, -1] < lines.newlines).all()
    )


def _edges(parts: list[bytes], stride: int, first: _Field | None, last: _Field | None) -> None:
    """Mask the first and last columns where they share the parts "last\\nfirst": taken
    apart with one split, each column masked as a whole, then paired again."""
    end = len(parts) - 1  # the final part is the last field of the last row, and "\n"
    shared = parts[stride:end:stride]
    pieces = b"\n".join(shared).split(b"\n") if shared else []
    heads, tails = [parts[0], *pieces[1::2]], [*pieces[0::2], parts[end][:-1]]
    if first is not None:
        heads = first.column(heads)
    if last is not None:
        tails = last.column(tails)
    parts[0] = heads[0]
    parts[stride:end:stride] = map(b"\n".join, zip(tails, heads[1:], strict=False))
    parts[end] = tails[-1] + b"\n"


def compile_table(
    plan: TablePlan, key: MaskKey, columns: list[str], count_bytes: bool = False
) -> BlockMasker:
    """Give the masker of `plan`'s table for a COPY with `columns` in this order; with
    `count_bytes` (a SQL_ASCII script), outputs fit each column's length in bytes too.

    Raises FilterError when a column is not in the plan and the plan's unlisted policy is
    `fail`.
    """
    fields: dict[int, _Field] = {}
    for index, name in enumerate(columns):
        column = plan.columns.get(name)
        if column is None:
            if plan.unlisted != "keep":
                raise FilterError(
                    f"{location(plan.table, name)}: not in the masking plan "
                    "(unlisted_columns: fail)"
                )
            continue
        if column.transform != "keep":
            compiled = compile_spec(column.spec, key, column.base_type, column.max_length)
            if count_bytes and column.max_length is not None:
                compiled = within_bytes(compiled, column.max_length)
            fields[index] = _Field(compiled)
    return BlockMasker(plan.table, tuple(columns), fields)


# --- the script -------------------------------------------------------------------------


@dataclass
class FilterStats:
    """What one run of the filter did."""

    table: str
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    masked_columns: list[str] = field(default_factory=list)
    scrubbed: dict[str, int] = field(default_factory=dict)
    dropped: int = 0  # rows the subset did not keep

    def as_dict(self) -> dict[str, object]:
        """Give the stats as a JSON-ready mapping."""
        return {
            "table": self.table,
            "rows": self.rows,
            "dropped": self.dropped,
            "columns": self.columns,
            "masked_columns": self.masked_columns,
            "scrubbed": self.scrubbed,
        }


class _Reader:
    """Lines, then blocks of whole COPY rows, from a binary stream."""

    def __init__(self, source: BinaryIO, size: int = BLOCK_SIZE) -> None:
        self.source: BinaryIO | _Transcoded = source
        self.size, self.encoding = size, ""  # the client_encoding the script set, once set
        self.buffer, self.pos = b"", 0

    def settle(self, line: bytes) -> bytes:
        """Give `line` as the script should go on: a `SET client_encoding` of an encoding
        in CODECS comes back as SET_UTF8, and the rest of the script is converted to UTF-8
        from here on; any other line comes back as it is.

        Raises FilterError for an encoding neither read as it is nor in CODECS."""
        match = _ENCODING.fullmatch(line)
        if match is None:
            return line
        self.encoding = match.group(1).decode(errors="replace").upper()
        if self.encoding in AS_THEY_ARE:
            return line
        if self.encoding not in CODECS:
            raise FilterError(f"masking cannot read the archive's encoding {self.encoding}")
        head, self.buffer, self.pos = self.buffer[self.pos :], b"", 0
        self.source = _Transcoded(self.source, self.encoding, head)
        return SET_UTF8

    def line(self) -> bytes:
        """Give the next line with its newline (the last may lack one); b"" at the end."""
        while True:
            end = self.buffer.find(b"\n", self.pos)
            if end >= 0:
                line, self.pos = self.buffer[self.pos : end + 1], end + 1
                return line
            chunk = self.source.read(self.size)
            if not chunk:
                line, self.buffer, self.pos = self.buffer[self.pos :], b"", 0
                return line
            self.buffer, self.pos = self.buffer[self.pos :] + chunk, 0

    def whole(self, line: bytes) -> bytes:
        """`line` and the lines after it while a quoted name is open in it: pg_dump writes
        a newline in a schema, table or column name as it is, inside the quotes (a `""`
        inside a name counts twice, so an odd count means one is open)."""
        while line.count(b'"') % 2 and (more := self.line()):
            line += more
        return line

    def rows(self) -> Iterator[bytes]:
        """Give blocks of whole rows up to the end-of-data line `\\.`, which it consumes.

        Raises FilterError when the stream ends first.
        """
        data = self.buffer[self.pos :]
        while (end := _end_of_data(data)) < 0:
            cut = data.rfind(b"\n") + 1
            if cut:
                yield data[:cut]
            chunk = self.source.read(self.size)
            if not chunk:
                if data[cut:] == END_OF_DATA[:-1]:  # `\.` without a newline, at the very end
                    self.buffer, self.pos = b"", 0
                    return
                raise FilterError("the stream ended inside the COPY data (pg_restore failed?)")
            data = data[cut:] + chunk
        if end:
            yield data[:end]
        self.buffer, self.pos = data, end + len(END_OF_DATA)


class _Transcoded:
    """A binary stream in one of CODECS' encodings, read as UTF-8."""

    def __init__(self, source: BinaryIO | _Transcoded, encoding: str, head: bytes) -> None:
        self.source, self.encoding, self.head = source, encoding, head
        self.decoder = codecs.getincrementaldecoder(CODECS[encoding])()

    def read(self, size: int) -> bytes:
        """Give up to about `size` bytes' worth of the stream as UTF-8, b"" at its end.

        Raises FilterError (naming the encoding, never the bytes) where it is not valid."""
        while True:
            data, self.head = self.head or self.source.read(size), b""
            try:
                out = self.decoder.decode(data, final=not data).encode()
            except UnicodeDecodeError:
                raise FilterError(f"the archive is not valid {self.encoding}") from None
            if out or not data:
                return out


def _end_of_data(data: bytes) -> int:
    """Where the end-of-data line starts in `data` (which starts at a line start), or -1.

    Looks at the backslashes only: numpy finds them several times quicker than
    `bytes.find` scans for the whole line.
    """
    if data.startswith(END_OF_DATA):
        return 0
    array = np.frombuffer(data, np.uint8)
    found = np.flatnonzero(array[1:-2] == BACKSLASH) + 1  # room for "\n" before, ".\n" after
    ends = found[
        (array[found - 1] == NEWLINE) & (array[found + 1] == DOT) & (array[found + 2] == NEWLINE)
    ]
    return int(ends[0]) if len(ends) else -1


@dataclass(frozen=True)
class CopyHeader:
    """The table and columns of a `COPY ... FROM stdin;` line."""

    table: str
    columns: list[str]


_COPY_TAIL = re.compile(r"\s*FROM stdin;\s*")
_UNQUOTED = re.compile(r"[^\s\".,()]+")


def parse_copy_line(line: bytes) -> CopyHeader:
    """Give the table key and column names of a COPY line as pg_dump writes it.

    Raises FilterError when the line is not `COPY schema.table (col, ...) FROM stdin;`.
    """
    try:
        text = line.decode()
        schema, pos = _identifier(text, len("COPY "))
        if text[pos : pos + 1] != ".":
            raise ValueError("no schema")
        table, pos = _identifier(text, pos + 1)
        columns: list[str] = []
        pos = _skip_spaces(text, pos)
        if text[pos : pos + 1] == "(":
            while text[pos] != ")":
                name, pos = _identifier(text, _skip_spaces(text, pos + 1))
                columns.append(name)
                pos = _skip_spaces(text, pos)
                if text[pos] not in ",)":
                    raise ValueError("bad column list")
            pos += 1
        if not _COPY_TAIL.fullmatch(text, pos):
            raise ValueError("no FROM stdin")
    except (ValueError, IndexError):
        raise FilterError("cannot read the COPY line of the stream") from None
    return CopyHeader(table_key(schema, table), columns)


def _skip_spaces(text: str, pos: int) -> int:
    while text[pos : pos + 1] == " ":
        pos += 1
    return pos


def _identifier(text: str, pos: int) -> tuple[str, int]:
    """Read one SQL identifier at `pos`: "quoted" (with "" for a quote) or plain."""
    if text[pos : pos + 1] == '"':
        name, pos = "", pos + 1
        while True:
            end = text.index('"', pos)
            name += text[pos:end]
            if text[end + 1 : end + 2] != '"':
                return name, end + 1
            name, pos = name + '"', end + 2
    match = _UNQUOTED.match(text, pos)
    if match is None:
        raise ValueError("no identifier")
    return match.group().lower(), match.end()


def filter_script(
    source: BinaryIO,
    sink: BinaryIO,
    plan: TablePlan,
    key: MaskKey,
    run_blocks: RunBlocks | None = None,
    block_size: int = BLOCK_SIZE,
) -> FilterStats:
    """Copy pg_restore's script from `source` to `sink`, masking the rows of `plan`'s table
    (`filter_tables` with that one plan); give its stats."""
    return filter_tables(source, sink, {plan.table: plan}, key, run_blocks, block_size)[plan.table]


def filter_tables(
    source: BinaryIO,
    sink: BinaryIO,
    plans: Mapping[str, TablePlan],
    key: MaskKey,
    run_blocks: RunBlocks | None = None,
    block_size: int = BLOCK_SIZE,
    droppers: Droppers | None = None,
) -> dict[str, FilterStats]:
    """Copy pg_restore's script from `source` to `sink`, masking the rows of each COPY with
    the plan of the table its header names (`plans`, by table key; the key is exact, so
    quotes, dots, spaces and case in names can never pick another table's plan).

    `run_blocks` maps a masker over the blocks in order (default: in this process; the
    program passes a worker pool). Gives the stats of each table whose COPY the script
    held; raises FilterError when the stream cannot be masked safely (a COPY of a table
    without a plan among them, or no COPY at all), after making any COPY already begun
    fail on the server. With `droppers` (a subset's: see `flag_droppers` and
    `subset_scan.Scanner.dropper`), the rows of each COPY its dropper does not keep are
    dropped before masking.
    """
    reader = _Reader(source, block_size)
    done: dict[str, FilterStats] = {}
    while line := reader.line():
        if line.startswith(b"COPY "):
            _expect_encoding(reader)
            line = reader.whole(line)
            header = parse_copy_line(line)
            plan = plans.get(header.table)
            if plan is None:
                raise FilterError(f"the stream holds data of {header.table}, not {_names(plans)}")
            masker = compile_table(plan, key, header.columns, reader.encoding == "SQL_ASCII")
            stats = done.setdefault(plan.table, FilterStats(plan.table))
            stats.columns, stats.masked_columns = header.columns, list(masker.masked)
            applier = droppers(header.table, header.columns) if droppers is not None else None
            sink.write(line)
            stats.rows += _copy_rows(reader, sink, masker, run_blocks or _in_process, applier)
            stats.dropped += applier.dropped if applier is not None else 0
            for name, count in masker.take_counts().items():
                stats.scrubbed[name] = stats.scrubbed.get(name, 0) + count
        elif line.startswith(b"INSERT INTO "):
            raise FilterError("the stream holds INSERT statements (a dump made with --inserts?)")
        elif not (not done and line == DROPPED_BEFORE_COPY):
            sink.write(reader.settle(line))
    if not done:
        raise FilterError(f"the stream holds no COPY data for {_names(plans)}")
    return done


def _names(plans: Mapping[str, TablePlan]) -> str:
    """The tables of `plans` for a message: up to three by name, or how many."""
    if len(plans) <= 3:
        return ", ".join(sorted(plans)) or "any table"
    return f"any of the {len(plans)} tables of its plans"


def _expect_encoding(reader: _Reader) -> None:
    """Raise FilterError when the script set no client_encoding before its data."""
    if not reader.encoding:
        raise FilterError("the stream has no SET client_encoding before its data")


def _in_process(masker: Masks, blocks: Iterator[bytes]) -> Iterator[bytes]:
    return map(masker, blocks)


def _copy_rows(
    reader: _Reader,
    sink: BinaryIO,
    masker: BlockMasker,
    run_blocks: RunBlocks,
    applier: RowDropper | None = None,
) -> int:
    """Mask and write the rows of one COPY (those the subset keeps, when `applier`) and its
    end line; give the number of rows written. A dropper that can work in the block
    runner's processes (`in_workers`) drops each block's rows there, before masking them;
    one that cannot (a first pass's flags, read in order) drops them here."""
    blocks: Iterator[bytes] = reader.rows()
    function: Masks = masker
    if applier is not None and applier.in_workers:
        function = DroppingMasker(applier, masker)
    elif applier is not None:
        blocks = filter(None, map(applier, blocks))
    rows = 0
    try:
        for out in run_blocks(function, blocks):
            if out:
                sink.write(out)
                rows += _lines_in(out)  # a masked value never holds a newline
        if applier is not None:
            applier.finish()
    except RowError as exc:
        _abort_copy(sink, len(masker.columns))
        where = location(masker.table, exc.column) if exc.column else masker.table
        raise FilterError(f"{where}: row {rows + exc.row}: {exc.reason}") from None
    except BaseException:  # a subset's condition too: never let psql end the COPY as done
        _abort_copy(sink, len(masker.columns))
        raise
    sink.write(END_OF_DATA)
    return rows


@dataclass
class DroppingMasker:
    """A subset's dropper and a table's masker as one block function: the rows not kept
    are dropped, the rest masked, in whichever process the block runner gives the block
    (what the dropper tallied, its rows dropped and the keys it kept, comes back with the
    masker's counts)."""

    dropper: RowDropper
    masker: BlockMasker

    @property
    def forkable(self) -> bool:
        """Whether both may be copied into forked workers."""
        return self.dropper.forkable and self.masker.forkable

    def __call__(self, block: bytes) -> bytes:
        kept = self.dropper(block)
        return self.masker(kept) if kept else b""

    def take_counts(self) -> dict[str, Any]:
        return {"masker": self.masker.take_counts(), "dropper": self.dropper.take_counts()}

    def add_counts(self, counts: dict[str, Any]) -> None:
        self.masker.add_counts(counts["masker"])
        self.dropper.add_counts(counts["dropper"])


class RowDropper(Protocol):
    """Drops the rows of one COPY a subset does not keep, block by block. One that is
    `in_workers` decides each block on its own, in any order and any process (what it
    tallies is taken and added as a masker's counts are); one that is not must see the
    blocks in order, in the filter's process."""

    dropped: int

    @property
    def in_workers(self) -> bool:
        """Whether it decides each block on its own (in any order and process)."""

    @property
    def forkable(self) -> bool:
        """Whether it may be copied into forked workers."""

    def __call__(self, block: bytes) -> bytes:
        """The kept lines of `block` (whole COPY lines), possibly changed."""

    def take_counts(self) -> dict[str, Any]:
        """What was tallied since the last call (only when `in_workers`)."""

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add what a copy of this (in a worker) tallied (only when `in_workers`)."""

    def finish(self) -> None:
        """After the last block: raise FilterError when the COPY's rows were not what was
        expected; keep what was tallied."""


Droppers = Callable[[str, list[str]], RowDropper | None]  # (table key, COPY columns)


def flag_droppers(subset: Mapping[str, RowFlags]) -> Droppers:
    """Droppers that apply a first pass's flags (by table key) to the COPYs of those tables."""

    def dropper(table: str, columns: list[str]) -> RowDropper | None:
        flags = subset.get(table)
        return SubsetApplier(table, flags, columns) if flags is not None else None

    return dropper


class SubsetApplier:
    """Drops the rows of one COPY the subset does not keep and sets flagged keys to NULL,
    block by block, before the rows are masked (dropped rows are never even masked)."""

    in_workers, forkable = False, False  # the flags are read in order

    def __init__(self, table: str, flags: RowFlags, columns: list[str]) -> None:
        self.table, self.flags, self.seen, self.dropped = table, flags, 0, 0
        self.columns = columns
        self.nulls = [
            ([columns.index(c) for c in key], rows)
            for key, rows in flags.nulled.items()
            if all(c in columns for c in key)
        ]

    def __call__(self, block: bytes) -> bytes:
        lines = lines_of(block, len(self.columns))
        start, self.seen = self.seen, self.seen + len(lines)
        if self.seen > len(self.flags.kept):
            raise FilterError(f"{self.table}: the archive holds more rows than the subset read")
        keep = self.flags.kept[start : self.seen]
        self.dropped += len(lines) - int(np.count_nonzero(keep))
        nulled = [(positions, rows[start : self.seen] & keep) for positions, rows in self.nulls]
        if not any(bool(rows.any()) for _positions, rows in nulled):
            return kept_lines(lines, keep)
        rows = block.split(b"\n")[:-1]
        for positions, flagged in nulled:
            for index in np.flatnonzero(flagged):
                fields = rows[index].split(b"\t")
                for position in positions:
                    fields[position] = b"\\N"
                rows[index] = b"\t".join(fields)
        return b"".join(row + b"\n" for row, kept in zip(rows, keep, strict=True) if kept)

    def take_counts(self) -> dict[str, Any]:
        raise NotImplementedError("flags are applied in the filter's own process")

    def add_counts(self, counts: dict[str, Any]) -> None:
        raise NotImplementedError("flags are applied in the filter's own process")

    def finish(self) -> None:
        """Raise FilterError unless every row the first pass flagged came by."""
        if self.seen != len(self.flags.kept):
            raise FilterError(
                f"{self.table}: the archive holds {self.seen} rows, the subset read "
                f"{len(self.flags.kept)}"
            )


def _lines_in(block: bytes) -> int:
    """The number of newlines in `block` (numpy's count is several times quicker than
    `bytes.count` here, which goes byte by byte)."""
    return int(np.count_nonzero(np.frombuffer(block, np.uint8) == NEWLINE))


def _abort_copy(sink: BinaryIO, width: int) -> None:
    """Write a row with one field too many: the server then rejects the whole COPY (psql
    would otherwise take the end of its input as the end of the data and keep the rows)."""
    try:
        sink.write(b"\t" * width + b"orchestrator-mask: aborted\n")
        sink.flush()
    except OSError:
        pass


Sample = tuple[list[str], list[list[str | None]]]  # a COPY's columns, its first rows' values


def sample_rows(source: BinaryIO, max_rows: int) -> Sample:
    """Give the COPY columns and the decoded values (None for NULL) of the first `max_rows`
    rows of a pg_restore script, reading no further than it needs.

    Gives ([], []) when the script holds no COPY; raises FilterError when its encoding
    cannot be read.
    """
    return next(_samples(source, max_rows), ([], []))


def sample_each(source: BinaryIO, max_rows: int) -> list[Sample]:
    """Give the COPY columns and the decoded values of the first `max_rows` rows of every
    COPY of a pg_restore script, in its order (one pg_restore samples many small tables).
    Raises FilterError when the script's encoding cannot be read."""
    return list(_samples(source, max_rows))


def _samples(source: BinaryIO, max_rows: int) -> Iterator[Sample]:
    """Each COPY's sample, lazily: nothing past a sample is read until the next one is
    asked for, and then the rest of that COPY is read past, up to its end-of-data line, so
    that no row is ever taken for the next COPY's header."""
    reader = _Reader(source, 1 << 16)
    while line := reader.line():
        if line.startswith(b"COPY "):
            _expect_encoding(reader)
            header = parse_copy_line(reader.whole(line))
            rows = _read_sample(reader, max_rows)
            yield header.columns, rows
            if len(rows) == max_rows:
                _skip_data(reader)
            continue
        reader.settle(line)


def _skip_data(reader: _Reader) -> None:
    """Read past the rest of the current COPY's rows and its end-of-data line."""
    while (line := reader.line()) and line.rstrip(b"\n") != END_OF_DATA[:-1]:
        pass


def _read_sample(reader: _Reader, max_rows: int) -> list[list[str | None]]:
    rows: list[list[str | None]] = []
    while len(rows) < max_rows:
        line = reader.line()
        if not line or line.rstrip(b"\n") == END_OF_DATA[:-1]:
            break
        rows.append([decode_field(field) for field in line.rstrip(b"\n").split(b"\t")])
    return rows
