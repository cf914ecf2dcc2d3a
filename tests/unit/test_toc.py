"""Reading `pg_restore --list`: entry kinds, and which tables an entry may load."""

from __future__ import annotations

import pytest

from orchestrator.postgres.pg_restore import TocEntry, entry_tables, foreign_keys_last, toc_list

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
        # pg_restore --list prints a newline or carriage return in a name as a space
        ("line break t x postgres", [("line\nbreak", "t\r\nx")], []),
        ("line break t  x postgres", [("line\nbreak", "t\r\nx")], [("line\nbreak", "t\r\nx")]),
    ],
)
def test_a_data_entry_names_every_table_it_may_load(
    rest: str, known: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    assert entry_tables(TocEntry("", "TABLE DATA", rest), known) == expected


PARTITIONED = """;
218; 1259 16390 TABLE public events postgres
219; 1259 16395 TABLE public events_2026 postgres
2548; 0 16395 TABLE DATA public events_2026 postgres
2402; 2606 16391 CONSTRAINT public events events_pkey postgres
2403; 2606 16396 CONSTRAINT public events_2026 events_2026_pkey postgres
2404; 0 0 INDEX ATTACH public events_2026_pkey postgres
2407; 2620 16412 TRIGGER public events audit postgres
2405; 2606 16410 FK CONSTRAINT public event_refs event_refs_fkey postgres
2406; 2606 16411 FK CONSTRAINT public events events_user_id_fkey postgres
2610; 0 0 COMMENT public CONSTRAINT events_user_id_fkey ON events postgres
2553; 0 16401 MATERIALIZED VIEW DATA public mv postgres
"""


def test_foreign_keys_and_what_follows_them_go_last_when_partition_indexes_are_attached() -> None:
    # pg_restore --jobs may add a key on a partitioned table while a partition's index is
    # being attached (deadlock), or one referencing it before its index is whole; a
    # comment on a key needs the key; attachments made at once can each miss the other's,
    # leaving a two-level tree's parent index invalid: they run one at a time
    phases = foreign_keys_last(toc_list(PARTITIONED))
    assert phases is not None
    parts = [(p.name, [e.line.split(";")[0] for e in p.entries], p.jobs) for p in phases]
    assert parts == [
        ("before-keys", ["218", "219", "2548", "2402", "2403", "2407"], None),
        ("attachments", ["2404"], 1),
        ("keys-on", ["2405", "2406", "2610", "2553"], None),
    ]


@pytest.mark.parametrize(
    "toc",
    [
        TOC,  # no foreign key, no partition index
        PARTITIONED.replace("INDEX ATTACH", "INDEX"),  # foreign keys, no partition index
        "\n".join(line for line in PARTITIONED.splitlines() if "FK CONSTRAINT" not in line),
    ],
    ids=["plain", "no-attach", "no-keys"],
)
def test_a_restore_without_both_keys_and_partition_indexes_runs_in_one_go(toc: str) -> None:
    assert foreign_keys_last(toc_list(toc)) is None
