"""Subsets, the pure part: the `subset:` section read from a rules file, which tables a
condition reaches through foreign keys and in which order, what `mask check` refuses, and
conditions parsed, type-checked and evaluated by the embedded engine."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from orchestrator.masking import workers
from orchestrator.masking.plan import TablePlan
from orchestrator.masking.predicate import Predicate, PredicateError, duck_type, engine, share
from orchestrator.masking.rules import RulesError, load_rules
from orchestrator.masking.stream import FilterError, RunBlocks, filter_tables
from orchestrator.masking.subset import Condition, SubsetRules, check, plan, reached
from orchestrator.masking.subset_scan import Scanner
from orchestrator.masking.transforms import load_key
from orchestrator.schema_facts import Column, ForeignKey, SchemaFacts, Table
from orchestrator.table_names import table_key


def col(name: str, base: str = "int4", not_null: bool = False) -> Column:
    category = {"int4": "N", "int8": "N", "text": "S", "date": "D", "jsonb": "U"}.get(base, "S")
    return Column(name=name, type=base, base_type=base, category=category, not_null=not_null)


def fk(columns: tuple[str, ...], references: str, referenced: tuple[str, ...]) -> ForeignKey:
    return ForeignKey(columns=columns, references=references, referenced_columns=referenced)


def shop() -> SchemaFacts:
    """users <- orders <- order_items (composite key into orders); countries and plans are
    lookups; employees reference themselves; a <-> b reference each other; events is
    partitioned (its partitions hold a key into users); audit references events."""
    pk = (("id",),)
    tables = {
        "public.countries": Table(columns=(col("code", "text", True),), unique=(("code",),)),
        "public.plans": Table(columns=(col("id", not_null=True),), unique=pk),
        "public.users": Table(
            columns=(col("id", not_null=True), col("country", "text"), col("plan_id")),
            unique=pk,
            foreign_keys=(
                fk(("country",), "public.countries", ("code",)),
                fk(("plan_id",), "public.plans", ("id",)),
            ),
        ),
        "public.orders": Table(
            columns=(col("id", not_null=True), col("shop", not_null=True), col("user_id")),
            unique=(("id", "shop"),),
            foreign_keys=(fk(("user_id",), "public.users", ("id",)),),
        ),
        "public.order_items": Table(
            columns=(col("order_id"), col("shop"), col("sku", "text")),
            foreign_keys=(fk(("order_id", "shop"), "public.orders", ("id", "shop")),),
        ),
        "public.employees": Table(
            columns=(col("id", not_null=True), col("manager_id"), col("boss", not_null=True)),
            unique=pk,
            foreign_keys=(
                fk(("manager_id",), "public.employees", ("id",)),
                fk(("boss",), "public.employees", ("id",)),
            ),
        ),
        "public.a": Table(
            columns=(col("id", not_null=True), col("b_id")),
            unique=pk,
            foreign_keys=(fk(("b_id",), "public.b", ("id",)),),
        ),
        "public.b": Table(
            columns=(col("id", not_null=True), col("a_id")),
            unique=pk,
            foreign_keys=(fk(("a_id",), "public.a", ("id",)),),
        ),
        "public.events": Table(columns=(col("id"), col("user_id")), partitioned=True),
        "public.events_2026": Table(
            columns=(col("id"), col("user_id")),
            parent="public.events",
            foreign_keys=(fk(("user_id",), "public.users", ("id",)),),
        ),
        "public.audit": Table(
            columns=(col("event_id"),),
            foreign_keys=(fk(("event_id",), "public.events_2026", ("id",)),),
        ),
    }
    return SchemaFacts(tables=tables)


def rules(
    tables: dict[str, Condition] | None = None,
    keep_whole: tuple[str, ...] = (),
    set_null: tuple[str, ...] = (),
) -> SubsetRules:
    return SubsetRules(tables=tables or {}, keep_whole=keep_whole, set_null=set_null)


WHERE = Condition(where="true")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (  # children of a filtered table are filtered, transitively; lookups stay whole
            rules({"public.users": WHERE}),
            {
                "public.users",
                "public.orders",
                "public.order_items",
                "public.events",
                "public.audit",
            },
        ),
        (rules({"public.orders": WHERE}), {"public.orders", "public.order_items"}),
        (rules({"public.countries": WHERE}), None),  # everything hanging off countries
        (rules({"public.plans": WHERE}, set_null=("public.users.plan_id",)), {"public.plans"}),
        (rules({"public.a": WHERE}), {"public.a", "public.b"}),
        (rules({"public.a": WHERE}, set_null=("public.b.a_id",)), {"public.a"}),
    ],
)
def test_conditions_reach_every_table_holding_a_key_into_a_filtered_one(given, expected):
    facts = shop()
    if expected is None:
        expected = {"public.countries", "public.users", "public.orders", "public.order_items"}
        expected |= {"public.events", "public.audit"}
    assert reached(given, facts) == expected


def test_the_plan_puts_parents_first_and_rolls_partitions_up_to_their_table():
    facts = shop()
    made = plan(rules({"public.users": WHERE}), facts)
    order = list(made.order)
    assert order.index("public.users") < order.index("public.orders")
    assert order.index("public.orders") < order.index("public.order_items")
    assert order.index("public.events") < order.index("public.audit")
    events = made.tables["public.events"]
    assert [e.describe() for e in events.filters] == [
        "public.events (user_id) -> public.users (id)"
    ]
    assert made.filtered("public.events_2026", facts) is events  # a partition: its table's
    assert made.filtered("public.countries", facts) is None
    assert made.referenced["public.orders"] == (("id", "shop"),)
    assert made.tables["public.users"].condition == WHERE


def test_a_key_in_set_null_breaks_a_cycle_and_is_planned_as_nulled():
    facts = shop()
    given = rules({"public.a": WHERE}, set_null=("public.a.b_id",))
    assert check(given, facts) == []
    made = plan(given, facts)
    assert made.order == ("public.a", "public.b")
    assert [e.describe() for e in made.tables["public.a"].nulls] == [
        "public.a (b_id) -> public.b (id)"
    ]
    assert [e.describe() for e in made.tables["public.b"].filters] == [
        "public.b (a_id) -> public.a (id)"
    ]


@pytest.mark.parametrize(
    ("given", "where", "message"),
    [
        (rules({"public.nope": WHERE}), "public.nope", "is not a table of this backup"),
        (rules({"public.events_2026": WHERE}), "public.events_2026", "is a partition"),
        (rules({"public.users": Condition(percent=120)}), "public.users", "between 0 and 100"),
        (rules({"public.users": Condition()}), "public.users", "either where: or percent:"),
        (rules(keep_whole=("public.nope",)), "public.nope", "(keep_whole) is not a table"),
        (
            rules({"public.users": WHERE}, keep_whole=("public.users",)),
            "public.users",
            "has a condition and is in keep_whole",
        ),
        (
            rules({"public.users": WHERE}, keep_whole=("public.orders",)),
            "public.orders",
            "holds a foreign key into a filtered table "
            "(public.orders (user_id) -> public.users (id))",
        ),
        (
            rules({"public.employees": WHERE}),
            "public.employees",
            "cycle among filtered tables (public.employees -> public.employees)",
        ),
        (
            rules({"public.employees": WHERE}, set_null=("public.employees.manager_id",)),
            "public.employees",
            "cycle",  # `boss` still references the table itself
        ),
        (rules({"public.a": WHERE}), "public.a", "(public.a -> public.b -> public.a)"),
        (
            rules(set_null=("public.employees.boss",)),
            "public.employees.boss",
            "cannot be set to NULL: boss is NOT NULL",
        ),
        (rules(set_null=("public.users.id",)), "public.users.id", "is not part of a foreign key"),
        (rules(set_null=("public.users.nope",)), "public.users.nope", "is not a column"),
    ],
)
def test_check_names_each_problem_and_where_it_is(given, where, message):
    problems = check(given, shop())
    assert [p.where for p in problems] == [where]
    assert message in problems[0].message


SUBSET_YAML = """\
unlisted_columns: keep
subset:
  tables:
    public.users: {where: "created_at >= date '2026-06-01' AND country <> 'XX'"}
    Public."Odd Events": {percent: 5}
  keep_whole: [public.countries, public.plans]
  set_null: [public.a.b_id]
"""


def test_the_subset_section_is_read_with_table_keys_normalised():
    found = load_rules(SUBSET_YAML, "DEV_MASK_RULES").subset
    assert found is not None
    assert found.tables["public.users"].where == (
        "created_at >= date '2026-06-01' AND country <> 'XX'"
    )
    assert found.tables["Public.Odd Events"].percent == 5.0
    assert found.keep_whole == ("public.countries", "public.plans")
    assert found.set_null == ("public.a.b_id",)
    assert load_rules("unlisted_columns: keep\n", "X").subset is None


@pytest.mark.parametrize(
    ("schema", "table", "column"),
    [
        ("public", "users", "referrer_id"),
        ("dot.schema", "a.b", "parent.id"),
        ("My Schema", 'Kid "q"', 'Boss "Id"'),
        ("public", "t", "a b.c"),
    ],
)
def test_a_set_null_key_with_odd_names_breaks_its_cycle(schema: str, table: str, column: str):
    key = table_key(schema, table)
    quoted = '"' + column.replace('"', '""') + '"'
    facts = SchemaFacts(
        tables={
            key: Table(
                columns=(col("id", not_null=True), col(column)),
                unique=(("id",),),
                foreign_keys=(fk((column,), key, ("id",)),),
            )
        }
    )
    written = f"{key}.{quoted}".replace("'", "''")
    text = f"subset:\n  tables:\n    '{key.replace(chr(39), chr(39) * 2)}': {{percent: 5}}\n"
    found = load_rules(f"{text}  set_null: ['{written}']\n", "X").subset
    assert found is not None
    assert check(found, facts) == []
    assert [e.columns for e in plan(found, facts).tables[key].nulls] == [(column,)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "subset:\n  tables:\n    public.t: {where: 1, percent: 2}\n",
            "line 3: public.t: a subset",
        ),
        ("subset:\n  tables:\n    public.t: {percent: many}\n", "line 3: public.t: percent:"),
        ("subset:\n  tables:\n    public.t: {where: '  '}\n", "line 3: public.t: where: must be"),
        ("subset:\n  keep_whole: public.t\n", "line 2: subset.keep_whole must be a list"),
        ("subset:\n  set_null: [users]\n", "line 2: 'users' in subset.set_null is not"),
        ("subset:\n  filter: {}\n", "line 2: unknown key 'filter' in subset"),
        ("subset:\n  tables:\n    nodot: {percent: 1}\n", "'nodot' in subset.tables is not"),
    ],
)
def test_a_malformed_subset_section_is_refused_naming_its_line(text, message):
    with pytest.raises(RulesError) as raised:
        load_rules(text, "DEV_MASK_RULES")
    assert str(raised.value).startswith("DEV_MASK_RULES: ")
    assert message in str(raised.value)


COLUMNS = (
    col("id"),
    col("created_at", "date"),
    col("country", "text"),
    col("profile", "jsonb"),
    Column(name='Odd "name"', type="text", base_type="text", category="S"),
    Column(name="mail", type="citext", base_type="citext", category="S"),
    Column(name="code", type="character(5)", base_type="bpchar", category="S", max_length=5),
)
ODD = '"Odd ""name"""'
ROWS = [
    ["1", "2", "3", "4"],
    ["2026-07-01", "2026-01-01", "2026-08-01", "0044-03-15 BC"],
    ["DE", "DE", None, "FR"],
    ['{"tier": "gold"}', '{"tier": "gold"}', "{}", '{"tier": "gold"}'],
    ["a", "b", "c", "a\\tb"],
    ["Ann@X.example", "bob@y.example", None, "ANN@x.EXAMPLE"],
    ["ab   ", "abc  ", None, "x    "],
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("created_at >= date '2026-06-01'", [True, False, True, False]),  # unreadable: not kept
        ("country <> 'XX'", [True, True, False, True]),  # NULL: the condition does not hold
        ("profile->>'tier' = 'gold' AND id % 2 = 0", [False, True, False, True]),
        ('"Odd ""name""" ILIKE \'A%\'', [True, False, False, True]),
        ("id IN (1, 3) OR country IS NULL", [True, False, True, False]),
        # citext compares whatever the case, as in PostgreSQL
        ("mail = 'ann@x.example'", [True, False, False, True]),
        ("mail IN ('BOB@Y.example') OR mail LIKE 'ann@%'", [True, True, False, True]),
        # char(n) ignores its padding, as in PostgreSQL
        ("code = 'ab' OR code LIKE '%x'", [True, False, False, True]),
        # LIKE's escape character is the backslash, as in PostgreSQL
        (rf"country LIKE 'D\E' OR {ODD} LIKE 'a\\tb'", [True, True, False, True]),
        (rf"NOT {ODD} ILIKE 'A\tb'", [True, True, True, True]),
        ("country LIKE 'D!E' ESCAPE '!'", [True, True, False, False]),
    ],
)
def test_conditions_are_evaluated_on_copy_text_with_the_columns_types(where, expected):
    with engine() as con:
        held = Predicate("public.t", COLUMNS, where).holds(ROWS, con)
    assert held.tolist() == expected


def test_a_condition_on_a_table_whose_column_names_differ_only_in_case_is_refused():
    # DuckDB resolves names whatever their case: `email` would read the "Email" column
    columns = (col("Email", "text"), col("email", "text"), col("id"))
    with pytest.raises(PredicateError) as raised:
        Predicate("public.t", columns, "id > 1")
    assert str(raised.value) == (
        'public.t: where: columns "Email" and "email" differ only in case, which conditions '
        "cannot tell apart"
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("nope > 1", 'Referenced column "nope" not found'),
        ("created_at > 5", "Cannot compare"),
        ("id", "gives INTEGER, not a boolean"),
        ("true) OR (false", "does not parse"),
        ("id IN (SELECT 1 FROM read_csv('/etc/passwd'))", "file system operations are disabled"),
        ("country SIMILAR TO 'D%'", "SIMILAR TO reads its pattern as a POSIX regular expression"),
    ],
)
def test_a_condition_that_does_not_fit_the_table_is_refused_before_any_row(where, message):
    with pytest.raises(PredicateError) as raised:
        Predicate("public.t", COLUMNS, where)
    assert str(raised.value).startswith("public.t: where: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("column", "seen_as"),
    [
        (
            Column(name="n", type="numeric(30,2)", base_type="numeric", category="N"),
            "DECIMAL(30,2)",
        ),
        (
            Column(name="n", type="numeric(38,38)", base_type="numeric", category="N"),
            "DECIMAL(38,38)",
        ),
        (Column(name="n", type="numeric(5)", base_type="numeric", category="N"), "DECIMAL(5,0)"),
        (Column(name="n", type="numeric", base_type="numeric", category="N"), "DOUBLE"),
        (Column(name="n", type="numeric(39,2)", base_type="numeric", category="N"), "DOUBLE"),
        (Column(name="n", type="numeric(5,-2)", base_type="numeric", category="N"), "DOUBLE"),
        (Column(name="n", type="numeric(3,5)", base_type="numeric", category="N"), "DOUBLE"),
        (Column(name="n", type="public.price", base_type="numeric", category="N"), "DOUBLE"),
        (Column(name="n", type="numeric(5,2)[]", base_type="numeric", category="A"), "VARCHAR"),
        (Column(name="n", type="integer", base_type="int4", category="N"), "INTEGER"),
    ],
)
def test_a_numeric_column_is_exact_where_its_precision_fits_a_decimal(column, seen_as):
    assert duck_type(column) == seen_as


def test_a_share_is_the_same_rows_for_one_key_and_other_rows_for_another():
    keys = [str(n).encode() for n in range(20000)]
    first = share(b"k" * 32, "public.events", keys, 5)
    assert 0.04 < first.mean() < 0.06
    assert np.array_equal(first, share(b"k" * 32, "public.events", keys, 5))
    assert not np.array_equal(first, share(b"j" * 32, "public.events", keys, 5))
    assert not np.array_equal(first, share(b"k" * 32, "public.other", keys, 5))
    assert share(b"k" * 32, "t", keys, 0).sum() == 0 and share(b"k" * 32, "t", keys, 100).all()


@pytest.mark.parametrize(
    ("block", "width", "index", "expected"),
    [
        (b"1\ta\n-22\tb\n\\N\tc\n333\td\n", 2, 0, ([1, -22, 0, 333], [False, False, True, False])),
        (b"a\t7\nb\t\\N\n", 2, 1, ([7, 0], [False, True])),
        (b"x\t123456789012345678\n", 2, 1, ([123456789012345678], [False])),
        (b"x\t1234567890123456789\n", 2, 1, None),  # 19 digits: read line by line
        (b"x\t12a\n", 2, 1, None),
        (b"x\t\n", 2, 1, None),  # an empty field is no integer
        (b"x\t1\ty\n", 2, 1, None),  # not two fields a line: no tab matrix
        (b"x\t-\n", 2, 1, None),  # a sign alone
        (b"x\t1-2\n", 2, 1, None),
        (b"5\n12345\n-3\n0\n", 1, 0, ([5, 12345, -3, 0], [False] * 4)),  # one column, mixed widths
        (b"x\t00042\n", 2, 1, ([42], [False])),
    ],
)
def test_integer_columns_are_read_at_once_or_left_to_the_line_by_line_path(
    block, width, index, expected
):
    from orchestrator.masking._fields import integers, lines_of

    found = integers(lines_of(block, width), index)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found[0][~found[1]].tolist(), found[1].tolist()) == (
            [v for v, null in zip(*expected, strict=True) if not null],
            expected[1],
        )


@pytest.mark.parametrize(
    "keep",
    [
        [True, True, True, True],
        [False, False, False, False],
        [True, False, True, True],
        [False, True, False, True],
    ],
)
def test_kept_lines_are_cut_out_in_order(keep):
    from orchestrator.masking._fields import kept_lines, lines_of

    rows = [b"1\ta", b"2\tb\\tc", b"3\t\\N", b"4\td"]
    block = b"".join(row + b"\n" for row in rows)
    expected = b"".join(row + b"\n" for row, k in zip(rows, keep, strict=True) if k)
    assert kept_lines(lines_of(block, 2), np.array(keep)) == expected


def test_mask_suggest_hints_a_subset_that_checks_when_uncommented():
    from orchestrator.masking.detect import suggest_rules
    from orchestrator.masking.subset import hint

    lookups_users_orders = ("public.countries", "public.plans", "public.users", "public.orders")
    facts = SchemaFacts(
        tables={
            **{key: shop().tables[key] for key in lookups_users_orders},
            "public.audit": Table(columns=(col("id"),)),  # no key either way
        }
    )
    counts = {
        "public.countries": 3,
        "public.plans": 5,
        "public.users": 5000,
        "public.orders": 20000,
        "public.audit": 9000,
    }
    lines = hint(facts, counts)
    assert "#     public.users: {percent: 10}" in lines
    assert "#   keep_whole: [public.countries, public.plans]" in lines
    text = suggest_rules(facts, list(counts), {}, "header", counts)
    assert load_rules(text, "X").subset is None  # only a hint: nothing filtered by default
    uncommented = text.replace("\n# subset:", "\nsubset:").replace("\n#   ", "\n  ")
    found = load_rules(uncommented, "X").subset
    assert found is not None and check(found, facts) == []
    assert hint(facts, {**counts, "public.users": 0, "public.orders": 0}) == []


def test_the_subset_hint_sets_a_self_reference_to_null_so_that_it_checks():
    from orchestrator.masking.subset import hint

    name = table_key("dot.schema", "a.b")
    facts = SchemaFacts(
        tables={
            name: Table(
                columns=(col("id", not_null=True), col("parent.id")),
                unique=(("id",),),
                foreign_keys=(fk(("parent.id",), name, ("id",)),),
            ),
            "public.child": Table(
                columns=(col("id"), col("pid")), foreign_keys=(fk(("pid",), name, ("id",)),)
            ),
        }
    )
    lines = hint(facts, {name: 5000, "public.child": 10})
    assert '#   set_null: ["\\"dot.schema\\".\\"a.b\\".\\"parent.id\\""]' in lines
    uncommented = "\n".join(line[2:] for line in lines if line.startswith(("# subset", "#  ")))
    found = load_rules(f"unlisted_columns: keep\n{uncommented}", "X").subset
    assert found is not None and check(found, facts) == []


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        ("My Schema", 'Users "q"'),
        ("a.b", "c"),
        ("x", "[odd], {y}: z"),
        ("s", "a: b"),
        ("s", "#c"),
        ("Ünï", "Kündé"),
        ("public", "- dash"),
    ],
)
def test_the_subset_hint_names_odd_tables_so_that_it_loads_when_uncommented(
    schema: str, table: str
) -> None:
    from orchestrator.masking.subset import hint

    name, lookup = table_key(schema, table), table_key(schema, f"{table} lookup")
    facts = SchemaFacts(  # child -> name (filtered) -> lookup (kept whole)
        tables={
            name: Table(
                columns=(col("id"), col("l")),
                unique=(("id",),),
                foreign_keys=(fk(("l",), lookup, ("id",)),),
            ),
            lookup: Table(columns=(col("id"),), unique=(("id",),)),
            "public.child": Table(
                columns=(col("id"), col("pid")), foreign_keys=(fk(("pid",), name, ("id",)),)
            ),
        }
    )
    lines = hint(facts, {name: 5000, lookup: 3, "public.child": 10})
    uncommented = "\n".join(line[2:] for line in lines if line.startswith(("# subset", "#  ")))
    found = load_rules(f"unlisted_columns: keep\n{uncommented}", "X").subset
    assert found is not None
    assert list(found.tables) == [name] and list(found.keep_whole) == [lookup]
    assert check(found, facts) == []


@pytest.mark.parametrize(
    ("table", "keys", "kept"),
    [
        ("public.users", [str(n).encode() for n in range(1, 400)], [4, 24, 41, 76, 77, 92, 126]),
        ("public.t", [b"%d\t%d" % (n, n % 7) for n in range(1, 400)], [35, 58, 72, 107, 113]),
    ],
)
def test_a_share_keeps_the_rows_it_kept_in_earlier_versions(
    table: str, keys: list[bytes], kept: list[int]
) -> None:
    """A refresh after an upgrade keeps the same sample for one MASK_KEY."""
    chosen = (np.flatnonzero(share(b"k" * 32, table, keys, 5)) + 1).tolist()
    assert chosen[: len(kept)] == kept


def _script(*copies: tuple[str, list[str], list[bytes]]) -> bytes:
    """A pg_restore script (UTF8) of the COPYs given as (table, columns, rows)."""
    parts = [b"SET client_encoding = 'UTF8';\n"]
    for table, columns, rows in copies:
        parts.append(f"COPY {table} ({', '.join(columns)}) FROM stdin;\n".encode())
        parts += [row + b"\n" for row in rows]
        parts.append(b"\\.\n\n")
    return b"".join(parts)


USERS = ("public.users", ["id", "country", "plan_id"], [b"%d\tDE\t\\N" % n for n in range(1, 301)])
ORDERS = (
    "public.orders",
    ["id", "shop", "user_id"],
    [
        b"%d\t%d\t%s" % (n, n % 3, b"\\N" if n % 50 == 0 else b"%d" % (n % 300 + 1))
        for n in range(900)
    ],
)
ITEMS = (
    "public.order_items",
    ["order_id", "shop", "sku"],
    [b"%d\t%d\tsku %d" % (n % 900, (n % 900) % 3, n) for n in range(2000)],
)


def _one_pass(script: bytes, run_blocks: RunBlocks | None = None) -> dict[str, list[bytes]]:
    """The rows a one-pass filter keeps of each table of `script` (a 10 % share of users),
    its blocks masked by `run_blocks` (default: in this process)."""
    facts = shop()
    scanner = Scanner(plan(rules({"public.users": Condition(percent=10)}), facts), facts, b"k" * 32)
    out = io.BytesIO()
    keep = {t: TablePlan(t, {}, "keep") for t in facts.tables}
    filter_tables(
        io.BytesIO(script),
        out,
        keep,
        load_key("k" * 32),
        run_blocks,
        block_size=64,
        droppers=scanner.dropper,
    )
    kept: dict[str, list[bytes]] = {}
    table = ""
    for line in out.getvalue().split(b"\n"):
        if line.startswith(b"COPY "):
            table = line.split()[1].decode()
        elif table and line and line != b"\\.":
            kept.setdefault(table, []).append(line)
    return kept


def _idle() -> workers.IdleMark:
    return workers.IdleMark(None, 0.0)  # an idle machine: workers are forked


@pytest.mark.parametrize("run_blocks", [None, workers.runner(2, idle=_idle)], ids=["here", "pool"])
def test_one_pass_keeps_exactly_the_rows_the_first_pass_flags(run_blocks: RunBlocks | None) -> None:
    """The filter deciding as blocks stream (64-byte blocks: rows cross block edges; with
    a pool, most blocks decided in a forked worker, the keys they kept sent back) keeps
    what the two passes keep: the first pass's flags applied to the same rows."""

    script = _script(USERS, ORDERS, ITEMS)
    facts = shop()
    scanned = Scanner(plan(rules({"public.users": Condition(percent=10)}), facts), facts, b"k" * 32)
    flags = scanned.consume(io.BytesIO(script))
    expected = {
        table: [row for row, kept in zip(rows, flags[table].kept, strict=True) if kept]
        for table, _columns, rows in (USERS, ORDERS, ITEMS)
    }
    assert 10 < len(expected["public.users"]) < 50 and expected["public.order_items"]
    kept = _one_pass(script, run_blocks)
    assert {t: kept.get(t, []) for t in expected} == expected
    assert any(row.endswith(b"\\N") for row in kept["public.orders"])  # a NULL key points nowhere


AUDIT = ("public.audit", ["event_id"], [b"\\N", b"3", b"\\N"])


@pytest.mark.parametrize("passes", [1, 2], ids=["one-pass", "first-pass"])
def test_a_key_into_a_filtered_table_with_no_rows_in_the_archive_keeps_only_null_keys(
    passes: int,
) -> None:
    """events is partitioned and has no partition yet: the archive holds no COPY of it, so
    audit's rows come with no rows of events before them, and that is no wrong order."""
    script = _script(USERS, AUDIT)
    if passes == 1:
        kept = _one_pass(script).get("public.audit", [])
    else:
        facts = shop()
        scanner = Scanner(plan(rules({"public.users": Condition(percent=10)}), facts), facts, b"k")
        flags = scanner.consume(io.BytesIO(script))["public.audit"].kept
        kept = [row for row, flag in zip(AUDIT[2], flags, strict=True) if flag]
    assert kept == [b"\\N", b"\\N"]


def test_a_table_whose_rows_come_before_those_it_references_is_refused() -> None:
    with pytest.raises(
        FilterError, match=re.escape("public.orders: its rows came before those of public.users")
    ):
        _one_pass(_script(ORDERS, USERS))


@pytest.mark.parametrize(
    ("table", "columns", "rows", "key_of"),
    [  # the key `percent:` hashes: the primary key's fields joined by a tab, or the line
        (
            "public.orders",
            ["id", "shop", "user_id"],
            [b"%d\t%d\t\\N" % (n, n % 3) for n in range(400)],
            lambda row: b"\t".join(row.split(b"\t")[:2]),
        ),
        (
            "public.order_items",
            ["order_id", "shop", "sku"],
            [b"\\N\t1\tsku %d" % n for n in range(400)],
            lambda row: row,
        ),
    ],
    ids=["composite-key", "no-key"],
)
def test_a_share_of_a_table_hashes_its_primary_key_or_else_its_whole_row(
    table: str, columns: list[str], rows: list[bytes], key_of
) -> None:
    facts = shop()
    scanner = Scanner(plan(rules({table: Condition(percent=30)}), facts), facts, b"k" * 32)
    kept = scanner.consume(io.BytesIO(_script((table, columns, rows))))[table].kept
    expected = share(b"k" * 32, table, [key_of(row) for row in rows], 30)
    assert np.array_equal(kept, expected) and 80 < kept.sum() < 160


def _typed_pair(parent_type: Column, child_type: Column) -> SchemaFacts:
    """public.p (one key column `k`) referenced by public.c's `k`, of the given types."""
    return SchemaFacts(
        tables={
            "public.p": Table(columns=(parent_type,), unique=(("k",),)),
            "public.c": Table(
                columns=(col("id"), child_type), foreign_keys=(fk(("k",), "public.p", ("k",)),)
            ),
        }
    )


@pytest.mark.parametrize("passes", [1, 2], ids=["one-pass", "first-pass"])
@pytest.mark.parametrize(
    ("parent", "child", "parent_text", "child_text"),
    [  # keys equal to PostgreSQL whose COPY text differs
        (
            Column(name="k", type="citext", base_type="citext", category="S"),
            Column(name="k", type="citext", base_type="citext", category="S"),
            "Mail%d@X.example",
            "MAIL%d@x.EXAMPLE",
        ),
        (
            Column(name="k", type="character(6)", base_type="bpchar", category="S", max_length=6),
            Column(name="k", type="character(9)", base_type="bpchar", category="S", max_length=9),
            "c%-5d",
            "c%-8d",
        ),
    ],
    ids=["citext-case", "char-padding"],
)
def test_a_key_equal_to_its_target_in_another_text_form_points_to_it(
    passes: int, parent: Column, child: Column, parent_text: str, child_text: str
) -> None:
    facts = _typed_pair(parent, child)
    parents = [(parent_text % n).encode() for n in range(200)]
    children = [b"%d\t%s" % (n, (child_text % (n % 200)).encode()) for n in range(400)]
    script = _script(("public.p", ["k"], parents), ("public.c", ["id", "k"], children))
    subset = plan(rules({"public.p": Condition(percent=50)}), facts)
    if passes == 2:
        verdict = Scanner(subset, facts, b"k" * 32).consume(io.BytesIO(script))
        kept_parents = verdict["public.p"].kept
        kept_children = verdict["public.c"].kept
    else:
        scanner = Scanner(subset, facts, b"k" * 32)
        out = io.BytesIO()
        keep = {t: TablePlan(t, {}, "keep") for t in facts.tables}
        filter_tables(io.BytesIO(script), out, keep, load_key("k" * 32), droppers=scanner.dropper)
        lines = out.getvalue().split(b"\n")
        kept_parents = np.array([p in lines for p in parents])
        kept_children = np.array([c in lines for c in children])
    assert 50 < kept_parents.sum() < 150
    assert kept_children.tolist() == [bool(kept_parents[n % 200]) for n in range(400)]


PADDED_ITEMS = (  # more than 8 blocks of 1 MiB: enough for the block runner to fork
    "public.order_items",
    ["order_id", "shop", "sku"],
    [b"%d\t%d\t%s %d" % (n % 900, (n % 900) % 3, b"x" * 90, n) for n in range(100_000)],
)


def _decide(tmp_path, subset: SubsetRules, workers_given: int) -> tuple[int, bytes, str]:
    """Run `filter --decide` on USERS, ORDERS and PADDED_ITEMS with keep-all plans."""
    from orchestrator.masking.__main__ import main
    from orchestrator.masking.plan import plans_to_json
    from orchestrator.masking.subset import rules_to_json

    given = tmp_path / "subset.json"
    given.write_text(json.dumps({"subset": rules_to_json(subset), "facts": shop().model_dump()}))
    plans = tmp_path / "plans.json"
    tables = ("public.users", "public.orders", "public.order_items")
    plans.write_text(plans_to_json(TablePlan(t, {}, "keep") for t in tables))
    out, err = io.BytesIO(), io.StringIO()
    argv = ["filter", f"--plan={plans}", f"--decide={given}", f"--workers={workers_given}"]
    script = io.BytesIO(_script(USERS, ORDERS, PADDED_ITEMS))
    code = main(argv, {"MASK_KEY": "k" * 32}, script, out, err)
    return code, out.getvalue(), err.getvalue()


def test_the_filter_decides_a_where_condition_in_its_own_process_whatever_its_workers(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a fork while the condition's engine is open: with --workers 2 the output is
    the same and no pool is made."""
    forks: list[str] = []
    monkeypatch.setattr(workers.multiprocessing, "get_context", lambda m: forks.append(m))
    monkeypatch.setattr(workers, "idle_mark", _idle)  # the cores are idle: workers would help
    where = rules({"public.users": Condition(where="id % 7 = 0")})
    code, out, err = _decide(tmp_path, where, 2)
    assert (code, err, forks) == (0, "", [])
    assert out == _decide(tmp_path, where, 1)[1]
    assert b"\n7\tDE\t\\N\n" in out and b"\n8\tDE\t\\N\n" not in out


def test_the_filter_refuses_to_decide_in_one_pass_when_a_key_is_set_to_null(tmp_path) -> None:
    cycle = rules({"public.a": WHERE}, set_null=("public.a.b_id",))
    code, out, err = _decide(tmp_path, cycle, 1)
    assert code == 2 and out == b""
    assert err.startswith("orchestrator-mask: error: --decide: ") and "first pass" in err


def test_the_first_pass_reads_a_latin1_script_as_its_utf8_twin() -> None:
    """A script of a LATIN1 database is read as UTF-8: a condition on a value with letters
    outside ASCII holds for the same rows."""
    users = (
        "public.users",
        ["id", "country", "plan_id"],
        [b"%d\t%s\t\\N" % (n, "Österreich".encode() if n % 3 else b"DE") for n in range(1, 31)],
    )
    utf8 = _script(users)
    latin1 = utf8.decode().encode("latin-1").replace(b"'UTF8'", b"'LATIN1'")
    facts = shop()
    condition = rules({"public.users": Condition(where="country = 'Österreich'")})

    def kept(script: bytes) -> list[bool]:
        scanner = Scanner(plan(condition, facts), facts, b"k" * 32)
        return [bool(flag) for flag in scanner.consume(io.BytesIO(script))["public.users"].kept]

    assert kept(latin1) == kept(utf8) == [n % 3 != 0 for n in range(1, 31)]


def test_the_first_pass_reads_a_sql_ascii_value_that_is_no_utf8() -> None:
    """A SQL_ASCII database holds whatever bytes its clients sent: LATIN1's Ö here."""
    rows = [b"%d\t%s\t\\N" % (n, b"\xd6sterreich" if n % 3 else b"DE") for n in range(1, 31)]
    script = _script(("public.users", ["id", "country", "plan_id"], rows))
    facts = shop()
    condition = rules({"public.users": Condition(where="country = 'DE'")})
    scanner = Scanner(plan(condition, facts), facts, b"k" * 32)
    kept = scanner.consume(io.BytesIO(script.replace(b"'UTF8'", b"'SQL_ASCII'")))
    assert [bool(f) for f in kept["public.users"].kept] == [n % 3 == 0 for n in range(1, 31)]
