"""Work that runs beside the caller: the few shapes of concurrency the commands use.

Every thread started here runs in a copy of the caller's context (`logs.with_context`), and
that is load-bearing, not cosmetic: the log fields bound by the caller (run_id, step) and
the scoped stop flag of `cancel.stoppable` live in context variables, so a worker thread
started any other way would log without its run and never see its scope being stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
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
    or for this scope, without waiting for the future any longer. Blocks without polling.
    """
    woken = threading.Event()
    future.add_done_callback(lambda _done: woken.set())
    with cancel.wakes(woken):
        woken.wait()
    if not future.done():
        raise JobError(f"stopped while {doing}")
    return future.result()


def run_together(work: Mapping[str, Callable[[], T]], prefix: str = "task") -> dict[str, T]:
    """Run every piece of `work` at once, each in a thread carrying this context; give each
    one's result by name once all have ended.

    Raises the first exception (in `work`'s order) of the pieces that raised, after every
    piece has ended: pieces that must not fail together catch their own errors.
    """
    if not work:
        return {}
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix=prefix) as pool:
        futures = {name: pool.submit(with_context(fn)) for name, fn in work.items()}
    return {name: future.result() for name, future in futures.items()}
