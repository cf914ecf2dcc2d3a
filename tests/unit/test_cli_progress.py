"""fetch's progress line: shown on a terminal only."""

from __future__ import annotations

import io

from orchestrator.cli import TtyProgress


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_tty_counts_up_to_the_total():
    out = FakeTty()
    progress = TtyProgress(4 * 1024 * 1024, out)
    for _ in range(4):
        progress(1024 * 1024)
    text = out.getvalue()
    assert "\r1.0 MiB / 4.0 MiB (25%)" in text
    assert text.endswith("4.0 MiB / 4.0 MiB (100%)\n")


def test_no_progress_off_a_tty():
    out = io.StringIO()
    TtyProgress(10, out)(10)
    assert out.getvalue() == ""
