"""prune on real S3 (SeaweedFS) and on the folder backend, with objects it must not touch.

Backups are written straight through the storage API (a dump object, then its manifest)
with chosen creation times, so no pg_dump runs. Failed deletions are real refusals:
on S3 a bucket policy denies DeleteObject on chosen keys (SeaweedFS enforces bucket
policies for identities without Admin, so prune runs as such an identity); on the
folder backend the files are made immutable with `chattr +i`, which stops root too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.catalog import Manifest
from orchestrator.storage import Storage, open_storage
from orchestrator.storage.base import S3Options
from tests.conftest import initialised, s3_env
from tests.harness import s3
from tests.harness.backups import put_backup

pytestmark = pytest.mark.integration

POLICY = {"KEEP_LAST": "2", "KEEP_DAILY": "3", "KEEP_WEEKLY": "0", "KEEP_MONTHLY": "0"}
# (database, created_at UTC, reasons it is kept under POLICY; empty: removed)
BACKUPS = [
    ("shop", "2026-03-10 18:00", ["last", "daily"]),
    ("shop", "2026-03-10 06:00", ["last"]),
    ("shop", "2026-03-09 18:00", ["daily"]),
    ("shop", "2026-03-09 06:00", []),
    ("shop", "2026-03-08 06:00", ["daily"]),
    ("shop", "2026-03-07 06:00", []),
    ("shop", "2026-03-01 06:00", []),
    ("shop", "2026-02-15 06:00", []),
    # older than every shop backup: kept only because the policy applies per database
    ("crm", "2026-01-05 03:00", ["last", "daily"]),
    ("crm", "2026-01-05 02:00", ["last"]),
    ("crm", "2026-01-05 01:00", []),
    ("crm", "2026-01-04 01:00", ["daily"]),
]
FOREIGN = ["notes.txt", "shop/otherdb-dump.sql", "crm/2026/01/01/crm-20260101T000000Z.dump.bak"]
ORPHANS = [
    "shop/2026/02/01/shop-20260201T060000Z.dump",  # a dump without a manifest
    "shop/2026/01/15/shop-20260115T060000Z.dump",  # a dump whose manifest is unreadable
    "shop/2026/01/15/shop-20260115T060000Z.manifest.json",
]


@dataclass
class Backend:
    """A store at prefix `prod` plus a sibling prefix `staging` and an object outside both."""

    env: dict[str, str]
    store: Storage
    other: Storage
    all_keys: Callable[[], set[str]]
    deny_delete: Callable[[list[str]], None]


def s3_backend(request, monkeypatch) -> Backend:
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("bucket")
    admin = server.client()
    for name, value in s3_env(server, bucket).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    options = S3Options(endpoint_url=server.endpoint)
    worker = {"AWS_ACCESS_KEY_ID": s3.WORKER_KEY, "AWS_SECRET_ACCESS_KEY": s3.WORKER_SECRET}

    def all_keys() -> set[str]:
        pages = admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def deny_delete(keys: list[str]) -> None:
        resources = [f"arn:aws:s3:::{bucket}/prod/{key}" for key in keys]
        statement = {"Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject"]}
        policy = {"Version": "2012-10-17", "Statement": [{**statement, "Resource": resources}]}
        admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    admin.put_object(Bucket=bucket, Key="top-level.txt", Body=b"outside every prefix")
    return Backend(
        env={**s3_env(server, bucket, "prod"), **worker},
        store=open_storage(f"s3://{bucket}/prod", options),
        other=open_storage(f"s3://{bucket}/staging", options),
        all_keys=all_keys,
        deny_delete=deny_delete,
    )


def folder_backend(request, tmp_path: Path) -> Backend:
    base = tmp_path / "bucket"
    frozen: list[Path] = []

    def all_keys() -> set[str]:
        return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}

    def deny_delete(keys: list[str]) -> None:
        for key in keys:
            path = base / "prod" / key
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chattr +i is not available here: {done.stderr.decode().strip()}")
            frozen.append(path)

    def thaw() -> None:
        for path in frozen:
            subprocess.run(["chattr", "-i", str(path)], check=False)

    request.addfinalizer(thaw)
    base.mkdir()
    (base / "top-level.txt").write_text("outside every prefix")
    return Backend(
        env={"STORAGE_URL": f"file://{base}/prod"},
        store=initialised(open_storage(f"file://{base}/prod")),
        other=initialised(open_storage(f"file://{base}/staging")),
        all_keys=all_keys,
        deny_delete=deny_delete,
    )


@pytest.fixture(params=["s3", "folder"])
def backend(request, tmp_path: Path, monkeypatch) -> Backend:
    if request.param == "s3":
        return s3_backend(request, monkeypatch)
    return folder_backend(request, tmp_path)


@pytest.fixture
def seeded(backend: Backend) -> dict[str, Manifest]:
    """Every backup in BACKUPS plus the objects prune must leave alone; backups by id."""
    manifests = [put_backup(backend.store, db, when) for db, when, _ in BACKUPS]
    for key in FOREIGN + ORPHANS[:2]:
        backend.store.put_bytes(key, b"not a backup of ours")
    backend.store.put_bytes(ORPHANS[2], b"{ not json")
    # a whole backup history under another prefix, all older than anything under prod
    for when in ("2025-01-01 06:00", "2025-01-02 06:00", "2025-06-01 06:00"):
        put_backup(backend.other, "shop", when)
    return {m.id: m for m in manifests}


def expected_reasons(manifests: dict[str, Manifest]) -> dict[str, list[str]]:
    by_time = {(m.database, m.created_at): m.id for m in manifests.values()}
    table = {}
    for db, when, reasons in BACKUPS:
        created = datetime.fromisoformat(when).replace(tzinfo=UTC)
        table[by_time[(db, created)]] = reasons or ["no rule keeps it"]
    return table


def full_keys(*manifests: Manifest, parts: tuple[str, ...] = ("manifest", "dump")) -> set[str]:
    keys = {"manifest": lambda m: m.manifest_key, "dump": lambda m: m.dump_key}
    return {f"prod/{keys[part](m)}" for m in manifests for part in parts}


def removed(manifests: dict[str, Manifest]) -> list[Manifest]:
    reasons = expected_reasons(manifests)
    return [m for m in manifests.values() if reasons[m.id] == ["no rule keeps it"]]


def test_dry_run_reports_every_decision_and_deletes_nothing(
    backend: Backend, seeded: dict[str, Manifest], orch_factory
):
    orch = orch_factory(**backend.env, **POLICY)
    before = backend.all_keys()

    report = json.loads(orch.ok("prune", "--dry-run", "--json").stdout)

    assert report["dry_run"] is True and report["errors"] == []
    assert {b["id"]: b["reasons"] for b in report["backups"]} == expected_reasons(seeded)
    assert {b["id"]: b["keep"] for b in report["backups"]} == {
        i: r != ["no rule keeps it"] for i, r in expected_reasons(seeded).items()
    }
    first = report["backups"][0]
    assert first == {
        "id": "crm-20260105T030000Z",
        "database": "crm",
        "created_at": "2026-01-05T03:00:00Z",
        "keep": True,
        "reasons": ["last", "daily"],
    }
    assert report["unrecognised"] == sorted(FOREIGN + ORPHANS)
    human = orch.ok("prune", "--dry-run").stdout
    assert "shop-20260301T060000Z  2026-03-01 06:00:00  REMOVE  no rule keeps it" in human
    assert "7 kept, 5 to remove (dry run: nothing deleted)" in human
    assert "left alone (foreign object): notes.txt" in human
    assert f"left alone (no readable manifest): {ORPHANS[0]}" in human
    assert backend.all_keys() == before


def test_prune_deletes_exactly_the_removed_backups(
    backend: Backend, seeded: dict[str, Manifest], orch_factory
):
    orch = orch_factory(**backend.env, **POLICY)
    before = backend.all_keys()
    gone = removed(seeded)
    assert len(gone) == 5

    result = orch.ok("prune")

    assert "7 kept, 5 removed" in result.stdout
    assert backend.all_keys() == before - full_keys(*gone)
    listing = orch.run("list", "--json")  # exit 1: it names the unreadable manifest
    assert listing.returncode == 1 and ORPHANS[2] in listing.stderr.splitlines()[-1]
    listed = {b["id"] for b in json.loads(listing.stdout)}
    assert listed == set(seeded) - {m.id for m in gone}
    # a second run finds nothing more to remove
    again = json.loads(orch.ok("prune", "--json").stdout)
    assert all(b["keep"] for b in again["backups"]) and again["errors"] == []
    assert backend.all_keys() == before - full_keys(*gone)


def test_a_policy_that_keeps_nothing_is_refused(
    backend: Backend, seeded: dict[str, Manifest], orch_factory
):
    zero = {f"KEEP_{rule}": "0" for rule in ("LAST", "HOURLY", "DAILY", "WEEKLY", "MONTHLY")}
    orch = orch_factory(**backend.env, **zero, KEEP_WITHIN="")
    before = backend.all_keys()

    result = orch.run("prune")

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("orchestrator:")]
    assert len(errors) == 1
    assert "keeps nothing is refused" in errors[0] and "KEEP_LAST" in errors[0]
    assert result.stdout == ""
    assert backend.all_keys() == before


def test_failed_deletes_are_reported_and_the_others_still_happen(
    backend: Backend, seeded: dict[str, Manifest], orch_factory
):
    orch = orch_factory(**backend.env, **POLICY)
    dump_stuck = seeded["shop-20260309T060000Z"]  # its manifest goes, its dump cannot
    manifest_stuck = seeded["shop-20260307T060000Z"]  # its manifest cannot go: untouched
    backend.deny_delete([dump_stuck.dump_key, manifest_stuck.manifest_key])
    before = backend.all_keys()

    result = orch.run("prune", "--json")

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert len(report["errors"]) == 2
    dump_error, manifest_error = sorted(
        report["errors"], key=lambda e: not e.startswith(dump_stuck.id)
    )
    assert dump_error.startswith(f"{dump_stuck.id}: manifest deleted but the dump")
    assert dump_stuck.dump_key in dump_error
    assert manifest_error.startswith(f"{manifest_stuck.id}: manifest not deleted")
    assert manifest_stuck.manifest_key in manifest_error
    assert f"orchestrator: error: {dump_error}" in result.stderr
    left = full_keys(dump_stuck, parts=("dump",)) | full_keys(manifest_stuck)
    assert backend.all_keys() == (before - full_keys(*removed(seeded))) | left
    # the half-removed backup is gone from the catalog; its dump is now reported, not deleted
    later = json.loads(orch.ok("prune", "--dry-run", "--json").stdout)
    assert manifest_stuck.id in {b["id"] for b in later["backups"]}
    assert dump_stuck.id not in {b["id"] for b in later["backups"]}
    assert dump_stuck.dump_key in later["unrecognised"]


def test_a_bad_keep_within_is_a_config_error(tmp_path: Path, orch_factory):
    store = tmp_path / "store"
    put_backup(initialised(open_storage(f"file://{store}")), "shop", "2026-03-10 18:00")
    orch = orch_factory(STORAGE_URL=f"file://{store}", KEEP_WITHIN="7 days")

    result = orch.run("prune")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "orchestrator: error: KEEP_WITHIN: '7 days' is not a duration like 7d, 2w, 1y6m or 12h"
    )
    assert len(list(store.rglob("*.dump"))) == 1
