"""Sharing masked tables out between filters: about equal rows per filter, every table
once, the same groups every time."""

from __future__ import annotations

import pytest

from orchestrator.masking.plan import share_out


@pytest.mark.parametrize(
    ("weights", "count", "groups"),
    [
        ({}, 2, []),
        ({"a": 5}, 2, [["a"]]),
        ({"big": 300_000, "s1": 500, "s2": 2_000, "s3": 40_000}, 2, [["big"], ["s1", "s2", "s3"]]),
        ({"a": 5, "b": 5, "c": 5, "d": 5}, 2, [["a", "c"], ["b", "d"]]),
        ({"a": 0, "b": 0, "c": 0}, 2, [["a", "c"], ["b"]]),
        ({"a": 9, "b": 5, "c": 4, "d": 1}, 2, [["a", "d"], ["b", "c"]]),
        ({"a": 1, "b": 2, "c": 3}, 1, [["a", "b", "c"]]),
        ({"a": 1, "b": 2}, 5, [["b"], ["a"]]),
    ],
)
def test_tables_are_shared_out_by_rows_heaviest_first(
    weights: dict[str, int], count: int, groups: list[list[str]]
) -> None:
    assert share_out(weights, count) == groups


def test_no_group_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        share_out({"a": 1}, 0)
