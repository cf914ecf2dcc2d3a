"""Masking rules: loading with useful errors, checking against a schema, planning tables."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import pytest

from orchestrator.masking.plan import TablePlan
from orchestrator.masking.rules import (
    UNLISTED_MESSAGE,
    Problem,
    Rules,
    RulesError,
    RulesProblems,
    check,
    load_rules,
    masked_columns,
    plan,
)
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table

SETTING = "DEV_MASK_RULES"


def col(
    name: str, type_: str = "text", base: str | None = None, category: str = "S", **more: Any
) -> Column:
    return Column(name=name, type=type_, base_type=base or type_, category=category, **more)


def varchar(name: str, length: int, **more: Any) -> Column:
    return col(name, f"character varying({length})", "varchar", max_length=length, **more)


ID = col("id", "integer", "int4", "N", not_null=True)
ORDER_COLUMNS = (ID, varchar("customer_email", 60), col("total", "numeric", "numeric", "N"))
SCHEMA = SchemaFacts(
    tables={
        "public.customer": Table(
            columns=(
                ID,
                varchar("email", 100, not_null=True),
                col("first_name"),
                col("phone"),
                col("birth_date", "date", "date", "D"),
                col("notes"),
                col("tier"),
                col("profile", "jsonb", "jsonb", "U"),
                col("email_lower", generated=True),
            ),
            unique=(("id",), ("email",)),
        ),
        "public.orders": Table(
            partitioned=True,
            columns=ORDER_COLUMNS,
            foreign_keys=(
                ForeignKey(
                    columns=("customer_email",),
                    references="public.customer",
                    referenced_columns=("email",),
                ),
            ),
        ),
        "public.orders_2024": Table(parent="public.orders", columns=ORDER_COLUMNS),
        "public.orders_2025": Table(parent="public.orders", columns=ORDER_COLUMNS),
        "public.shipment": Table(
            columns=(
                ID,
                col("cust_id", "integer", "int4", "N"),
                varchar("cust_email", 30),
                col("label"),
            ),
            foreign_keys=(
                ForeignKey(
                    columns=("cust_id", "cust_email"),
                    references="public.customer",
                    referenced_columns=("id", "email"),
                ),
            ),
        ),
        "public.audit_log": Table(columns=(ID, col("detail"))),
        '"odd.schema"."dotted.table"': Table(columns=(col("a.b"), col('say "hi"'))),
    }
)
DATA = [
    "public.customer",
    "public.orders_2024",
    "public.orders_2025",
    "public.shipment",
    "public.audit_log",
    '"odd.schema"."dotted.table"',
]
COMPLETE = """
unlisted_columns: fail
large_objects: skip
tables:
  public.customer:
    id: keep
    email: email
    first_name: first_name
    phone: phone
    birth_date: {transform: date_shift, days: 30}
    notes: {transform: redact, text: "[removed]"}
    tier: {transform: value, value: "standard"}
    profile: {transform: json, paths: {"contact.email": email, "addresses.*.street": redact}}
  public.orders:
    id: keep
    total: keep
  public.shipment:
    id: keep
    cust_id: keep
    label: keep
  public.audit_log: keep
  '"odd.schema"."dotted.table"':
    a.b: hash
    say "hi": keep
"""


def rules(text: str = COMPLETE) -> Rules:
    return load_rules(textwrap.dedent(text), SETTING)


def problems(text: str, data: list[str] | None = None) -> list[tuple[str, str]]:
    return [
        (p.location, p.message) for p in check(rules(text), SCHEMA, DATA if data is None else data)
    ]


def with_lines(*lines: str, base: str = COMPLETE) -> str:
    """The complete rules with `lines` ("table: column: spec") replacing or adding rules."""
    text = base
    for line in lines:
        table, column, spec = (part.strip() for part in line.split("|"))
        header = f"  {table}:\n"
        assert header in text, table
        entry = f"    {column}: {spec}\n" if spec else ""
        start = text.index(header) + len(header)
        body = text[start:]
        existing = next(
            (row for row in body.splitlines(keepends=True) if row.startswith(f"    {column}:")),
            None,
        )
        text = text.replace(existing, entry, 1) if existing else text[:start] + entry + body
    return text


# --- loading ----------------------------------------------------------------------------


def test_the_complete_rules_load_and_fit_the_schema() -> None:
    loaded = rules()
    assert loaded.unlisted == "fail"
    assert loaded.large_objects == "skip"
    assert loaded.sha256 == hashlib.sha256(textwrap.dedent(COMPLETE).encode()).hexdigest()
    assert loaded.tables["public.audit_log"].keep_all
    assert '"odd.schema"."dotted.table"' in loaded.tables
    assert check(loaded, SCHEMA, DATA) == []


def test_defaults_are_fail_and_skip() -> None:
    loaded = load_rules("tables: {}\n", SETTING)
    assert (loaded.unlisted, loaded.large_objects, loaded.tables) == ("fail", "skip", {})


def test_column_names_are_taken_as_written_even_when_yaml_would_read_them_otherwise() -> None:
    loaded = load_rules(
        "tables:\n  public.t:\n    on: keep\n    'yes': keep\n    null: keep\n    1: keep\n",
        SETTING,
    )
    assert list(loaded.tables["public.t"].columns) == ["on", "yes", "null", "1"]


def test_table_keys_are_normalized_like_manifest_keys() -> None:
    loaded = load_rules('tables:\n  \'"public"."customer"\': keep\n', SETTING)
    assert list(loaded.tables) == ["public.customer"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "DEV_MASK_RULES: the rules file is empty"),
        ("tables: [\n", "DEV_MASK_RULES: line 2: not valid YAML"),
        ("- a\n- b\n", "DEV_MASK_RULES: line 1: the rules file must be a mapping"),
        (
            "unlisted_columns: maybe\n",
            "DEV_MASK_RULES: line 1: unlisted_columns must be fail or keep",
        ),
        ("large_objects: drop\n", "DEV_MASK_RULES: line 1: large_objects must be skip or keep"),
        (
            "tabels: {}\n",
            "DEV_MASK_RULES: line 1: unknown key 'tabels' "
            "(allowed: unlisted_columns, large_objects, tables, subset)",
        ),
        (
            "tables:\n  customer: keep\n",
            "DEV_MASK_RULES: line 2: 'customer' is not a schema.table name",
        ),
        (
            "tables:\n  public.t: mask\n",
            "DEV_MASK_RULES: line 2: public.t: a table rule is keep or a mapping of columns",
        ),
        (
            "tables:\n  public.t:\n    a: keep\n    a: hash\n",
            "DEV_MASK_RULES: line 4: 'a' appears twice in public.t",
        ),
        (
            "tables:\n  public.t: keep\n  '\"public\".t': keep\n",
            "DEV_MASK_RULES: line 3: public.t appears twice in tables",
        ),
        (
            "tables:\n  public.t:\n    a: {transform: hash, transform: email}\n",
            "DEV_MASK_RULES: line 3: 'transform' appears twice in a rule",
        ),
    ],
)
def test_unreadable_rules_name_the_setting_and_the_line(text: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(text, SETTING)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


# --- checking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            ["public.customer | shoe_size | keep"],
            [("public.customer.shoe_size", "unknown column of public.customer")],
        ),
        (
            ["public.customer | notes | emial"],
            [("public.customer.notes", "unknown transform 'emial'")],
        ),
        (
            ["public.customer | notes | {transform: redact, txt: x}"],
            [("public.customer.notes", "redact: unknown parameter 'txt'")],
        ),
        (
            ["public.customer | birth_date | {transform: date_shift, days: -3}"],
            [("public.customer.birth_date", "date_shift: days must be")],
        ),
        (
            ["public.customer | id | email"],
            [("public.customer.id", "email needs a text column, not integer")],
        ),
        (
            ["public.customer | birth_date | phone"],
            [("public.customer.birth_date", "phone needs a text column, not date")],
        ),
        (
            ["public.customer | notes | {transform: date_shift, days: 3}"],
            [("public.customer.notes", "date_shift needs a column of type")],
        ),
        (
            ["public.customer | notes | {transform: json, paths: {a: hash}}"],
            [("public.customer.notes", "json needs a column of type json or jsonb")],
        ),
        (
            ["public.customer | id | {transform: value, value: abc}"],
            [("public.customer.id", "value does not fit integer")],
        ),
        (
            ["public.customer | id | set_null"],
            [("public.customer.id", "set_null on a NOT NULL column")],
        ),
        (
            [
                "public.customer | tier | {transform: value, value: x}",
                "public.customer | id | {transform: value, value: 1}",
            ],
            [
                (
                    "public.customer.id",
                    "gives every row the same value, but the column is part of a unique key",
                )
            ],
        ),
        (["public.shipment | label | hash"], []),
        (
            ['\'"odd.schema"."dotted.table"\' | a.b | {transform: redact, text: 5}'],
            [('"odd.schema"."dotted.table"."a.b"', "redact: text must be text")],
        ),
        (
            ["public.customer | email_lower | hash"],
            [("public.customer.email_lower", "a generated column is computed on restore")],
        ),
        (["public.customer | email_lower | keep"], []),
    ],
)
def test_each_rule_problem_is_reported_at_its_column(
    changes: list[str], expected: list[tuple[str, str]]
) -> None:
    found = problems(with_lines(*changes))
    assert len(found) == len(expected)
    for (location, message), (want_location, want_message) in zip(found, expected, strict=True):
        assert location == want_location
        assert want_message in message


def test_an_unknown_table_is_reported_once() -> None:
    text = COMPLETE + "  public.nope:\n    x: keep\n"
    assert problems(text) == [("public.nope", "unknown table (not in the backup's schema)")]


def test_email_and_hash_need_room() -> None:
    schema = SchemaFacts(
        tables={"public.t": Table(columns=(varchar("e", 19), varchar("h", 15), varchar("ok", 20)))}
    )
    loaded = load_rules("tables:\n  public.t:\n    e: email\n    h: hash\n    ok: email\n", SETTING)
    assert [(p.location, p.message) for p in check(loaded, schema, ["public.t"])] == [
        ("public.t.e", "email needs a column of at least 20 characters, not character varying(19)"),
        ("public.t.h", "hash needs a column of at least 16 characters, not character varying(15)"),
    ]


def test_under_fail_every_unlisted_column_is_its_own_problem() -> None:
    text = with_lines("public.customer | phone |", "public.customer | notes |")
    assert problems(text) == [
        ("public.customer.notes", UNLISTED_MESSAGE),
        ("public.customer.phone", UNLISTED_MESSAGE),
    ]


def test_an_unnamed_table_lists_each_column_and_generated_ones_are_not_asked_for() -> None:
    text = COMPLETE.replace("  public.customer:\n", "  public.other_name:\n")
    found = problems(text, ["public.customer", "public.orders_2024"])
    unlisted = [location for location, message in found if message == UNLISTED_MESSAGE]
    assert unlisted.pop() == "public.orders.customer_email"  # its key is no longer masked
    assert unlisted == [
        f"public.customer.{c}"
        for c in sorted(
            ["id", "email", "first_name", "phone", "birth_date", "notes", "tier", "profile"]
        )
    ]


def test_under_keep_unlisted_columns_are_fine() -> None:
    text = "unlisted_columns: keep\ntables:\n  public.customer:\n    email: email\n"
    assert problems(text) == []


def test_a_data_table_missing_from_the_schema_is_a_problem() -> None:
    assert problems(COMPLETE, [*DATA, "public.ghost"]) == [
        ("public.ghost", "has data in the archive but is not in the backup's schema")
    ]


# --- partitions -------------------------------------------------------------------------


def test_unlisted_columns_of_partitions_are_reported_where_the_rule_belongs() -> None:
    text = with_lines("public.orders | total |")
    assert problems(text) == [("public.orders.total", UNLISTED_MESSAGE)]


def test_a_partition_named_itself_uses_its_own_rule_only() -> None:
    text = COMPLETE + "  public.orders_2025:\n    id: keep\n    total: hash\n"
    assert problems(text) == [
        ("public.orders_2025.total", "hash needs a text column, not numeric"),
    ]
    text = (
        COMPLETE + "  public.orders_2025:\n    id: keep\n    total: {transform: value, value: 0}\n"
    )
    plans = plan(rules(text), SCHEMA, DATA)
    assert plans["public.orders_2025"].columns["total"].transform == "value"
    assert plans["public.orders_2024"].columns["total"].transform == "keep"
    assert plans["public.orders_2025"].columns["customer_email"].via == "public.customer.email"


# --- foreign keys -----------------------------------------------------------------------


def test_an_unlisted_foreign_key_column_follows_its_masked_key_and_is_not_unlisted() -> None:
    plans = plan(rules(), SCHEMA, DATA)
    for key in ("public.orders_2024", "public.orders_2025"):
        column = plans[key].columns["customer_email"]
        assert (column.transform, column.params, column.via) == (
            "email",
            {"domain": "example.com"},
            "public.customer.email",
        )
    shipment = plans["public.shipment"].columns
    assert shipment["cust_email"].via == "public.customer.email"
    assert shipment["cust_id"].transform == "keep"  # multi-column keys map column by column


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "keep",
            "inconsistent with its masked key public.customer.email: "
            'give it the same transform (email (domain: "example.com"))',
        ),
        ("hash", "inconsistent with its masked key public.customer.email"),
        (
            "{transform: email, domain: other.example}",
            "inconsistent with its masked key public.customer.email",
        ),
    ],
)
def test_a_listed_foreign_key_column_must_mask_like_its_key(spec: str, message: str) -> None:
    found = problems(with_lines(f"public.orders | customer_email | {spec}"))
    assert len(found) == 1
    assert found[0][0] == "public.orders.customer_email"
    assert found[0][1].startswith(message)


def test_a_listed_foreign_key_column_with_the_same_transform_or_set_null_is_fine() -> None:
    assert (
        problems(
            with_lines("public.orders | customer_email | {transform: email, domain: example.com}")
        )
        == []
    )
    assert problems(with_lines("public.orders | customer_email | set_null")) == []


def test_a_foreign_key_column_in_a_whole_table_keep_is_inconsistent() -> None:
    text = COMPLETE.replace(
        "  public.shipment:\n    id: keep\n    cust_id: keep\n    label: keep\n",
        "  public.shipment: keep\n",
    )
    assert problems(text) == [
        (
            "public.shipment.cust_email",
            problems(with_lines("public.shipment | cust_email | keep"))[0][1],
        )
    ]


def test_masking_a_foreign_key_column_whose_key_is_kept_is_a_problem() -> None:
    text = with_lines("public.shipment | cust_id | {transform: value, value: 1}")
    assert problems(text) == [
        (
            "public.shipment.cust_id",
            "masked, but its key public.customer.id is kept: the values would not match",
        )
    ]


def test_a_followed_transform_must_fit_the_foreign_key_column() -> None:
    schema = SchemaFacts(
        tables={
            "public.a": Table(columns=(col("e"),)),
            "public.b": Table(
                columns=(varchar("e", 12),),
                foreign_keys=(
                    ForeignKey(columns=("e",), references="public.a", referenced_columns=("e",)),
                ),
            ),
        }
    )
    loaded = load_rules("tables:\n  public.a:\n    e: email\n", SETTING)
    assert [(p.location, p.message) for p in check(loaded, schema, ["public.a", "public.b"])] == [
        (
            "public.b.e",
            "follows its masked key public.a.e, but email needs a column of at least 20 "
            "characters, not character varying(12)",
        )
    ]


def k_references(table: str) -> tuple[ForeignKey, ...]:
    """A foreign key from column k to `table`.k."""
    return (ForeignKey(columns=("k",), references=table, referenced_columns=("k",)),)


CYCLE = {  # x.k references y.k, which references x.k
    "public.x": Table(columns=(col("k"),), foreign_keys=k_references("public.y")),
    "public.y": Table(columns=(col("k"),), foreign_keys=k_references("public.x")),
}


def test_foreign_key_chains_and_cycles_resolve() -> None:
    fk = ForeignKey
    schema = SchemaFacts(
        tables={
            "public.a": Table(columns=(col("k"),)),
            "public.b": Table(
                columns=(col("k"),),
                foreign_keys=(
                    fk(columns=("k",), references="public.a", referenced_columns=("k",)),
                ),
            ),
            "public.c": Table(
                columns=(col("k"),),
                foreign_keys=(
                    fk(columns=("k",), references="public.b", referenced_columns=("k",)),
                ),
            ),
            **CYCLE,
        }
    )
    loaded = load_rules("unlisted_columns: keep\ntables:\n  public.a:\n    k: hash\n", SETTING)
    plans = plan(loaded, schema, list(schema.tables))
    assert plans["public.c"].columns["k"].transform == "hash"
    assert plans["public.c"].columns["k"].via == "public.b.k"
    assert plans["public.x"].columns["k"].transform == "keep"


def test_linked_columns_are_cut_to_the_shortest_of_their_group() -> None:
    plans = plan(rules(), SCHEMA, DATA)
    assert plans["public.customer"].columns["email"].max_length == 30  # shipment.cust_email
    assert plans["public.orders_2024"].columns["customer_email"].max_length == 30
    assert plans["public.customer"].columns["notes"].max_length is None


def test_a_kept_or_nulled_link_does_not_shorten_a_masked_key() -> None:
    fk = ForeignKey(columns=("e",), references="public.a", referenced_columns=("e",))
    schema = SchemaFacts(
        tables={
            "public.a": Table(columns=(varchar("e", 100),)),
            "public.b": Table(columns=(varchar("e", 8),), foreign_keys=(fk,)),
            "public.c": Table(columns=(varchar("e", 40),), foreign_keys=(fk,)),
        }
    )
    text = "tables:\n  public.a:\n    e: email\n  public.b:\n    e: set_null\n"
    plans = plan(load_rules(text, SETTING), schema, list(schema.tables))
    assert plans["public.a"].columns["e"].max_length == 40
    assert plans["public.b"].columns["e"].max_length == 8
    assert plans["public.c"].columns["e"].max_length == 40


# --- planning ---------------------------------------------------------------------------


def test_plans_cover_every_data_table_and_column_except_generated_ones() -> None:
    plans = plan(rules(), SCHEMA, DATA)
    assert sorted(plans) == sorted(DATA)
    assert "email_lower" not in plans["public.customer"].columns
    assert plans["public.customer"].unlisted == "fail"
    assert plans["public.audit_log"].unlisted == "keep"  # whole-table keep takes new columns
    assert plans["public.customer"].columns["birth_date"].params == {"days": 30}
    assert plans["public.customer"].columns["id"].base_type == "int4"


def test_plans_round_trip_and_report_masked_columns() -> None:
    plans = plan(rules(), SCHEMA, DATA)
    for table_plan in plans.values():
        assert TablePlan.from_json(table_plan.to_json()) == table_plan
    assert masked_columns(plans) == {
        "public.customer": [
            "email",
            "first_name",
            "phone",
            "birth_date",
            "notes",
            "tier",
            "profile",
        ],
        "public.orders_2024": ["customer_email"],
        "public.orders_2025": ["customer_email"],
        "public.shipment": ["cust_email"],
        '"odd.schema"."dotted.table"': ["a.b"],
    }


def test_planning_refuses_rules_with_problems() -> None:
    with pytest.raises(RulesProblems) as caught:
        plan(
            rules(with_lines("public.customer | phone |", "public.customer | notes |")),
            SCHEMA,
            DATA,
        )
    assert (
        str(caught.value)
        == f"masking rules: public.customer.notes: {UNLISTED_MESSAGE} (and 1 more)"
    )
    assert caught.value.problems[1] == Problem("public.customer.phone", UNLISTED_MESSAGE)


# --- found by the mutation run (scripts/mutation) ---------------------------------------


def test_a_foreign_key_cycle_no_rule_names_is_unlisted_under_fail() -> None:
    schema = SchemaFacts(tables=CYCLE)
    found = check(load_rules("tables: {}\n", SETTING), schema, list(schema.tables))
    assert found == [
        Problem("public.x.k", UNLISTED_MESSAGE),
        Problem("public.y.k", UNLISTED_MESSAGE),
    ]


def test_a_column_referencing_two_keys_masked_differently_is_a_problem() -> None:
    schema = SchemaFacts(
        tables={
            "public.a": Table(columns=(col("k"),)),
            "public.b": Table(columns=(col("k"),)),
            "public.z": Table(
                columns=(col("k"),),
                foreign_keys=k_references("public.a") + k_references("public.b"),
            ),
        }
    )
    text = "tables:\n  public.a:\n    k: hash\n  public.b:\n    k: {transform: redact, text: x}\n"
    assert check(load_rules(text, SETTING), schema, list(schema.tables)) == [
        Problem("public.z.k", "references masked keys that disagree: public.a.k, public.b.k")
    ]


@pytest.mark.parametrize(("count", "more"), [(1, ""), (2, " (and 1 more)")])
def test_refused_plans_name_the_first_problem_and_count_the_rest(count: int, more: str) -> None:
    ghosts = "".join(f"  public.ghost{n}: keep\n" for n in range(count))
    with pytest.raises(RulesProblems) as refused:
        plan(rules(COMPLETE + ghosts), SCHEMA, DATA)
    assert str(refused.value) == (
        f"masking rules: public.ghost0: unknown table (not in the backup's schema){more}"
    )


@pytest.mark.parametrize("empty", ["", "~", "null"])
def test_an_empty_tables_entry_is_no_tables(empty: str) -> None:
    assert load_rules(f"tables: {empty}\n", SETTING).tables == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables: keep\n", "DEV_MASK_RULES: line 1: tables must be a mapping"),
        (
            "tables:\n  ? [a, b]\n  : keep\n",
            "DEV_MASK_RULES: line 2: a key of tables must be a name",
        ),
    ],
)
def test_tables_must_be_a_mapping_of_names(text: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(text, SETTING)
    assert str(caught.value) == message


def test_a_kept_varchar_column_keeps_its_length_in_the_plan() -> None:
    schema = SchemaFacts(tables={"public.v": Table(columns=(varchar("code", 12), col("n")))})
    plans = plan(
        load_rules("tables:\n  public.v:\n    code: keep\n    n: hash\n", SETTING),
        schema,
        ["public.v"],
    )
    assert plans["public.v"].columns["code"].max_length == 12
