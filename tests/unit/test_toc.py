"""Reading `pg_restore --list`: entry kinds, and which tables an entry may load."""

from __future__ import annotations

import pytest

from orchestrator.postgres.pg_restore import TocEntry, entry_tables, toc_list

TOC = """;
; Archive created at 2026-11-30 06:00:00 UTC
;
217; 1259 16385 TABLE public t postgres
2548; 0 16385 TABLE DATA public t postgres
2549; 2613 16392 BLOB METADATA - 16392 postgres
2550; 0 0 BLOBS - 16392 postgres
2551; 0 0 STATISTICS DATA public t postgres
2552; 0 16400 SEQUENCE SET public t_id_seq postgres
2553; 0 16401 MATERIALIZED VIEW DATA public mv postgres
2402; 2606 16391 CONSTRAINT public t t_pkey postgres
"""


def test_entries_keep_their_lines_and_kinds() -> None:
    entries = toc_list(TOC)
    assert [e.kind for e in entries] == [
        "other",
        "TABLE DATA",
        "BLOB METADATA",
        "BLOBS",
        "STATISTICS DATA",
        "SEQUENCE SET",
        "MATERIALIZED VIEW DATA",
        "other",
    ]
    assert entries[1].line == "2548; 0 16385 TABLE DATA public t postgres"
    assert entries[1].rest == "public t postgres"


@pytest.mark.parametrize(
    ("rest", "known", "expected"),
    [
        ("public t postgres", [("public", "t"), ("public", "u")], [("public", "t")]),
        # table `users` owned by `x y`, or table `users x` owned by `y`: both are candidates
        (
            "public users x y",
            [("public", "users"), ("public", "users x")],
            [("public", "users"), ("public", "users x")],
        ),
        ("public nothing postgres", [("public", "t")], []),
    ],
)
def test_a_data_entry_names_every_table_it_may_load(
    rest: str, known: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    assert entry_tables(TocEntry("", "TABLE DATA", rest), known) == expected
