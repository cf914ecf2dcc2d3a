"""NOTIFY_URLS through Apprise against real servers: an SMTP server on loopback (aiosmtpd) and
a local HTTP receiver for `json://`, inside real cycles."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from tests.harness.ports import free_port
from tests.harness.running import get, s3_keys, start_run, wait_for

pytestmark = pytest.mark.integration

DB_SECRET = "Sup3rSecretDbPw"
PATH_TOKEN = "T0kenInThePath42"


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, _server: object, _session: object, envelope) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def mail_url(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=orch@x.example&to=ops@x.example&mode=insecure"


def test_failed_cycle_mails_the_first_error_and_posts_json_without_secrets(cycle, smtp, sink):
    c = cycle
    box, port = smtp
    dead = f"postgresql://u:{DB_SECRET}@127.0.0.1:{free_port()}/nowhere"
    channels = f"{mail_url(port)}, json://127.0.0.1:{sink.url.rsplit(':', 1)[1]}/{PATH_TOKEN}"
    env = {
        "DEV_DATABASE_URL": dead,
        "NOTIFY_URLS": channels,
        "STATUS_PAGE_URL": "https://status.example.com/",
    }
    result = c["orch"].run("pipeline", extra_env=env)
    assert result.returncode == 1

    (raw,) = box.messages
    mail = message_from_bytes(raw, policy=policy.default)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert mail["Subject"] == f"orchestrator: cycle failed on {c['db']}"
    assert "First error: restore:dev: cannot connect" in text
    assert "restore:backup ok" in text and "https://status.example.com/" in text
    (posted,) = [r for r in sink.requests if r.path == f"/{PATH_TOKEN}"]
    message = json.loads(posted.body)
    assert message["title"] == f"orchestrator: cycle failed on {c['db']}"
    assert "First error: restore:dev" in message["message"]

    status = c["orch"].ok("status", "--json", extra_env=env).stdout
    assert "mailto://127.0.0.1" in json.loads(status)["notify"]
    for leaked in (result.stdout, result.stderr, raw.decode(), posted.body.decode(), status):
        assert DB_SECRET not in leaked and PATH_TOKEN not in leaked.replace(posted.path, "")


def test_failing_channel_is_counted_and_logged_without_its_token_and_the_cycle_succeeds(
    cycle, tmp_path
):
    c = cycle
    port = free_port()
    proc = start_run(
        c,
        tmp_path,
        SCHEDULE="@yearly",
        RUN_ON_START="true",
        HEALTH_PORT=str(port),
        NOTIFY_URLS=f"json://127.0.0.1:{free_port()}/{PATH_TOKEN}",  # nothing listens there
        NOTIFY_ON_SUCCESS="true",
    )
    try:
        # the alert goes out as the cycle ends, a moment before the loop counts the cycle
        expected = (
            'orchestrator_notify_failures_total{kind="apprise"} 1.0',
            'orchestrator_cycles_total{status="success"} 1.0',
        )
        assert wait_for(
            lambda: all(x in get(f"http://127.0.0.1:{port}/metrics")[1] for x in expected), 120
        )
        page = get(f"http://127.0.0.1:{port}/")[1]
        assert "json://127.0.0.1" in page and PATH_TOKEN not in page
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=40)
    failed = [json.loads(ln) for ln in err.splitlines() if '"notify.failed"' in ln]
    assert [f["url"] for f in failed] == ["json://127.0.0.1"]
    assert PATH_TOKEN not in err


def test_a_service_apprise_does_not_know_stops_the_cycle_with_exit_2(cycle, tmp_path):
    c = cycle
    bad = {"NOTIFY_URLS": f"json://127.0.0.1:9/x nope://{PATH_TOKEN}"}
    result = c["orch"].run("pipeline", extra_env=bad)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "NOTIFY_URLS: entry 2 (nope://) is not a URL Apprise can send to" in last
    assert PATH_TOKEN not in result.stderr
    assert not [k for k in s3_keys(c) if k.endswith(".manifest.json")]
    ran = start_run(c, tmp_path, SCHEDULE="@yearly", RUN_ON_START="true", **bad)
    _out, err = ran.communicate(timeout=60)
    assert ran.returncode == 2 and "NOTIFY_URLS: entry 2" in err.strip().splitlines()[-1]
    c["orch"].ok("status", extra_env=bad)  # commands that do not notify never load Apprise
