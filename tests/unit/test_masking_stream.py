"""The COPY-script filter: everything outside the data passes, masked rows change, and any
stream that cannot be masked safely stops the filter without showing a value."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.masking import stream, workers
from orchestrator.masking.__main__ import main
from orchestrator.masking.plan import (
    ColumnPlan,
    PlanError,
    TablePlan,
    plans_from_json,
    plans_to_json,
)
from orchestrator.masking.stream import (
    FilterError,
    RowError,
    compile_table,
    decode_field,
    escape,
    filter_script,
    filter_tables,
    parse_copy_line,
    sample_each,
    sample_rows,
    unescape,
)
from orchestrator.masking.transforms import apply_text, compile_spec, load_key, parse_spec

KEY_TEXT = "stream-test-key-0000"
KEY = load_key(KEY_TEXT)
PREAMBLE = b"""--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: customer; Type: TABLE DATA; Schema: public; Owner: alice
--

"""
TRAILER = b"""\\.


--
-- PostgreSQL database dump complete
--

"""
COPY_LINE = b'COPY public.customer (id, email, "First Name", phone) FROM stdin;\n'
ROWS = b"1\ta@b.com\tAnn\t+1 555 0100\n2\t\\N\tBob\\tby\t555-0101\n"


def plan(unlisted: str = "fail", **columns: ColumnPlan) -> TablePlan:
    default = {
        "id": ColumnPlan("keep", base_type="int4"),
        "email": ColumnPlan("email", {"domain": "example.com"}),
        "First Name": ColumnPlan("first_name"),
        "phone": ColumnPlan("phone"),
    }
    return TablePlan("public.customer", default | columns, unlisted)


def masked(value: str | None, rule: object, base_type: str = "text") -> str | None:
    return apply_text(compile_spec(parse_spec(rule), KEY, base_type), value)


def run_filter(script: bytes, table_plan: TablePlan | None = None, **options: Any) -> bytes:
    out = io.BytesIO()
    filter_script(io.BytesIO(script), out, table_plan or plan(), KEY, **options)
    return out.getvalue()


# --- COPY text fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"plain",
        b"tab\there",
        b"new\nline",
        b"cr\rlf",
        b"back\\slash",
        b"\\N",
        "Zoë 漢字".encode(),
        b"",
    ],
)
def test_escaping_round_trips(value: bytes) -> None:
    field = escape(value)
    assert b"\t" not in field
    assert b"\n" not in field
    assert unescape(field) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (b"\\101\\x42\\103", b"ABC"),
        (b"\\b\\f\\v\\q", b"\b\f\vq"),
        (b"a\\\\N", b"a\\N"),
        (b"\\303\\251", "é".encode()),
    ],
)
def test_every_copy_escape_is_undone(field: bytes, value: bytes) -> None:
    assert unescape(field) == value


def test_null_decodes_to_none() -> None:
    assert decode_field(b"\\N") is None
    assert decode_field(b"\\\\N") == "\\N"


# --- COPY lines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "table", "columns"),
    [
        (COPY_LINE, "public.customer", ["id", "email", "First Name", "phone"]),
        (
            b'COPY "odd.schema"."dotted.table" ("a""b", "c d", e) FROM stdin;\n',
            '"odd.schema"."dotted.table"',
            ['a"b', "c d", "e"],
        ),
        (b'COPY public."Mixed" (x) FROM stdin;\n', "public.Mixed", ["x"]),
        (b"COPY public.empty  FROM stdin;\n", "public.empty", []),
    ],
)
def test_copy_lines_give_the_table_key_and_columns(
    line: bytes, table: str, columns: list[str]
) -> None:
    header = parse_copy_line(line)
    assert (header.table, header.columns) == (table, columns)


@pytest.mark.parametrize(
    "line",
    [
        b"COPY customer (id) FROM stdin;\n",
        b"COPY public.t (id) TO stdout;\n",
        b'COPY public."t (id) FROM stdin;\n',
    ],
)
def test_a_copy_line_that_cannot_be_read_stops_the_filter(line: bytes) -> None:
    with pytest.raises(FilterError, match="cannot read the COPY line"):
        parse_copy_line(line)


@pytest.mark.parametrize(
    "data",
    [
        b"\\.\n",
        b"1\ta\n\\.\n\n",
        b"\\N\ta\n\\N\tb\n\\.\n",
        b"\\\\.\n\\.x\n\\.",
        b"1\t\\.\n2\tb\n",
        b"",
        b"\\",
        b"a\n\\.\n" * 3,
        b"\n\\.\n",
    ],
)
def test_the_end_of_data_line_is_found_only_at_a_line_start(data: bytes) -> None:
    found = data.find(b"\n\\.\n")  # the plain way: the line after a newline
    expected = 0 if data.startswith(b"\\.\n") else found + 1 if found >= 0 else -1
    assert stream._end_of_data(data) == expected


# --- the block masker -------------------------------------------------------------------


def _plain_masker(rules: list[object], width: int | None = None) -> Any:
    columns = [f"c{i}" for i in range(width or len(rules))]
    column_plans = {
        name: ColumnPlan(
            *(
                ("keep",)
                if rule == "keep"
                else (parse_spec(rule).name, dict(parse_spec(rule).params))
            )
        )
        for name, rule in zip(columns, rules, strict=False)
    }
    return compile_table(TablePlan("s.t", column_plans), KEY, columns)


@pytest.mark.parametrize(
    "rules",
    [
        ["hash"],
        ["hash", "keep"],
        ["keep", "hash"],
        ["hash", "keep", "hash"],
        ["keep", "hash", "keep"],
        ["hash", "redact", "keep", "email"],
        ["phone", "full_name"],
    ],
)
@pytest.mark.parametrize("count", [1, 5])
def test_blocks_mask_every_masked_column_wherever_it_is(rules: list[object], count: int) -> None:
    rows = [[f"r{r}c{c}" for c in range(len(rules))] for r in range(count)]
    rows[-1][0] = "\\N"
    block = b"".join("\t".join(row).encode() + b"\n" for row in rows)
    out = _plain_masker(rules)(block).decode()
    expected = [
        [
            value if rule == "keep" else _expected(value, rule)
            for value, rule in zip(row, rules, strict=True)
        ]
        for row in rows
    ]
    assert out.split("\n")[:-1] == ["\t".join(row) for row in expected]


def _expected(field: str, rule: object) -> str:
    value = masked(decode_field(field.encode()), rule)
    return "\\N" if value is None else escape(value.encode()).decode()


def test_values_are_unescaped_before_masking_and_outputs_escaped_after() -> None:
    rules: list[object] = [
        "hash",
        {"transform": "redact", "text": "a\tb\\c"},
        {"transform": "json", "paths": {"k": "keep"}},
    ]
    block = b'x\\ty\tsecret\t{"k": "q\\\\"uote\\\\n"}\n'
    out = _plain_masker(rules)(block)
    assert out == b'%s\ta\\tb\\\\c\t{"k": "q\\\\"uote\\\\n"}\n' % masked("x\ty", "hash").encode()


def test_a_value_rule_fills_nulls_and_set_null_empties_the_column() -> None:
    rules: list[object] = [{"transform": "value", "value": "std"}, "set_null", "keep"]
    assert _plain_masker(rules)(b"\\N\tx\ty\nz\t\\N\t\\N\n") == b"std\t\\N\ty\nstd\t\\N\t\\N\n"


SHIFT: dict[str, object] = {"transform": "date_shift", "days": 30}


def test_date_columns_are_masked_a_column_at_a_time_like_value_by_value() -> None:
    masker = _plain_masker([SHIFT, "keep", SHIFT])
    block = b"".join(
        b"2024-01-0%d\tk\t%04d-01-01 10:00:00+02\n" % (n % 3 + 1, 1000 + n) for n in range(50)
    )
    block += b"\\N\tk\tinfinity\n\\N\tk\t\\N\n"
    assert masker._by_stride(block) == masker._by_line(block)  # NULLs: no fallback


@pytest.mark.parametrize(
    "rule", ["email", "hash", "phone", "first_name", "last_name", "full_name", "redact"]
)
def test_token_columns_are_masked_a_column_at_a_time_like_value_by_value(rule: str) -> None:
    masker = _plain_masker([rule, "keep", rule])
    rows = [
        b"a%d@x.org\t\\N\t+1 555 %04d\n" % (n, n) if n % 5 else b"\\N\tk\tq\\\\r\n"
        for n in range(60)
    ]
    block = b"".join(rows) + b"\tk\t\n"  # empty values too
    assert masker._by_stride(block) == masker._by_line(block)


def test_a_row_with_the_wrong_number_of_fields_is_refused_with_its_number() -> None:
    with pytest.raises(RowError) as caught:
        _plain_masker(["hash", "keep"])(b"a\tb\nc\td\te\nf\tg\n")
    assert (caught.value.row, caught.value.reason) == (2, "has 3 fields, not 2")


def test_rows_whose_field_counts_even_out_are_refused_not_shifted() -> None:
    with pytest.raises(RowError) as caught:
        _plain_masker(["keep", "hash", "keep"])(b"a\tb\tc\n1\t2\t3\t4\n5\t6\n")
    assert (caught.value.row, caught.value.reason) == (2, "has 4 fields, not 3")


@pytest.mark.parametrize("block", [b"a\tb\nc", b"a\tb\nc\td"])
def test_a_block_must_end_with_a_newline(block: bytes) -> None:
    with pytest.raises(RowError, match="does not end with a newline"):
        _plain_masker(["keep", "hash"])(block)


def test_a_one_column_table_is_masked_row_by_row() -> None:
    assert _plain_masker(["redact"])(b"a\n\\N\nb\n") == b"REDACTED\n\\N\nREDACTED\n"


# --- the whole script -------------------------------------------------------------------


def test_a_whole_script_passes_through_with_only_the_rows_masked() -> None:
    out = run_filter(PREAMBLE + COPY_LINE + ROWS + TRAILER)
    first = (
        masked("a@b.com", "email"),
        masked("Ann", "first_name"),
        masked("+1 555 0100", "phone"),
    )
    second = (masked("Bob\tby", "first_name"), masked("555-0101", "phone"))
    expected_rows = "1\t{}\t{}\t{}\n2\t\\N\t{}\t{}\n".format(*first, *second).encode()
    assert (
        out
        == PREAMBLE.replace(b"SET transaction_timeout = 0;\n", b"")
        + COPY_LINE
        + expected_rows
        + TRAILER
    )


def test_transaction_timeout_is_dropped_only_before_the_first_copy() -> None:
    script = PREAMBLE + COPY_LINE + ROWS + b"\\.\nSET transaction_timeout = 0;\n"
    assert run_filter(script).endswith(b"\\.\nSET transaction_timeout = 0;\n")


@pytest.mark.parametrize("block_size", [1, 7, 64, 1 << 20])
def test_any_block_size_gives_the_same_output(block_size: int) -> None:
    script = PREAMBLE + COPY_LINE + ROWS * 40 + TRAILER
    assert run_filter(script, block_size=block_size) == run_filter(script)


def test_two_workers_give_the_same_output_in_the_same_order() -> None:
    rows = b"".join(b"%d\tu%d@x.org\tN%d\t+1 555 %04d\n" % (n, n, n % 7, n) for n in range(3000))
    script = PREAMBLE + COPY_LINE + rows + TRAILER
    pooled = run_filter(script, run_blocks=workers.runner(2, idle=IDLE), block_size=4096)
    assert pooled == run_filter(script)


def test_the_stats_count_rows_and_name_the_masked_columns() -> None:
    stats = filter_script(
        io.BytesIO(PREAMBLE + COPY_LINE + ROWS + TRAILER), io.BytesIO(), plan(), KEY
    )
    assert stats.as_dict() == {
        "table": "public.customer",
        "rows": 2,
        "dropped": 0,
        "columns": ["id", "email", "First Name", "phone"],
        "masked_columns": ["email", "First Name", "phone"],
        "scrubbed": {},
    }


def test_a_column_missing_from_the_plan_is_kept_under_unlisted_keep() -> None:
    partial = TablePlan("public.customer", {"email": ColumnPlan("hash")}, "keep")
    out = run_filter(PREAMBLE + COPY_LINE + ROWS + TRAILER, partial)
    assert b"\tAnn\t+1 555 0100\n" in out


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            PREAMBLE + COPY_LINE.replace(b"phone", b"mobile") + ROWS + TRAILER,
            "public.customer.mobile: not in the masking plan (unlisted_columns: fail)",
        ),
        (
            PREAMBLE + COPY_LINE.replace(b"customer", b"other") + ROWS + TRAILER,
            "holds data of public.other, not public.customer",
        ),
        (
            PREAMBLE.replace(b"'UTF8'", b"'MULE_INTERNAL'") + COPY_LINE + ROWS + TRAILER,
            "masking cannot read the archive's encoding MULE_INTERNAL",
        ),
        (  # 0x81 is no character of Windows-1252
            PREAMBLE.replace(b"'UTF8'", b"'WIN1252'") + COPY_LINE + b"1\ta@b.com\t\x81\tx\n",
            "the archive is not valid WIN1252",
        ),
        (
            PREAMBLE.replace(b"SET client_encoding = 'UTF8';\n", b"") + COPY_LINE + ROWS + TRAILER,
            "no SET client_encoding",
        ),
        (PREAMBLE + TRAILER[3:], "holds no COPY data"),
        (PREAMBLE + b"INSERT INTO public.customer VALUES (1, 'a@b.com');\n", "INSERT statements"),
        (PREAMBLE + COPY_LINE + ROWS, "ended inside the COPY data"),
        (
            PREAMBLE + COPY_LINE + b"1\ta@b.com\tAnn\n" + TRAILER,
            "public.customer: row 1: has 3 fields, not 4",
        ),
    ],
)
def test_streams_that_cannot_be_masked_safely_stop_the_filter(script: bytes, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        run_filter(script)
    assert message in str(caught.value)
    assert "a@b.com" not in str(caught.value)


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [("LATIN1", "latin_1"), ("WIN1252", "cp1252"), ("EUC_JP", "euc_jp"), ("KOI8R", "koi8_r")],
)
@pytest.mark.parametrize("block_size", [1, 7, 1 << 20])
def test_a_script_in_another_encoding_is_masked_as_utf8(
    encoding: str, codec: str, block_size: int
) -> None:
    name = {"KOI8R": "Жанна", "EUC_JP": "やまだ"}.get(encoding, "Renée Müßig")
    rows = f"1\trenée@straße.example\t{name}\t+49 171 5551234\n".encode(codec, "replace")
    script = PREAMBLE.replace(b"'UTF8'", f"'{encoding}'".encode()) + COPY_LINE + rows + TRAILER
    keeps_name = plan(**{"First Name": ColumnPlan("keep")})
    out = run_filter(script, keeps_name, block_size=block_size).decode()  # UTF-8 or it fails
    expected = run_filter(PREAMBLE + COPY_LINE + rows.decode(codec).encode() + TRAILER, keeps_name)
    assert out == expected.decode()
    assert "SET client_encoding = 'UTF8';" in out and f"\t{name}\t" in out


def test_a_sql_ascii_script_goes_through_as_it_is() -> None:
    script = PREAMBLE.replace(b"'UTF8'", b"'SQL_ASCII'") + COPY_LINE + ROWS + TRAILER
    out = run_filter(script)
    assert b"SET client_encoding = 'SQL_ASCII';" in out
    assert out.replace(b"'SQL_ASCII'", b"'UTF8'") == run_filter(
        PREAMBLE + COPY_LINE + ROWS + TRAILER
    )


@pytest.mark.parametrize("rule", ["scrub", "full_name", "hash", "redact", "phone"])
def test_a_sql_ascii_value_that_is_no_utf8_is_masked_too(rule: str) -> None:
    """A SQL_ASCII database holds whatever bytes its clients sent (here LATIN1's é)."""
    script = PREAMBLE.replace(b"'UTF8'", b"'SQL_ASCII'") + COPY_LINE + TRAILER
    rows = b"1\ta@b.com\tRen\xe9e x@y.example and more\t555\n"
    spec = parse_spec(rule)
    name = ColumnPlan(spec.name, dict(spec.params), max_length=12)
    out = run_filter(script.replace(TRAILER, rows + TRAILER), plan(**{"First Name": name}))
    field = next(line for line in out.splitlines() if line.startswith(b"1\t")).split(b"\t")[2]
    assert len(field) <= 12 and b"x@y.example" not in field


def test_a_value_that_cannot_be_masked_names_column_and_row_but_not_the_value() -> None:
    dated = plan(phone=ColumnPlan("date_shift", {"days": 3}, "date"))
    script = (
        PREAMBLE + COPY_LINE + b"1\ta@b.com\tAnn\t2024-01-01\n2\t\\N\tBo\t31/12/1999\n" + TRAILER
    )
    out = io.BytesIO()
    with pytest.raises(FilterError) as caught:
        filter_script(io.BytesIO(script), out, dated, KEY, block_size=16)
    assert str(caught.value) == "public.customer.phone: row 2: not a date or timestamp in ISO form"
    assert out.getvalue().endswith(b"\t\t\t\torchestrator-mask: aborted\n")  # the COPY fails too


# --- sampling ---------------------------------------------------------------------------


def test_a_sql_ascii_sample_reads_bytes_that_are_no_utf8_as_replacement_characters() -> None:
    script = PREAMBLE.replace(b"'UTF8'", b"'SQL_ASCII'") + COPY_LINE
    rows = b"1\ta@b.com\tRen\xe9e x@y.example\t555\n"
    assert sample_rows(io.BytesIO(script + rows + TRAILER), 5)[1] == [
        ["1", "a@b.com", "Ren\ufffde x@y.example", "555"]
    ]


def test_sample_rows_gives_decoded_values_and_stops_reading_early() -> None:
    source = io.BytesIO(PREAMBLE + COPY_LINE + ROWS * 100000 + TRAILER)
    columns, rows = sample_rows(source, 3)
    assert columns == ["id", "email", "First Name", "phone"]
    assert rows == [
        ["1", "a@b.com", "Ann", "+1 555 0100"],
        ["2", None, "Bob\tby", "555-0101"],
        ["1", "a@b.com", "Ann", "+1 555 0100"],
    ]
    assert source.tell() < len(source.getvalue()) // 2


def test_a_copy_line_whose_names_hold_newlines_is_read_across_its_lines() -> None:
    line = b'COPY "line\nbreak"."t\nx" (id, "e\nmail", "q""\n") FROM stdin;\n'
    columns, rows = sample_rows(io.BytesIO(PREAMBLE + line + ROWS + TRAILER), 1)
    assert columns == ["id", "e\nmail", 'q"\n']
    assert rows == [["1", "a@b.com", "Ann", "+1 555 0100"]]


def test_sample_rows_of_an_empty_table_or_a_script_without_copy() -> None:
    assert sample_rows(io.BytesIO(PREAMBLE + COPY_LINE + TRAILER), 5) == (
        ["id", "email", "First Name", "phone"],
        [],
    )
    assert sample_rows(io.BytesIO(PREAMBLE), 5) == ([], [])


def test_sample_each_gives_every_copy_of_a_script_in_order() -> None:
    second = b"COPY public.note (id, body) FROM stdin;\n"
    # the first COPY's rows beyond the sample include one that reads like a COPY header
    decoy = b"COPY x\tFROM stdin;\n"
    script = (
        PREAMBLE
        + COPY_LINE
        + ROWS
        + decoy
        + ROWS
        + b"\\.\n\n"
        + second
        + b"7\tfirst\n8\t\\N\n"
        + b"\\.\n\n"
        + b"COPY public.empty (id) FROM stdin;\n"
        + TRAILER
    )
    assert sample_each(io.BytesIO(script), 2) == [
        (
            ["id", "email", "First Name", "phone"],
            [["1", "a@b.com", "Ann", "+1 555 0100"], ["2", None, "Bob\tby", "555-0101"]],
        ),
        (["id", "body"], [["7", "first"], ["8", None]]),
        (["id"], []),
    ]


# --- the program ------------------------------------------------------------------------


def _program(
    tmp_path: Path,
    script: bytes,
    environ: dict[str, str] | None = None,
    plan_text: str | None = None,
) -> tuple[int, bytes, str, Path]:
    plan_file, stats_file = tmp_path / "plan.json", tmp_path / "stats.json"
    plan_file.write_text(plan().to_json() if plan_text is None else plan_text)
    out, err = io.BytesIO(), io.StringIO()
    code = main(
        ["filter", "--plan", str(plan_file), "--stats", str(stats_file)],
        {"MASK_KEY": KEY_TEXT} if environ is None else environ,
        io.BytesIO(script),
        out,
        err,
    )
    return code, out.getvalue(), err.getvalue(), stats_file


def test_the_program_masks_stdin_to_stdout_and_writes_stats(tmp_path: Path) -> None:
    code, out, err, stats = _program(tmp_path, PREAMBLE + COPY_LINE + ROWS + TRAILER)
    assert (code, err) == (0, "")
    assert out == run_filter(PREAMBLE + COPY_LINE + ROWS + TRAILER)
    assert json.loads(stats.read_text())["tables"]["public.customer"]["rows"] == 2


def test_the_program_reports_an_unlisted_column_in_one_line_without_values(tmp_path: Path) -> None:
    script = PREAMBLE + COPY_LINE.replace(b"phone", b"mobile") + ROWS + TRAILER
    code, _, err, stats = _program(tmp_path, script)
    assert code == 1
    assert err == (
        "orchestrator-mask: error: public.customer.mobile: "
        "not in the masking plan (unlisted_columns: fail)\n"
    )
    assert not stats.exists()


@pytest.mark.parametrize(
    ("environ", "plan_text", "message"),
    [
        ({}, None, "MASK_KEY is not set"),
        ({"MASK_KEY": "short"}, None, "MASK_KEY must be at least 16 characters"),
        (None, "{}", "not a masking plan of format 1"),
        (None, "[", "not a masking plan"),
    ],
)
def test_a_bad_key_or_plan_exits_2(
    tmp_path: Path, environ: dict[str, str] | None, plan_text: str | None, message: str
) -> None:
    code, out, err, _ = _program(
        tmp_path, PREAMBLE + COPY_LINE + ROWS + TRAILER, environ, plan_text
    )
    assert code == 2
    assert out == b""
    assert err.startswith("orchestrator-mask: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_plans_round_trip_through_json() -> None:
    table_plan = plan(phone=ColumnPlan("date_shift", {"days": 3}, "date", None, "public.x.y"))
    assert TablePlan.from_json(table_plan.to_json()) == table_plan
    with pytest.raises(PlanError, match="bad transform"):
        TablePlan.from_json(table_plan.to_json().replace('"days": 3', '"days": 0'))


class _ClosedPipe(io.BytesIO):
    def write(self, data: Any) -> int:
        raise BrokenPipeError


def test_a_reader_that_stops_early_is_one_error_line(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan().to_json())
    err = io.StringIO()
    script = io.BytesIO(PREAMBLE + COPY_LINE + ROWS + TRAILER)
    code = main(
        ["filter", "--plan", str(plan_file)], {"MASK_KEY": KEY_TEXT}, script, _ClosedPipe(), err
    )
    assert code == 1
    assert (
        err.getvalue()
        == "orchestrator-mask: error: the reader of the output (psql) stopped early\n"
    )


def test_the_program_with_two_workers_writes_each_line_once(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan().to_json())
    pad = b"0" * 200  # kept: enough blocks for the workers to start, few rows to mask
    rows = b"".join(
        b"%d%s\tu%d@x.org\tN%d\t+1 555 %04d\n" % (n, pad, n, n % 7, n) for n in range(50000)
    )
    script = PREAMBLE + COPY_LINE + rows + TRAILER
    outputs = []
    for count in ("1", "2"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.masking",
                "filter",
                "--plan",
                str(plan_file),
                "--workers",
                count,
            ],
            input=script,
            capture_output=True,
            env={**os.environ, "MASK_KEY": KEY_TEXT},
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == run_filter(script)


# --- one filter, many tables ------------------------------------------------------------


def _block(sql_name: bytes, rows: bytes) -> bytes:
    return b"COPY " + sql_name + b" (id, email) FROM stdin;\n" + rows + b"\\.\n\n"


ODD = [  # (table key, COPY name, transform of its email; the same dotted text twice, case)
    ("public.Mixed Case", b'public."Mixed Case"', "hash"),
    ('"a.b".c', b'"a.b".c', "email"),
    ('a."b.c"', b'a."b.c"', "keep"),
    ("public.lower", b"public.lower", "redact"),
    ("public.LOWER", b'public."LOWER"', "keep"),
    ('public."quote""d"', b'public."quote""d"', "hash"),
    ("public.orders_p1", b"public.orders_p1", "email"),
]
ODD_ROWS = b"1\traw1@secret.example\n2\t\\N\n3\traw3@secret.example\n"


def _odd_plans() -> dict[str, TablePlan]:
    return {
        key: TablePlan(
            key,
            {
                "id": ColumnPlan("keep", base_type="int4"),
                "email": ColumnPlan(transform, dict(parse_spec(transform).params)),
            },
        )
        for key, _name, transform in ODD
    }


def test_one_filter_masks_each_copy_with_the_plan_of_exactly_the_table_it_names() -> None:
    plans = _odd_plans()
    script = PREAMBLE + b"".join(_block(name, ODD_ROWS) for _k, name, _t in ODD) + TRAILER[3:]
    out = io.BytesIO()
    stats = filter_tables(io.BytesIO(script), out, plans, KEY)
    head, tail = PREAMBLE.replace(b"SET transaction_timeout = 0;\n", b""), TRAILER[3:]
    alone = b""
    for key, name, _transform in ODD:  # each block as a filter of that table alone gives it
        one = run_filter(PREAMBLE + _block(name, ODD_ROWS) + tail, plans[key])
        alone += one[len(head) : -len(tail)]
    assert out.getvalue() == head + alone + tail
    assert b"raw1@secret" in out.getvalue()  # the kept tables: a."b.c" and public."LOWER"
    assert out.getvalue().count(b"raw1@secret") == 2
    assert {key: (s.rows, s.masked_columns) for key, s in stats.items()} == {
        key: (3, [] if transform == "keep" else ["email"]) for key, _n, transform in ODD
    }


def test_a_copy_of_a_table_without_a_plan_stops_the_shared_filter() -> None:
    plans = _odd_plans()
    script = PREAMBLE + _block(b"public.lower", ODD_ROWS) + _block(b'public."Lower"', ODD_ROWS)
    with pytest.raises(FilterError, match=r"holds data of public\.Lower, not any of the 7 tables"):
        filter_tables(io.BytesIO(script), io.BytesIO(), plans, KEY)


def test_a_bad_row_in_a_later_table_names_that_table_and_its_own_row() -> None:
    plans = {
        "public.first": plan(),
        "public.second": TablePlan(
            "public.second",
            {
                "id": ColumnPlan("keep", base_type="int4"),
                "day": ColumnPlan("date_shift", {"days": 3}, "date"),
            },
        ),
    }
    plans["public.first"] = TablePlan("public.first", plans["public.first"].columns)
    script = (
        PREAMBLE
        + COPY_LINE.replace(b"customer", b"first")
        + ROWS
        + b"\\.\n"
        + b"COPY public.second (id, day) FROM stdin;\n1\t2024-01-01\n2\tyesterday\n"
        + TRAILER
    )
    out = io.BytesIO()
    with pytest.raises(FilterError) as caught:
        filter_tables(io.BytesIO(script), out, plans, KEY)
    assert str(caught.value) == "public.second.day: row 2: not a date or timestamp in ISO form"
    assert out.getvalue().endswith(b"\t\torchestrator-mask: aborted\n")


def test_a_plans_file_round_trips_and_a_single_plan_file_still_reads() -> None:
    plans = _odd_plans()
    assert plans_from_json(plans_to_json(plans.values())) == plans
    assert plans_from_json(plan().to_json()) == {"public.customer": plan()}
    twice = plans_to_json([plan(), plan()])
    with pytest.raises(PlanError, match=r"public\.customer has two plans"):
        plans_from_json(twice)
    with pytest.raises(PlanError, match="not a list of masking plans"):
        plans_from_json('{"format": 1, "plans": {}}')


def IDLE() -> workers.IdleMark:
    """An idle machine (or one whose idle time cannot be read): workers are worth it."""
    return workers.IdleMark(None, 0.0)


class Machine:
    """A machine whose cores are busy, then idle: each window of blocks masked here sees
    the next of `idle_cores`."""

    def __init__(self, *idle_cores: float) -> None:
        self.idle_cores, self.marks, self.idle = list(idle_cores), 0, 0.0

    def __call__(self) -> workers.IdleMark:
        if self.marks % 2:  # the end of a window
            self.idle += self.idle_cores[min(self.marks // 2, len(self.idle_cores) - 1)]
        self.marks += 1
        return workers.IdleMark(self.idle, float(self.marks // 2))


def _forks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    forks: list[str] = []
    real = workers.multiprocessing.get_context

    def counting(method: str) -> Any:
        forks.append(method)
        return real(method)

    monkeypatch.setattr(workers.multiprocessing, "get_context", counting)
    return forks


@pytest.mark.parametrize(
    ("idle_cores", "forked_after"),
    [
        ((0.2,), None),  # the server and pg_restore keep the other core busy: no workers
        ((0.2, 0.1, 0.9), 3),  # a core went idle: workers from then on
        ((1.0,), 1),
    ],
)
def test_workers_are_forked_only_when_a_core_is_idle_enough(
    monkeypatch: pytest.MonkeyPatch, idle_cores: tuple[float, ...], forked_after: int | None
) -> None:
    forks = _forks(monkeypatch)
    run = workers.runner(2, idle=Machine(*idle_cores))
    assert run is not None
    masker = compile_table(plan(), KEY, ["id", "email", "First Name", "phone"])
    blocks = [b"%d\tu%d@x.org\tN%d\t+1 555 %04d\n" % (n, n, n, n) for n in range(50)]
    out = run(masker, iter(blocks))
    windows = forked_after or 99
    for index in range(min(windows * workers.POOL_AFTER_BLOCKS, len(blocks))):
        assert next(out) == masker(blocks[index])
        assert forks == []  # every block so far was masked here, as it came
    assert list(out) == list(map(masker, blocks))[windows * workers.POOL_AFTER_BLOCKS :]
    assert forks == ([] if forked_after is None else ["fork"])


def test_a_small_table_is_masked_without_forking_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    forks = _forks(monkeypatch)
    run = workers.runner(2, idle=IDLE)
    assert run is not None
    masker = compile_table(plan(), KEY, ["id", "email", "First Name", "phone"])
    small = [ROWS] * workers.POOL_AFTER_BLOCKS
    assert list(run(masker, iter(small))) == [masker(ROWS)] * len(small)
    assert list(run(masker, iter([]))) == []
    assert forks == []
    large = [ROWS] * (workers.POOL_AFTER_BLOCKS + 1)
    assert list(run(masker, iter(large))) == [masker(ROWS)] * len(large)
    assert forks == ["fork"]


def test_a_large_tables_first_blocks_go_out_before_the_rest_is_read() -> None:
    run = workers.runner(2, idle=IDLE)
    assert run is not None
    masker = compile_table(plan(), KEY, ["id", "email", "First Name", "phone"])
    read: list[int] = []

    def blocks() -> Iterator[bytes]:
        for n in range(3 * workers.POOL_AFTER_BLOCKS):
            read.append(n)
            yield ROWS

    out = run(masker, blocks())
    assert next(out) == masker(ROWS)
    assert read == [0]  # streamed: the first block was not held back for the pool
    assert len(list(out)) == 3 * workers.POOL_AFTER_BLOCKS - 1


_WORKER_MASK = workers._mask


def _recording_mask(block: bytes) -> tuple[bytes, dict[str, int]]:
    """`workers._mask`, noting each block's first field in the file MASK_TEST_RECORD."""
    with open(os.environ["MASK_TEST_RECORD"], "a", encoding="utf-8") as record:
        record.write(block.split(b"\t")[0].decode() + "\n")
    return _WORKER_MASK(block)


@pytest.mark.parametrize("count", [2, 3])
def test_the_filter_process_masks_every_nth_block_beside_n_minus_1_forked_workers(
    count: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = tmp_path / "masked-in-workers"
    monkeypatch.setenv("MASK_TEST_RECORD", str(record))
    monkeypatch.setattr(workers, "_mask", _recording_mask)
    sizes: list[int] = []
    real = workers.multiprocessing.get_context

    class Recording:
        def __init__(self, method: str) -> None:
            self.context = real(method)

        def Pool(self, processes: int) -> Any:  # multiprocessing's name
            sizes.append(processes)
            return self.context.Pool(processes)

    monkeypatch.setattr(workers.multiprocessing, "get_context", Recording)
    run = workers.runner(count, idle=IDLE)
    assert run is not None
    masker = compile_table(plan(), KEY, ["id", "email", "First Name", "phone"])
    blocks = [b"%d\tu%d@x.org\tN%d\t+1 555 %04d\n" % (n, n, n, n) for n in range(23)]
    assert list(run(masker, iter(blocks))) == list(map(masker, blocks))
    assert sizes == [count - 1]
    in_workers = sorted(int(line) for line in record.read_text().split())
    first = workers.POOL_AFTER_BLOCKS  # blocks before it are all masked here, as they come
    assert in_workers == [n for n in range(first, 23) if (n - first) % count != count - 1]


# --- subsets: the rows a first pass kept ------------------------------------------------


def _subset_filter(kept: list[bool], nulled: list[bool], rows: bytes) -> tuple[bytes, Any]:
    from orchestrator.masking.stream import filter_tables, flag_droppers
    from orchestrator.masking.subset_flags import RowFlags

    flags = RowFlags(np.array(kept), {("id",): np.array(nulled)})
    out = io.BytesIO()
    keep_all = TablePlan("public.customer", {}, "keep")
    stats = filter_tables(
        io.BytesIO(PREAMBLE + COPY_LINE + rows + TRAILER),
        out,
        {"public.customer": keep_all},
        KEY,
        droppers=flag_droppers({"public.customer": flags}),
        block_size=16,  # rows cross block edges
    )
    return out.getvalue(), stats["public.customer"]


def test_a_subset_drops_the_rows_not_kept_and_nulls_flagged_keys_before_masking() -> None:
    rows = b"".join(b"%d\tx%d@b.com\tAnn\t555\n" % (n, n) for n in range(1, 7))
    out, stats = _subset_filter(
        [True, False, True, False, False, True], [False, False, True, False, False, False], rows
    )
    body = out.split(COPY_LINE)[1].split(b"\\.\n")[0]
    assert body == b"1\tx1@b.com\tAnn\t555\n\\N\tx3@b.com\tAnn\t555\n6\tx6@b.com\tAnn\t555\n"
    assert (stats.rows, stats.dropped) == (3, 3)


@pytest.mark.parametrize("flagged", [2, 9])
def test_a_subset_whose_rows_differ_from_the_archive_stops_the_load(flagged: int) -> None:
    rows = b"".join(b"%d\tx@b.com\tAnn\t555\n" % n for n in range(1, 6))
    with pytest.raises(FilterError, match=r"public\.customer: the archive holds"):
        _subset_filter([True] * flagged, [False] * flagged, rows)
