"""The "stop now" flags checked by long waits: one process-wide, set by the signal handler,
and scoped ones that stop a single piece of work (see `stoppable`).

Child processes (execute) and transfers (storage) poll them so that SIGTERM stops a cycle
within seconds even when the work runs in worker threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator


class _Flag(threading.Event):
    """An event that also wakes the waiters registered with `wakes` when it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: list[threading.Event] = []

    def set(self) -> None:
        super().set()
        for waiter in list(self.waiters):
            waiter.set()


_STOP = _Flag()
_ON_STOP: list[Callable[[], None]] = []
_SCOPED: contextvars.ContextVar[_Flag | None] = contextvars.ContextVar(
    "orchestrator_scoped_stop", default=None
)


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
    """True once a stop was requested for the whole process or for the current scope."""
    scoped = _SCOPED.get()
    return _STOP.is_set() or (scoped is not None and scoped.is_set())


@contextlib.contextmanager
def stoppable() -> Iterator[threading.Event]:
    """Give an event that, once set (from any thread), makes stop_requested() true for the
    work done inside this block: in this thread, and in threads that run with a copy of its
    context (logs.with_context). The rest of the process carries on."""
    event = _Flag()
    token = _SCOPED.set(event)
    try:
        yield event
    finally:
        _SCOPED.reset(token)


@contextlib.contextmanager
def wakes(waiter: threading.Event) -> Iterator[None]:
    """While inside, a stop requested for the process or for this scope sets `waiter` (at
    once when one already was): a thread blocked on `waiter.wait()` wakes for a stop
    without polling."""
    flags = [flag for flag in (_STOP, _SCOPED.get()) if flag is not None]
    for flag in flags:
        flag.waiters.append(waiter)
    try:
        if stop_requested():
            waiter.set()
        yield
    finally:
        for flag in flags:
            flag.waiters.remove(waiter)


def reset() -> None:
    """Clear the process-wide flag (tests, and the scheduler between cycles never needs it)."""
    _STOP.clear()
