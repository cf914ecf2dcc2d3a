"""TOC lines print a name's line breaks as spaces (pg_restore's sanitize_line): tables whose
names hold them are still matched, and never taken for a table whose name has a space."""

from __future__ import annotations

import pytest

from orchestrator.postgres.pg_restore import printed, toc_tables

TOC = """;
; Archive created at 2026-12-05 23:57:55 UTC
;
218; 1259 65468 TABLE public line break postgres
2559; 0 65468 TABLE DATA public line break postgres
2560; 0 65471 TABLE DATA odd schema cr name postgres
2561; 0 65475 TABLE DATA public tab\ttab postgres
"""


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain", "plain"),
        ("line\nbreak", "line break"),
        ("cr\rlf\r\n", "cr lf  "),
        ("t\tab", "t\tab"),
    ],
)
def test_a_name_is_printed_with_its_line_breaks_as_spaces(name, shown):
    assert printed(name) == shown


@pytest.mark.parametrize(
    ("known", "by_oid", "found", "unmatched"),
    [
        (
            [("public", "line\nbreak")],
            None,
            [("public", "line\nbreak")],
            ["odd schema cr name", "public tab\ttab"],
        ),
        (
            [("odd\rschema", "cr\rname")],
            None,
            [("odd\rschema", "cr\rname")],
            ["public line break", "public tab\ttab"],
        ),
        (
            [("public", "tab\ttab")],
            None,
            [("public", "tab\ttab")],
            ["public line break", "odd schema cr name"],
        ),
        # by oid: the printed names must still fit the table the oid names
        (
            [("public", "line\nbreak")],
            {65468: ("public", "line\nbreak")},
            [("public", "line\nbreak")],
            ["odd schema cr name", "public tab\ttab"],
        ),
        (
            [("public", "line break")],
            None,
            [("public", "line break")],
            ["odd schema cr name", "public tab\ttab"],
        ),
    ],
)
def test_tables_with_line_breaks_in_their_names_are_matched(known, by_oid, found, unmatched):
    assert toc_tables(TOC, known, by_oid=by_oid) == (found, unmatched)
