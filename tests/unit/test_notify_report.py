"""Cycle reports: outcome, JSON summary and the human texts (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.channels import check_services, label, parse_channels
from orchestrator.logs import mask
from orchestrator.notify import (
    CycleReport,
    StepReport,
    channel_message,
    safe_url,
    slack_text,
    summary_line,
)

START = datetime(2026, 11, 25, 6, 0, 0, tzinfo=UTC)


def report(*steps: StepReport, error: str | None = None, seconds: float = 62) -> CycleReport:
    return CycleReport(
        "run-7",
        START,
        list(steps),
        finished_at=START + timedelta(seconds=seconds),
        error=error,
    )


@pytest.mark.parametrize(
    ("steps", "error", "ok"),
    [
        ([], None, False),
        ([StepReport("dump", True, 1)], None, True),
        ([StepReport("dump", True, 1), StepReport("upload", False, 1, "x")], None, False),
        ([StepReport("dump", True, 1)], "interrupted", False),
    ],
)
def test_ok(steps, error, ok):
    assert report(*steps, error=error).ok is ok


def test_as_dict_is_json_ready_with_utc_z_times():
    cycle = report(
        StepReport("dump", True, 1.23456, detail={"size_bytes": 10, "at": START, "tags": ("a",)}),
        seconds=3.5,
    )
    cycle.started_at = START.astimezone(timezone(timedelta(hours=2)))
    data = json.loads(json.dumps(cycle.as_dict()))
    assert data == {
        "status": "success",
        "run_id": "run-7",
        "started_at": "2026-11-25T06:00:00Z",
        "finished_at": "2026-11-25T06:00:03Z",
        "duration_seconds": 3.5,
        "steps": [
            {
                "name": "dump",
                "status": "success",
                "ok": True,
                "seconds": 1.235,
                "error": None,
                "detail": {"size_bytes": 10, "at": "2026-11-25T06:00:00Z", "tags": ["a"]},
            }
        ],
        "error": None,
    }


def test_unfinished_report_has_no_duration():
    data = CycleReport("r", START).as_dict()
    assert data["finished_at"] is None and data["duration_seconds"] is None
    assert data["status"] == "failure"


def test_slack_text_on_success_lists_steps_and_size():
    text = slack_text(
        report(
            StepReport("dump", True, 40.1, detail={"size_bytes": 5 * 1024 * 1024}),
            StepReport("upload", True, 3),
        )
    )
    head, steps = text.splitlines()
    assert head == ":white_check_mark: orchestrator cycle run-7 succeeded in 1 min 02 s (2 steps)"
    assert steps == "dump 5.0 MiB 40.1 s · upload 3.0 s"


def test_slack_text_on_failure_names_steps_first_error_and_escapes():
    text = slack_text(
        report(
            StepReport("dump", True, 1),
            StepReport("restore:dev", False, 2, "\nrelation <users> & co missing\nmore"),
            StepReport("restore:backup", False, 2, None),
            error="2 steps failed",
        )
    )
    assert text.splitlines() == [
        ":x: orchestrator cycle run-7 failed after 1 min 02 s: "
        "failed steps: restore:dev, restore:backup",
        "• restore:dev: relation &lt;users&gt; &amp; co missing",
        "• restore:backup: failed",
        "• error: 2 steps failed",
    ]


def test_summary_line_uses_the_cycle_error_when_no_step_failed():
    line = summary_line(report(error="could not lock: already running\ndetail"))
    assert line == (
        "orchestrator cycle run-7 failed after 1 min 02 s: could not lock: already running"
    )


def test_long_errors_are_cut():
    text = slack_text(report(StepReport("dump", False, 1, "x" * 1000)))
    assert len(text.splitlines()[1]) < 320


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://hc-ping.com/0f3a-uuid/start", "https://hc-ping.com"),
        ("https://hooks.slack.com/services/T0/B0/XyZ?x=1", "https://hooks.slack.com"),
        ("http://user:pw@127.0.0.1:8080/p", "http://127.0.0.1:8080"),
        ("http://[::1", "<unparsable url>"),
    ],
)
def test_safe_url(url, safe):
    assert safe_url(url) == safe


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("slack://TokenA/TokenB/TokenC/#ops", "slack://"),
        ("discord://1234567890/WebhookToken", "discord://"),
        ("tgram://123456789:AAbbCCdd/-1001234567890", "tgram://"),
        ("mailtos://user:app-pw@smtp.example.com?to=ops@example.com", "mailtos://smtp.example.com"),
        ("ntfys://ntfy.sh/my-backups", "ntfys://ntfy.sh"),
        ("ntfy://my-topic", "ntfy://"),
        ("json://127.0.0.1:8080/hook-token", "json://127.0.0.1"),
        (
            "workflows://prod-01.westus.logic.azure.com:443/wf/SIG",
            "workflows://prod-01.westus.logic.azure.com",
        ),
    ],
)
def test_channel_label_is_scheme_and_server_host_only(url, shown):
    assert label(url) == shown


def test_notify_urls_split_on_commas_and_spaces_and_unknown_services_are_named():
    urls = parse_channels(" slack://A1b2/C3d4/E5f6 ,ntfys://ntfy.sh/x\n json://h:1/p ")
    assert urls == ["slack://A1b2/C3d4/E5f6", "ntfys://ntfy.sh/x", "json://h:1/p"]
    with pytest.raises(ValueError, match=r"entry 2 \(nope://\) is not a URL Apprise can send to"):
        check_services(parse_channels("json://h:1/p nope://secret-thing"))
    with pytest.raises(ValueError, match="entry 1 is not a URL"):
        parse_channels("hooks.slack.com")
    assert "secret-thing" not in mask("nope://secret-thing and secret-thing")
    parse_channels("ntfys://ntfy.sh/alerts-4f9a?token=tk_ab12cd34&priority=high")
    assert mask("tk_ab12cd34 alerts-4f9a high") == "*** *** high"  # options stay readable


def test_channel_message_has_title_first_error_steps_and_page_link():
    report = CycleReport(run_id="r1", started_at=datetime(2026, 12, 5, tzinfo=UTC))
    report.steps = [
        StepReport("dump", True, 12.3, detail={"size_bytes": 4 * 1024 * 1024}),
        StepReport("restore:dev", False, 0.4, error="cannot connect to dev\nmore"),
    ]
    document = {**report.as_dict(), "kind": "cycle"}
    title, body = channel_message(document, "neondb", "https://status.example.com/")
    assert title == "orchestrator: cycle failed on neondb"
    assert body.splitlines() == [
        "First error: restore:dev: cannot connect to dev",
        "",
        "Steps:",
        "  dump ok 12.3 s (4.0 MiB)",
        "  restore:dev FAILED 0.4 s",
        "",
        "Status page: https://status.example.com/",
    ]
    drill = {"kind": "drill", "status": "success", "fetch_seconds": 2.0, "rto_seconds": 65.0}
    title, body = channel_message(drill, "neondb", None)
    assert title == "orchestrator: drill passed on neondb"
    assert body == "Steps:\n  fetch 2.0 s\n  RTO 1 min 05 s"
