"""Notifier against a real local HTTP server: pings, webhook, failures that must not matter."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator import logs
from orchestrator.errors import ConfigError
from orchestrator.notify import Notifier, StepReport

TIMEOUT = 0.3  # seconds per HTTP attempt in these tests


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """Records every request on 127.0.0.1; `status` answers them, `hang` stalls them."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.status = 200
        self.hang = False
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                server.requests.append(
                    Seen("POST", self.path, body, self.headers.get("Content-Type", ""))
                )
                if server.hang:
                    server.release.wait(5)
                    return
                self.send_response(server.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hc() -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def hook() -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


def refused_url() -> str:
    """A URL on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def good_steps() -> list[StepReport]:
    return [
        StepReport("dump", True, 1.5, detail={"size_bytes": 4096, "backup_id": "db-1"}),
        StepReport("upload", True, 0.5),
        StepReport("restore:backup", True, 2.0, detail={"target": "backup"}),
    ]


def warnings(captured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in captured if e["log_level"] == "warning"]


def test_success_pings_start_then_base_and_no_webhook(hc, hook):
    notifier = Notifier(hook.url + "/hook", hc.url + "/ping/abc", notify_on_success=False)
    with notifier.cycle("run-1") as report:
        assert hc.paths() == ["/ping/abc/start"]
        report.steps.extend(good_steps())
    assert report.ok and report.finished_at is not None
    assert hc.paths() == ["/ping/abc/start", "/ping/abc"]
    assert b"succeeded" in hc.requests[1].body and b"run-1" in hc.requests[1].body
    assert hook.requests == []


def test_trailing_slash_and_query_kept(hc):
    notifier = Notifier(None, hc.url + "/ping/abc/?create=1", notify_on_success=False)
    with notifier.cycle("run-q") as report:
        report.steps.extend(good_steps())
    assert hc.paths() == ["/ping/abc/start?create=1", "/ping/abc?create=1"]


def test_success_webhook_when_asked(hc, hook):
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", notify_on_success=True)
    with notifier.cycle("run-2") as report:
        report.steps.extend(good_steps())
    assert len(hook.requests) == 1
    sent = hook.requests[0]
    assert sent.path == "/hook" and sent.content_type == "application/json"
    payload = sent.json()
    assert payload["status"] == "success" and payload["run_id"] == "run-2"
    assert [s["name"] for s in payload["steps"]] == ["dump", "upload", "restore:backup"]
    assert payload["steps"][0]["detail"]["size_bytes"] == 4096
    assert payload["text"].startswith(":white_check_mark:")
    assert payload["started_at"].endswith("Z") and payload["finished_at"].endswith("Z")


def test_failed_step_sends_fail_ping_and_webhook(hc, hook):
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", notify_on_success=False)
    with notifier.cycle("run-3") as report:
        report.steps.extend(good_steps())
        report.steps.append(
            StepReport("restore:dev", False, 0.7, "cannot connect to dev\nsecond line")
        )
    assert not report.ok
    assert hc.paths() == ["/p/start", "/p/fail"]
    assert b"restore:dev" in hc.requests[1].body
    payload = hook.requests[0].json()
    assert payload["status"] == "failure" and payload["error"] is None
    dev = payload["steps"][-1]
    assert dev == {
        "name": "restore:dev",
        "status": "failure",
        "ok": False,
        "seconds": 0.7,
        "error": "cannot connect to dev\nsecond line",
        "detail": {},
    }
    assert payload["text"].startswith(":x:")
    assert "restore:dev: cannot connect to dev" in payload["text"]
    assert "second line" not in payload["text"]
    assert isinstance(payload["duration_seconds"], float)


def test_no_steps_counts_as_failure(hc, hook):
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", notify_on_success=False)
    with notifier.cycle("run-empty"):
        pass
    assert hc.paths() == ["/p/start", "/p/fail"]
    assert hook.requests[0].json()["status"] == "failure"


class Boom(RuntimeError):
    pass


def test_exception_is_reraised_unchanged_and_reported(hc, hook):
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", notify_on_success=False)
    error = Boom("source unreachable")
    with pytest.raises(Boom) as raised, notifier.cycle("run-4") as report:
        report.steps.append(StepReport("dump", False, 0.1, "source unreachable"))
        raise error
    assert raised.value is error
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert report.error == "source unreachable" and report.finished_at is not None
    assert hc.paths() == ["/p/start", "/p/fail"]
    payload = hook.requests[0].json()
    assert payload["status"] == "failure" and payload["error"] == "source unreachable"


def test_exception_without_message_gets_its_type(hc):
    notifier = Notifier(None, hc.url + "/p", notify_on_success=False)
    with pytest.raises(KeyboardInterrupt), notifier.cycle("run-5") as report:
        raise KeyboardInterrupt
    assert report.error == "KeyboardInterrupt"
    assert hc.paths() == ["/p/start", "/p/fail"]


def test_webhook_500_is_retried_once_then_swallowed(hc, hook):
    hook.status = 500
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", False, timeout=TIMEOUT)
    error = Boom("the real error")
    with capture_logs() as captured, pytest.raises(Boom) as raised, notifier.cycle("r") as report:
        raise error
    assert raised.value is error and report.error == "the real error"
    assert hook.paths() == ["/hook", "/hook"]
    assert hc.paths() == ["/p/start", "/p/fail"]
    [warning] = warnings(captured)
    assert warning["event"] == "notify.failed" and warning["kind"] == "webhook"
    assert warning["attempts"] == 2 and "500" in warning["error"]


def test_client_error_is_not_retried(hook):
    hook.status = 404
    notifier = Notifier(hook.url + "/hook", None, notify_on_success=True, timeout=TIMEOUT)
    with capture_logs() as captured, notifier.cycle("r") as report:
        report.steps.extend(good_steps())
    assert report.ok and hook.paths() == ["/hook"]
    assert warnings(captured)[0]["attempts"] == 1


def test_refused_connection_does_not_change_the_outcome(hc):
    notifier = Notifier(refused_url(), hc.url + "/p", notify_on_success=True, timeout=TIMEOUT)
    started = time.monotonic()
    with capture_logs() as captured, notifier.cycle("r") as report:
        report.steps.extend(good_steps())
    assert time.monotonic() - started < 3
    assert report.ok and report.error is None
    assert hc.paths() == ["/p/start", "/p"]
    [warning] = warnings(captured)
    assert warning["kind"] == "webhook" and warning["attempts"] == 2
    assert "cannot connect" in warning["error"]


def test_hanging_servers_are_bounded(hc, hook):
    hc.hang = hook.hang = True
    notifier = Notifier(hook.url + "/hook", hc.url + "/p", notify_on_success=False, timeout=TIMEOUT)
    error = Boom("real")
    started = time.monotonic()
    with capture_logs() as captured, pytest.raises(Boom) as raised, notifier.cycle("r"):
        raise error
    elapsed = time.monotonic() - started
    assert raised.value is error
    # start ping (one timeout), then /fail and the webhook concurrently (one timeout each)
    assert elapsed < 4 * TIMEOUT + 1, elapsed
    assert hc.paths() == ["/p/start", "/p/fail"] and hook.paths() == ["/hook"]
    events = warnings(captured)
    assert len(events) == 3 and all("no answer within" in e["error"] for e in events)


def test_secrets_and_url_tokens_are_masked(hc, hook):
    logs.register_secret("tok-s3cr3t-4242")
    hc.status = 500
    ping = hc.url + "/ping/tok-s3cr3t-4242"
    notifier = Notifier(hook.url + "/hook", ping, notify_on_success=False, timeout=TIMEOUT)
    with capture_logs() as captured, pytest.raises(Boom), notifier.cycle("r") as report:
        report.steps.append(
            StepReport(
                "dump",
                False,
                0.2,
                "login failed for postgresql://app:hunter2@db/prod with tok-s3cr3t-4242",
                detail={"target": "postgresql://app:hunter2@db/prod"},
            )
        )
        raise Boom("connect postgresql://app:hunter2@db/prod token tok-s3cr3t-4242")
    sent = hook.requests[0].body.decode() + "".join(r.body.decode() for r in hc.requests)
    assert "hunter2" not in sent and "tok-s3cr3t-4242" not in sent
    assert "postgresql://app:***@db/prod" in sent
    assert report.error == "connect postgresql://app:***@db/prod token ***"
    assert hook.requests[0].json()["steps"][0]["detail"]["target"] == "postgresql://app:***@db/prod"
    logged = [e for e in warnings(captured) if e["kind"] == "healthcheck"]
    assert logged and all(e["url"] == hc.url for e in logged)
    assert "tok-s3cr3t" not in repr(captured)


def test_non_http_urls_are_refused():
    with pytest.raises(ConfigError, match="http"):
        Notifier("file:///etc/passwd", None, notify_on_success=False)
    with pytest.raises(ConfigError):
        Notifier(None, "ftp://host/x", notify_on_success=False)
    assert Notifier("", "", notify_on_success=True).webhook_url is None
