"""Restore planning as tables of cases: strategy, names, the production guard, errors, swaps."""

from __future__ import annotations

import re

import pytest

from orchestrator.postgres.queries import setting_statement
from orchestrator.restore_plan import (
    Capabilities,
    Endpoint,
    ages_out,
    choose_strategy,
    count_differences,
    older_server_note,
    previous_names,
    real_errors,
    same_database,
    same_server,
    staging_name,
    swap_renames,
)


@pytest.mark.parametrize(
    ("setting", "caps", "expected"),
    [
        ("auto", Capabilities(True, False, False, 15), "swap"),
        ("auto", Capabilities(False, True, True, 15), "swap"),
        ("auto", Capabilities(False, True, False, 15), "transaction"),
        ("auto", Capabilities(False, False, True, 15), "transaction"),
        ("transaction", Capabilities(True, True, True, 17), "transaction"),
        ("swap", Capabilities(False, False, False, 17), "swap"),
    ],
)
def test_choose_strategy(setting, caps, expected):
    strategy, why = choose_strategy(setting, caps)
    assert strategy == expected and why


@pytest.mark.parametrize(
    ("setting", "caps", "why"),
    [
        ("auto", Capabilities(True, False, False, 15), "the role may create and rename databases"),
        (
            "auto",
            Capabilities(False, False, True, 15),
            "the role may not create or rename databases",
        ),
        ("swap", Capabilities(False, False, False, 17), "set to swap"),
    ],
)
def test_choose_strategy_says_why(setting, caps, why):
    assert choose_strategy(setting, caps)[1] == why


def test_a_name_that_just_fits_is_kept_and_one_byte_more_is_cut_to_exactly_63_bytes():
    suffix_room = 63 - len("_previous")
    fits = "f" * suffix_room
    assert previous_names(fits, 1) == [fits + "_previous"]
    [cut] = previous_names(fits + "g", 1)
    assert len(cut.encode()) == 63 and cut.endswith("_previous")
    assert re.fullmatch(rf"f{{{suffix_room - 9}}}_[0-9a-f]{{8}}_previous", cut)


def test_names_fit_in_63_bytes_and_are_distinct():
    long = "x" * 80
    assert len(staging_name(long, "abcd1234").encode()) <= 63
    assert staging_name("shop", "abcd1234") == "shop__restore_abcd1234"
    assert previous_names("shop", 3) == ["shop_previous", "shop_previous_2", "shop_previous_3"]
    assert all(len(n.encode()) <= 63 for n in previous_names("é" * 40, 2))
    # long names sharing a prefix stay apart
    first, second = "t" * 60 + "_one", "t" * 60 + "_two"
    assert previous_names(first, 1) != previous_names(second, 1)
    assert staging_name(first, "ab") != staging_name(second, "ab")
    assert previous_names("shop", 0) == []


SRC = Endpoint("db.example.com", 5432, "prod", "7712")


@pytest.mark.parametrize(
    ("target", "same"),
    [
        (Endpoint("db.example.com", 5432, "prod"), True),
        (Endpoint("DB.Example.com.", 5432, "prod"), True),
        (Endpoint("replica.example.com", 5432, "prod", "7712"), True),  # alias, same cluster
        (Endpoint("other.example.com", 5432, "prod", "9999"), False),
        (Endpoint("db.example.com", 5433, "prod"), False),
        (Endpoint("db.example.com", 5432, "prod_copy", "7712"), False),
        (Endpoint("other.example.com", 5432, "prod"), False),  # identity unknown
    ],
)
def test_same_database(target, same):
    assert (same_database(target, SRC) is not None) is same


@pytest.mark.parametrize(
    ("a", "b"),
    [("localhost", "127.0.0.1"), ("::1", "localhost"), ("/var/run/postgresql", "localhost")],
)
def test_local_aliases_are_one_host(a, b):
    assert same_database(Endpoint(a, 5432, "d"), Endpoint(b, 5432, "d"))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (Endpoint("localhost", 5432, "x"), Endpoint("127.0.0.1", 5432, "y"), True),
        (Endpoint("Db.Example.com.", 5432, "x"), Endpoint("db.example.com", 5432, "y"), True),
        (Endpoint("a.example", 5432, "x", "77"), Endpoint("b.example", 6432, "y", "77"), True),
        (Endpoint("a.example", 5432, "x", "77"), Endpoint("b.example", 5432, "y", "78"), False),
        (Endpoint("a.example", 5432, "x"), Endpoint("b.example", 5432, "y"), False),
        (Endpoint("a.example", 5432, "x", ""), Endpoint("b.example", 5432, "y", ""), False),
        (Endpoint("localhost", 5432, "x"), Endpoint("localhost", 5433, "x"), False),
    ],
)
def test_same_server(a, b, same):
    assert same_server(a, b) is same


def test_real_errors_skip_known_harmless_ones_even_interleaved():
    lines = [
        "pg_restore: error: could not execute query: ERROR:  unrecognized configuration "
        'parameter "transaction_timeout"',
        "Command was: SET transaction_timeout = 0;",
        "pg_restore:pg_restore: error: could not execute query: ERROR:  unrecognized "
        'configuration parameter "transaction_timeout"',
        "pg_restore: error: could not execute query: ERROR:  must be owner of extension plpgsql",
        'pg_restore: error: could not execute query: ERROR:  role "app" does not exist',
        "pg_restore: warning: errors ignored on restore: 4",
        'pg_restore: error: COPY failed for table "t": ERROR:  out of disk',
        "pg_restore: error: could not execute query: ERROR:  syntax error: at or near x",
    ]
    assert real_errors(lines) == [
        'ERROR:  role "app" does not exist',
        'COPY failed for table "t": ERROR:  out of disk',
        "ERROR:  syntax error: at or near x",  # everything after the first "error: "
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # a worker's "pg_restore: error: " went to another worker's line: the syntax error
        # arrives alone, after a harmless error that took both prefixes
        (
            [
                "pg_restore: error: pg_restore: error: could not execute query: ERROR:  "
                'unrecognized configuration parameter "transaction_timeout"',
                'could not execute query: ERROR:  syntax error at or near "NULLS"',
                "LINE 1: ...ONLY public.customers ADD CONSTRAINT one_nick UNIQUE NULLS NOT...",
                "Command was: ALTER TABLE ONLY public.customers ADD CONSTRAINT one_nick ...",
            ],
            ['ERROR:  syntax error at or near "NULLS"'],
        ),
        # two messages on one line: the harmless one does not hide the other
        (
            [
                "pg_restore: error: could not execute query: ERROR:  unrecognized configuration "
                'parameter "transaction_timeout"could not execute query: ERROR:  out of memory',
            ],
            [
                'ERROR:  unrecognized configuration parameter "transaction_timeout"could not '
                "execute query: ERROR:  out of memory"
            ],
        ),
        # harmless alone, with or without its prefix
        (
            [
                "could not execute query: ERROR:  unrecognized configuration parameter "
                '"transaction_timeout"',
                "Command was: SET transaction_timeout = 0;",
            ],
            [],
        ),
    ],
    ids=["prefix-lost", "two-on-a-line", "harmless-without-prefix"],
)
def test_a_real_error_is_seen_whatever_the_interleaving_did_to_its_line(lines, expected):
    assert real_errors(lines) == expected


def test_count_differences():
    assert count_differences({"a.t": 3, "a.u": 0}, {"a.t": 3, "a.u": 0}) == []
    assert count_differences({"a.t": 3, "a.u": 1}, {"a.t": 2}) == [
        "a.t: expected 3 rows, found 2",
        "a.u: expected 1 rows, found missing",
    ]


@pytest.mark.parametrize(
    ("exists", "previous", "keep", "renames", "drops", "kept"),
    [
        (False, [], 1, [("s", "db")], [], None),
        (True, [], 1, [("db", "db_previous"), ("s", "db")], [], "db_previous"),
        (
            True,
            ["db_previous"],
            1,
            [("db_previous", "db__old_r"), ("db", "db_previous"), ("s", "db")],
            ["db__old_r"],
            "db_previous",
        ),
        (
            True,
            ["db_previous"],
            2,
            [("db_previous", "db_previous_2"), ("db", "db_previous"), ("s", "db")],
            [],
            "db_previous",
        ),
        (
            True,
            ["db_previous", "db_previous_2"],
            2,
            [
                ("db_previous_2", "db__old_r"),
                ("db_previous", "db_previous_2"),
                ("db", "db_previous"),
                ("s", "db"),
            ],
            ["db__old_r"],
            "db_previous",
        ),
        (True, [], 0, [("db", "db__old_r"), ("s", "db")], ["db__old_r"], None),
    ],
)
def test_swap_renames(exists, previous, keep, renames, drops, kept):
    plan = swap_renames("db", "s", exists, previous, keep, "r")
    assert (plan.renames, plan.drop_after, plan.previous) == (renames, drops, kept)


@pytest.mark.parametrize(
    ("exists", "previous", "keep", "dropped"),
    [
        (True, ["db_previous"], 1, "db_previous"),
        (True, [], 1, None),
        (False, ["db_previous"], 1, None),  # nothing shifts: the copy stays
        (True, ["db_previous"], 2, None),  # a free slot
        (True, ["db_previous_2"], 2, "db_previous_2"),
        (True, ["db_previous", "db_previous_2"], 2, "db_previous_2"),
        (True, [], 0, None),  # keep 0 drops the target itself, and only after the swap
    ],
)
def test_ages_out_names_the_copy_a_swap_would_drop(exists, previous, keep, dropped):
    assert ages_out("db", keep, exists, previous) == dropped
    plan = swap_renames("db", "s", exists, previous, keep, "r")
    assert (dropped, "db__old_r") in plan.renames or dropped is None


@pytest.mark.parametrize(
    ("message", "source", "target", "noted"),
    [
        (
            'pg_restore reported 1 error(s): ERROR:  syntax error at or near "NULLS"',
            "18.6",
            14,
            True,
        ),
        (
            'psql exited with code 3: psql:<stdin>:9: ERROR:  type "x" does not exist',
            "17.11",
            16,
            True,
        ),
        (
            "pg_restore failed and its transaction was rolled back: ERROR:  unrecognized "
            'configuration parameter "transaction_timeout"',
            "17.11",
            14,
            True,
        ),
        (
            'pg_restore reported 1 error(s): ERROR:  syntax error at or near "NULLS"',
            "18.6",
            18,
            False,
        ),
        ("pg_restore reported 1 error(s): ERROR:  x", "14.23", 17, False),
        ("restored data does not match backup b: public.t: 3 rows, expected 4", "18.6", 14, False),
        ("pg_restore reported 1 error(s): ERROR:  x", "unknown", 14, False),
        (
            'pg_restore reported 1 error(s): COPY failed for table "t": ERROR:  character with '
            'byte sequence 0xf0 0x9f 0x98 0x80 in encoding "UTF8" has no equivalent in encoding '
            '"LATIN1"',
            "17.11",
            14,
            False,
        ),
    ],
)
def test_a_server_error_on_an_older_target_names_both_versions(
    message: str, source: str, target: int, noted: bool
) -> None:
    note = older_server_note(message, source, target)
    assert (note is not None) is noted
    if note is not None:
        assert note.startswith(
            f"the backup is of PostgreSQL {source} and this target runs {target}"
        )


@pytest.mark.parametrize(
    ("role", "entry", "statement"),
    [
        (None, "timezone=Asia/Kolkata", 'ALTER DATABASE "d b" SET "timezone" = \'Asia/Kolkata\''),
        (None, "app.tenant=dev's", 'ALTER DATABASE "d b" SET "app"."tenant" = \'dev\'\'s\''),
        (
            None,
            'search_path=app, "$user", "a ""b"" c",public',
            "ALTER DATABASE \"d b\" SET \"search_path\" = 'app', '$user', 'a \"b\" c', 'public'",
        ),
        ("dev", "work_mem=7MB", 'ALTER ROLE "dev" IN DATABASE "d b" SET "work_mem" = \'7MB\''),
        (None, 'search_path=""', 'ALTER DATABASE "d b" SET "search_path" = \'\''),
    ],
)
def test_a_database_setting_is_given_again_as_the_catalog_holds_it(
    role: str | None, entry: str, statement: str
) -> None:
    assert setting_statement("d b", role, entry).as_string(None) == statement
