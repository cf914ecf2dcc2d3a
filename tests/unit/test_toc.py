"""Reading `pg_restore --list`: entry kinds, and which tables an entry may load."""

from __future__ import annotations

import pytest

from orchestrator.postgres.pg_restore import (
    TocEntry,
    dependencies,
    early_indexes,
    entry_tables,
    foreign_keys_last,
    toc_list,
)

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


# `pg_restore --list --verbose` of a schema with a masked table (users), a kept one with a
# unique index and a key to users (orders), a partitioned table (events) whose partition
# is kept, and an index on an expression calling a function of the dump
VERBOSE = """;
; Archive created at 2026-12-06 02:00:00 UTC
;
210; 1255 16380 FUNCTION public norm(text) postgres
211; 1259 16385 TABLE public users postgres
212; 1259 16390 TABLE public orders postgres
;\tdepends on: 211
213; 1259 16395 TABLE public events postgres
214; 1259 16400 TABLE public events_2026 postgres
;\tdepends on: 213
215; 0 0 TABLE ATTACH public events_2026 postgres
;\tdepends on: 213 214
3001; 0 16385 TABLE DATA public users postgres
;\tdepends on: 211
3002; 0 16390 TABLE DATA public orders postgres
;\tdepends on: 212
3003; 0 16400 TABLE DATA public events_2026 postgres
;\tdepends on: 214
3101; 2606 16405 CONSTRAINT public users users_pkey postgres
;\tdepends on: 211
3102; 2606 16406 CONSTRAINT public orders orders_pkey postgres
;\tdepends on: 212
3103; 1259 16407 INDEX public orders_ref_idx postgres
;\tdepends on: 212
3104; 1259 16408 INDEX public orders_norm_idx postgres
;\tdepends on: 212 210
3105; 1259 16409 INDEX public events_at_idx postgres
;\tdepends on: 213
3106; 1259 16410 INDEX public events_2026_at_idx postgres
;\tdepends on: 214 3105
3107; 0 0 INDEX ATTACH public events_2026_at_idx postgres
;\tdepends on: 3105 3106
3108; 2606 16411 FK CONSTRAINT public orders orders_user_fkey postgres
;\tdepends on: 212 3101
3109; 0 0 COMMENT public INDEX orders_ref_idx postgres
;\tdepends on: 3103
3110; 2606 16412 CHECK CONSTRAINT public orders orders_qty_check postgres
;\tdepends on: 212
"""


def test_dependencies_are_read_from_the_verbose_listing() -> None:
    found = dependencies(VERBOSE)
    assert found[212] == (211,) and found[3106] == (214, 3105) and 211 not in found
    assert found[3108] == (212, 3101) and 210 not in found


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        # users' rows come through the filter: its key waits; orders' and events' indexes
        # go early, but not the one calling a function, the attachment, the key, the
        # comment or the check constraint
        ({211}, ["3102", "3103", "3105", "3106"]),
        # the partition's rows come through the filter: its index waits, its parent's does not
        ({214}, ["3101", "3102", "3103", "3105"]),
        # orders' rows come through the filter: none of its indexes goes early
        ({212}, ["3101", "3105", "3106"]),
        (set(), ["3101", "3102", "3103", "3105", "3106"]),
    ],
    ids=["users-masked", "partition-masked", "orders-masked", "none-masked"],
)
def test_only_indexes_of_tables_loaded_by_pg_restore_are_built_while_the_filters_run(
    held: set[int], expected: list[str]
) -> None:
    early = early_indexes(toc_list(VERBOSE), dependencies(VERBOSE), held)
    assert [e.line.split(";")[0] for e in early] == expected


def test_an_entry_whose_schema_reads_like_a_kind_is_taken_for_its_own_kind() -> None:
    # a table in schema "INDEX": its data entry is data, never an index to build early
    toc = "211; 1259 16385 TABLE INDEX t postgres\n3001; 0 16385 TABLE DATA INDEX t postgres\n"
    toc += ";\tdepends on: 211\n"
    assert early_indexes(toc_list(toc), dependencies(toc), set()) == []
