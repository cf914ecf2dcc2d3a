"""restore_plan.is_staging_of: which databases a restore of a target may sweep as its own
runs' leftovers (and never another target's, nor the target or its previous copies)."""

from __future__ import annotations

import pytest

from orchestrator.restore_plan import is_staging_of, previous_names, staging_name

LONG = "a_target_name_that_is_long_enough_to_be_shortened_" + "x" * 10


@pytest.mark.parametrize(
    ("target", "name", "expected"),
    [
        ("shop", "shop__restore_0a1b2c3d", True),
        ("shop", staging_name("shop", "ffffffff"), True),
        ("My Db-ü.x", staging_name("My Db-ü.x", "12345678"), True),
        (LONG, staging_name(LONG, "deadbeef"), True),
        ("drill_shop", staging_name("drill_shop", "0a1b2c3d"), True),
        # not this target's
        ("shop", "shop", False),
        ("shop", previous_names("shop", 1)[0], False),
        ("shop", "shop2__restore_0a1b2c3d", False),
        ("shop", "other_shop__restore_0a1b2c3d", False),
        ("shop__restore_0a1b2c3d", "shop__restore_0a1b2c3d", False),
        ("drill_shop", "shop__restore_0a1b2c3d", False),
        ("shop", "drill_shop__restore_0a1b2c3d", False),
        (LONG + "y", staging_name(LONG, "deadbeef"), False),
        # not a run id this tool gives
        ("shop", "shop__restore_0A1B2C3D", False),
        ("shop", "shop__restore_0a1b2c3", False),
        ("shop", "shop__restore_0a1b2c3d0", False),
        ("shop", "shop__restore_0a1b2c3d\n", False),
        ("shop", "shop__restore_", False),
    ],
)
def test_a_staging_copy_is_recognised_only_for_its_own_target(target, name, expected):
    assert is_staging_of(target, name) is expected
