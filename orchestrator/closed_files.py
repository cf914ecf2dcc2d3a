"""Files another process has finished writing in one folder, reported as they close.

A parallel pg_dump writes each table's data to its own file and closes it when the table
is done; uploading a file then, while pg_dump writes the others, overlaps the upload with
the dump. Linux's inotify says when a file opened for writing is closed (IN_CLOSE_WRITE),
through `inotify_simple` (a small ctypes binding kept by its author, no compiled part).
Where inotify is not available nothing is reported early, and the caller takes every file
once the writer has exited.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from orchestrator.logs import get_logger, with_context

log = get_logger(__name__)
POLL_MS = 20  # how long a read waits for events: the most a dump waits for the watcher to stop


class _Event(Protocol):
    name: str


class _Watch(Protocol):
    """The part of inotify_simple.INotify used here."""

    def read(self, timeout: int | None = None) -> Sequence[_Event]: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def reporting_closed(folder: Path, on_closed: Callable[[Path], None]) -> Iterator[None]:
    """Call `on_closed(path)`, from a thread of its own, for each file of `folder` (which
    must exist) closed after writing while the block runs; on leaving, wait until every
    close already seen has been reported. A file written and closed twice is reported
    twice. Without inotify (another system, or no watch left) nothing is reported."""
    watch = _watch(folder)
    if watch is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=with_context(_report),
        args=(watch, folder, on_closed, stop),
        name="closed-files",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        watch.close()


def _watch(folder: Path) -> _Watch | None:
    try:
        import inotify_simple  # type: ignore[import-untyped]
    except ImportError:  # not Linux
        return None
    try:
        watch = inotify_simple.INotify()
        watch.add_watch(folder, inotify_simple.flags.CLOSE_WRITE)
    except OSError as exc:  # no inotify instance or watch left (fs.inotify.max_user_*)
        log.warning("closed_files.unavailable", folder=str(folder), error=str(exc))
        return None
    return watch  # type: ignore[no-any-return]


def _report(
    watch: _Watch, folder: Path, on_closed: Callable[[Path], None], stop: threading.Event
) -> None:
    """Read close events until `stop` is set and none is left; report each."""
    while True:
        stopping = stop.is_set()  # read before the last poll, so no event is left behind
        events = watch.read(timeout=0 if stopping else POLL_MS)
        for event in events:
            if event.name:
                on_closed(folder / event.name)
        if stopping and not events:
            return
