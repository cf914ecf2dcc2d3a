"""The /healthz and /metrics server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.health import HealthServer, HealthState, serve
from orchestrator.notify import CycleReport, StepReport

MAX_AGE = timedelta(hours=1)


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    """Give (status, content type, body) of a request, also for error statuses."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def state() -> HealthState:
    # started two hours ago: the grace period is over
    return HealthState(started_at=datetime.now(UTC) - 2 * MAX_AGE)


@pytest.fixture
def server(state: HealthState) -> Iterator[HealthServer]:
    running = serve(state, "127.0.0.1", 0, MAX_AGE)
    yield running
    running.stop()


def url(server: HealthServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_healthz_503_then_200_after_a_success(server, state, capfd):
    assert server.port > 0
    status, kind, body = get(url(server, "/healthz"))
    assert status == 503 and kind.startswith("text/plain")
    assert body.startswith("unhealthy: no successful cycle in 2 h since start")

    now = datetime.now(UTC)
    state.record(
        CycleReport("r1", now, [StepReport("dump", True, 1.0, detail={"size_bytes": 42})], now)
    )
    status, _, body = get(url(server, "/healthz?verbose=1"))
    assert status == 200 and body.startswith("ok: newest successful cycle finished")
    assert get(url(server, "/healthz"), method="HEAD")[0] == 200

    out, err = capfd.readouterr()
    assert "GET /healthz" not in out + err  # no request log lines


def test_metrics(server, state):
    now = datetime.now(UTC)
    state.record(CycleReport("r1", now, [StepReport("restore:dev", False, 3.0, "down")], now))
    status, kind, body = get(url(server, "/metrics"))
    assert status == 200 and kind == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE orchestrator_cycles_total counter" in body.splitlines()
    assert 'orchestrator_cycles_total{status="failure"} 1.0' in body.splitlines()
    assert 'orchestrator_step_duration_seconds{step="restore:dev"} 3.0' in body.splitlines()
    assert "orchestrator_last_cycle_success 0.0" in body.splitlines()


def test_unknown_paths_404(server):
    assert get(url(server, "/"))[0] == 404  # no page was given
    assert get(url(server, "/metrics/x"))[0] == 404


def test_the_page_is_served_at_the_root_and_a_broken_page_keeps_health_up(state):
    pages = iter(["<!doctype html><title>ok</title>"])

    def page() -> str:
        return next(pages)  # the second call raises StopIteration

    running = serve(state, "127.0.0.1", 0, MAX_AGE, page)
    try:
        status, kind, body = get(url(running, "/"))
        assert (status, kind, body) == (
            200,
            "text/html; charset=utf-8",
            "<!doctype html><title>ok</title>",
        )
        status, _kind, body = get(url(running, "/"))
        assert status == 200 and "the page failed" in body
        assert get(url(running, "/healthz"))[0] == 503
    finally:
        running.stop()


def test_stop_closes_the_port(state):
    running = serve(state, "127.0.0.1", 0, MAX_AGE)
    assert get(url(running, "/healthz"))[0] == 503
    running.stop()
    with pytest.raises(urllib.error.URLError):
        get(url(running, "/healthz"))


def test_port_in_use_raises(server, state):
    with pytest.raises(OSError):
        serve(state, "127.0.0.1", server.port, MAX_AGE)
