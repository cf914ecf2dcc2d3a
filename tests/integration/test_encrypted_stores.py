"""Encrypted archives in two real S3 stores: age to public keys, fan-out, fallback, sync,
rekey; and that no identity or secret ever shows in a log line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.commands import backup as backup_action
from orchestrator.settings import load_settings
from orchestrator.storage import s3 as s3_backend
from tests.conftest import Clusters, Orchestrator, load_sample, s3_env
from tests.harness import s3
from tests.harness.faulty_proxy import FaultyProxy
from tests.harness.folders import FolderPeak
from tests.harness.keys import KeyPair, make_key
from tests.harness.recorder import Recorder
from tests.harness.targets import CHECK_SQL, fresh_target, old_content

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def second_s3() -> Iterator[s3.S3Server]:
    server = s3.start_s3()
    yield server
    server.stop()


@dataclass
class Setup:
    source: Any
    db: str
    backup: Any
    backup_db: str
    env: dict[str, str]
    orch: Orchestrator
    stores: list[tuple[s3.S3Server, str, str]]  # server, bucket, prefix
    key: KeyPair
    tmp: Path
    logs: list[str] = field(default_factory=list)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        # an empty value unsets the setting for this run
        result = self.orch.run(*args, extra_env=env or None)
        self.logs.append(result.stderr + result.stdout)
        return result

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **env)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def keys(self, index: int) -> list[str]:
        server, bucket, _prefix = self.stores[index]
        listing = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def get(self, index: int, key: str) -> bytes:
        server, bucket, _prefix = self.stores[index]
        body = server.client().get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
        return bytes(body.read())

    def uploads(self, index: int) -> list[str]:
        """The keys of unfinished multipart uploads in store `index`."""
        server, bucket, _prefix = self.stores[index]
        listing = server.client().list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
        return [u["Key"] for u in listing.get("Uploads", [])]

    def manifests(self, index: int) -> list[dict[str, Any]]:
        keys = [k for k in self.keys(index) if k.endswith(".manifest.json")]
        return [json.loads(self.get(index, k)) for k in keys]


def second_store_env(server: s3.S3Server, bucket: str, prefix: str = "dr") -> dict[str, str]:
    return {
        "STORAGE_URL_2": f"s3://{bucket}/{prefix}",
        "S3_ENDPOINT_URL_2": server.endpoint,
        "AWS_ACCESS_KEY_ID_2": s3.WORKER_KEY,
        "AWS_SECRET_ACCESS_KEY_2": s3.WORKER_SECRET,
        "S3_REGION_2": "us-east-1",
    }


NO_SECOND_STORE = dict.fromkeys(second_store_env(s3.S3Server("", Path(), None, []), ""), "")  # type: ignore[arg-type]


@pytest.fixture
def setup(
    clusters: Clusters, s3_server: s3.S3Server, second_s3: s3.S3Server, orch_factory, tmp_path
) -> Setup:
    source = clusters.get(17)
    db = load_sample(source)
    backup_c = clusters.get(15)
    backup_db = fresh_target(backup_c)
    key = make_key(tmp_path, "key")
    buckets = (s3_server.new_bucket(), second_s3.new_bucket())
    env = {
        "SOURCE_DATABASE_URL": source.url(db),
        "BACKUP_DATABASE_URL": backup_c.url(backup_db),
        "ARCHIVE_RECIPIENTS": key.recipient,
        **s3_env(s3_server, buckets[0]),
        **second_store_env(second_s3, buckets[1]),
    }
    stores = [(s3_server, buckets[0], "prod"), (second_s3, buckets[1], "dr")]
    return Setup(source, db, backup_c, backup_db, env, orch_factory(**env), stores, key, tmp_path)


def test_an_encrypted_backup_is_in_both_stores_and_opens_with_age_and_pg_restore(setup: Setup):
    s = setup
    backup_id = s.ok("backup").stdout.strip()
    listed = json.loads(s.ok("list", "--json").stdout)
    assert [b["id"] for b in listed] == [backup_id]
    assert listed[0]["encrypted"] is True
    assert sorted(listed[0]["stores"]) == sorted(f"s3://{b}/{p}" for _s, b, p in s.stores)
    for index in (0, 1):
        (manifest,) = s.manifests(index)
        assert manifest["encryption"] == {"scheme": "age", "recipients": [s.key.recipient]}
        stored = s.get(index, f"{s.stores[index][2]}/{manifest['dump_key']}")
        assert manifest["dump_key"].endswith(".dump.age") and b"PGDMP" not in stored
        assert hashlib.sha256(stored).hexdigest() == manifest["sha256"]
        assert len(stored) == manifest["size_bytes"]
        sealed = s.tmp / f"copy{index}.age"
        sealed.write_bytes(stored)
        plain = s.tmp / f"copy{index}.dump"
        subprocess.run(
            ["age", "-d", "-i", str(s.key.identity_file), "-o", str(plain), str(sealed)],
            check=True,
        )
        assert plain.read_bytes().startswith(b"PGDMP")
        assert hashlib.sha256(plain.read_bytes()).hexdigest() == manifest["plain_sha256"]
        toc = subprocess.run(
            [str(s.source.bin_dir / "pg_restore"), "--list", str(plain)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert "TABLE DATA public customers" in toc


def test_reading_an_encrypted_backup_needs_the_identity_and_works_with_it(setup: Setup):
    s = setup
    backup_id = s.ok("backup").stdout.strip()
    target = s.backup.url(s.backup_db)
    for command in (
        ["restore", "--target", "backup"],
        ["drill"],
        ["fetch", "latest", "-o", str(s.tmp)],
        ["rekey"],
    ):
        result = s.run(*command)
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert "ARCHIVE_IDENTITY_FILE" in result.stderr.splitlines()[-1]
    assert old_content(s.backup, s.backup_db) == "old content"

    verified = json.loads(s.ok("verify", backup_id, "--json").stdout)
    assert verified["checks"]["sha256"] == "ok" and verified["checks"]["toc"].startswith("skipped")
    assert set(verified["stores"].values()) == {"ok"}

    with_key = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    deep = json.loads(s.ok("verify", backup_id, "--json", **with_key).stdout)
    assert deep["ok"] and deep["checks"]["decrypt"] == "ok" and deep["checks"]["toc"] == "ok"
    plain = Path(s.ok("fetch", "latest", "-o", str(s.tmp), **with_key).stdout.strip())
    assert plain.name == f"{backup_id}.dump" and plain.read_bytes().startswith(b"PGDMP")
    raw = Path(s.ok("fetch", "latest", "-o", str(s.tmp), "--raw").stdout.strip())
    assert raw.name == f"{backup_id}.dump.age"
    assert raw.read_bytes().startswith(b"age-encryption.org/v1")
    s.ok("restore", "--target", "backup", **with_key)
    assert s.backup.psql(CHECK_SQL, s.backup_db) == s.source.psql(CHECK_SQL, s.db)
    assert "drill OK" in s.ok("drill", **with_key).stdout
    s.ok("restore", "--target", target, "--dump", str(raw), **with_key)  # the sealed file
    s.ok("restore", "--target", target, "--dump", str(plain))  # the plain one needs no key


def test_one_store_down_during_a_cycle_keeps_the_backup_in_the_other_and_sync_heals_it(
    setup: Setup, second_s3: s3.S3Server
):
    s = setup
    sink = Recorder()
    dev_db = fresh_target(s.backup)
    env = {"NOTIFY_WEBHOOK_URL": f"{sink.url}/hook", "DEV_DATABASE_URL": s.backup.url(dev_db)}
    second_s3.halt()
    try:
        result = s.run("pipeline", "--json", **env)
    finally:
        second_s3.resume()
        sink.stop()
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(result.stdout)
    steps = {step["name"]: step for step in report["steps"]}
    assert steps["restore:backup"]["ok"] and steps["restore:dev"]["ok"]
    assert not steps["upload"]["ok"] and steps["prune"]["ok"]
    second_label = f"s3://{s.stores[1][1]}/dr"
    assert second_label in steps["upload"]["error"] and "STORAGE_URL_2" in steps["upload"]["error"]
    assert steps["upload"]["detail"]["stores"][f"s3://{s.stores[0][1]}/prod"] == "ok"
    assert s.backup.psql(CHECK_SQL, s.backup_db) == s.source.psql(CHECK_SQL, s.db)
    assert s.backup.psql(CHECK_SQL, dev_db) == s.source.psql(CHECK_SQL, s.db)
    hook = json.loads(next(r.body for r in sink.requests if r.path == "/hook"))
    assert hook["status"] == "failure" and second_label in hook["text"]
    assert len(s.manifests(0)) == 1 and s.manifests(1) == []

    assert "would copy" in s.ok("sync", "--dry-run").stdout and s.manifests(1) == []
    assert f"-> {second_label}" in s.ok("sync").stdout
    listed = json.loads(s.ok("list", "--json").stdout)
    assert len(listed) == 1 and len(listed[0]["stores"]) == 2
    assert s.manifests(1)[0]["sha256"] == s.manifests(0)[0]["sha256"]
    assert "every store holds every backup" in s.ok("sync").stdout

    # the next cycle heals too: a backup missing from store 1 is copied back by the pipeline
    for key in s.keys(0):
        if "/_orchestrator/" not in key:
            s.stores[0][0].client().delete_object(Bucket=s.stores[0][1], Key=key)  # type: ignore[attr-defined]
    report = json.loads(s.ok("pipeline", "--json").stdout)
    assert [step["name"] for step in report["steps"]][-2:] == ["sync", "prune"]
    assert len(s.manifests(0)) == 2 and len(s.manifests(1)) == 2


def test_a_store_with_refused_credentials_does_not_stop_the_other(setup: Setup):
    s = setup
    result = s.run("backup", AWS_SECRET_ACCESS_KEY_2="wrong-secret-0000")
    assert result.returncode == 1
    assert "AWS_ACCESS_KEY_ID_2" in result.stderr.splitlines()[-1]
    assert len(s.manifests(0)) == 1 and s.manifests(1) == []


def _proxy_all_failing(server: s3.S3Server) -> FaultyProxy:
    proxy = FaultyProxy(server.endpoint)
    proxy.rule = lambda _method, _path: True
    return proxy


@pytest.mark.parametrize("fault", ["down", "corrupted"])
def test_restore_falls_back_to_the_second_store(setup: Setup, fault: str):
    s = setup
    s.ok("backup")
    with_key = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    proxy = None
    if fault == "down":
        proxy = _proxy_all_failing(s.stores[0][0])
        with_key["S3_ENDPOINT_URL"] = proxy.endpoint
    else:
        server, bucket, prefix = s.stores[0]
        (manifest,) = s.manifests(0)
        key = f"{prefix}/{manifest['dump_key']}"
        damaged = bytearray(s.get(0, key))
        damaged[len(damaged) // 2] ^= 0xFF
        server.client().put_object(Bucket=bucket, Key=key, Body=bytes(damaged))  # type: ignore[attr-defined]
    try:
        result = s.ok("restore", "--target", "backup", "--from", "latest", **with_key)
    finally:
        if proxy is not None:
            proxy.stop()
    assert s.backup.psql(CHECK_SQL, s.backup_db) == s.source.psql(CHECK_SQL, s.db)
    fallbacks = [json.loads(x) for x in result.stderr.splitlines() if '"store.fallback"' in x]
    if fault == "corrupted":
        assert fallbacks and "sha256" in fallbacks[0]["error"]
        verified = s.run("verify", "latest", "--json")
        assert verified.returncode == 1
        stores = json.loads(verified.stdout)["stores"]
        assert sorted(stores.values()) == ["failed", "ok"]


def test_rekey_moves_every_copy_to_the_new_key(setup: Setup):
    s = setup
    s.ok("backup")
    new = make_key(s.tmp, "new")
    old_keys = {m["dump_key"] for m in s.manifests(0)}
    env = {"ARCHIVE_RECIPIENTS": new.recipient, "ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    assert "would re-encrypt" in s.ok("rekey", "--dry-run", **env).stdout
    assert s.manifests(0)[0]["encryption"]["recipients"] == [s.key.recipient]
    out = s.ok("rekey", **env).stdout
    assert out.count("re-encrypted") == 2
    for index in (0, 1):
        (manifest,) = s.manifests(index)
        assert manifest["encryption"]["recipients"] == [new.recipient]
        assert manifest["dump_key"] not in old_keys
        dumps = [k for k in s.keys(index) if ".dump" in k]
        assert dumps == [f"{s.stores[index][2]}/{manifest['dump_key']}"]  # the old object is gone
    assert "every backup is encrypted" in s.ok("rekey", **env).stdout
    only_new = {"ARCHIVE_IDENTITY_FILE": str(new.identity_file)}
    s.ok("restore", "--target", "backup", **only_new)
    assert s.backup.psql(CHECK_SQL, s.backup_db) == s.source.psql(CHECK_SQL, s.db)
    result = s.run("restore", "--target", "backup", ARCHIVE_IDENTITY_FILE=str(s.key.identity_file))
    assert result.returncode == 1 and "cannot decrypt" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"ARCHIVE_RECIPIENTS": "age1notarealkey"},
        {"ARCHIVE_RECIPIENTS_FILE": "/nonexistent/recipients.txt"},
    ],
)
def test_a_bad_recipient_stops_before_anything_is_uploaded(setup: Setup, env: dict[str, str]):
    s = setup
    for command in ("backup", "pipeline"):
        result = s.run(command, **env)
        assert result.returncode == 2, result.stderr[-2000:]
        assert next(iter(env)) in result.stderr.splitlines()[-1]
    assert [k for i in (0, 1) for k in s.keys(i) if "/_orchestrator/" not in k] == []
    assert old_content(s.backup, s.backup_db) == "old content"


PART = s3_backend.MIN_STREAM_PART  # a stream's parts: several from a dump of a few MiB


def add_noise(s: Setup, rows: int = 250_000) -> None:
    """A table of random text in the source: a dump of about 14 MB, three 5 MiB parts."""
    s.source.psql(
        "CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS a,"
        f" md5(random()::text) AS b FROM generate_series(1, {rows}) AS g",
        s.db,
    )


@pytest.mark.parametrize("after", [1000, 7 * PART // 5], ids=["at-once", "after-a-part"])
def test_a_failing_encryption_uploads_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, after: int
):
    """The encryption dies (here: its output write fails), at once or once a part has
    gone up to both stores: no object, no manifest, no multipart upload left anywhere."""
    s = setup
    if after > PART:
        add_noise(s)
    for name, value in s.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PG_BIN_DIRS", s.orch.env["PG_BIN_DIRS"])
    monkeypatch.chdir(tmp_path)
    import pyrage

    real = pyrage.encrypt_io

    def dying(reader: Any, writer: Any, recipients: Any) -> None:
        class Failing:
            def write(self, data: bytes) -> int:
                if writer.size > after:
                    raise OSError(5, "Input/output error")
                return int(writer.write(data))

            def flush(self) -> None:
                writer.flush()

        real(reader, Failing(), recipients)

    monkeypatch.setattr("orchestrator.crypto.pyrage.encrypt_io", dying)
    with pytest.raises(Exception, match="encryption failed"):
        backup_action.backup(load_settings(None).job())
    assert [k for i in (0, 1) for k in s.keys(i)] == []
    assert [s.uploads(i) for i in (0, 1)] == [[], []]


def test_one_ciphertext_goes_to_both_stores_without_a_sealed_copy_in_work_dir(
    setup: Setup,
):
    """Both stores hold the same bytes (one encryption, streamed in parts), and WORK_DIR
    never holds more than the plain dump: no second, sealed copy."""
    s = setup
    add_noise(s)
    work = s.tmp / "work"
    work.mkdir()
    sampler = FolderPeak(work)
    try:
        s.ok("backup", WORK_DIR=str(work))
    finally:
        peak = sampler.stop()
    (first,), (second,) = s.manifests(0), s.manifests(1)
    assert first["sha256"] == second["sha256"] and first["size_bytes"] == second["size_bytes"]
    stored = [s.get(i, f"{s.stores[i][2]}/{first['dump_key']}") for i in (0, 1)]
    assert stored[0] == stored[1] and hashlib.sha256(stored[0]).hexdigest() == first["sha256"]
    plain = first["plain_size_bytes"]
    assert first["size_bytes"] > 2 * PART  # it went up in parts
    assert 0.9 * plain <= peak <= 1.05 * plain, f"peak {peak} for a dump of {plain} bytes"


def test_a_folder_store_gets_the_same_ciphertext_as_an_s3_store(setup: Setup):
    s = setup
    folder = {**NO_SECOND_STORE, "STORAGE_URL_2": str(s.tmp / "nas")}
    s.ok("init", **folder)
    s.ok("backup", **folder)
    (manifest,) = s.manifests(0)
    nas = s.tmp / "nas"
    assert (nas / manifest["dump_key"]).read_bytes() == s.get(0, f"prod/{manifest['dump_key']}")
    folder_manifest = nas / manifest["dump_key"].replace(".dump.age", ".manifest.json")
    assert json.loads(folder_manifest.read_text()) == manifest
    assert not list(nas.rglob(".tmp-*"))


def test_a_store_failing_mid_stream_keeps_the_other_whole_and_nothing_in_itself(
    setup: Setup, second_s3: s3.S3Server
):
    """Store 2 refuses part 2 of the stream: the backup fails naming STORAGE_URL_2, store 1
    holds it whole (it restores), store 2 holds no object, manifest or multipart upload."""
    s = setup
    add_noise(s)
    proxy = FaultyProxy(second_s3.endpoint)
    proxy.rule = lambda method, path: method == "PUT" and "partNumber=2&" in f"{path}&"
    try:
        result = s.run("backup", S3_ENDPOINT_URL_2=proxy.endpoint)
    finally:
        proxy.stop()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "STORAGE_URL_2" in result.stderr.splitlines()[-1] and proxy.failed
    assert [k for k in s.keys(1) if "/_orchestrator/" not in k] == [] and s.uploads(1) == []
    (manifest,) = s.manifests(0)
    stored = s.get(0, f"prod/{manifest['dump_key']}")
    assert hashlib.sha256(stored).hexdigest() == manifest["sha256"]
    with_key = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    s.ok("restore", "--target", "backup", **with_key)
    assert s.backup.psql("SELECT count(*) FROM noise", s.backup_db) == "250000"
    assert s.backup.psql(CHECK_SQL, s.backup_db) == s.source.psql(CHECK_SQL, s.db)


def test_a_dump_that_changes_before_it_is_encrypted_is_stored_nowhere(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """The bytes read for encryption are checked against the dump's recorded hash before
    any store's object completes: a dump file changed in between is uploaded nowhere."""
    s = setup
    for name, value in s.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PG_BIN_DIRS", s.orch.env["PG_BIN_DIRS"])
    monkeypatch.chdir(tmp_path)
    real = backup_action.take_dump

    def changed_after(job: Any, folder: Path, sink: Any = None) -> Any:
        dump = real(job, folder, sink)
        with dump.path.open("r+b") as handle:
            handle.seek(100)
            handle.write(b"X")
        return dump

    monkeypatch.setattr(backup_action, "take_dump", changed_after)
    with pytest.raises(Exception, match="the dump changed while it was encrypted"):
        backup_action.backup(load_settings(None).job())
    assert [k for i in (0, 1) for k in s.keys(i)] == []


def test_no_identity_or_secret_reaches_any_log_line(setup: Setup):
    s = setup
    with_key = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file), "LOG_LEVEL": "DEBUG"}
    s.ok("backup", **with_key)
    s.ok("drill", **with_key)
    s.ok("restore", "--target", "backup", **with_key)
    s.ok("fetch", "latest", "-o", str(s.tmp), **with_key)
    broken = s.tmp / "broken.txt"
    broken.write_text(f"{s.key.secret}X\n")
    s.run("drill", ARCHIVE_IDENTITY_FILE=str(broken))
    text = "\n".join(s.logs)
    assert s.key.secret not in text and s.key.secret[15:] not in text
    assert s3.SECRET_KEY not in text and s3.WORKER_SECRET not in text


def test_sync_never_uploads_a_plain_backup_once_recipients_are_set(setup: Setup):
    """A backup made before encryption was turned on is encrypted on its way to a store
    that lacks it; the copies then differ, and reading takes each copy as it is."""
    s = setup
    plain_only = {"ARCHIVE_RECIPIENTS": "", **NO_SECOND_STORE}
    backup_id = s.ok("backup", **plain_only).stdout.strip()
    assert s.manifests(0)[0]["encryption"] is None and s.manifests(1) == []
    s.ok("sync")
    (copied,) = s.manifests(1)
    assert copied["dump_key"].endswith(".dump.age") and copied["encryption"] is not None
    assert b"PGDMP" not in s.get(1, f"dr/{copied['dump_key']}")
    assert copied["plain_sha256"] == s.manifests(0)[0]["sha256"]
    with_key = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    out = Path(s.ok("fetch", backup_id, "-o", str(s.tmp), **with_key).stdout.strip())
    assert out.read_bytes().startswith(b"PGDMP")  # the plain copy of store 1
    proxy = _proxy_all_failing(s.stores[0][0])
    try:
        down = {**with_key, "S3_ENDPOINT_URL": proxy.endpoint}
        again = Path(s.ok("fetch", backup_id, "-o", str(s.tmp / "x.dump"), **down).stdout.strip())
    finally:
        proxy.stop()
    assert again.read_bytes() == out.read_bytes()  # decrypted from store 2


def test_a_store_that_cannot_be_asked_is_never_taken_for_a_missing_backup(setup: Setup):
    s = setup
    only_second = {  # a backup in store 2 alone
        "STORAGE_URL": f"s3://{s.stores[1][1]}/dr",
        "S3_ENDPOINT_URL": s.stores[1][0].endpoint,
        **NO_SECOND_STORE,
    }
    backup_id = s.ok("backup", **only_second).stdout.strip()
    assert s.manifests(0) == [] and len(s.manifests(1)) == 1
    # store 1 answers "not here"; store 2, which holds it, cannot be asked
    proxy = _proxy_all_failing(s.stores[1][0])
    try:
        result = s.run("fetch", backup_id, "-o", str(s.tmp), S3_ENDPOINT_URL_2=proxy.endpoint)
        verified = s.run("verify", "latest", "--json", S3_ENDPOINT_URL=proxy.endpoint)
    finally:
        proxy.stop()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "could not ask" in result.stderr.splitlines()[-1] and "/dr" in result.stderr
    assert verified.returncode == 1 and "could not be asked" in verified.stdout


def test_rekey_names_a_store_it_cannot_reach_and_removes_what_an_interrupted_run_left(
    setup: Setup,
):
    s = setup
    s.ok("backup")
    server, bucket, prefix = s.stores[0]
    (manifest,) = s.manifests(0)
    stray = f"{prefix}/{manifest['dump_key'].removesuffix('.dump.age')}.0badc0de.dump.age"
    server.client().put_object(Bucket=bucket, Key=stray, Body=b"left by an interrupted rekey")  # type: ignore[attr-defined]
    env = {"ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    s.ok("rekey", **env)  # every copy is current: only the stray goes
    assert stray not in s.keys(0)
    proxy = _proxy_all_failing(s.stores[1][0])
    try:
        result = s.run("rekey", S3_ENDPOINT_URL_2=proxy.endpoint, **env)
    finally:
        proxy.stop()
    assert result.returncode == 1 and "cannot list it" in result.stderr


def test_prune_during_a_rekey_of_the_same_backups_is_refused_and_nothing_is_lost(setup: Setup):
    s = setup
    s.ok("backup")
    s.ok("backup")
    new = make_key(s.tmp, "new")
    proxy = FaultyProxy(s.stores[0][0].endpoint)
    proxy.hold = lambda method, path: method == "PUT" and ".dump" in path  # the new object
    env = {"ARCHIVE_RECIPIENTS": new.recipient, "ARCHIVE_IDENTITY_FILE": str(s.key.identity_file)}
    rekey = s.orch.start("rekey", extra_env={**env, "S3_ENDPOINT_URL": proxy.endpoint})
    try:
        deadline = time.monotonic() + 60
        while not proxy.held and time.monotonic() < deadline and rekey.poll() is None:
            time.sleep(0.05)
        assert proxy.held, rekey.communicate(timeout=5)[1][-3000:]  # rekey is mid-change
        assert any("/_orchestrator/locks/" in k for k in s.keys(0))
        pruned = s.run("prune", KEEP_LAST="1", KEEP_DAILY="0", KEEP_WEEKLY="0", KEEP_MONTHLY="0")
        assert pruned.returncode == 3, pruned.stderr[-2000:]
        last = pruned.stderr.strip().splitlines()[-1]
        assert "prune refused" in last and "rekey (pid" in last and s.db in last
    finally:
        proxy.released.set()
        _out, err = rekey.communicate(timeout=120)
        proxy.stop()
    assert rekey.returncode == 0, err[-3000:]
    for index in (0, 1):
        manifests = s.manifests(index)
        assert len(manifests) == 2  # nothing pruned while the rekey ran
        assert all(m["encryption"]["recipients"] == [new.recipient] for m in manifests)
        assert not any("/_orchestrator/locks/" in k for k in s.keys(index))
    s.ok("verify", "latest", ARCHIVE_IDENTITY_FILE=str(new.identity_file))
    s.ok("prune", KEEP_LAST="1", KEEP_DAILY="0", KEEP_WEEKLY="0", KEEP_MONTHLY="0")
    assert len(s.manifests(0)) == 1
