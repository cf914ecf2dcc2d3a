"""The concurrency helpers: context carried into threads, waits that a stop ends at once."""

from __future__ import annotations

import contextvars
import os
import signal
import threading
import time
from concurrent.futures import Future

import pytest

from orchestrator import cancel, cli, tasks
from orchestrator.errors import Interrupted, JobError

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


@pytest.fixture(autouse=True)
def _no_stop_left_behind():
    yield
    cancel.reset()


def test_background_work_runs_in_a_daemon_thread_with_the_callers_context():
    marker.set("caller's")
    seen = tasks.in_background(
        lambda: (marker.get(), threading.current_thread().daemon), "probe"
    ).result(timeout=5)
    assert seen == ("caller's", True)


def test_a_result_or_an_error_is_handed_over():
    assert tasks.result_unless_stopped(tasks.in_background(lambda: 42), "x") == 42

    def boom() -> None:
        raise ValueError("broken store")

    with pytest.raises(ValueError, match="broken store"):
        tasks.result_unless_stopped(tasks.in_background(boom), "x")


def _stop_soon(stop) -> float:
    """Call `stop` 0.2 s from now in another thread; give when it was planned."""
    threading.Timer(0.2, stop).start()
    return time.monotonic()


@pytest.mark.timeout(10)  # a wait that a stop does not end would hang
@pytest.mark.parametrize("scope", ["process", "scoped", "already"])
def test_a_stop_ends_the_wait_at_once(scope):
    never: Future[int] = Future()
    started = time.monotonic()
    with cancel.stoppable() as scoped:
        if scope == "process":
            _stop_soon(cancel.request_stop)
        elif scope == "scoped":
            _stop_soon(scoped.set)
        else:
            cancel.request_stop()
        with pytest.raises(JobError, match="stopped while opening the stores"):
            tasks.result_unless_stopped(never, "opening the stores")
    assert time.monotonic() - started < 2


def test_a_scoped_stop_elsewhere_does_not_end_this_wait():
    with cancel.stoppable() as other:
        other.set()
    assert tasks.result_unless_stopped(tasks.in_background(lambda: "done"), "x") == "done"


def test_run_together_runs_every_piece_at_once_and_gives_results_by_name():
    meeting = threading.Barrier(3, timeout=5)  # only passes when all three run at once
    marker.set("cycle")

    def piece(n: int):
        return lambda: (meeting.wait(), n * 10, marker.get())[1:]

    assert tasks.run_together({"a": piece(1), "b": piece(2), "c": piece(3)}) == {
        "a": (10, "cycle"),
        "b": (20, "cycle"),
        "c": (30, "cycle"),
    }
    assert tasks.run_together({}) == {}


def test_run_together_raises_the_first_failure_after_every_piece_ended():
    ended = []

    def fails(message: str):
        def run() -> None:
            time.sleep(0.1)
            ended.append(message)
            raise RuntimeError(message)

        return run

    def slow() -> None:
        time.sleep(0.3)
        ended.append("slow")

    with pytest.raises(RuntimeError, match="first"):
        tasks.run_together({"x": fails("first"), "y": slow, "z": fails("second")})
    assert sorted(ended) == ["first", "second", "slow"]


def _to_process() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)  # Linux mostly hands it to the main thread


def _to_this_thread() -> None:
    # as the kernel may do with a process's signal: another thread runs the C handler, and
    # Python runs the Python handler in the main thread only once that thread wakes up
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)


@pytest.fixture
def stop_signal():
    """SIGUSR1 handled by the CLI's own SIGTERM handler (stop requested, Interrupted raised
    in the main thread, where pytest runs the test)."""
    previous = signal.signal(signal.SIGUSR1, cli._raise_interrupted)
    yield
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("stop_signal")
def test_a_signal_another_thread_received_still_ends_the_wait_for_a_result():
    late: Future[int] = Future()  # the stores opened long after the stop (a slow store)
    threading.Timer(5, late.set_result, (1,)).start()
    threading.Timer(0.2, _to_this_thread).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        tasks.result_unless_stopped(late, "opening the stores")
    assert time.monotonic() - started < 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("send", "signals"), [(_to_process, 1), (_to_process, 2), (_to_this_thread, 1)]
)
@pytest.mark.usefixtures("stop_signal")
def test_run_together_lets_every_piece_clean_up_when_a_signal_stops_the_waiting_thread(
    send, signals
):
    """The main thread waits for the pieces when the signal comes: the stop must reach them
    (whichever thread the signal was delivered to) and they must end, their cleanup done,
    before run_together raises; no thread of theirs may outlive it, or the process exits
    in the middle of their cleanup (a staging database left behind)."""
    names = ["backup", "dev"]
    waiting = threading.Barrier(len(names) + 1, timeout=5)
    cleaned: list[str] = []

    def piece(name: str):
        def run() -> None:
            woken = threading.Event()
            with cancel.wakes(woken):
                waiting.wait()
                if not woken.wait(5):  # the restore being stopped
                    return
            time.sleep(0.2)  # the cleanup: dropping the staging database...
            if signals == 2 and name == "backup":
                send()  # ...with another SIGTERM in the middle of it
            time.sleep(0.2)
            cleaned.append(name)

        return run

    def signal_once_all_wait() -> None:
        waiting.wait()
        time.sleep(0.1)  # the main thread is waiting for the pieces by now
        send()

    threading.Thread(target=signal_once_all_wait).start()
    with pytest.raises(Interrupted) as raised:
        tasks.run_together({name: piece(name) for name in names}, "probe")
    assert raised.value.exit_code == 128 + signal.SIGUSR1
    assert sorted(cleaned) == names
    assert [t.name for t in threading.enumerate() if t.name.startswith("probe")] == []


def _read_all(broadcast: tasks.Broadcast, name: str) -> Future[bytes]:
    return tasks.in_background(lambda: b"".join(broadcast.reader(name)), name)


def test_a_broadcast_gives_every_reader_the_same_bytes_once_closed():
    broadcast = tasks.Broadcast(["a", "b"], block=10, depth=2)
    readers = [_read_all(broadcast, name) for name in ("a", "b")]
    written = b"".join(bytes([n]) * 7 for n in range(50))
    for start in range(0, len(written), 7):
        assert broadcast.write(written[start : start + 7]) == 7
    broadcast.close()
    assert [r.result(timeout=5) for r in readers] == [written, written]


def test_a_broadcast_reader_raises_the_writers_failure_instead_of_ending():
    broadcast = tasks.Broadcast(["a"], block=4)
    reader = _read_all(broadcast, "a")
    broadcast.write(b"half of it")
    broadcast.fail(JobError("encryption failed: injected"))
    with pytest.raises(JobError, match="injected"):
        reader.result(timeout=5)


def test_a_broadcast_waits_for_a_slow_reader_but_not_for_one_that_left():
    broadcast = tasks.Broadcast(["gone", "slow"], block=1, depth=2)  # waits on "gone" first
    writing = tasks.in_background(lambda: [broadcast.write(b"x") for _ in range(10)])
    time.sleep(0.3)
    assert not writing.done()  # bounded: two blocks queued per reader, then the writer waits
    broadcast.leave("gone")
    slow = broadcast.reader("slow")
    assert [next(slow) for _ in range(10)] == [b"x"] * 10
    writing.result(timeout=5)


def test_a_broadcast_every_reader_left_stops_the_writer():
    broadcast = tasks.Broadcast(["a", "b"], block=1)
    broadcast.leave("a")
    broadcast.leave("b")
    assert broadcast.deserted
    with pytest.raises(JobError, match="no reader"):
        broadcast.write(b"x")
