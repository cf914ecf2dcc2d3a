"""Cycle reports: outcome, JSON summary and the human texts (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.notify import CycleReport, StepReport, safe_url, slack_text, summary_line

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
    assert head == ":white_check_mark: orchestrator cycle run-7 succeeded in 1m02s (2 steps)"
    assert steps == "dump 5.0 MiB 40.1s · upload 3.0s"


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
        ":x: orchestrator cycle run-7 failed after 1m02s: "
        "failed steps: restore:dev, restore:backup",
        "• restore:dev: relation &lt;users&gt; &amp; co missing",
        "• restore:backup: failed",
        "• error: 2 steps failed",
    ]


def test_summary_line_uses_the_cycle_error_when_no_step_failed():
    line = summary_line(report(error="could not lock: already running\ndetail"))
    assert line == "orchestrator cycle run-7 failed after 1m02s: could not lock: already running"


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
