"""A running job's progress: one line on a terminal, a log event otherwise."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator import progress
from orchestrator.records import RunningDoc


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        ({"kind": "backup", "seconds": 4.2}, "backup 4.2 s: starting"),
        (
            {"kind": "backup", "seconds": 4.2, "steps": ["dump"], "dumped_bytes": 1536},
            "backup 4.2 s: dump · 1.5 KiB dumped",
        ),
        (
            {
                "kind": "cycle",
                "seconds": 65.0,
                "steps": ["dump", "upload"],
                "dumped_bytes": 10 * 1024**2,
                "stored_bytes": 4 * 1024**2,
                "tables_done": 3,
                "tables_total": 9,
            },
            "cycle 1 min 05 s: dump, upload · 10.0 MiB dumped · 4.0 MiB stored · 3 of 9 tables",
        ),
        (
            {"kind": "cycle", "seconds": 1.0, "steps": ["dump"], "tables_total": 9},
            "cycle 1.0 s: dump · 0 of 9 tables",
        ),
    ],
)
def test_a_running_job_reads_as_one_line(doc: RunningDoc, line: str) -> None:
    assert progress.describe(doc) == line


def _wait_for(check, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_terminal_gets_the_line_redrawn_and_a_newline_at_the_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(progress, "TTY_EVERY", 0.01)
    dump = tmp_path / "dump.d"
    dump.mkdir()
    (dump / "1.dat").write_bytes(b"x" * 2048)
    out = FakeTty()
    with progress.running("backup", out) as activity:
        assert progress.current() is activity
        activity.watched = dump
        activity.tables_total = 2
        with progress.step("dump"):
            progress.now_running().table_done()
            progress.now_running().add_stored(1024)
            _wait_for(lambda: "1 of 2 tables" in out.getvalue())
    assert progress.current() is None
    text = out.getvalue()
    assert (
        "\rbackup " in text and ": dump · 2.0 KiB dumped · 1.0 KiB stored · 1 of 2 tables" in text
    )
    assert text.endswith("\n")


def test_a_log_gets_a_progress_event_and_no_terminal_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY", 0.01)
    out = io.StringIO()
    with capture_logs() as logged, progress.running("cycle", out), progress.step("restore:dev"):
        _wait_for(lambda: any(e["event"] == "progress" for e in logged))
    event = next(e for e in logged if e["event"] == "progress")
    assert event["kind"] == "cycle" and event["steps"] == ["restore:dev"]
    assert out.getvalue() == ""


def test_outside_a_job_the_counts_go_nowhere() -> None:
    progress.now_running().add_stored(10)
    progress.now_running().table_done()
    assert progress.current() is None
    started = datetime.now(UTC)
    with progress.running("backup", io.StringIO()) as activity:
        assert activity.stored == 0 and activity.started_at >= started
