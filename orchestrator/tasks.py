"""Work that runs beside the caller: the few shapes of concurrency the commands use.

Every thread started here runs in a copy of the caller's context (`logs.with_context`), and
that is load-bearing, not cosmetic: the log fields bound by the caller (run_id, step) and
the scoped stop flag of `cancel.stoppable` live in context variables, so a worker thread
started any other way would log without its run and never see its scope being stopped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from orchestrator import cancel
from orchestrator.errors import JobError
from orchestrator.logs import with_context

T = TypeVar("T")


def in_background(work: Callable[[], T], name: str = "background") -> Future[T]:
    """Start `work` in a daemon thread carrying this context; give its future.

    A daemon thread, so that work stuck on a peer that never answers (a store, a server)
    holds up neither a stop nor the process's exit; wait for it with `result_unless_stopped`.
    """
    future: Future[T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to whoever waits for the future
                future.set_exception(exc)

    threading.Thread(target=with_context(run), name=name, daemon=True).start()
    return future


def result_unless_stopped(future: Future[T], doing: str) -> T:
    """Give `future`'s result (or raise its exception) once it is done.

    Raises JobError("stopped while <doing>") as soon as a stop is requested for the process
    or for this scope, without waiting for the future any longer. Woken by either; it also
    wakes every POLL_SECONDS, so that a signal another thread received has its handler run
    here (see `_wait_through_signals`).
    """
    woken = threading.Event()
    future.add_done_callback(lambda _done: woken.set())
    with cancel.wakes(woken):
        while not woken.wait(POLL_SECONDS):
            continue
    if not future.done():
        raise JobError(f"stopped while {doing}")
    return future.result()


def run_together(work: Mapping[str, Callable[[], T]], prefix: str = "task") -> dict[str, T]:
    """Run every piece of `work` at once, each in a thread carrying this context; give each
    one's result by name once all have ended.

    Raises the first exception (in `work`'s order) of the pieces that raised, after every
    piece has ended: pieces that must not fail together catch their own errors. An exception
    raised in this thread meanwhile (a signal handler's Interrupted) is raised instead, also
    once every piece has ended: stopped, they clean up what they made (a staging database)
    before the process may exit.
    """
    if not work:
        return {}
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix=prefix) as pool:
        futures = {name: pool.submit(with_context(fn)) for name, fn in work.items()}
        _wait_through_signals(list(futures.values()))
    return {name: future.result() for name, future in futures.items()}


def _wait_through_signals(futures: list[Future[T]]) -> None:
    """Return once every future is done; then raise the first exception a signal handler
    raised in this thread while it waited, if one did.

    It waits on an event set by the futures, never in Thread.join (what the pool's exit
    does): an exception raised inside join marks the joined thread as ended while it still
    runs (CPython 3.11, python/cpython#90882), and the interpreter then exits without
    waiting for it, cutting its cleanup short. And it wakes every POLL_SECONDS: the kernel
    may hand the process's SIGTERM to another thread, and Python then runs the handler in
    this one only once it wakes; blocked until the pieces end, it would wait for pieces
    that wait for the stop only the handler requests.
    """
    ended = threading.Event()

    def check(_future: Future[T]) -> None:
        if all(future.done() for future in futures):
            ended.set()

    for future in futures:
        future.add_done_callback(check)
    raised: BaseException | None = None
    while not ended.is_set():
        try:
            ended.wait(POLL_SECONDS)
        except BaseException as exc:  # kept until the pieces have cleaned up
            raised = raised or exc
    if raised is not None:
        raise raised


BLOCK = 1024 * 1024
DEPTH = 4
POLL_SECONDS = 0.1
_END = object()


class Broadcast:
    """One writer's bytes handed to several readers at once (one encryption fanned out to
    every store), each reader through its own bounded queue of `depth` blocks of about
    `block` bytes: memory stays bounded, the writer waits for the slowest reader, and a
    reader that leaves (its store failed) holds nobody up any more.

    The writer calls `write` (it is file-like), then `close` once everything it wrote is
    good, or `fail` with the error each reader must raise instead of ending. A reader's
    iteration ends only after `close`; whoever stops reading calls `leave`.
    """

    def __init__(self, names: Sequence[str], block: int = BLOCK, depth: int = DEPTH) -> None:
        self.block = block
        self._queues: dict[str, queue.Queue[object]] = {n: queue.Queue(depth) for n in names}
        self._left: dict[str, threading.Event] = {n: threading.Event() for n in names}
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        """Queue `data` for every reader still reading; give its length. Blocks while a
        reader is `depth` blocks behind. Raises JobError when every reader has left or a
        stop is requested."""
        self._pending += data
        if len(self._pending) >= self.block:
            self._send(bytes(self._pending))
            self._pending.clear()
        return len(data)

    def flush(self) -> None:
        """Nothing to do: blocks go out when full, the rest on `close`."""

    def close(self) -> None:
        """Send what is pending, then the end: every reader's iteration ends normally."""
        if self._pending:
            self._send(bytes(self._pending))
            self._pending.clear()
        self._send(_END)

    def fail(self, error: BaseException) -> None:
        """Make every reader still reading raise `error` instead of ending (best effort:
        never raises)."""
        with contextlib.suppress(JobError):
            self._send(error)

    @property
    def deserted(self) -> bool:
        """True once every reader has left."""
        return all(left.is_set() for left in self._left.values())

    def leave(self, name: str) -> None:
        """Reader `name` reads no more (idempotent): the writer stops waiting for it."""
        self._left[name].set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queues[name].get_nowait()

    def reader(self, name: str) -> Iterator[bytes]:
        """Yield the blocks written, in order, until `close`; raise the error given to
        `fail`, or JobError when a stop is requested. Leaves when it ends either way."""
        try:
            while True:
                item = self._take(name)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                yield item
        finally:
            self.leave(name)

    def _take(self, name: str) -> object:
        while True:
            if cancel.stop_requested():
                raise JobError("stopped (shutdown requested)")
            try:
                return self._queues[name].get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue

    def _send(self, item: object) -> None:
        live = [name for name, left in self._left.items() if not left.is_set()]
        if not live:
            raise JobError("no reader is left to take the stream")
        for name in live:
            while not self._left[name].is_set():
                if cancel.stop_requested():
                    raise JobError("stopped (shutdown requested)")
                try:
                    self._queues[name].put(item, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    continue
