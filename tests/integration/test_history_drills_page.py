"""`run` with second-scale SCHEDULE and DRILL_SCHEDULE against real servers: cycles and
drills take turns, both land in the history and in `status --json`, a failing drill alerts,
and the status page (served at `/` and written by `report --html`) shows them in a real
browser without a secret in it."""

from __future__ import annotations

import itertools
import json
import signal
import time
from datetime import datetime

import pytest

from tests.conftest import load_sample, stop_with_sigterm
from tests.harness import postgres, s3
from tests.harness.browser import chromium, visit
from tests.harness.ports import free_port
from tests.harness.running import get, start_run, wait_for
from tests.harness.wrappers import wrap_tool

pytestmark = pytest.mark.integration


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def metric(port: int, line: str) -> bool:
    return line in get(f"http://127.0.0.1:{port}/metrics")[1]


def count(port: int, sample: str) -> float:
    """The value of `sample` (name and labels) on /metrics, 0 when absent."""
    for line in get(f"http://127.0.0.1:{port}/metrics")[1].splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def stop(proc) -> str:  # type: ignore[no-untyped-def]
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err[-3000:]
    return str(err)


def test_cycles_and_drills_take_turns_and_land_in_history_status_and_the_page(
    cycle,
    sink,
    tmp_path,
):
    c = cycle
    port = free_port()
    proc = start_run(
        c,
        tmp_path,
        SCHEDULE="every 3s",
        DRILL_SCHEDULE="every 4s",
        RUN_ON_START="true",
        HEALTH_PORT=str(port),
        HEALTH_MAX_AGE="600",
        DRILL_HEALTHCHECK_URL=f"{sink.url}/drill-ping",
    )
    try:
        assert wait_for(
            lambda: (
                count(port, 'orchestrator_drills_total{status="success"}') >= 2
                and count(port, 'orchestrator_cycles_total{status="success"}') >= 2
            ),
            180,
        )
        assert metric(port, "orchestrator_last_drill_success 1.0")
        assert "orchestrator_last_drill_rto_seconds" in get(f"http://127.0.0.1:{port}/metrics")[1]
        code, page = get(f"http://127.0.0.1:{port}/")
    finally:
        err = stop(proc)
    assert code == 200 and page.lower().startswith("<!doctype html")
    assert "Healthy" in page and "drill" in page.lower()
    assert postgres.PASSWORD not in page and s3.SECRET_KEY not in page
    assert "run.stopped" in err

    status = json.loads(c["orch"].ok("status", "--json").stdout)
    cycles, drills = status["cycles"], status["drills"]
    assert len(cycles) >= 2 and len(drills) >= 2
    assert all(d["status"] == "success" and d["rto_seconds"] > 0 for d in drills)
    assert drills[0]["backup_id"] and drills[0]["tables"] == 7
    runs = sorted(
        (when(r["started_at"]), when(r["finished_at"]), kind)
        for kind, found in (("cycle", cycles), ("drill", drills))
        for r in found
    )
    for (_s1, end1, k1), (start2, _e2, k2) in itertools.pairwise(runs):
        assert end1 <= start2, f"a {k1} and a {k2} overlapped"
    assert {k for _s, _e, k in runs} == {"cycle", "drill"}
    dumped = {s["detail"]["backup_id"] for r in cycles for s in r["steps"] if s["name"] == "dump"}
    for target in status["targets"]:
        assert target["last_refresh_at"] and target["backup_id"] in dumped
    pings = sink.paths()
    assert "/drill-ping/start" in pings and "/drill-ping" in pings
    assert "/drill-ping/fail" not in pings and "/ping/abc/start" in pings

    report = tmp_path / "report" / "status.html"
    report.parent.mkdir()
    assert c["orch"].ok("report", "--html", str(report)).stdout.strip() == str(report)
    html = report.read_text()
    assert "Healthy" in html and drills[0]["backup_id"] in html
    assert postgres.PASSWORD not in html and s3.SECRET_KEY not in html
    with chromium() as browser:
        for width in (390, 1440):
            with visit(browser, report, width=width) as seen:
                assert seen.console_errors == [] and seen.page_errors == []
                assert seen.foreign_requests == []
                assert seen.js("document.querySelectorAll('svg').length") >= 3
                scroll = seen.js("document.documentElement.scrollWidth")
                assert isinstance(scroll, int) and scroll <= width


def test_a_failing_drill_alerts_and_is_kept_as_a_failure(cycle, sink, tmp_path):
    c = cycle
    c["orch"].ok("backup")
    broken = wrap_tool(
        tmp_path / "broken",
        c["source"].bin_dir,
        "pg_restore",
        'echo "pg_restore: error: injected" >&2\nexit 1\n',
    )
    port = free_port()
    proc = start_run(
        c,
        tmp_path,
        SCHEDULE="every 1h",
        DRILL_SCHEDULE="every 2s",
        HEALTH_PORT=str(port),
        PG_BIN_DIRS=str(broken),
        DRILL_HEALTHCHECK_URL=f"{sink.url}/drill-ping",
    )
    try:
        assert wait_for(
            lambda: metric(port, 'orchestrator_drills_total{status="failure"} 1.0'), 120
        )
        assert metric(port, "orchestrator_last_drill_success 0.0")
    finally:
        stop(proc)
    hooks = [json.loads(r.body) for r in sink.requests if r.path == "/hook"]
    assert hooks and hooks[0]["status"] == "failure" and hooks[0]["kind"] == "drill"
    assert "injected" in hooks[0]["text"] and hooks[0]["backup_id"]
    assert "/drill-ping/fail" in sink.paths()
    assert not any(p.startswith("/ping/abc") for p in sink.paths())  # cycles' pings only
    drills = json.loads(c["orch"].ok("status", "--json").stdout)["drills"]
    assert drills[0]["status"] == "failure" and "injected" in drills[0]["problems"][0]
    assert postgres.PASSWORD not in json.dumps(hooks)


def test_history_keeps_manual_restores_and_prunes_itself_without_touching_backups(
    cycle,
    tmp_path,
):
    c = cycle
    backup_id = c["orch"].ok("backup").stdout.strip()
    c["orch"].ok("restore", "--target", "dev")
    status = json.loads(c["orch"].ok("status", "--json").stdout)
    dev = next(t for t in status["targets"] if t["name"] == "dev")
    assert dev["backup_id"] == backup_id and dev["last_refresh_at"]
    keys = [
        o["Key"] for o in c["s3"].client().list_objects_v2(Bucket=c["bucket"]).get("Contents", [])
    ]
    assert any("/_orchestrator/history/" in k and "-restore-" in k for k in keys)
    # backup retention never looks at the history
    pruned = json.loads(c["orch"].ok("prune", "--json", extra_env={"KEEP_LAST": "1"}).stdout)
    assert not any("_orchestrator" in key for key in pruned["unrecognised"])
    after = [
        o["Key"] for o in c["s3"].client().list_objects_v2(Bucket=c["bucket"]).get("Contents", [])
    ]
    assert [k for k in keys if "/_orchestrator/" in k] == [
        k for k in after if "/_orchestrator/" in k
    ]


def test_jobs_for_two_databases_sharing_a_store_keep_their_own_history(
    cycle, clusters, orch_factory, tmp_path
):
    c = cycle
    other_db = load_sample(c["source"])
    other = orch_factory(**{**c["env"], "SOURCE_DATABASE_URL": c["source"].url(other_db)})
    c["orch"].ok("pipeline")
    result = other.run("pipeline", extra_env={"DEV_DATABASE_URL": "postgresql://u@127.0.0.1:1/x"})
    assert result.returncode == 1  # the other job's cycle fails
    mine = json.loads(c["orch"].ok("status", "--json").stdout)
    theirs = json.loads(other.ok("status", "--json").stdout)
    assert [x["status"] for x in mine["cycles"]] == ["success"]
    assert [x["status"] for x in theirs["cycles"]] == ["failure"]
    assert {b["database"] for b in mine["backups"]} == {c["db"]}
    assert {b["database"] for b in theirs["backups"]} == {other_db}


def test_a_stop_during_a_drill_is_a_stop_not_a_failed_drill(cycle, sink, tmp_path):
    c = cycle
    c["orch"].ok("backup")
    restoring = tmp_path / "restoring"
    body = f'touch "{restoring}"\nsleep 30\nexec "$REAL" "$@"\n'
    slow = wrap_tool(tmp_path / "slow", c["source"].bin_dir, "pg_restore", body)
    proc = c["orch"].start("drill", extra_env={"PG_BIN_DIRS": str(slow)})
    deadline = time.monotonic() + 30
    while not restoring.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert restoring.exists(), "the drill never reached its restore"  # it is mid-drill now
    stop_with_sigterm(proc)
    drills = json.loads(c["orch"].ok("status", "--json").stdout)["drills"]
    assert drills == [] and not [r for r in sink.requests if r.path == "/hook"]
