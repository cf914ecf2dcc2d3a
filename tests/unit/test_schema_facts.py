"""The schema facts kept in manifests: partition roots and column lookup."""

from __future__ import annotations

import pytest

from orchestrator.schema_facts import Column, SchemaFacts, Table


def _facts() -> SchemaFacts:
    return SchemaFacts(
        tables={
            "sales.events": Table(partitioned=True),
            "sales.events_2025": Table(partitioned=True, parent="sales.events"),
            "sales.events_2025h1": Table(parent="sales.events_2025"),
            "public.loop_a": Table(parent="public.loop_b"),
            "public.loop_b": Table(parent="public.loop_a"),
            "public.customers": Table(
                columns=(Column(name="email", type="text", base_type="text", category="S"),)
            ),
        }
    )


@pytest.mark.parametrize(
    ("key", "root"),
    [
        ("sales.events_2025h1", "sales.events"),
        ("sales.events_2025", "sales.events"),
        ("sales.events", "sales.events"),
        ("public.customers", "public.customers"),
        ("public.unknown", "public.unknown"),
        ("public.loop_a", "public.loop_b"),  # a cycle (corrupt facts) ends instead of looping
    ],
)
def test_root_of_follows_partition_parents_to_the_top(key: str, root: str) -> None:
    assert _facts().root_of(key) == root


def test_column_finds_by_name_and_gives_none_otherwise() -> None:
    table = _facts().tables["public.customers"]
    assert table.column("email") is not None
    assert table.column("phone") is None


def test_facts_round_trip_through_json() -> None:
    facts = _facts()
    assert SchemaFacts.model_validate_json(facts.model_dump_json()) == facts


def test_columns_a_unique_index_reads_through_an_expression_are_key_columns() -> None:
    table = Table(unique=(("id",), ("a", "b")), unique_through=("handle",))
    assert table.key_columns() == {"id", "a", "b", "handle"}
