"""What a masked restore records about unlisted columns: computed from the plan and the
schema, never a constant (the report, the comment, the page and the CLI line use it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.dashboard import PageData, TargetDoc, render_status_page
from orchestrator.masking.rules import load_rules, plan
from orchestrator.operations.masked_load import (
    Masking,
    database_comment,
    unlisted_kept,
    unlisted_text,
)
from tests.unit.test_masking_rules import COMPLETE, DATA, SCHEMA

FULL = COMPLETE.replace("unlisted_columns: fail", "unlisted_columns: keep")


def kept(text: str) -> list[str]:
    rules = load_rules(text, "DEV_MASK_RULES")
    return unlisted_kept(rules, SCHEMA, plan(rules, SCHEMA, DATA))


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ("", []),
        ("    phone: phone\n", ["public.customer.phone"]),
        # a partitioned table's rule covers its partitions: the data tables are named
        ("    total: keep\n", ["public.orders_2024.total", "public.orders_2025.total"]),
        ("  public.audit_log: keep\n", ["public.audit_log.detail", "public.audit_log.id"]),
        ("    label: keep\n", ["public.shipment.label"]),
    ],
)
def test_unlisted_kept_names_each_column_no_rule_covers(removed: str, expected: list[str]) -> None:
    assert kept(FULL.replace(removed, "", 1) if removed else FULL) == expected


def test_foreign_key_columns_are_unlisted_only_when_their_key_is_not_masked() -> None:
    # orders.customer_email and shipment.cust_email are never named: with customer.email
    # masked they follow it (test above, []); with it unlisted they are kept raw too
    assert kept(FULL.replace("    email: email\n", "")) == [
        "public.customer.email",
        "public.orders_2024.customer_email",
        "public.orders_2025.customer_email",
        "public.shipment.cust_email",
    ]


def test_a_column_listed_as_keep_is_not_unlisted() -> None:
    assert kept(FULL.replace("    phone: phone\n", "    phone: keep\n")) == []


def test_the_texts_say_none_only_when_the_list_is_empty() -> None:
    assert unlisted_text([]) == "none"
    assert unlisted_text(["a.b.c", "a.b.d"]) == "2 kept as they are: a.b.c, a.b.d"
    rules = load_rules(FULL, "DEV_MASK_RULES")
    masking = Masking(rules, "k" * 32, "DEV_MASK_RULES", 1)
    stats = {"public.customer": {"columns": ["email"], "rows": 3}}
    comment = database_comment("db-1", "now", masking, stats, ["public.customer.tier"])
    assert "unlisted columns: 1 kept as they are: public.customer.tier;" in comment
    assert "unlisted columns: none;" in database_comment("db-1", "now", masking, stats, [])


def page_with(target: TargetDoc) -> str:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    data = PageData(
        title="t",
        generated_at=now,
        schedule="s",
        drill_schedule=None,
        max_backup_age_seconds=3600,
        source="h:5432/db",
        cycles=[],
        drills=[],
        backups=[],
        targets=[target],
    )
    return render_status_page(data)


def test_the_page_names_the_unlisted_columns_of_the_last_masked_refresh() -> None:
    base = TargetDoc(name="dev", database="d", masked=True)
    shown = page_with({**base, "unlisted": ["public.a.<b>"]})
    assert "unlisted columns kept as they are (1): <code>public.a.&lt;b&gt;</code>" in shown
    assert "unlisted columns: none" in page_with({**base, "unlisted": []})
    assert "unlisted" not in page_with(base)
