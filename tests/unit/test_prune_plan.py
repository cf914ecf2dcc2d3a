"""Pure parts of prune: the per-database plan, object classification, the KEEP_* settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator import catalog
from orchestrator.catalog import Manifest
from orchestrator.errors import ConfigError
from orchestrator.operations.prune import (
    FOREIGN_LAYOUT,
    NOT_KEPT,
    WHOLE,
    PruneResult,
    as_dict,
    classify,
    plan_prune,
    stale_orphans,
    table_lines,
)
from orchestrator.retention import Duration, Policy
from orchestrator.settings import load_settings
from orchestrator.storage import ObjectInfo

KEEP_VARS = ("LAST", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY", "WITHIN")


def manifest(database: str, when: datetime, **changes: object) -> Manifest:
    backup_id = catalog.new_backup_id(database, when)
    fields: dict[str, object] = {
        "id": backup_id,
        "created_at": when,
        "database": database,
        "dump_key": catalog.dump_key_for(backup_id),
        "size_bytes": 1,
        "sha256": "0" * 64,
        "server_version": "17.2",
        "server_version_num": 170002,
        "pg_dump_version": "17.2",
        "duration_seconds": 1.0,
    }
    return Manifest.model_validate({**fields, **changes})


def at(day: int, hour: int = 6) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_the_policy_applies_to_each_database_on_its_own():
    shop = [manifest("shop", at(d)) for d in (10, 9, 8, 7)]
    crm = [manifest("crm", at(1)), manifest("crm", at(1, 3))]
    decisions = plan_prune([*shop, *crm], Policy(last=1, daily=2))

    assert [(d.manifest.id, d.keep, d.reasons) for d in decisions] == [
        ("crm-20260301T060000Z", True, ("last", "daily")),
        ("crm-20260301T030000Z", False, (NOT_KEPT,)),
        ("shop-20260310T060000Z", True, ("last", "daily")),
        ("shop-20260309T060000Z", True, ("daily",)),
        ("shop-20260308T060000Z", False, (NOT_KEPT,)),
        ("shop-20260307T060000Z", False, (NOT_KEPT,)),
    ]


def test_the_newest_backup_of_every_database_is_kept():
    old = [manifest("old", at(1) - timedelta(days=400 + n)) for n in range(5)]
    new = [manifest("new", at(10, h)) for h in range(5)]
    decisions = plan_prune([*new, *old], Policy(within=Duration(hours=1)))
    kept = {d.manifest.id for d in decisions if d.keep}
    assert {new[-1].id, old[0].id} <= kept
    assert len(decisions) == 10


def test_manifests_not_following_the_layout_are_kept_and_ignored_by_the_policy():
    odd = manifest("shop", at(1), dump_key="notes.txt")
    normal = [manifest("shop", at(d)) for d in (10, 9)]
    decisions = plan_prune([odd, *normal], Policy(last=1))
    assert [(d.manifest.id, d.keep, d.reasons) for d in decisions] == [
        (normal[0].id, True, ("last",)),
        (normal[1].id, False, (NOT_KEPT,)),
        (odd.id, True, (FOREIGN_LAYOUT,)),
    ]


@pytest.mark.parametrize(
    ("whole_days", "kept"),
    [
        ((10, 9, 8), {10: ("last",)}),  # all whole: the policy alone
        ((9, 8), {10: ("last",), 9: (WHOLE,)}),  # the newest lost a file
        ((8,), {10: ("last",), 8: (WHOLE,)}),  # only the oldest is whole
        ((), {10: ("last",)}),  # none is whole: nothing more to keep
    ],
)
def test_the_newest_whole_backup_is_kept_whatever_the_policy_says(whole_days, kept):
    backups = {day: manifest("shop", at(day)) for day in (10, 9, 8)}
    whole = {backups[day].id for day in whole_days}
    decisions = plan_prune(backups.values(), Policy(last=1), whole)
    assert {d.manifest.id: d.reasons for d in decisions if d.keep} == {
        backups[day].id: reasons for day, reasons in kept.items()
    }


def test_a_backup_is_whole_when_each_dump_object_is_listed_at_its_size():
    single = manifest("shop", at(1), size_bytes=100)
    files = [
        {"name": n, "size_bytes": 5, "sha256": "0" * 64, "plain_size_bytes": 5, "plain_sha256": ""}
        for n in ("toc.dat", "3.dat")
    ]
    directory_id = catalog.new_backup_id("shop", at(2))
    directory = manifest(
        "shop", at(2), format="directory", dump_key=catalog.dir_key_for(directory_id), files=files
    )
    listing = {single.dump_key: 100, **{directory.file_key(f): 5 for f in directory.files}}

    def whole(**changes: int | None) -> set[str]:
        listed = {**listing, **changes}
        infos = [ObjectInfo(k, size, at(3)) for k, size in listed.items() if size is not None]
        return catalog.whole_backups([single, directory], infos)

    assert whole() == {single.id, directory.id}
    assert whole(**{single.dump_key: 99}) == {directory.id}  # cut short
    assert whole(**{single.dump_key: None}) == {directory.id}  # missing
    assert whole(**{directory.file_key(directory.files[1]): None}) == {single.id}  # one file


def test_naive_creation_times_are_read_as_utc():
    decisions = plan_prune([manifest("shop", at(2).replace(tzinfo=None))], Policy(last=1))
    assert decisions[0].keep


def test_an_empty_policy_plans_nothing():
    with pytest.raises(ValueError, match="keeps nothing"):
        plan_prune([manifest("shop", at(1))], Policy())
    assert plan_prune([], Policy(last=1)) == []


def test_classify_separates_foreign_objects_from_keys_of_no_backup():
    known = manifest("shop", at(1))
    keys = [
        known.dump_key,
        known.manifest_key,
        "notes.txt",
        "shop/otherdb-dump.sql",
        "shop/2026/01/01/shop-20260101T000000Z.dump",
        "shop/2026/01/02/shop-20260102T000000Z.manifest.json",
    ]
    objects = [ObjectInfo(key, 1, at(1)) for key in keys]
    foreign, orphans = classify(objects, [known])
    assert foreign == ["notes.txt", "shop/otherdb-dump.sql"]
    assert orphans == [
        "shop/2026/01/01/shop-20260101T000000Z.dump",
        "shop/2026/01/02/shop-20260102T000000Z.manifest.json",
    ]


NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
DAY = Duration(days=1)


def _orphans_of(manifests: list[Manifest], *objects: tuple[str, datetime]) -> list[str]:
    """The stale orphans of a listing holding `objects` and the manifests' keys."""
    infos = [ObjectInfo(key, 1, when) for key, when in objects]
    infos += [ObjectInfo(m.manifest_key, 1, m.created_at) for m in manifests]
    return stale_orphans(infos, NOW, DAY)


def test_a_half_uploaded_directory_older_than_the_grace_and_a_newer_backup_goes():
    newer = manifest("shop", at(5))
    old_dir = catalog.dir_key_for(catalog.new_backup_id("shop", at(4)))
    old_dump = catalog.dump_key_for(catalog.new_backup_id("shop", at(3)), encrypted=True)
    assert _orphans_of(
        [newer], (old_dir + "toc.dat", at(4)), (old_dir + "1.dat.zst", at(4)), (old_dump, at(3))
    ) == sorted([old_dir + "toc.dat", old_dir + "1.dat.zst", old_dump])


@pytest.mark.parametrize(
    ("what", "key_at", "written"),
    [
        ("written within the grace period", at(4), NOW - timedelta(hours=23)),
        ("newer than the newest backup: a run still going", at(6), at(6)),
        ("of a database with no backup in the store", None, at(1)),
    ],
)
def test_orphans_are_kept_while_an_upload_may_still_run(what, key_at, written):
    newest = manifest("shop", at(5))
    database = "shop" if key_at is not None else "crm"
    key = catalog.dir_key_for(catalog.new_backup_id(database, key_at or at(1))) + "9.dat"
    assert _orphans_of([newest], (key, written)) == [], what


def test_only_dump_objects_of_no_manifest_are_orphans():
    kept = manifest("shop", at(5))
    newer = manifest("shop", at(6))
    unreadable = catalog.new_backup_id("shop", at(2))  # its manifest is listed, not readable
    stray = catalog.dir_key_for(kept.id) + "7.dat"  # rekey's leftover: its id has a manifest
    found = _orphans_of(
        [kept, newer],
        (kept.dump_key, at(1)),
        (stray, at(1)),
        (catalog.manifest_key_for(unreadable), at(1)),
        (catalog.dump_key_for(unreadable), at(1)),
        (catalog.dir_key_for(unreadable) + "toc.dat", at(1)),
        ("notes.txt", at(1)),
    )
    assert found == []
    assert stale_orphans([ObjectInfo("x", 1, at(1))], NOW, None) == []


@pytest.mark.parametrize("name", ["shop-20261345T999999Z.dump", "shop-20260230T060000Z.d/toc.dat"])
def test_a_key_of_the_layouts_shape_but_no_real_time_is_left_alone(name: str):
    newer = manifest("shop", at(6))
    key = f"shop/2026/13/45/{name}" if "1345" in name else f"shop/2026/02/30/{name}"
    assert _orphans_of([newer], (key, at(1))) == []


def test_a_backup_of_another_database_under_the_same_prefix_is_not_an_orphan():
    """`my db` and `my_db` share the prefix `my_db/`: each one's backups are named by its
    own manifest, whichever database the prune was asked about."""
    spaced, underscored = manifest("my db", at(5)), manifest("my_db", at(4))
    assert spaced.dump_key.split("/")[0] == underscored.dump_key.split("/")[0]
    assert _orphans_of([spaced, underscored], (underscored.dump_key, at(1))) == []


def test_reports_name_every_backup_and_what_was_left_alone():
    decisions = plan_prune([manifest("shop", at(d)) for d in (10, 9)], Policy(last=1))
    result = PruneResult(False, decisions, foreign=["notes.txt"], errors=["shop-x: failed"])
    assert as_dict(result)["backups"][1] == {
        "id": "shop-20260309T060000Z",
        "database": "shop",
        "created_at": "2026-03-09T06:00:00Z",
        "keep": False,
        "reasons": [NOT_KEPT],
    }
    lines = table_lines(result)
    assert lines[1].split() == ["shop-20260310T060000Z", "2026-03-10", "06:00:00", "KEEP", "last"]
    assert lines[-2:] == [
        "1 kept, 0 removed, 1 could not be removed",
        "left alone (foreign object): notes.txt",
    ]


@pytest.fixture
def clean_env(monkeypatch):
    for name in KEEP_VARS:
        monkeypatch.delenv(f"KEEP_{name}", raising=False)
    monkeypatch.delenv("RETENTION_TIMEZONE", raising=False)
    return monkeypatch


def test_default_policy_is_last_4_daily_14_weekly_8_monthly_12_in_utc(clean_env):
    policy = load_settings(None).retention_policy()
    assert policy == Policy(last=4, daily=14, weekly=8, monthly=12, tz=UTC)


def test_keep_settings_build_the_policy(clean_env):
    clean_env.setenv("KEEP_HOURLY", "24")
    clean_env.setenv("KEEP_YEARLY", "3")
    clean_env.setenv("KEEP_WITHIN", " 2w ")
    clean_env.setenv("RETENTION_TIMEZONE", "America/New_York")
    settings = load_settings(None)
    assert settings.keep_within == "14d"
    policy = settings.retention_policy()
    assert (policy.hourly, policy.yearly, policy.within) == (24, 3, Duration(days=14))
    assert policy.tz == ZoneInfo("America/New_York")


def test_blank_within_and_timezone_mean_unset(clean_env):
    clean_env.setenv("KEEP_WITHIN", "")
    clean_env.setenv("RETENTION_TIMEZONE", " ")
    policy = load_settings(None).retention_policy()
    assert policy.within is None and policy.tz == UTC


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KEEP_WITHIN", "7 days", "KEEP_WITHIN: '7 days' is not a duration like 7d"),
        ("KEEP_WITHIN", "0d", "KEEP_WITHIN: '0d' is not a duration"),
        ("RETENTION_TIMEZONE", "Mars/Base", "RETENTION_TIMEZONE: 'Mars/Base' is not a time zone"),
        ("RETENTION_TIMEZONE", "../etc/passwd", "RETENTION_TIMEZONE: '../etc/passwd' is not"),
        ("KEEP_DAILY", "-1", "KEEP_DAILY: Input should be greater than or equal to 0"),
        ("KEEP_LAST", "many", "KEEP_LAST: Input should be a valid integer"),
    ],
)
def test_bad_retention_settings_are_config_errors_naming_the_variable(
    clean_env, name: str, value: str, message: str
):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_policy_that_keeps_nothing_is_refused(clean_env):
    for name in KEEP_VARS[:-1]:
        clean_env.setenv(f"KEEP_{name}", "0")
    settings = load_settings(None)
    with pytest.raises(ConfigError, match="keeps nothing is refused; set KEEP_LAST"):
        settings.retention_policy()
    clean_env.setenv("KEEP_WITHIN", "1d")
    assert load_settings(None).retention_policy().within == Duration(days=1)
