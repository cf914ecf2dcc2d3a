"""One process-wide "stop now" flag, set by the signal handler, checked by long waits.

Child processes (execute) and transfers (storage) poll it so that SIGTERM stops a cycle
within seconds even when the work runs in worker threads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

_STOP = threading.Event()
_ON_STOP: list[Callable[[], None]] = []


def on_stop(callback: Callable[[], None]) -> None:
    """Have `callback` called (once per stop request) when a stop is requested: for work
    that does not poll the flag, such as a query running on a server."""
    _ON_STOP.append(callback)


def request_stop() -> None:
    """Ask every running wait to give up, and run the on_stop callbacks (errors ignored)."""
    _STOP.set()
    for callback in list(_ON_STOP):
        with contextlib.suppress(Exception):
            callback()


def stop_requested() -> bool:
    """True once a stop was requested."""
    return _STOP.is_set()


def reset() -> None:
    """Clear the flag (tests, and the scheduler between cycles never needs it)."""
    _STOP.clear()
