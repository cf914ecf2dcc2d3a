"""Keyed transforms: deterministic, keyed, never the input, valid for the column, plausible."""

from __future__ import annotations

import datetime
import random
import re
from typing import Any

import pytest

from orchestrator import logs
from orchestrator.errors import ConfigError
from orchestrator.masking._names import FIRST_NAMES, LAST_NAMES
from orchestrator.masking.transforms import (
    SpecError,
    TransformError,
    TransformSpec,
    _name_choices,
    apply_text,
    compile_spec,
    fit_problem,
    load_key,
    parse_spec,
    within_bytes,
)
from orchestrator.schema_facts import Column

KEY = load_key("unit-test-mask-key-0001")
OTHER_KEY = load_key("unit-test-mask-key-0002")


def run(rule: object, value: str | None, max_length: int | None = None, key: Any = KEY) -> Any:
    spec = parse_spec(rule)
    return apply_text(compile_spec(spec, key, "text", max_length), value)


def column(
    type_: str = "text", base: str | None = None, category: str = "S", **more: Any
) -> Column:
    return Column(name="c", type=type_, base_type=base or type_, category=category, **more)


# --- the key ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "short-key-15chr"])
def test_a_missing_or_short_key_is_refused_naming_the_setting_only(text: str | None) -> None:
    with pytest.raises(ConfigError, match="MASK_KEY") as caught:
        load_key(text)
    if text and text.strip():
        assert text not in str(caught.value)


def test_the_key_is_registered_as_a_secret_and_never_shown() -> None:
    key = load_key("a-key-that-logs-must-hide")
    assert logs.mask("oops a-key-that-logs-must-hide") == "oops ***"
    assert "hide" not in repr(key)


# --- every token transform --------------------------------------------------------------

TOKEN_RULES: list[object] = ["email", "hash", "phone", "first_name", "last_name", "full_name"]
INPUTS = ["alice@example.org", "+44 20 7946 0958", "Ann", "Zoë Ω 漢字", "a\tb\nc\\d"]


@pytest.mark.parametrize("rule", TOKEN_RULES)
@pytest.mark.parametrize("value", INPUTS)
def test_outputs_are_deterministic_keyed_and_never_the_input(rule: object, value: str) -> None:
    first, again = run(rule, value), run(rule, value)
    assert first == again
    assert first != value
    if rule in ("email", "hash", "phone"):  # names come from lists of ~170: keys may agree
        assert run(rule, value, key=OTHER_KEY) != first


@pytest.mark.parametrize(
    "rule", [*TOKEN_RULES, "redact", "set_null", {"transform": "json", "paths": {"a": "hash"}}]
)
def test_null_stays_null(rule: object) -> None:
    assert run(rule, None) is None


@pytest.mark.parametrize("rule", TOKEN_RULES)
def test_an_empty_string_stays_empty(rule: object) -> None:
    assert run(rule, "") == ""


def test_the_output_depends_on_parameters_but_not_on_the_column_type() -> None:
    spec = parse_spec("hash")
    as_text = apply_text(compile_spec(spec, KEY, "text"), "x")
    as_varchar = apply_text(compile_spec(spec, KEY, "varchar", 100), "x")
    assert as_text == as_varchar
    assert (
        run({"transform": "email", "domain": "a.test"}, "x").split("@")[0]
        != run("email", "x").split("@")[0]
    )


def test_char_columns_mask_the_same_value_whatever_its_blank_padding() -> None:
    compiled = compile_spec(parse_spec("hash"), KEY, "bpchar", 20)
    padded = apply_text(compiled, "abc      ")
    assert padded == apply_text(compiled, "abc") == run("hash", "abc", max_length=20)


@pytest.mark.parametrize("rule", [*TOKEN_RULES, {"transform": "array", "each": "email"}])
def test_citext_columns_mask_values_that_differ_only_in_case_alike(rule: object) -> None:
    # citext compares lower(value): a key 'Ann@X.example' is referenced as 'ANN@x.example'
    base = "_citext" if isinstance(rule, dict) and rule.get("transform") == "array" else "citext"
    compiled = compile_spec(parse_spec(rule), KEY, base, None)
    values = ["{Ann@X.example}", "{ANN@x.example}", "{ann@x.example}"]
    texts = values if base == "_citext" else [value.strip("{}") for value in values]
    outputs = {apply_text(compiled, text) for text in texts}
    assert len(outputs) == 1
    assert compiled.column is None or len(set(compiled.column([t.encode() for t in texts]))) == 1
    text_outputs = {apply_text(compile_spec(parse_spec(rule), KEY, "text"), t) for t in texts}
    assert len(text_outputs) == 3  # text keeps case apart


@pytest.mark.parametrize(
    "equal",
    [
        ["Ann@X.example", "ANN@x.example"],
        ["Straße", "STRASSE", "strasse"],  # ICU's level 2 finds ß and ss equal
        ["\uff21\uff22\uff23", "abc"],  # full width is a level-3 difference
        ["Ärger", "ärger"],
    ],
)
def test_a_caseless_collation_masks_values_it_finds_equal_alike(equal: list[str]) -> None:
    compiled = compile_spec(parse_spec("hash"), KEY, "caseless", None)
    assert len({apply_text(compiled, text) for text in equal}) == 1
    assert compiled.column is not None
    assert len(set(compiled.column([text.encode() for text in equal]))) == 1


def test_a_caseless_collation_keeps_accents_apart() -> None:
    compiled = compile_spec(parse_spec("hash"), KEY, "caseless", None)
    assert apply_text(compiled, "Ärger") != apply_text(compiled, "Arger")


@pytest.mark.parametrize(("collation", "refused"), [("", False), ("case", False), ("other", True)])
def test_masking_a_key_under_a_collation_ignoring_accents_is_refused(
    collation: str, refused: bool
) -> None:
    problem = fit_problem(parse_spec("hash"), column(collation=collation), unique=True)
    assert (problem is not None and "differ in more than case" in problem) is refused
    assert fit_problem(parse_spec("hash"), column(collation=collation), unique=False) is None


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("ß a@b.example", 6, "ß "),  # 15 bytes: the token's text cut to 6 bytes
        ("ßßß", 5, "ßß"),  # never half a character: 4 bytes, not 5
        ("東京 x", 5, "東"),
        ("plain", 9, "plain"),
    ],
)
def test_outputs_fit_a_length_counted_in_bytes(value: str, limit: int, expected: str) -> None:
    compiled = within_bytes(compile_spec(parse_spec("scrub"), KEY, "text", limit), limit)
    out = compiled.apply(value.encode())
    assert out is not None and len(out) <= limit and out.decode().startswith(expected)
    assert compiled.splices is None and compiled.column is not None
    assert compiled.column([value.encode()]) == [out]
    assert compiled.joined is not None and compiled.joined(value.encode()) == out


# --- email and hash ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "max_length", "pattern"),
    [
        ("email", None, r"[a-z2-7]{26}@example\.com"),
        ("email", 30, r"[a-z2-7]{18}@example\.com"),
        ("email", 20, r"[a-z2-7]{8}@example\.com"),
        ({"transform": "email", "domain": "Corp.Example"}, None, r"[a-z2-7]{26}@corp\.example"),
        ("hash", None, r"[0-9a-f]{32}"),
        ("hash", 16, r"[0-9a-f]{16}"),
    ],
)
def test_email_and_hash_look_right_and_fit(
    rule: object, max_length: int | None, pattern: str
) -> None:
    assert re.fullmatch(pattern, run(rule, "someone@mail.example.org", max_length))


@pytest.mark.parametrize("rule", ["email", "hash"])
def test_email_and_hash_map_distinct_inputs_to_distinct_outputs(rule: str) -> None:
    compiled = compile_spec(parse_spec(rule), KEY)
    outputs = {compiled.apply(b"user%d@example.org" % n) for n in range(20000)}
    assert len(outputs) == 20000


# --- a column at a time -----------------------------------------------------------------


def _column_values() -> list[bytes]:
    rng = random.Random(5)
    alphabet = "abcXYZ0123456789 @.+-()/é漢"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(400)]
    # one-digit phones: the first output often equals the input and is derived again
    texts += [layout.format(digit) for digit in "0123456789" for layout in ("{}", "+{}", "({})")]
    texts += [*FIRST_NAMES, *(name.upper() for name in LAST_NAMES)]  # a name may pick itself
    texts += ["", "Ann Lee", "ann lee", " ", "x" * 300, "+1 (555) 0100-99 " * 4]
    return [text.encode() for text in texts]


COLUMN_VALUES = _column_values()


@pytest.mark.parametrize(
    "rule", [*TOKEN_RULES, "redact", {"transform": "email", "domain": "corp.test"}]
)
@pytest.mark.parametrize(("base_type", "max_length"), [("text", None), ("varchar", 20)])
def test_a_column_at_a_time_gives_exactly_the_one_value_outputs(
    rule: object, base_type: str, max_length: int | None
) -> None:
    compiled = compile_spec(parse_spec(rule), KEY, base_type, max_length)
    assert compiled.column is not None
    assert compiled.column(COLUMN_VALUES) == [compiled.apply(v) for v in COLUMN_VALUES]


@pytest.mark.parametrize("rule", TOKEN_RULES)
def test_char_columns_mask_alike_a_column_at_a_time(rule: object) -> None:
    compiled = compile_spec(parse_spec(rule), KEY, "bpchar", 30)
    values = [b"Ann  ", b"Ann", b"+1 555 0100   ", b"   ", b""]
    assert compiled.column is not None
    outputs = compiled.column(values)
    assert outputs == [compiled.apply(value) for value in values]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("rule", TOKEN_RULES)
def test_a_column_with_a_newline_in_a_value_still_masks_value_by_value(rule: object) -> None:
    compiled = compile_spec(parse_spec(rule), KEY)
    values = [b"a\nb", b"c", b""]
    assert compiled.column is not None
    assert compiled.column(values) == [compiled.apply(v) for v in values]
    assert compiled.column([]) == []


@pytest.mark.parametrize("rule", [*TOKEN_RULES, "redact", {"transform": "date_shift", "days": 3}])
def test_every_column_path_takes_its_filler(rule: object) -> None:
    compiled = compile_spec(parse_spec(rule), KEY, "text", 40)
    assert compiled.column is not None
    assert compiled.column([compiled.filler] * 3) == [compiled.apply(compiled.filler)] * 3


def test_date_shift_a_column_at_a_time_gives_exactly_the_one_value_outputs() -> None:
    compiled = compile_spec(parse_spec({"transform": "date_shift", "days": 30}), KEY, "date")
    days = [f"{1990 + n % 30:04d}-0{1 + n % 9}-1{n % 10}".encode() for n in range(300)]
    stamps = [b"2024-05-17 10:%02d:00.123+02" % n for n in range(60)]
    values = [*days, *days[:50], *stamps, b"infinity", b"0044-03-15 BC"]
    assert compiled.column is not None
    assert compiled.column(values) == [compiled.apply(value) for value in values]
    with pytest.raises(TransformError):
        compiled.column([*values, b"31/12/1999"])


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("hash", "alice@example.org", "74ad7bb7172fa74ed878124392849728"),
        ("email", "alice@example.org", "vaduyuuer2we6e7534xs5u5hpi@example.com"),
        ("phone", "+44 20 7946 0958", "+66 64 3574 7229"),
        ("full_name", "Ann Lee", "Lucas Pereira"),
    ],
)
def test_outputs_are_pinned_so_every_version_masks_alike(
    rule: str, value: str, expected: str
) -> None:
    assert run(rule, value) == expected


# --- phone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["+1 555 0100", "(030) 1234-5678", "555.010.0199", "+44 (0)20 7946 0958", "0"]
)
def test_phone_keeps_the_layout_and_replaces_every_digit(value: str) -> None:
    out = run("phone", value)
    assert len(out) == len(value)
    assert [c for c in out if not c.isdigit()] == [c for c in value if not c.isdigit()]
    assert all(c.isdigit() for c, original in zip(out, value, strict=True) if original.isdigit())
    assert out.lstrip("+(")[0] != "0"


def test_phone_turns_letters_into_digits_so_no_text_survives() -> None:
    out = run("phone", "555-0100 ext. 12 (Ann)")
    assert not any(c.isalpha() for c in out)


@pytest.mark.parametrize("digit", "0123456789")
def test_a_one_digit_phone_never_maps_to_itself(digit: str) -> None:
    for layout in ("{}", "+{}", "({})", "-{}-"):
        assert run("phone", layout.format(digit)) != layout.format(digit)


def test_phone_is_cut_to_the_column_length() -> None:
    assert len(run("phone", "+1 555 0100 2233", max_length=8)) == 8


# --- names ------------------------------------------------------------------------------


def test_first_and_last_names_come_from_the_lists_and_never_repeat_the_input() -> None:
    for rule, names in (("first_name", FIRST_NAMES), ("last_name", LAST_NAMES)):
        for name in names:  # every list name as input: some would otherwise map to itself
            out = run(rule, name)
            assert out in names
            assert out.lower() != name.lower()
            assert run(rule, name.upper()).lower() != name.lower()


def test_full_names_are_a_first_and_a_last_name() -> None:
    first, last = run("full_name", "Ann Lee").split(" ")
    assert first in FIRST_NAMES
    assert last in LAST_NAMES


@pytest.mark.parametrize("max_length", [4, 8, 12, 30])
def test_names_fit_short_columns_whole_when_they_can(max_length: int) -> None:
    masker = compile_spec(parse_spec("full_name"), KEY, "text", max_length)
    for n in range(200):
        out = apply_text(masker, f"person {n}")
        assert len(out) <= max_length
        if max_length >= 6:
            assert " " in out


def test_name_choices_are_built_once_per_process_not_once_per_column() -> None:
    # one filter compiles many tables: building the 29,000 full names took 18 ms a column
    built = _name_choices.cache_info().misses
    for key in (KEY, OTHER_KEY, KEY):
        compile_spec(parse_spec("full_name"), key, "text", 77)
    assert _name_choices.cache_info().misses - built <= 1


def test_the_name_lists_are_large_and_varied() -> None:
    assert len(set(FIRST_NAMES)) >= 150
    assert len(set(LAST_NAMES)) >= 150
    assert all(name.isascii() for name in FIRST_NAMES + LAST_NAMES)


# --- fixed outputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("redact", "secret", "REDACTED"),
        ({"transform": "redact", "text": "[removed]"}, "secret", "[removed]"),
        ({"transform": "value", "value": "standard"}, "gold", "standard"),
        ({"transform": "value", "value": "standard"}, None, "standard"),
        ({"transform": "value", "value": None}, "gold", None),
        ({"transform": "value", "value": 7}, "3", "7"),
        ("set_null", "anything", None),
        ("keep", "as it is", "as it is"),
    ],
)
def test_fixed_transforms_give_their_text(
    rule: object, value: str | None, expected: str | None
) -> None:
    assert run(rule, value) == expected


@pytest.mark.parametrize(
    ("value", "base_type", "expected"),
    [
        (True, "bool", "t"),
        ("no", "bool", "f"),
        ({"a": [1, None]}, "jsonb", '{"a": [1, null]}'),
        ("text", "jsonb", '"text"'),
        (datetime.date(2020, 1, 31), "date", "2020-01-31"),
        (" 42 ", "int4", "42"),
    ],
)
def test_a_value_is_written_as_its_column_type_reads_it(
    value: object, base_type: str, expected: str
) -> None:
    spec = parse_spec({"transform": "value", "value": value})
    assert apply_text(compile_spec(spec, KEY, base_type), "x") == expected


# --- date_shift -------------------------------------------------------------------------

DAYS = 30


def _shift(value: str) -> str:
    return run({"transform": "date_shift", "days": DAYS}, value)


@pytest.mark.parametrize(
    ("value", "rest"),
    [
        ("2024-05-17", ""),
        ("2024-02-29", ""),
        ("2024-05-17 10:00:00", " 10:00:00"),
        ("2024-05-17 10:00:00.123+02", " 10:00:00.123+02"),
        ("2024-05-17 23:59:59.999999-03:30", " 23:59:59.999999-03:30"),
        ("1883-11-18 12:00:00-04:56:02", " 12:00:00-04:56:02"),
    ],
)
def test_date_shift_moves_only_the_date_by_1_to_days_days(value: str, rest: str) -> None:
    out = _shift(value)
    assert out.endswith(rest)
    moved = datetime.date.fromisoformat(out[:10]) - datetime.date.fromisoformat(value[:10])
    assert 1 <= abs(moved.days) <= DAYS


@pytest.mark.parametrize("value", ["0044-03-15 BC", "0001-01-01 BC", "4713-11-24 12:00:00+00 BC"])
def test_date_shift_handles_bc_dates_with_the_suffix_last(value: str) -> None:
    out = _shift(value)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d( 12:00:00\+00)?( BC)?", out)
    assert out != value


@pytest.mark.parametrize("value", ["4714-11-24 BC", "4714-11-25 00:00:00 BC", "294276-12-31"])
def test_date_shift_stays_inside_the_dates_postgresql_knows(value: str) -> None:
    shift = {"transform": "date_shift", "days": 5}
    out = run(shift, value)
    if value.endswith("BC"):
        assert out.startswith("4714-11-2") or out.startswith("4714-11-30")
        assert out.endswith(" BC")
    else:
        assert out.startswith("294276-12-")


def test_date_shift_crosses_the_year_1_boundary_and_years_past_9999() -> None:
    shift = {"transform": "date_shift", "days": 1}
    outputs = {run(shift, "0001-01-01"), run(shift, "9999-12-31")}
    assert outputs & {"0001-12-31 BC", "0001-01-02"}
    assert outputs & {"10000-01-01", "9999-12-30"}


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
def test_infinite_timestamps_pass_unchanged(value: str) -> None:
    assert _shift(value) == value


def test_date_shift_offsets_cover_both_directions_and_never_zero() -> None:
    offsets = {
        (datetime.date.fromisoformat(_shift(day.isoformat())) - day).days
        for day in (datetime.date(2000, 1, 1) + datetime.timedelta(n) for n in range(2000))
    }
    assert offsets == set(range(-DAYS, 0)) | set(range(1, DAYS + 1))


@pytest.mark.parametrize(
    "value", ["17/05/2024", "2024-13-01", "2024-02-30", "0000-01-01", "2024-05-17T10:00", "soon"]
)
def test_an_unparseable_date_is_an_error_that_does_not_hold_the_value(value: str) -> None:
    with pytest.raises(TransformError) as caught:
        _shift(value)
    assert value not in str(caught.value)


# --- json -------------------------------------------------------------------------------


def _json(paths: dict[str, object], value: str | None) -> Any:
    return run({"transform": "json", "paths": paths}, value)


def test_json_rewrites_nested_paths_and_every_array_element() -> None:
    document = (
        '{"contact": {"email": "a@b.c", "n": 1.10}, '
        '"addresses": [{"street": "x"}, {"street": "y", "city": "z"}]}'
    )
    out = _json({"contact.email": "email", "addresses.*.street": "redact"}, document)
    assert out == (
        f'{{"contact": {{"email": "{run("email", "a@b.c")}", "n": 1.10}}, '
        '"addresses": [{"street": "REDACTED"}, {"street": "REDACTED", "city": "z"}]}'
    )


@pytest.mark.parametrize(
    ("paths", "document", "expected"),
    [
        ({"missing.path": "redact"}, '{"a": 1}', '{"a": 1}'),
        ({"a": "set_null"}, '{"a": "x", "b": 2}', '{"a": null, "b": 2}'),
        ({"a": {"transform": "value", "value": {"k": [1]}}}, '{"a": "x"}', '{"a": {"k": [1]}}'),
        (
            {"a": "redact"},
            '{"a": {"deep": ["x", 2, null]}}',
            '{"a": {"deep": ["REDACTED", "REDACTED", null]}}',
        ),
        ({"*.1": "redact"}, '{"a": ["x", "y"], "b": "z"}', '{"a": ["x", "REDACTED"], "b": "z"}'),
        ({"a": "keep"}, '{"a": 1e400, "a": -0}', '{"a": 1e400, "a": -0}'),
        ({"a": "redact"}, "[1, 2]", "[1, 2]"),
    ],
)
def test_json_paths_reach_what_they_name_and_nothing_else(
    paths: dict[str, object], document: str, expected: str
) -> None:
    assert _json(paths, document) == expected


def test_a_string_transform_on_a_number_works_on_its_json_text() -> None:
    assert _json({"n": "hash"}, '{"n": 12345}') == f'{{"n": "{run("hash", "12345")}"}}'


@pytest.mark.parametrize("document", ["{", "not json", '{"a": NaN}', "[" * 100000])
def test_invalid_json_is_an_error_without_the_value(document: str) -> None:
    with pytest.raises(TransformError) as caught:
        _json({"a": "redact"}, document)
    assert str(caught.value) in ("not valid JSON", "not valid JSON (NaN and Infinity are not JSON)")


def test_a_date_shift_inside_json_fails_on_a_leaf_that_is_not_a_date() -> None:
    with pytest.raises(TransformError, match="json path born"):
        _json({"born": {"transform": "date_shift", "days": 3}}, '{"born": "yesterday"}')


# --- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("emial", "unknown transform 'emial'"),
        (["email"], "a transform name or a mapping"),
        ({"transform": "email", "domian": "x.org"}, "unknown parameter 'domian'"),
        ({"transform": "email", "domain": "not a domain"}, "domain must be"),
        ({"transform": "hash", "salt": 1}, "unknown parameter 'salt'"),
        ({"transform": "value"}, "parameter 'value' is required"),
        ({"transform": "value", "value": object()}, "value must be"),
        ({"transform": "date_shift"}, "parameter 'days' is required"),
        ({"transform": "date_shift", "days": 0}, "days must be a whole number"),
        ({"transform": "date_shift", "days": True}, "days must be a whole number"),
        ({"transform": "date_shift", "days": 1.5}, "days must be a whole number"),
        ({"transform": "redact", "text": 5}, "text must be text"),
        ({"transform": "json", "paths": {}}, "paths must map"),
        ({"transform": "json", "paths": {"a..b": "hash"}}, "path 'a..b'"),
        ({"transform": "json", "paths": {"a": "nope"}}, "path a: unknown transform"),
        (
            {"transform": "json", "paths": {"a": {"transform": "json", "paths": {"b": "hash"}}}},
            "cannot be nested",
        ),
    ],
)
def test_bad_specs_are_refused_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(raw)


def test_specs_fill_defaults_so_equal_rules_compare_equal() -> None:
    assert parse_spec("email") == parse_spec({"transform": "email", "domain": "EXAMPLE.com"})
    assert parse_spec("redact") == TransformSpec("redact", {"text": "REDACTED"})
    assert parse_spec({"transform": "date_shift", "days": 30}).describe() == "date_shift (days: 30)"


TEXT = column()
VARCHAR_10 = column("character varying(10)", "varchar", max_length=10)
VARCHAR_19 = column("character varying(19)", "varchar", max_length=19)
INT = column("integer", "int4", "N")
DATE = column("date", "date", "D")
TIME = column("time without time zone", "time", "D")
JSONB = column("jsonb", "jsonb", "U")
TEXT_ARRAY = column("text[]", "_text", "A")
NOT_NULL = column(not_null=True)
BOOL = column("boolean", "bool", "B")
UUID = column("uuid", "uuid", "U")


@pytest.mark.parametrize(
    ("rule", "target", "unique", "problem"),
    [
        ("email", TEXT, False, None),
        ("email", VARCHAR_19, False, "at least 20 characters"),
        ("hash", VARCHAR_10, False, "at least 16 characters"),
        ("hash", column("character(16)", "bpchar", max_length=16), False, None),
        ("email", INT, False, "needs a text column"),
        ("phone", TEXT_ARRAY, False, "needs a text column"),
        ("redact", JSONB, False, "needs a text column"),
        ({"transform": "redact", "text": "x" * 11}, VARCHAR_10, False, "longer than"),
        ("redact", TEXT, True, "unique key"),
        ("set_null", NOT_NULL, False, "NOT NULL"),
        ("set_null", TEXT_ARRAY, False, None),
        ({"transform": "value", "value": None}, NOT_NULL, False, "NOT NULL"),
        ({"transform": "value", "value": "{a,b}"}, TEXT_ARRAY, False, None),
        ({"transform": "value", "value": "abc"}, INT, False, "does not fit integer"),
        ({"transform": "value", "value": 2**40}, INT, False, "out of range"),
        ({"transform": "value", "value": "1e5"}, column("numeric", "numeric", "N"), False, None),
        ({"transform": "value", "value": "maybe"}, BOOL, False, "not true or false"),
        ({"transform": "value", "value": "2024-02-30"}, DATE, False, "not a date"),
        ({"transform": "value", "value": "nope"}, UUID, False, "does not fit uuid"),
        ({"transform": "value", "value": "x" * 11}, VARCHAR_10, False, "longer than"),
        ({"transform": "value", "value": [1]}, TEXT, False, "only a json or jsonb"),
        ({"transform": "value", "value": 0}, INT, True, "unique key"),
        ({"transform": "date_shift", "days": 1}, DATE, False, None),
        ({"transform": "date_shift", "days": 1}, TIME, False, "date or timestamp or timestamptz"),
        ({"transform": "date_shift", "days": 1}, TEXT, False, "needs a column of type date"),
        ({"transform": "json", "paths": {"a": "hash"}}, JSONB, False, None),
        ({"transform": "json", "paths": {"a": "hash"}}, TEXT, False, "json or jsonb"),
        ("keep", column(generated=True), False, None),
        ("hash", column(generated=True), False, "generated column"),
    ],
)
def test_fit_problems_name_what_does_not_fit(
    rule: object, target: Column, unique: bool, problem: str | None
) -> None:
    found = fit_problem(parse_spec(rule), target, unique)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
