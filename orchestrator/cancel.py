"""One process-wide "stop now" flag, set by the signal handler, checked by long waits.

Child processes (execute) and transfers (storage) poll it so that SIGTERM stops a cycle
within seconds even when the work runs in worker threads.
"""

from __future__ import annotations

import threading

_STOP = threading.Event()


def request_stop() -> None:
    """Ask every running wait to give up (idempotent)."""
    _STOP.set()


def stop_requested() -> bool:
    """True once a stop was requested."""
    return _STOP.is_set()


def reset() -> None:
    """Clear the flag (tests, and the scheduler between cycles never needs it)."""
    _STOP.clear()
