"""Scrub in place: a block's items are found without taking its fields out, only those in
the scrubbed columns are replaced, and the block comes out exactly as masking it row by
row gives it (escapes, NULLs, empty and multibyte values, first and last columns)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from orchestrator.masking import stream
from orchestrator.masking._fields import lines_of
from orchestrator.masking._scrub import find_items, regions, splice
from orchestrator.masking.plan import ColumnPlan, TablePlan
from orchestrator.masking.stream import (
    BlockMasker,
    _holding_backslash,
    _shaped,
    compile_table,
    filter_script,
)
from orchestrator.masking.transforms import load_key

KEY = load_key("unit-test-mask-key-0001")
SCRUB = ColumnPlan("scrub", {"domain": "example.com"})
KEEP = ColumnPlan("keep")
CARD = b"4111111111111111"  # passes Luhn: a card number wherever scrub looks
PHONE = b"+1 202 555 0143"


def masker(*columns: tuple[str, ColumnPlan]) -> BlockMasker:
    plan = TablePlan("public.t", dict(columns))
    return compile_table(plan, KEY, [name for name, _ in columns])


# --- the pure parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts", "ends", "positions", "expected"),
    [
        ([2, 10], [5, 10], [0, 2, 4, 5, 9, 10, 11], [0, 1, 1, 0, 0, 0, 0]),  # [10, 10) is empty
        ([0], [3], [0, 2, 3], [1, 1, 0]),
        ([], [], [0, 5], [0, 0]),
        ([4, 6], [6, 9], [3, 5, 6, 8, 9], [0, 1, 1, 1, 0]),  # adjacent regions
    ],
)
def test_regions_hold_offsets_from_their_start_up_to_their_end(
    starts: list[int], ends: list[int], positions: list[int], expected: list[int]
) -> None:
    within = regions(np.array(starts, np.int64), np.array(ends, np.int64))
    assert within(np.array(positions, np.int64)).tolist() == [bool(e) for e in expected]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], b"abcdef"),
        ([(0, 2, b"XY")], b"XYcdef"),
        ([(4, 6, b"")], b"abcd"),
        ([(1, 2, b"123"), (2, 4, b"-")], b"a123-ef"),  # adjacent spans
        ([(0, 6, b"whole")], b"whole"),
        ([(3, 3, b"+")], b"abc+def"),  # an empty span inserts
    ],
)
def test_splice_replaces_each_span_and_keeps_the_rest(
    spans: list[tuple[int, int, bytes]], expected: bytes
) -> None:
    starts, ends, outs = [s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans]
    assert splice(b"abcdef", starts, ends, outs) == expected


def test_items_are_found_only_where_they_start_in_the_regions() -> None:
    data = CARD + b"\tcall " + PHONE + b" or a@b.org\t" + PHONE + b"\n"
    start = len(CARD) + 1
    end = data.index(b"\t", start)
    within = regions(np.array([start]), np.array([end]))
    found = [(kind, data[a:b]) for kind, a, b in find_items(data, within)]
    assert found == [("phone", PHONE), ("email", b"a@b.org")]
    assert len(find_items(data)) == 4  # everywhere: the card and the last phone too


@pytest.mark.parametrize(
    ("block", "width", "expected"),
    [
        (b"a\tb\nc\td\n", 2, True),
        (b"\t\n\t\n", 2, True),  # empty fields
        (b"a\tb\tc\nd\n", 2, False),  # the field counts even out over the block
        (b"a\tb\n", 3, False),
        (b"a\nb\n", 1, True),
        (b"a\tb\n", 1, False),
    ],
)
def test_a_block_is_shaped_only_when_every_line_has_the_width(
    block: bytes, width: int, expected: bool
) -> None:
    assert _shaped(lines_of(block, width)) is expected


@pytest.mark.parametrize(
    ("block", "column", "rows"),
    [
        (b"1\ta\n2\tb\n", 1, []),
        (b"1\ta\\tb\n2\tc\n3\t\\N\n", 1, [0, 2]),
        (b"1\\\\\ta\n2\tb\\n\n", 1, [1]),  # the backslash of row 0 is in the other column
        (b"1\\\\\ta\n2\tb\\n\n", 0, [0]),
    ],
)
def test_the_rows_whose_field_holds_a_backslash_are_found(
    block: bytes, column: int, rows: list[int]
) -> None:
    lines = lines_of(block, 2)
    starts, ends = lines.field(column)
    assert _holding_backslash(lines, starts, ends).tolist() == rows


# --- a block in place gives what row by row gives ----------------------------------------

NOTES = [
    b"plain words, nothing to find",
    b"",
    b"\\N",
    b"mail a@b.org or call " + PHONE,
    b"a\\tb@c.org",  # an escaped tab: the address is b@c.org, not tb@c.org
    b"back\\\\slash x@y.org\\nnew line " + PHONE,
    "caf\u00e9 \u00e9t\u00e9@m\u00fcller.de, \u4e2d\u6587 +44 20 7946 0958".encode(),
    b"x@y.org",  # an item from the field's first byte to its last
    b"card " + CARD + b" and DE89 3704 0044 0532 0130 00",
    b"ip 192.168.1.20 and 2001:db8::1 end",
]
LAYOUTS = {
    "scrub last": (("id", KEEP), ("note", SCRUB)),
    "scrub first": (("note", SCRUB), ("id", KEEP)),
    "scrub between": (("id", KEEP), ("note", SCRUB), ("tail", KEEP)),
    "scrub alone": (("note", SCRUB),),
    "two scrubbed": (("note", SCRUB), ("id", KEEP), ("more", SCRUB)),
}


def block_of(width: int, rows: int = 40) -> bytes:
    """Rows of `width` fields: notes in turn in every field, ids that look like items."""
    lines = []
    for row in range(rows):
        fields = [NOTES[(row + n) % len(NOTES)] for n in range(width)]
        if width > 1:
            fields[(row % 2) * (width - 1)] = CARD if row % 3 else PHONE
        lines.append(b"\t".join(fields) + b"\n")
    return b"".join(lines)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("share", [0.0, 1.01])  # in place always, or by columns when it can
def test_a_block_scrubbed_in_place_is_the_block_masked_row_by_row(
    layout: str, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "IN_PLACE_SHARE", share)
    columns = LAYOUTS[layout]
    one, other = masker(*columns), masker(*columns)
    block = block_of(len(columns))
    assert one(block) == other._by_line(block)
    assert one.in_place == [share == 0.0 or len(columns) == 1]
    assert one.take_counts() == other.take_counts()
    assert sum(one.take_counts().values()) == 0  # taken: counted from zero again


def test_kept_columns_are_never_touched_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "IN_PLACE_SHARE", 0.0)
    columns = LAYOUTS["scrub between"]
    kept = PHONE + b" a@b.org 2001:db8::1 DE89 3704 0044 0532 0130 00 10.1.2.3"
    block = b"".join(b"%s\tnothing\t%s\n" % (CARD, kept) for _ in range(50))
    found = masker(*columns)
    assert found(block) == block
    assert found.take_counts() == {"note": 0}


@pytest.mark.parametrize(
    "block",
    [
        b"1\ta@b.org\n2\tx@y.org\textra\n",  # a row with a field too many
        b"1\ta@b.org\tx\n2\n",  # counts even out
    ],
)
def test_a_misshaped_block_is_refused_with_its_row_not_shifted(block: bytes) -> None:
    from orchestrator.masking.stream import RowError

    with pytest.raises(RowError) as caught:
        masker(*LAYOUTS["scrub last"])(block)
    assert caught.value.row in (1, 2)
    assert "fields" in caught.value.reason


@pytest.mark.parametrize("block_size", [16, 333, 1 << 20])
def test_huge_values_across_block_boundaries_are_scrubbed_whole(block_size: int) -> None:
    huge = b" ".join(b"word%d u%d@x.org" % (n, n) for n in range(5000))  # about 80 KB
    rows = b"1\t" + huge + b"\n2\tsmall a@b.org\n3\t\\N\n4\t" + huge[:-1] + b"\n"
    script = b"SET client_encoding = 'UTF8';\nCOPY public.t (id, note) FROM stdin;\n"
    script += rows + b"\\.\n"
    plan = TablePlan("public.t", {"id": KEEP, "note": SCRUB})
    out = io.BytesIO()
    stats = filter_script(io.BytesIO(script), out, plan, KEY, block_size=block_size)
    reference = masker(("id", KEEP), ("note", SCRUB))._by_line(rows)
    assert out.getvalue().split(b"\n", 2)[2] == reference + b"\\.\n"
    assert stats.scrubbed == {"note": 5000 + 1 + 5000}
    assert b"@x.org" not in out.getvalue()


def test_a_table_whose_scrubbed_fields_are_a_small_share_goes_by_columns() -> None:
    # scrub would look at every digit of the block in place: the timestamps' too
    long = b"2024-05-01 10:01:00+00\t123456.78\t2021-01-01 00:00:59+00\tSKU-4411 some text"
    block = b"".join(b"%d\t%s\t%s\n" % (n, long, NOTES[n % len(NOTES)]) for n in range(60))
    columns = (("id", KEEP), ("a", KEEP), ("b", KEEP), ("c", KEEP), ("d", KEEP), ("note", SCRUB))
    one, other = masker(*columns), masker(*columns)
    assert one(block) == other._by_line(block)
    assert one.in_place == [False]
    assert one.take_counts() == other.take_counts()


def test_a_table_whose_scrubbed_fields_hold_most_bytes_stays_in_place() -> None:
    block = b"".join(b"%d\t%s\n" % (n, NOTES[n % len(NOTES)] * 3) for n in range(60))
    one = masker(*LAYOUTS["scrub last"])
    one(block)
    assert one.in_place == [True]
