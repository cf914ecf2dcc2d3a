"""One cycle and the run loop, against real clusters, a real S3 server and a local HTTP sink."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from datetime import datetime

import psycopg
import pytest
from psycopg import sql

from orchestrator.postgres.lock import lock_key
from tests.conftest import stop_with_sigterm
from tests.harness.faulty_proxy import FaultyProxy
from tests.harness.ports import free_port
from tests.harness.running import children_of_this_test, get, s3_keys, start_run, wait_for
from tests.harness.targets import CHECK_SQL, databases, old_content
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


def test_full_pipeline_dumps_once_and_feeds_archive_and_both_targets(cycle, sink):
    c = cycle
    # end to end: the console script in its own process, as cron or a container runs it
    result = c["orch"].ok_process("pipeline", "--json", extra_env={"NOTIFY_ON_SUCCESS": "true"})
    report = json.loads(result.stdout)
    assert report["status"] == "success"
    names = [s["name"] for s in report["steps"]]
    assert names[0] == "dump" and set(names) == {
        "dump",
        "upload",
        "restore:backup",
        "restore:dev",
        "prune",
    }
    expected = c["source"].psql(CHECK_SQL, c["db"])
    assert c["backup"].psql(CHECK_SQL, c["backup_db"]) == expected
    assert c["dev"].psql(CHECK_SQL, c["dev_db"]) == expected
    assert old_content(c["backup"], f"{c['backup_db']}_previous") == "old content"
    assert sum(k.endswith(".manifest.json") for k in s3_keys(c)) == 1
    assert result.stderr.count('"command.start"') and result.stderr.count("pg_dump --format") == 1
    lines = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    unbound = [x["event"] for x in lines if x.get("run_id") != report["run_id"]]
    assert unbound == []
    in_steps = [x for x in lines if x["event"].startswith(("command.", "restore.", "backup."))]
    assert in_steps and all(x.get("step") for x in in_steps)
    assert any(x["event"] == "pipeline.summary" for x in lines)
    assert sink.paths()[0] == "/ping/abc/start" and "/ping/abc" in sink.paths()
    hooks = [json.loads(r.body) for r in sink.requests if r.path == "/hook"]
    assert len(hooks) == 1 and hooks[0]["status"] == "success" and hooks[0]["text"]
    status = json.loads(c["orch"].ok("status", "--json").stdout)
    assert status["last_cycle"]["status"] == "success" and status["newest_age_seconds"] < 600
    assert status["last_cycle"]["finished_at"].endswith("Z")


def test_unreachable_target_does_not_stop_the_archive_or_the_other_target(cycle, sink):
    c = cycle
    dead = f"postgresql://u:pw@127.0.0.1:{free_port()}/nowhere"
    result = c["orch"].run("pipeline", extra_env={"DEV_DATABASE_URL": dead})
    assert result.returncode == 1
    assert "restore:dev" in result.stdout and "FAILED" in result.stdout
    assert c["backup"].psql(CHECK_SQL, c["backup_db"]) == c["source"].psql(CHECK_SQL, c["db"])
    assert sum(k.endswith(".manifest.json") for k in s3_keys(c)) == 1
    assert "/ping/abc/fail" in sink.paths()
    hook = json.loads(next(r.body for r in sink.requests if r.path == "/hook"))
    assert hook["status"] == "failure"
    failed = [s for s in hook["steps"] if not s["ok"]]
    assert [s["name"] for s in failed] == ["restore:dev"] and "cannot connect" in failed[0]["error"]
    assert "u:pw" not in json.dumps(hook)


def test_failing_dump_runs_no_prune_and_no_restore(cycle, sink):
    c = cycle
    result = c["orch"].run(
        "pipeline", extra_env={"PG_DUMP_EXTRA_ARGS": "--table=nope --strict-names"}
    )
    assert result.returncode == 1
    assert (
        "dump" in result.stdout and "restore:" not in result.stdout and "prune" not in result.stdout
    )
    assert old_content(c["backup"], c["backup_db"]) == "old content"
    assert "/ping/abc/fail" in sink.paths()


def test_a_second_cycle_is_refused_with_exit_code_3(cycle):
    c = cycle
    with psycopg.connect(c["source"].url(c["db"]), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(c["db"]),))
        result = c["orch"].run_process("pipeline")
    assert result.returncode == 3
    assert "already running" in result.stderr.splitlines()[-1]
    assert s3_keys(c) == []


def test_a_cycle_is_refused_while_a_prune_holds_the_store_lock(cycle):
    c = cycle
    holder = {
        "command": "prune",
        "host": socket.gethostname(),
        "pid": os.getpid(),  # alive: this test process
        "started_at": "2026-12-05T10:00:00Z",
        "expires_at": "2999-01-01T00:00:00Z",
    }
    key = f"prod/_orchestrator/locks/{c['db']}.json"
    c["s3"].client().put_object(Bucket=c["bucket"], Key=key, Body=json.dumps(holder).encode())
    result = c["orch"].run("pipeline")
    assert result.returncode == 3, result.stderr[-2000:]
    last = result.stderr.splitlines()[-1]
    assert "pipeline refused: prune (pid" in last and c["db"] in last
    assert s3_keys(c) == [key]  # nothing dumped, nothing kept, the holder's lock untouched
    assert old_content(c["backup"], c["backup_db"]) == "old content"


def test_a_target_that_is_the_source_is_refused_before_dumping(cycle):
    c = cycle
    result = c["orch"].run(
        "pipeline", extra_env={"DEV_DATABASE_URL": c["source"].url(c["db"], host="localhost")}
    )
    assert result.returncode == 2
    assert "refusing to restore into the source database" in result.stderr
    # no backup: only the refused cycle's report, kept for status and the status page
    assert [k for k in s3_keys(c) if "/_orchestrator/" not in k] == []
    (kept,) = [k for k in s3_keys(c) if "/_orchestrator/history/" in k]
    report = json.loads(c["s3"].client().get_object(Bucket=c["bucket"], Key=kept)["Body"].read())
    assert report["status"] == "failure" and "refusing" in report["error"]


def test_missing_bucket_stops_the_dump_and_refuses_the_cycle(cycle, sink, tmp_path):
    """The store is checked while the dump starts; a missing bucket stops the dump at once
    (here a pg_dump that would take 60 s) and ends the cycle with exit 2, nothing restored."""
    c = cycle
    slow = wrap_tool(
        tmp_path / "slow-bin", c["source"].bin_dir, "pg_dump", 'sleep 60\n"$REAL" "$@"\n'
    )
    started = time.monotonic()
    result = c["orch"].run(
        "pipeline",
        extra_env={"STORAGE_URL": "s3://no-such-bucket-here/x", "PG_BIN_DIRS": str(slow)},
        timeout=120,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 2 and "pg_dump --format" in result.stderr  # started, stopped
    assert "STORAGE_URL" in result.stderr.splitlines()[-1]
    assert "no-such-bucket-here" in result.stderr.splitlines()[-1]
    assert old_content(c["backup"], c["backup_db"]) == "old content"
    assert not children_of_this_test(tmp_path) and "/ping/abc/fail" in sink.paths()


@pytest.mark.parametrize("after", [2.0, 5.5])  # during the dump; waiting for the store
def test_sigterm_while_the_store_never_answers_still_stops_within_30_s(cycle, tmp_path, after):
    """The store is opened beside the dump; a store that hangs must not hold up a stop."""
    c = cycle
    proxy = FaultyProxy(c["s3"].endpoint)
    proxy.slow = lambda _method, _path: True
    proxy.delay = 120.0
    slow = wrap_tool(tmp_path / "slow", c["source"].bin_dir, "pg_dump", 'sleep 3\n"$REAL" "$@"\n')
    proc = c["orch"].start(
        "pipeline", extra_env={"S3_ENDPOINT_URL": proxy.endpoint, "PG_BIN_DIRS": str(slow)}
    )
    try:
        time.sleep(after)
        stop_with_sigterm(proc)
    finally:
        proc.kill()
        proxy.stop()
    assert old_content(c["backup"], c["backup_db"]) == "old content"


def test_run_loop_cycles_serves_health_and_stops_cleanly(cycle, tmp_path):
    c = cycle
    port = free_port()
    proc = start_run(
        c,
        tmp_path,
        SCHEDULE="every 3s",
        RUN_ON_START="true",
        HEALTH_PORT=str(port),
        HEALTH_MAX_AGE="600",
    )
    try:
        assert wait_for(
            lambda: (
                get(f"http://127.0.0.1:{port}/metrics")[1].count(
                    'orchestrator_cycles_total{status="success"} 2.0'
                )
                == 1
            ),
            120,
        ), proc.stderr
        code, _text = get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200
        metrics = get(f"http://127.0.0.1:{port}/metrics")[1]
        assert "orchestrator_last_success_timestamp_seconds" in metrics
        assert 'orchestrator_target_last_success_timestamp_seconds{target="dev"}' in metrics
        assert "orchestrator_dump_size_bytes" in metrics
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=40)
    assert time.monotonic() - started < 30
    assert proc.returncode == 0, err[-2000:]
    assert children_of_this_test(tmp_path) == []
    assert "run.stopped" in err


def test_cron_schedule_runs_the_cycle_on_the_minute(cycle, tmp_path):
    c = cycle
    port = free_port()
    proc = start_run(c, tmp_path, SCHEDULE="*/1 * * * *", HEALTH_PORT=str(port))
    try:
        assert wait_for(
            lambda: (
                'orchestrator_cycles_total{status="success"} 1.0'
                in get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            120,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err[-2000:]
    (kept,) = [k for k in s3_keys(c) if "/_orchestrator/history/" in k]
    report = json.loads(c["s3"].client().get_object(Bucket=c["bucket"], Key=kept)["Body"].read())
    started = datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    assert report["status"] == "success" and started.second < 3, report["started_at"]


def test_after_a_restart_healthz_and_metrics_start_from_the_history(cycle, tmp_path):
    c = cycle
    dead = f"postgresql://u:pw@127.0.0.1:{free_port()}/nowhere"
    failed = c["orch"].run("pipeline", "--json", extra_env={"DEV_DATABASE_URL": dead})
    run_id = json.loads(failed.stdout)["run_id"]
    port = free_port()
    proc = start_run(c, tmp_path, SCHEDULE="@yearly", HEALTH_PORT=str(port))
    try:
        assert wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] != 0, 30)
        code, text = get(f"http://127.0.0.1:{port}/healthz")
        metrics = get(f"http://127.0.0.1:{port}/metrics")[1].splitlines()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=40)
    assert code == 200 and f"last cycle {run_id} failed: restore:dev" in text, text
    assert "orchestrator_last_cycle_success 0.0" in metrics
    assert any(
        m.startswith('orchestrator_target_last_success_timestamp_seconds{target="backup"}')
        for m in metrics
    )
    assert 'orchestrator_cycles_total{status="failure"} 0.0' in metrics  # counts this process


def test_sigterm_mid_restore_leaves_targets_and_storage_clean(cycle, tmp_path):
    c = cycle
    slow = wrap_tool(
        tmp_path / "slow-bin", c["source"].bin_dir, "pg_restore", 'sleep 60\nexec "$REAL" "$@"\n'
    )
    proc = start_run(c, tmp_path, SCHEDULE="every 1h", RUN_ON_START="true", PG_BIN_DIRS=str(slow))
    try:
        assert wait_for(lambda: _staging_copies(c, "backup"), 60)
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=40)
    assert time.monotonic() - started < 30, err[-2000:]
    assert old_content(c["backup"], c["backup_db"]) == "old content"
    assert old_content(c["dev"], c["dev_db"]) == "old content"
    # with what the run said, should a staging database stay behind
    assert wait_for(lambda: not _staging_copies(c, "backup", "dev"), 10), err[-3000:]
    assert children_of_this_test(tmp_path) == []
    assert c["s3"].client().list_multipart_uploads(Bucket=c["bucket"]).get("Uploads", []) == []


def test_sigterm_waits_for_a_stopped_restore_to_drop_its_staging_database(cycle, tmp_path):
    """The stop lands while the main thread waits for the branches: the process must not
    exit before each stopped restore has dropped its staging copy. The test holds that drop
    up (a lock on the staging database) to see the process wait for it."""
    c = cycle
    slow = wrap_tool(
        tmp_path / "slow-bin", c["source"].bin_dir, "pg_restore", 'sleep 60\nexec "$REAL" "$@"\n'
    )
    proc = start_run(c, tmp_path, SCHEDULE="every 1h", RUN_ON_START="true", PG_BIN_DIRS=str(slow))
    staging = lambda: _staging_copies(c, "backup")  # noqa: E731
    uploaded = lambda: any(k.endswith(".manifest.json") for k in s3_keys(c))  # noqa: E731
    try:  # the upload branch has ended: the main thread waits for the restores alone
        assert wait_for(lambda: staging() and uploaded(), 60)
        with psycopg.connect(c["backup"].url(), connect_timeout=10) as holder:
            name = sql.Identifier(staging()[0])
            holder.execute(sql.SQL("COMMENT ON DATABASE {} IS 'held'").format(name))
            proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: _drop_waits_for_a_lock(c["backup"].url()), 20)
            assert not wait_for(lambda: proc.poll() is not None, 2)  # it waits for the drop
            holder.rollback()  # the drop goes on
    except BaseException:
        proc.terminate()
        raise
    finally:
        _out, err = proc.communicate(timeout=40)
    assert staging() == [], err[-3000:]
    summary = next(json.loads(x) for x in err.splitlines() if '"pipeline.summary"' in x)
    assert summary["steps"]["restore:backup"] == "failed"  # its outcome is reported too
    assert children_of_this_test(tmp_path) == []


def _staging_copies(c, *targets: str) -> list[str]:
    """The staging databases of this test's `targets` (another test's leftover on the shared
    clusters is not this test's failure)."""
    return [
        d
        for target in targets
        for d in databases(c[target])
        if d.startswith(f"{c[target + '_db']}__restore_")
    ]


def _drop_waits_for_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE query LIKE 'DROP DATABASE%' AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_failed_cycles_do_not_stop_the_loop(cycle, tmp_path, sink):
    c = cycle
    port = free_port()
    dead = f"postgresql://u:pw@127.0.0.1:{free_port()}/nowhere"
    proc = start_run(
        c,
        tmp_path,
        SCHEDULE="every 2s",
        RUN_ON_START="true",
        HEALTH_PORT=str(port),
        HEALTH_MAX_AGE="600",
        DEV_DATABASE_URL=dead,
    )
    try:
        assert wait_for(
            lambda: (
                'orchestrator_cycles_total{status="failure"} 2.0'
                in get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            120,
        )
        assert proc.poll() is None
        metrics = get(f"http://127.0.0.1:{port}/metrics")[1]
        assert 'orchestrator_target_last_success_timestamp_seconds{target="backup"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err[-2000:]
    assert sink.paths().count("/ping/abc/fail") >= 2


def test_unreachable_store_still_restores_the_targets(cycle):
    c = cycle
    dead = f"http://127.0.0.1:{free_port()}"
    result = c["orch"].run("pipeline", extra_env={"S3_ENDPOINT_URL": dead, "AWS_MAX_ATTEMPTS": "1"})
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[:-1]}
    assert "FAILED" in lines["upload"] and lines["restore:backup"].endswith("ok")
    assert lines["restore:dev"].endswith("ok") and "prune" not in lines
    assert c["dev"].psql(CHECK_SQL, c["dev_db"]) == c["source"].psql(CHECK_SQL, c["db"])
