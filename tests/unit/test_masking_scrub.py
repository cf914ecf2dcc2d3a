"""Items hidden inside values: scrub (free text, bytea), array elements and every string
leaf of JSON documents are masked, the rest kept; outputs stay valid for the column and
go through the COPY filter with its escapes intact."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pytest

from orchestrator.masking import _array, _scrub, workers
from orchestrator.masking.plan import ColumnPlan, TablePlan
from orchestrator.masking.stream import escape, filter_script, unescape
from orchestrator.masking.transforms import (
    SpecError,
    TransformError,
    bytea_bytes,
    compile_spec,
    fit_problem,
    load_key,
    parse_spec,
    unique_safe,
)
from orchestrator.schema_facts import Column

KEY = load_key("unit-test-mask-key-0001")
OTHER_KEY = load_key("unit-test-mask-key-0002")


def scrub(text: str, max_length: int | None = None, key: Any = KEY) -> str:
    out = compile_spec(parse_spec("scrub"), key, "text", max_length).apply(text.encode())
    assert out is not None
    return out.decode()


def email(address: str) -> str:
    out = compile_spec(parse_spec("email"), KEY).apply(address.encode())
    assert out is not None
    return out.decode()


def phone(number: str) -> str:
    out = compile_spec(parse_spec("phone"), KEY).apply(number.encode())
    assert out is not None
    return out.decode()


def column(type_: str, base: str, category: str, **more: Any) -> Column:
    return Column(name="c", type=type_, base_type=base, category=category, **more)


# --- finding items ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("reach me at someone@domain.org please", ["email"]),
        ("a.b+tag@mail.example.co.uk, c_d@x-y.io.", ["email", "email"]),
        ("josé.müller@bücher.de schrieb", ["email"]),
        ("call +1 202 555 0143 today", ["phone"]),
        ("call (202) 555-0143 or 020 7946 0007", ["phone", "phone"]),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", ["iban"]),
        ("pay to GB82WEST12345698765432.", ["iban"]),
        ("card 4111 1111 1111 1111 exp 12/27", ["card"]),
        ("card 4111-1111-1111-1111", ["card"]),
        ("from 192.168.1.20:8080 and 10.0.0.1", ["ip", "ip"]),
        ("v6 2001:db8::1 and fe80::1ff:fe23:4567:890a.", ["ip", "ip"]),
        ("mapped ::ffff:192.0.2.1 here", ["ip"]),
        ("mail a@b.com\tphone +44 20 7946 0007", ["email", "phone"]),
    ],
)
def test_embedded_items_are_found_wherever_they_sit(text: str, kinds: list[str]) -> None:
    assert _scrub.kinds(text) == kinds


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-05-17 10:30:00 order 12345 shipped",
        "the total was 1234567.89 EUR",
        "status ACTIVE, plan GOLD, code AB12",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "DE89 3704 0044 0532 0130 01 is no IBAN (bad check digits)",
        "version 1.2.3 released, 3 items, room 101",
        "std::vector<int> and a: b: c",
        "sha 9f86d081884c7d659a2feaea0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
        "user@localhost has no domain",
        "",
    ],
)
def test_text_without_items_is_left_alone(text: str) -> None:
    assert _scrub.kinds(text) == []
    assert scrub(text) == text


# --- scrub --------------------------------------------------------------------------------


def test_an_embedded_email_becomes_what_the_email_transform_gives() -> None:
    out = scrub("Reach me at Someone@Domain.org, thanks!")
    assert out == f"Reach me at {email('Someone@Domain.org')}, thanks!"


def test_an_embedded_phone_becomes_what_the_phone_transform_gives() -> None:
    assert scrub("call +1 202 555 0143.") == f"call {phone('+1 202 555 0143')}."


def test_scrub_keeps_every_word_around_the_items() -> None:
    text = "Dear Ann, mail x@y.org or call +44 20 7946 0007; IBAN GB82WEST12345698765432 ok"
    out = scrub(text)
    for raw in ("x@y.org", "7946 0007", "GB82WEST12345698765432"):
        assert raw not in out
    assert re.sub(r"\S+@example\.com|\+[0-9 ]{8,}\d|GB\d\d[A-Z]{4}\d{14}", "#", out) == (
        "Dear Ann, mail # or call #; IBAN # ok"
    )


def test_ibans_stay_ibans_of_the_same_country_and_layout() -> None:
    out = scrub("DE89 3704 0044 0532 0130 00")
    assert out != "DE89 3704 0044 0532 0130 00"
    assert re.fullmatch(r"DE\d\d( \d{4}){4} \d\d", out)
    assert _scrub.iban_valid(out)


def test_card_numbers_keep_their_network_digit_layout_and_pass_luhn() -> None:
    out = scrub("4111-1111-1111-1111")
    assert out != "4111-1111-1111-1111"
    assert re.fullmatch(r"4\d{3}-\d{4}-\d{4}-\d{4}", out)
    assert _scrub.is_card(out)


def test_ip_addresses_become_private_addresses() -> None:
    v4, v6 = scrub("192.168.1.20"), scrub("2001:db8::1")
    assert v4.startswith("10.") and _scrub.kind_of_run(v4) == "ip"
    assert v6.startswith("fd") and _scrub.is_ipv6(v6)


def test_scrub_is_deterministic_and_keyed() -> None:
    text = "x@y.org +1 202 555 0143 4111111111111111 192.168.1.20 GB82WEST12345698765432"
    assert scrub(text) == scrub(text)
    assert scrub(text, key=OTHER_KEY) != scrub(text)
    assert all(a != b for a, b in zip(scrub(text).split(), text.split(), strict=True))


def test_scrub_fits_the_column_length_in_characters() -> None:
    out = scrub("é mail someone@domain.org", max_length=20)
    assert len(out) == 20 and "someone" not in out


def test_scrub_counts_the_items_it_replaced() -> None:
    compiled = compile_spec(parse_spec("scrub"), KEY)
    assert compiled.tally is not None
    compiled.apply(b"a@b.org and c@d.org, +1 202 555 0143")
    assert compiled.column is not None
    compiled.column([b"nothing", b"192.168.0.1", b"x@y.org"])
    assert compiled.tally.total() == 5


@pytest.mark.parametrize("rows", [1, 7, 3000])
def test_scrub_a_column_at_a_time_gives_exactly_the_one_value_outputs(rows: int) -> None:
    compiled = compile_spec(parse_spec("scrub"), KEY, "varchar", 60)
    values = [
        f"row {n} mail u{n}@x{n % 5}.org call +1 202 555 {n:04d} é 192.168.{n % 256}.1".encode()
        if n % 3
        else f"plain row {n} with nothing".encode()
        for n in range(rows)
    ]
    assert compiled.column is not None
    assert compiled.column(values) == [compiled.apply(value) for value in values]


# --- bytea --------------------------------------------------------------------------------


def test_bytea_text_is_scrubbed_and_written_back_as_hex() -> None:
    compiled = compile_spec(parse_spec("scrub"), KEY, "bytea")
    value = b"\\x" + b"mail a@b.org please".hex().encode()
    out = compiled.apply(value)
    assert out is not None and out.startswith(b"\\x")
    assert bytea_bytes(out).decode() == f"mail {email('a@b.org')} please"


def test_bytea_in_the_escape_form_is_read_too() -> None:
    assert bytea_bytes(b"a\\\\b\\101") == b"a\\bA"


def test_bytea_that_is_not_utf8_stops_scrub_without_showing_it() -> None:
    compiled = compile_spec(parse_spec("scrub"), KEY, "bytea")
    with pytest.raises(TransformError, match="not UTF-8") as caught:
        compiled.apply(b"\\xff00c3")
    assert "ff00" not in str(caught.value)


def test_bytea_redact_gives_the_text_as_bytes() -> None:
    compiled = compile_spec(parse_spec("redact"), KEY, "bytea")
    assert compiled.apply(b"\\x00") == b"\\x" + b"REDACTED".hex().encode()


# --- arrays -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "elements"),
    [
        (b"{}", []),
        (b"{a,b}", [b"a", b"b"]),
        (b'{"a b","c,d","e\\"f","g\\\\h"}', [b"a b", b"c,d", b'e"f', b"g\\h"]),
        (b"{NULL,null,\"NULL\",''}", [None, None, b"NULL", b"''"]),
        (b"{{1,2},{3,NULL}}", [[b"1", b"2"], [b"3", None]]),
        (b"[0:1]={x,y}", [b"x", b"y"]),
        (b"{ a , b\\ }", [b"a", b"b "]),
        ('{"é\t\n",ü}'.encode(), ["é\t\n".encode(), "ü".encode()]),
    ],
)
def test_array_literals_read_and_write_back_alike(text: bytes, elements: list[Any]) -> None:
    prefix, parsed = _array.parse(text)
    assert parsed == elements
    assert _array.parse(_array.dump(prefix, parsed)) == (prefix, parsed)


@pytest.mark.parametrize("text", [b"", b"{a", b'{"a}', b"{a}x", b"a,b", b"{a,,b}", b'{a"b"}'])
def test_a_broken_array_literal_is_an_error(text: bytes) -> None:
    with pytest.raises(_array.InvalidArray):
        _array.parse(text)


def test_each_element_is_masked_and_null_elements_stay_null() -> None:
    compiled = compile_spec(parse_spec({"transform": "array", "each": "email"}), KEY, "_text")
    out = compiled.apply(b'{a@b.org,NULL,"c@d.org"}')
    assert out == f'{{"{email("a@b.org")}",NULL,"{email("c@d.org")}"}}'.encode()


def test_arrays_of_every_depth_are_scrubbed_element_by_element() -> None:
    compiled = compile_spec(parse_spec({"transform": "array", "each": "scrub"}), KEY, "_text")
    out = compiled.apply(b'{{"note a@b.org","x\\"y"},{NULL,"call +1 202 555 0143"}}')
    assert out is not None
    _prefix, elements = _array.parse(out)
    assert elements == [
        [f"note {email('a@b.org')}".encode(), b'x"y'],
        [None, f"call {phone('+1 202 555 0143')}".encode()],
    ]
    assert compiled.tally is not None and compiled.tally.total() == 2


def test_an_empty_array_stays_empty() -> None:
    compiled = compile_spec(parse_spec({"transform": "array", "each": "hash"}), KEY, "_text")
    assert compiled.apply(b"{}") == b"{}"


def test_a_value_that_is_not_an_array_stops_the_transform() -> None:
    compiled = compile_spec(parse_spec({"transform": "array", "each": "hash"}), KEY, "_text")
    with pytest.raises(TransformError, match="not an array"):
        compiled.apply(b"secret@x.org")


# --- JSON other strings ---------------------------------------------------------------------


def test_json_other_strings_scrubs_every_leaf_no_path_reaches() -> None:
    rule = {"transform": "json", "paths": {"contact.email": "email"}, "other_strings": "scrub"}
    compiled = compile_spec(parse_spec(rule), KEY, "jsonb")
    document = {
        "contact": {"email": "x@y.org", "note": "or call +44 20 7946 0007"},
        "items": [{"by": "z@q.de", "qty": 2}, "plain"],
        "a@b.org": True,
        "n": 4111111111111111,
    }
    out = compiled.apply(json.dumps(document).encode())
    assert out is not None
    assert json.loads(out) == {
        "contact": {"email": email("x@y.org"), "note": f"or call {phone('+44 20 7946 0007')}"},
        "items": [{"by": email("z@q.de"), "qty": 2}, "plain"],
        email("a@b.org"): True,  # a key holding an item is scrubbed like a string leaf
        "n": 4111111111111111,  # numbers are kept
    }


def test_json_other_strings_scrubs_keys_and_paths_still_match_the_original_keys() -> None:
    rule = {"transform": "json", "paths": {"owners.*": "hash"}, "other_strings": "scrub"}
    compiled = compile_spec(parse_spec(rule), KEY, "jsonb")
    document = {"owners": {"ann@corp.example": "admin"}, "by ip": {"198.51.100.7": 1, "ok": 2}}
    out = compiled.apply(json.dumps(document).encode())
    assert out is not None
    owners, by_ip = json.loads(out)["owners"], json.loads(out)["by ip"]
    assert list(owners) == [email("ann@corp.example")] and owners[email("ann@corp.example")] != (
        "admin"
    )
    assert "198.51.100.7" not in by_ip and by_ip["ok"] == 2 and len(by_ip) == 2


def test_json_with_other_strings_kept_keeps_keys() -> None:
    rule = {"transform": "json", "paths": {"a": "hash"}}
    compiled = compile_spec(parse_spec(rule), KEY, "jsonb")
    assert compiled.apply(b'{"x@y.org": 1}') == b'{"x@y.org": 1}'


def test_json_other_strings_alone_needs_no_paths() -> None:
    compiled = compile_spec(parse_spec({"transform": "json", "other_strings": "scrub"}), KEY)
    assert compiled.apply(b'["a@b.org", null]') == f'["{email("a@b.org")}", null]'.encode()


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("(1,ann@x.org)", "(1,{ann})"),
        ('("1 Main St, ann@x.org","+44 20 7946 0007")', '("1 Main St, {ann}","{phone}")'),
        ('("say ""ann@x.org""",)', '("say ""{ann}""",)'),
        ('(,"(ann@x.org)",198.51.100.7)', '(,"({ann})",{ip})'),
        ("()", "()"),
    ],
)
def test_scrub_on_a_composite_value_replaces_items_and_keeps_the_record_text_valid(
    record: str, expected: str
) -> None:
    compiled = compile_spec(parse_spec("scrub"), KEY, "address")
    fields = {"ann": email("ann@x.org"), "phone": phone("+44 20 7946 0007")}
    assert (
        compiled.apply(record.encode())
        == expected.format(**fields, ip=scrub("198.51.100.7")).encode()
    )


# --- specs and fitting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"transform": "array"}, "parameter 'each' is required"),
        ({"transform": "array", "each": "emial"}, "each: unknown transform"),
        ({"transform": "array", "each": {"transform": "array", "each": "hash"}}, "arrays of"),
        ({"transform": "json", "other_strings": "hash"}, "other_strings must be keep or scrub"),
        ({"transform": "json"}, "paths must map"),
        ({"transform": "scrub", "domain": "no domain"}, "domain must be"),
    ],
)
def test_bad_specs_of_the_new_transforms_are_refused(raw: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


TEXT = column("text", "text", "S")
BYTEA = column("bytea", "bytea", "U")
TEXTS = column("text[]", "_text", "A")
SHORT_TEXTS = column("character varying(10)[]", "_varchar", "A", max_length=10)
INTS = column("integer", "int4", "N", not_null=True)
RECORD = column("public.address", "address", "C")


@pytest.mark.parametrize(
    ("rule", "target", "unique", "problem"),
    [
        ("scrub", TEXT, False, None),
        ("scrub", BYTEA, False, None),
        ("redact", BYTEA, False, None),
        ("set_null", BYTEA, False, None),
        ("scrub", INTS, False, "scrub needs a text or bytea column"),
        ("scrub", RECORD, False, None),
        ("scrub", RECORD, True, "scrub can give two rows the same value"),
        ("redact", RECORD, False, "redact needs a text column"),
        ({"transform": "array", "each": "scrub"}, TEXTS, False, None),
        ({"transform": "array", "each": "email"}, SHORT_TEXTS, False, "each: email needs"),
        ({"transform": "array", "each": "hash"}, TEXT, False, "array needs an array column"),
        ({"transform": "array", "each": "hash"}, TEXTS, True, None),
        ({"transform": "array", "each": "scrub"}, TEXTS, True, "part of a unique key"),
        ("scrub", TEXT, True, "scrub can give two rows the same value"),
        ("phone", TEXT, True, "phone can give two rows the same value"),
        ("full_name", TEXT, True, "full_name can give two rows the same value"),
        ({"transform": "date_shift", "days": 3}, column("date", "date", "D"), True, "date_shift"),
        ("set_null", TEXT, True, "gives every row NULL, but the column is part of a unique key"),
        ({"transform": "value", "value": 0}, INTS, True, "gives every row the same value"),
        ("email", TEXT, True, None),
        ("hash", TEXT, True, None),
        ("permute", INTS, True, None),
        ("permute", TEXT, False, "permute needs a column of type int2 or int4 or int8"),
    ],
)
def test_fit_problems_of_hidden_data_and_keys(
    rule: object, target: Column, unique: bool, problem: str | None
) -> None:
    found = fit_problem(parse_spec(rule), target, unique)
    assert found == problem if problem is None else problem in str(found)


def test_only_transforms_that_keep_values_distinct_are_unique_safe() -> None:
    names = ("keep", "email", "hash", "permute", "phone", "full_name", "scrub", "set_null")
    safe = [name for name in names if unique_safe(parse_spec(name))]
    assert safe == ["keep", "email", "hash", "permute"]
    json_rule = {"transform": "json", "paths": {"a": "hash"}, "other_strings": "scrub"}
    assert not unique_safe(parse_spec(json_rule))


# --- through the COPY filter ----------------------------------------------------------------


def run_table(rows: bytes, columns: dict[str, ColumnPlan], run_blocks: Any = None) -> Any:
    names = ", ".join(columns)
    script = (
        b"SET client_encoding = 'UTF8';\n"
        + f"COPY public.t ({names}) FROM stdin;\n".encode()
        + rows
        + b"\\.\n"
    )
    sink = io.BytesIO()
    plan = TablePlan("public.t", columns)
    stats = filter_script(io.BytesIO(script), sink, plan, KEY, run_blocks, block_size=512)
    body = sink.getvalue().split(b"FROM stdin;\n", 1)[1].rsplit(b"\\.\n", 1)[0]
    return body.split(b"\n")[:-1], stats


NOTE_COLUMNS = {
    "id": ColumnPlan("keep", base_type="int4"),
    "note": ColumnPlan("scrub", {"domain": "example.com"}),
}


def test_scrubbed_fields_keep_their_copy_escapes() -> None:
    raw = "line one\ta@b.org\\ end\nnext: +1 202 555 0143"
    lines, stats = run_table(b"1\t" + escape(raw.encode()) + b"\n2\t\\N\n", NOTE_COLUMNS)
    assert lines[1] == b"2\t\\N"
    field = lines[0].split(b"\t")[1]
    assert unescape(field).decode() == scrub(raw)
    assert stats.scrubbed == {"note": 2}


@pytest.mark.parametrize("run_blocks", [None, workers.runner(2)])
def test_the_filter_counts_scrubbed_items_per_column(run_blocks: Any) -> None:
    rows = b"".join(
        b"%d\t%s\n" % (n, b"mail u%d@x.org" % n if n % 10 == 0 else b"nothing here")
        for n in range(2000)
    )
    lines, stats = run_table(rows, NOTE_COLUMNS, run_blocks)
    assert len(lines) == 2000
    assert stats.scrubbed == {"note": 200}
    assert not any(b"@x.org" in line for line in lines)


def test_arrays_json_and_bytea_go_through_the_filter() -> None:
    columns = {
        "tags": ColumnPlan(
            "array", {"each": {"transform": "scrub", "domain": "example.com"}}, "_text"
        ),
        "doc": ColumnPlan("json", {"paths": {}, "other_strings": "scrub"}, "jsonb"),
        "blob": ColumnPlan("scrub", {"domain": "example.com"}, "bytea"),
    }
    blob = b"\\\\x" + b"to a@b.org".hex().encode()
    row = b'{"a@b.org","x\\\\\\\\y",NULL}\t{"k": "c@d.org\\\\n"}\t' + blob + b"\n"
    lines, stats = run_table(row, columns)
    tags, doc, out_blob = (unescape(field) for field in lines[0].split(b"\t"))
    assert _array.parse(tags)[1] == [email("a@b.org").encode(), b"x\\y", None]
    assert json.loads(doc) == {"k": email("c@d.org") + "\n"}
    assert bytea_bytes(out_blob) == f"to {email('a@b.org')}".encode()
    assert stats.scrubbed == {"tags": 1, "doc": 1, "blob": 1}


# --- permute: integer keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_type", "low", "high"),
    [
        ("int2", 0, 9),
        ("int2", 10, 99),
        ("int2", -9, -1),
        ("int2", -99, -10),
        ("int2", 10000, 32767),
        ("int2", -32768, -10000),
    ],
)
def test_permute_is_a_cycle_through_each_digit_class(base_type: str, low: int, high: int) -> None:
    compiled = compile_spec(parse_spec("permute"), KEY, base_type)
    values = list(range(low, high + 1))
    outputs = [int(compiled.apply(str(value).encode()) or b"") for value in values]
    assert sorted(outputs) == values  # distinct stays distinct, within the class
    assert all(out != value for out, value in zip(outputs, values, strict=True))


def test_permute_keeps_big_keys_in_their_type_and_digit_count() -> None:
    compiled = compile_spec(parse_spec("permute"), KEY, "int8")
    for value in (4111111111111111, 9223372036854775807, -9223372036854775808):
        out = compiled.apply(str(value).encode())
        assert out is not None and int(out) != value
        assert len(out.lstrip(b"-")) == len(str(abs(value)))
        assert -(2**63) <= int(out) < 2**63 and (int(out) < 0) == (value < 0)
    other = compile_spec(parse_spec("permute"), OTHER_KEY, "int8")
    assert other.apply(b"4111111111111111") != compiled.apply(b"4111111111111111")


def test_permute_refuses_what_is_not_a_whole_number_in_range() -> None:
    compiled = compile_spec(parse_spec("permute"), KEY, "int2")
    for value in (b"1.5", b"40000"):
        with pytest.raises(TransformError):
            compiled.apply(value)


# --- CHECK constraints of domains and columns -------------------------------------------------

CORP = "CHECK ((VALUE ~ '@corp\\.example$'::text))"
ANY_MAIL = "CHECK ((VALUE ~ '^[^@]+@[^@]+\\.[[:alpha:]]+$'::text))"
SHORT = "CHECK ((char_length((VALUE)::text) <= 10))"
NOT_MAIL = "CHECK (((VALUE)::text !~* '@example\\.com$'::text))"
EITHER = "CHECK (((VALUE ~ '^a'::text) OR (VALUE ~ '^b'::text)))"
POSITIVE = "CHECK ((VALUE > 0))"


@pytest.mark.parametrize(
    ("rule", "checks", "broken"),
    [
        ("email", (CORP,), True),
        ("email", (ANY_MAIL,), False),
        ("email", (NOT_MAIL,), True),
        ("hash", (ANY_MAIL,), True),
        ("hash", (SHORT,), True),
        ({"transform": "redact", "text": "n/a"}, (SHORT,), False),
        ({"transform": "redact", "text": "n/a"}, (CORP,), True),
        ("email", (EITHER,), False),  # an OR is left to the server
        ("set_null", (CORP,), False),  # NULL passes a CHECK
        ("phone", (CORP,), False),  # outputs vary with the input: left to the server
    ],
)
def test_outputs_that_a_domain_or_column_check_refuses_are_found(
    rule: object, checks: tuple[str, ...], broken: bool
) -> None:
    target = column("public.mail", "text", "S", checks=checks)
    problem = fit_problem(parse_spec(rule), target)
    assert (problem is not None) == broken
    if broken:
        assert problem is not None and "refuses" in problem and checks[0] in problem


def test_a_value_that_breaks_a_numeric_check_is_left_to_the_server() -> None:
    target = column("public.positive", "int4", "N", checks=(POSITIVE,))
    assert fit_problem(parse_spec({"transform": "value", "value": 0}), target) is None


@pytest.mark.parametrize("max_length", [None, 24])
def test_the_filter_scrubs_a_column_in_one_pass_exactly_like_value_by_value(
    max_length: int | None,
) -> None:
    texts = [f"row {n}: mail u{n}@x.org, call +1 202 555 {n:04d} é" for n in range(300)]
    rows = b"".join(b"%d\t%s\n" % (n, text.encode()) for n, text in enumerate(texts))
    columns = {
        "id": ColumnPlan("keep", base_type="int4"),
        "note": ColumnPlan("scrub", {"domain": "example.com"}, "varchar", max_length),
    }
    lines, _stats = run_table(rows, columns)
    assert [line.split(b"\t")[1].decode() for line in lines] == [
        scrub(text, max_length) for text in texts
    ]


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        (b"v 10.20.3 x", []),  # 5 digits in 3 groups: not an IPv4 address, too short a number
        (b"v 10.20.3.4 x", [(2, 11)]),  # 4 groups
        (b"id 123456, 7", []),  # 6 digits, one group
        (b"call 202 555 0143", [(5, 17)]),  # 10 digits
        (b"1a2b3c4d5e6f7", []),  # letters part the digits
        (b"12\t345 678 9\n78", [(3, 12)]),  # tabs and newlines end a run
        (b"v 1.2.3.4", [(2, 9)]),
    ],
)
def test_digit_runs_that_may_be_items_are_the_long_or_dotted_ones(
    text: bytes, spans: list[tuple[int, int]]
) -> None:
    digits = np.flatnonzero(np.frombuffer(text, np.uint8) - np.uint8(48) < np.uint8(10))
    assert _scrub._run_spans(text, digits, _scrub._everywhere) == spans
