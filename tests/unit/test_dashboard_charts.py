"""Chart details that a rendered page cannot show at a glance: axis labels."""

from __future__ import annotations

import pytest

from orchestrator.dashboard import charts


@pytest.mark.parametrize(
    ("labels", "kept"),
    [
        ([(50.0, "Oct 4"), (200.0, "Nov 1"), (330.0, "Nov 22")], ["Oct 4", "Nov 1", "Nov 22"]),
        (
            [(50.0, "Nov 30 07:16"), (200.0, "Nov 30 07:17"), (330.0, "Nov 30 07:17")],
            ["Nov 30 07:16", "Nov 30 07:17"],
        ),  # one text once
        ([(50.0, "a"), (100.0, "b"), (330.0, "c")], ["a", "c"]),  # too close: the outer ones
        ([(50.0, "a"), (100.0, "b")], ["a"]),  # even the outer ones would touch
    ],
)
def test_axis_labels_never_repeat_or_run_into_each_other(labels, kept):
    assert [text for _x, text in charts._spaced(labels)] == kept
