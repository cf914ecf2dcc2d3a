"""Every way a backup can fail leaves nothing half-written and says why, with the right code."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pyrage
import pytest

from orchestrator import conninfo
from orchestrator.postgres import queries
from tests.conftest import Clusters, load_sample, s3_env, stop_with_sigterm
from tests.harness import postgres, s3
from tests.harness.faulty_proxy import FaultyProxy
from tests.harness.ports import free_port
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


def objects(s3_server, bucket: str) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


def multipart_uploads(s3_server, bucket: str) -> list[str]:
    return [
        u["Key"]
        for u in s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def wrapper_bin(tmp_path: Path, real_bin: Path, body: str) -> Path:
    """A bin folder whose pg_dump runs `body` (bash) for dumps."""
    return wrap_tool(tmp_path / "wrapped-bin", real_bin, "pg_dump", body)


def test_wrong_password_is_a_config_error_and_writes_nothing(
    clusters: Clusters, s3_server, bucket, orch_factory
):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db, password="not-the-password"), **s3_env(s3_server, bucket)
    )
    result = orch.run_process("backup")  # the CLI contract: exit 2, one line
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "SOURCE_DATABASE_URL" in last and "password authentication failed" in last
    assert "not-the-password" not in result.stderr
    assert "Traceback" not in result.stderr
    assert objects(s3_server, bucket) == []


def test_missing_database_is_a_config_error(clusters: Clusters, orch_factory):
    source = clusters.get(15)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url("no_such_db"))
    result = orch.run("backup")
    assert result.returncode == 2
    assert "SOURCE_DATABASE_URL" in result.stderr and "no_such_db" in result.stderr


def test_unreachable_source_fails_the_job_and_writes_nothing(s3_server, bucket, orch_factory):
    port = free_port()
    orch = orch_factory(
        SOURCE_DATABASE_URL=f"postgresql://u:pw@127.0.0.1:{port}/db", **s3_env(s3_server, bucket)
    )
    result = orch.run("backup")
    assert result.returncode == 1
    assert "cannot connect to SOURCE_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert objects(s3_server, bucket) == []


def test_missing_bucket_is_refused_before_dumping(
    clusters: Clusters, s3_server, tmp_path, orch_factory
):
    source = clusters.get(15)
    db = load_sample(source)
    marker = tmp_path / "dump-ran"
    wrapped = wrapper_bin(tmp_path, source.bin_dir, f'touch "{marker}"\nexec "$REAL" "$@"\n')
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        PG_BIN_DIRS=str(wrapped),
        **s3_env(s3_server, "no-such-bucket-here"),
    )
    result = orch.run("backup")
    assert result.returncode == 2
    assert "STORAGE_URL: bucket 'no-such-bucket-here' does not exist" in result.stderr
    assert not marker.exists()


def test_wrong_s3_credentials_are_a_config_error(
    clusters: Clusters, s3_server, bucket, orch_factory
):
    source = clusters.get(15)
    env = {**s3_env(s3_server, bucket), "AWS_SECRET_ACCESS_KEY": "wrong-secret-123"}
    orch = orch_factory(SOURCE_DATABASE_URL=source.url("postgres"), **env)
    result = orch.run("backup")
    assert result.returncode == 2
    assert "AWS_ACCESS_KEY_ID" in result.stderr and "denied" in result.stderr
    assert "wrong-secret-123" not in result.stderr


@pytest.mark.parametrize(
    ("storage_url", "expected"),
    [
        ("ftp://host/x", "STORAGE_URL: unsupported scheme 'ftp'"),
        ("s3:///prefix", "STORAGE_URL: s3:// URL names no bucket"),
        ("file://otherhost/x", "STORAGE_URL: file:// URL must be file:///absolute/path"),
    ],
)
def test_bad_storage_url(storage_url, expected, orch_factory):
    orch = orch_factory(SOURCE_DATABASE_URL="postgresql://u@127.0.0.1/db", STORAGE_URL=storage_url)
    result = orch.run("backup")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"orchestrator: error: {expected}")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SOURCE_DATABASE_URL", "mysql://u:hunter22@h/db", "must be a postgresql:// URL"),
        ("NEON_PRODUCTION_DATABASE_URL", "postgresql://u:hunter22@h:99999/db", "invalid port"),
        ("DEV_DATABASE_URL", "postgresql://u:hunter22@h", "names no database"),
        ("S3_MAX_CONCURRENCY", "lots", "valid integer"),
        ("S3_REQUEST_CHECKSUM_CALCULATION", "always", "when_supported"),
    ],
)
def test_malformed_settings_give_one_line_and_exit_2(variable, value, expected, orch_factory):
    orch = orch_factory(**{variable: value})
    result = orch.run("list")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    reported = "SOURCE_DATABASE_URL" if variable.startswith("NEON_PRODUCTION") else variable
    assert line.startswith(f"orchestrator: error: {reported}: ") and expected in line
    assert "hunter22" not in result.stderr and "Traceback" not in result.stderr


def test_only_older_pg_dump_fails_before_dumping(clusters: Clusters, orch_factory, tmp_path):
    source = clusters.get(17)
    db = load_sample(source)
    older = clusters.bins[15]
    # PATH holds only the 15 client; PG_BIN_DIRS is empty; /usr/lib/postgresql has 15 too.
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), PG_BIN_DIRS="")
    result = orch.run("backup", extra_env={"PATH": f"{older}:/usr/bin:/bin"})
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "pg_dump 17 or newer is needed (the source runs 17." in line
    assert "found: 15." in line and "PG_BIN_DIRS" in line
    assert [p.name for p in (tmp_path / "store").rglob("*") if p.is_file()] == ["store.json"]


def test_newer_source_gets_its_own_major_pg_dump(clusters: Clusters, orch_factory, tmp_path):
    source = clusters.get(17)
    db = load_sample(source)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), PG_BIN_DIRS=f"{clusters.bins[14]}:{clusters.bins[17]}"
    )
    backup_id = orch.ok("backup").stdout.strip()
    listed = json.loads(orch.ok("list", "--json").stdout)
    assert listed[0]["id"] == backup_id
    assert listed[0]["pg_dump_version"].startswith("17.")


def test_pg_dump_built_without_zstd_names_the_setting(clusters: Clusters, orch_factory, tmp_path):
    source = clusters.get(17)
    db = load_sample(source)
    body = (
        'case "$*" in *--compress=zstd*)\n'
        '  echo "pg_dump: error: this build does not support compression with zstd" >&2\n'
        "  exit 1;;\n"
        "esac\n"
        'exec "$REAL" "$@"\n'
    )
    wrapped = wrapper_bin(tmp_path, source.bin_dir, body)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), PG_BIN_DIRS=str(wrapped))
    result = orch.run("backup")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "PG_DUMP_COMPRESS: pg_dump 17." in line and "built without zstd" in line
    assert "set PG_DUMP_COMPRESS=gzip" in line and "Traceback" not in result.stderr
    assert not list((tmp_path / "store").rglob("*.dump"))

    orch.ok("backup", extra_env={"PG_DUMP_COMPRESS": "gzip"})


def test_pg_restore_built_without_zstd_fails_verify_naming_the_setting(
    clusters: Clusters, orch_factory, tmp_path
):
    source = clusters.get(17)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    backup_id = orch.ok("backup").stdout.strip()
    # such a build lists a zstd archive with only a warning, and exits 0
    fake = tmp_path / "no-zstd"
    fake.mkdir()
    (fake / "pg_restore").write_text(
        "#!/usr/bin/env bash\n"
        f'case "$*" in *--version*) exec "{source.bin_dir}/pg_restore" --version;; esac\n'
        "echo 'pg_restore: warning: archive is compressed, but this installation does not "
        "support compression (this build does not support compression with zstd) -- no data "
        "will be available' >&2\n"
        f'exec "{source.bin_dir}/pg_restore" "$@"\n'
    )
    (fake / "pg_restore").chmod(0o755)
    result = orch.run("verify", backup_id, extra_env={"PG_BIN_DIRS": str(fake)})
    assert result.returncode == 1
    assert "PG_BIN_DIRS: pg_restore 17." in result.stdout + result.stderr
    assert "was built without the compression of" in result.stdout + result.stderr


def test_pg_dump_killed_midway_leaves_no_backup(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    body = '"$REAL" "$@" &\nchild=$!\nsleep 0.3\nkill -KILL $child 2>/dev/null\nkill -KILL $$\n'
    wrapped = wrapper_bin(tmp_path, source.bin_dir, body)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), PG_BIN_DIRS=str(wrapped), **s3_env(s3_server, bucket)
    )
    result = orch.run("backup")
    assert result.returncode == 1
    assert "pg_dump was killed by signal SIGKILL" in result.stderr.strip().splitlines()[-1]
    assert objects(s3_server, bucket) == []
    assert multipart_uploads(s3_server, bucket) == []
    assert "[]" in orch.ok("list", "--json").stdout


def test_pg_dump_error_is_reported_with_its_first_line(clusters: Clusters, orch_factory):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db),
        PG_DUMP_EXTRA_ARGS="--table=does_not_exist --strict-names",
    )
    result = orch.run("backup")
    assert result.returncode == 1
    assert "pg_dump exited with code 1: pg_dump: error: no matching tables" in result.stderr


def test_failed_pg_dump_cancels_the_row_counts_running_beside_it(
    clusters: Clusters, orch_factory, tmp_path
):
    """Rows are counted while pg_dump runs; when pg_dump fails the counting is cancelled,
    not waited for (here it waits on a lock another session holds for a minute)."""
    source = clusters.get(17)
    db = load_sample(source)
    holder = subprocess.Popen(
        [
            str(source.bin_dir / "psql"),
            *("-X", "-h", str(source.root), "-p", str(source.port), "-U", "postgres", "-d", db),
            "-c",
            "BEGIN; LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_lock = "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock'"
        deadline = time.monotonic() + 10
        while source.psql(wait_for_lock, db) == "0" and time.monotonic() < deadline:
            time.sleep(0.05)
        body = 'sleep 0.5\necho "pg_dump: error: injected failure" >&2\nexit 1\n'
        wrapped = wrapper_bin(tmp_path, source.bin_dir, body)
        orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), PG_BIN_DIRS=str(wrapped))
        started = time.monotonic()
        result = orch.run("backup", timeout=50)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert "pg_dump: error: injected failure" in result.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "store").rglob("*.manifest.json"))


def test_failed_upload_aborts_its_multipart_upload(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    source.psql(
        "CREATE TABLE blob AS SELECT g, md5(g::text) || repeat(md5(random()::text), 8) AS t "
        "FROM generate_series(1, 400000) g",
        db,
    )
    proxy = FaultyProxy(s3_server.endpoint)
    # fail the third part of any multipart upload: the upload is under way when it breaks
    proxy.rule = lambda method, path: method == "PUT" and "partNumber=3" in path
    try:
        env = {**s3_env(s3_server, bucket), "S3_ENDPOINT_URL": proxy.endpoint}
        orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), PG_DUMP_COMPRESS="0", **env)
        result = orch.run("backup")
    finally:
        proxy.stop()
    assert proxy.failed, "the fault was never injected: is the dump over the multipart threshold?"
    assert result.returncode == 1
    assert "S3 refused to upload" in result.stderr.strip().splitlines()[-1]
    assert multipart_uploads(s3_server, bucket) == []
    assert objects(s3_server, bucket) == []


def test_failed_manifest_write_removes_the_dump_object(
    clusters: Clusters, s3_server, bucket, orch_factory
):
    source = clusters.get(15)
    db = load_sample(source)
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.rule = lambda method, path: method == "PUT" and ".manifest.json" in path
    try:
        env = {**s3_env(s3_server, bucket), "S3_ENDPOINT_URL": proxy.endpoint}
        result = orch_factory(SOURCE_DATABASE_URL=source.url(db), **env).run("backup")
    finally:
        proxy.stop()
    assert result.returncode == 1
    assert objects(s3_server, bucket) == []


def recording_bin(folder: Path, real_bin: Path) -> Path:
    """A bin folder whose pg_dump, pg_restore and psql each write their argv and their whole
    environment (names and values) to `folder`/calls/<tool>-<pid>, then run the real tool."""
    (folder / "calls").mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore", "psql"):
        script = folder / tool
        script.write_text(
            "#!/usr/bin/env bash\n"
            f'{{ printf "%s\\n" "$@"; echo "--env--"; env; }} > "{folder}/calls/{tool}-$$"\n'
            f'exec "{real_bin}/{tool}" "$@"\n'
        )
        script.chmod(0o755)
    return folder


def recorded_calls(folder: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(tool, argv, environment) of each recorded call."""
    calls = []
    for path in sorted((folder / "calls").iterdir()):
        argv, _, env_text = path.read_text().partition("--env--\n")
        env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
        calls.append((path.name.rsplit("-", 1)[0], argv.splitlines(), env))
    return calls


@pytest.mark.parametrize("given_as", ["url", "PGPASSWORD"])
def test_password_goes_only_to_pg_dump_through_its_environment(
    clusters: Clusters, orch_factory, tmp_path, given_as
):
    """The source's password, in its URL or in PGPASSWORD, reaches pg_dump as PGPASSWORD
    (the value, not in argv) and no other child nor connection: the target's pg_restore,
    psql and the tool's own connections, which get their own password from a passfile
    here, would use a leaked PGPASSWORD first. Never in logs or manifests."""
    source = clusters.get(15)
    db = load_sample(source)
    target_password = "target-only-pw-5d1c"
    source.psql(
        "DO $$ BEGIN CREATE ROLE target_owner LOGIN CREATEDB PASSWORD "
        f"'{target_password}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    target = f"tgt_{tmp_path.name[-8:].replace('-', '_')}"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{source.port}:*:target_owner:{target_password}\n")
    passfile.chmod(0o600)
    recording = recording_bin(tmp_path / "recording-bin", source.bin_dir)
    given = {"SOURCE_DATABASE_URL": source.url(db)}
    if given_as == "PGPASSWORD":
        given = {"SOURCE_DATABASE_URL": source.url(db, None), "PGPASSWORD": postgres.PASSWORD}
    orch = orch_factory(
        **given,
        BACKUP_DATABASE_URL=f"postgresql://target_owner@127.0.0.1:{source.port}/{target}",
        PGPASSFILE=str(passfile),
        PG_BIN_DIRS=str(recording),
        LOG_LEVEL="DEBUG",
    )
    result = orch.ok("pipeline")
    calls = recorded_calls(recording)
    dumps = [env for tool, argv, env in calls if tool == "pg_dump" and "--version" not in argv]
    assert len(dumps) == 1 and dumps[0]["PGPASSWORD"] == postgres.PASSWORD
    others = [(tool, env) for tool, argv, env in calls if env is not dumps[0]]
    assert {tool for tool, _ in others} >= {"pg_dump", "pg_restore"}  # probes and the restore
    encoded = source.url(db).split("@")[0].split(":")[-1]
    for secret in (postgres.PASSWORD, encoded):
        assert not [argv for _tool, argv, _env in calls if secret in "\n".join(argv)]
        assert not [(tool, name) for tool, env in others for name, v in env.items() if secret in v]
        assert secret not in result.stderr and secret not in result.stdout
        for path in (tmp_path / "store").rglob("*.json"):
            assert secret not in path.read_text()
    assert source.psql("SELECT count(*) FROM public.customers", target) == source.psql(
        "SELECT count(*) FROM public.customers", db
    )


def test_s3_secret_never_logged(clusters: Clusters, s3_server, bucket, orch_factory):
    source = clusters.get(15)
    db = load_sample(source)
    orch = orch_factory(
        SOURCE_DATABASE_URL=source.url(db), LOG_LEVEL="DEBUG", **s3_env(s3_server, bucket)
    )
    result = orch.ok("backup")
    assert s3.SECRET_KEY not in result.stderr


@pytest.mark.parametrize(
    ("command", "encrypted"), [("backup", False), ("pipeline", False), ("backup", True)]
)
def test_sigterm_during_upload_aborts_it_and_leaves_nothing(
    command, encrypted, clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    """Also while the dump is encrypted and streamed: the encryption and the stream stop."""
    source = clusters.get(15)
    db = load_sample(source)
    source.psql(
        "CREATE TABLE IF NOT EXISTS blob AS SELECT g, repeat(md5(g::text), 10) AS t "
        "FROM generate_series(1, 300000) g",
        db,
    )
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.slow = lambda method, path: method == "PUT" and "partNumber=" in path
    proxy.delay = 3.0
    env = {**s3_env(s3_server, bucket), "S3_ENDPOINT_URL": proxy.endpoint}
    if encrypted:
        env["ARCHIVE_RECIPIENTS"] = str(pyrage.x25519.Identity.generate().to_public())
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db), PG_DUMP_COMPRESS="0", **env)
    proc = orch.start(command)
    try:
        deadline = time.monotonic() + 60
        while not multipart_uploads(s3_server, bucket) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert multipart_uploads(s3_server, bucket), "the upload never started"
        err = stop_with_sigterm(proc)
    finally:
        proc.kill()
        proxy.stop()
    assert "stopped by SIGTERM" in err.splitlines()[-1]
    assert multipart_uploads(s3_server, bucket) == []
    # no dump, no manifest; a pipeline stores its (failed) cycle report, nothing else
    assert [k for k in objects(s3_server, bucket) if "/_orchestrator/" not in k] == []


def test_least_privilege_dump_role_without_pg_control_system(
    clusters: Clusters, orch_factory, tmp_path
):
    # managed providers revoke pg_control_system() and set idle timeouts; the dump role
    # has only pg_read_all_data
    source = clusters.get(17)
    db = load_sample(source)
    role = f"dumper_{db[-6:]}"
    source.psql(
        f"CREATE ROLE {role} LOGIN PASSWORD 'dump-pw-1' IN ROLE pg_read_all_data; "
        f"ALTER ROLE {role} SET idle_in_transaction_session_timeout = '1s'"
    )
    # function privileges live in each database's catalog
    source.psql("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC", db)
    try:
        source.psql("CREATE TABLE slow_count AS SELECT g FROM generate_series(1, 10) g", db)
        wrapped = wrapper_bin(tmp_path, source.bin_dir, 'sleep 2\nexec "$REAL" "$@"\n')
        orch = orch_factory(
            SOURCE_DATABASE_URL=source.url(db, user=role, password="dump-pw-1"),
            PG_BIN_DIRS=str(wrapped),
        )
        backup_id = orch.ok("backup").stdout.strip()
    finally:
        source.psql("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC", db)
    manifest = json.loads(
        next((tmp_path / "store").rglob(f"{backup_id}.manifest.json")).read_text()
    )
    assert manifest["source_identity"] is None
    assert manifest["row_counts"]["public.customers"] == 2000


def test_counting_beside_the_dump_skips_what_it_may_not_read(clusters: Clusters):
    """A table the role may not read is left out (counted later, if the dump holds it)
    and the snapshot's transaction stays usable; counting stops when told to."""
    source = clusters.get(15)
    db = load_sample(source)
    role = f"reader_{os.getpid()}"
    source.psql(
        f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw-reader'; "
        f"GRANT USAGE ON SCHEMA sales TO {role}; GRANT SELECT ON sales.orders TO {role}",
        db,
    )
    info = conninfo.parse(source.url(db, user=role, password="pw-reader"))
    tables = [("public", "customers"), ("sales", "orders")]
    with queries.exported_snapshot(info, "SOURCE_DATABASE_URL") as snap:
        assert queries.count_rows_while(snap.conn, tables, lambda: True) == {"sales.orders": 5000}
        assert queries.count_rows(snap.conn, [("sales", "orders")]) == {"sales.orders": 5000}
        assert queries.count_rows_while(snap.conn, tables, lambda: False) == {}
        # beside pg_dump, counts take one core (no parallel workers)
        setting = snap.conn.execute("SHOW max_parallel_workers_per_gather").fetchone()
        assert setting == ("0",)


def test_uninitialised_folder_store_fails_alone_and_is_accepted_after_init(
    clusters: Clusters, s3_server, bucket, orch_factory, tmp_path
):
    source = clusters.get(15)
    db = load_sample(source)
    mount_point = tmp_path / "nas"
    mount_point.mkdir()  # empty: as an unmounted share's mount point looks
    orch = orch_factory(
        uninitialised=True,
        SOURCE_DATABASE_URL=source.url(db),
        **s3_env(s3_server, bucket),
        STORAGE_URL_2=f"file://{mount_point}",
    )
    result = orch.run("backup")
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "STORAGE_URL_2" in last and str(mount_point) in last and "orchestrator init" in last
    assert any(k.endswith(".manifest.json") for k in objects(s3_server, bucket))
    assert list(mount_point.iterdir()) == []  # nothing written on the host's own disk

    initialised = orch.run("init")
    assert initialised.returncode == 0, initialised.stderr[-2000:]
    assert "STORAGE_URL_2" in initialised.stdout and "initialised" in initialised.stdout
    assert "STORAGE_URL " in initialised.stdout
    orch.ok("backup")
    assert list(mount_point.rglob("*.manifest.json"))


def test_a_backup_with_no_usable_store_dumps_nothing_and_names_the_store(
    clusters: Clusters, orch_factory, tmp_path
):
    """The only store is a folder without the marker of `orchestrator init` (an unmounted
    share): the backup stops before pg_dump, exit 1, one line naming the setting and the fix."""
    source = clusters.get(15)
    mount_point = tmp_path / "nas"
    mount_point.mkdir()
    orch = orch_factory(
        uninitialised=True,
        SOURCE_DATABASE_URL=source.url("postgres"),
        STORAGE_URL=f"file://{mount_point}",
    )
    result = orch.run("backup")
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.splitlines()[-1]
    assert last.startswith("orchestrator: error: STORAGE_URL") and "orchestrator init" in last
    assert "Traceback" not in result.stderr and "pg_dump --format" not in result.stderr
    assert list(mount_point.iterdir()) == []


def test_a_store_that_cannot_be_listed_is_named_and_the_list_exits_1(
    clusters: Clusters, orch_factory
):
    source = clusters.get(17)
    db = load_sample(source)
    orch = orch_factory(SOURCE_DATABASE_URL=source.url(db))
    backup_id = orch.ok("backup").stdout.strip()
    dead = {
        "STORAGE_URL_2": "s3://gone/prefix",
        "S3_ENDPOINT_URL_2": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID_2": "key-two",
        "AWS_SECRET_ACCESS_KEY_2": "secret-two-hunter22",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for args in (["list"], ["list", "--json"]):
        result = orch.run(*args, extra_env=dead)
        assert result.returncode == 1  # the backups it shows may not be all there are
        assert backup_id in result.stdout
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("orchestrator: error: STORAGE_URL_2 (s3://gone/prefix) ")
        assert "could not be listed" in line
        assert "hunter22" not in result.stdout + result.stderr and "Traceback" not in line
    assert orch.ok("list").returncode == 0  # with its one store, all is listed
