"""What a long job is doing now: its running steps, the bytes dumped and stored, the
tables done. A terminal gets it as one line, redrawn every second; a log (a container, a
cron job) gets a `progress` event every 30 seconds; `run`'s status page shows it.

One job runs at a time in a process (the cycle lock sees to that), so the activity is
kept process-wide: operations add to it without being handed it, and nothing happens
when no job is running.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from orchestrator.formats import human_seconds, human_size, iso_z
from orchestrator.logs import get_logger, with_context
from orchestrator.records import RunningDoc

log = get_logger(__name__)
TTY_EVERY = 1.0  # seconds between redraws of the terminal line
LOG_EVERY = 30.0  # seconds between progress events in a log


@dataclass
class Activity:
    """One running job's progress. Thread-safe: steps and counters change from the
    threads doing the work."""

    kind: str
    started_at: datetime
    steps: list[str] = field(default_factory=list)
    dumped: int = 0
    stored: int = 0
    tables_done: int = 0
    tables_total: int | None = None
    watched: Path | None = None  # the dump being written, measured by the reporter
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, step: str) -> None:
        """A step started."""
        with self._lock:
            self.steps.append(step)

    def end(self, step: str) -> None:
        """A step ended."""
        with self._lock:
            if step in self.steps:
                self.steps.remove(step)

    def add_stored(self, size: int) -> None:
        """`size` more bytes of the dump are in the stores."""
        with self._lock:
            self.stored += size

    def table_done(self) -> None:
        """pg_dump finished one more table's data."""
        with self._lock:
            self.tables_done += 1

    def measure(self) -> None:
        """Read how big the watched dump is now (a file, or a folder's files)."""
        path = self.watched
        if path is None:
            return
        with contextlib.suppress(OSError):  # a file may go between listing and stat
            self.dumped = max(self.dumped, dump_size(path))

    def line(self, now: datetime) -> str:
        """One line for people: `cycle 3 min 05 s: dump, upload · 1.2 GiB dumped · ...`."""
        return describe(self.as_doc(now))

    def as_doc(self, now: datetime) -> RunningDoc:
        """The record the status page and the log show."""
        with self._lock:
            doc: RunningDoc = {
                "kind": self.kind,
                "started_at": iso_z(self.started_at),
                "seconds": round((now - self.started_at).total_seconds(), 1),
                "steps": list(self.steps),
                "dumped_bytes": self.dumped,
                "stored_bytes": self.stored,
                "tables_done": self.tables_done,
            }
            if self.tables_total is not None:
                doc["tables_total"] = self.tables_total
        return doc


def dump_size(path: Path) -> int:
    """Bytes of a dump on disk: the archive file, or every file of a directory dump.
    Raises OSError when it cannot be read."""
    if path.is_dir():
        return sum(file.stat().st_size for file in path.iterdir())
    return path.stat().st_size


def describe(doc: RunningDoc) -> str:
    """The line a running job's record reads as (pure)."""
    steps = ", ".join(doc.get("steps", [])) or "starting"
    parts = [f"{doc['kind']} {human_seconds(doc.get('seconds', 0.0))}: {steps}"]
    if doc.get("dumped_bytes"):
        parts.append(f"{human_size(doc['dumped_bytes'])} dumped")
    if doc.get("stored_bytes"):
        parts.append(f"{human_size(doc['stored_bytes'])} stored")
    if "tables_total" in doc:
        parts.append(f"{doc.get('tables_done', 0)} of {doc['tables_total']} tables")
    return " · ".join(parts)


_current: Activity | None = None
_IDLE = Activity("idle", datetime.min.replace(tzinfo=UTC))  # takes what no job asked for


def current() -> Activity | None:
    """The running job's activity, or None."""
    return _current


def now_running() -> Activity:
    """The running job's activity, or a stand-in that nothing reads."""
    return _current or _IDLE


@contextlib.contextmanager
def running(kind: str, stream: TextIO | None = None) -> Iterator[Activity]:
    """Run a job's block as the process's activity, reported while it runs: on a terminal
    (`stream`, stderr by default, when it is one) every second, else logged every 30 s."""
    global _current
    out = stream if stream is not None else sys.stderr
    activity = Activity(kind, datetime.now(UTC))
    _current = activity
    stop = threading.Event()
    tty = out.isatty()
    reporter = threading.Thread(
        target=with_context(_report),
        args=(activity, out if tty else None, stop),
        name="progress",
        daemon=True,
    )
    reporter.start()
    try:
        yield activity
    finally:
        stop.set()
        reporter.join()
        _current = None


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Count `name` among the running job's steps while the block runs."""
    activity = now_running()
    activity.begin(name)
    try:
        yield
    finally:
        activity.end(name)


def _report(activity: Activity, tty: TextIO | None, stop: threading.Event) -> None:
    every = TTY_EVERY if tty is not None else LOG_EVERY
    shown = False
    while not stop.wait(every):
        activity.measure()
        now = datetime.now(UTC)
        if tty is not None:
            tty.write(f"\r{activity.line(now)}\x1b[K")
            tty.flush()
            shown = True
        else:
            log.info("progress", **activity.as_doc(now))
    if shown and tty is not None:
        tty.write("\n")
        tty.flush()
