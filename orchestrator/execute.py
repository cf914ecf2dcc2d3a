"""The only place that starts processes.

`run()` takes an argv list (never a shell string), passes secrets through the
environment, logs the command line with passwords masked, keeps the first error lines
and the tail of stderr for the error message, and kills the whole process group on
timeout, on an exception in the waiting thread, or when `terminate_all()` is called
from a signal handler. `run_pipeline()` does the same for programs whose output feeds
the next one (pg_restore | mask filter | psql), checking every program's exit code.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import sh

from orchestrator import cancel
from orchestrator.errors import CommandFailed
from orchestrator.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

TAIL_LINES = 20
FIRST_ERRORS = 5
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.02
PIPE_BYTES = 1 << 20  # between the stages of a pipeline: one masking block
_ERROR_MARKERS = ("error:", "ERROR:", "FATAL:", "fatal:", "could not", "No such file")

# What a child inherits from this process: where programs, libraries and the home folder
# are, the locale and time zone, libpq's own variables (PG*: sslmode, passfile, ...) but
# not PGPASSWORD, which is the source's password and reaches pg_dump alone, through `extra`
# (settings attach it to the source's URL), and Python's for our own filter.
# Nothing else: the tool's settings hold production's URL and password, the stores' keys
# and MASK_KEY, and a process connected to dev must never hold them (a core dump or
# /proc/<pid>/environ would show them). What a child needs beyond this comes in `extra`.
_INHERITED = re.compile(
    r"^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TZDIR|TMPDIR|LD_LIBRARY_PATH"
    r"|PG[A-Z]+|PYTHON[A-Z_]*|VIRTUAL_ENV|COVERAGE_[A-Z_]+)$"
)
_live: dict[int, Any] = {}
# Reentrant: the signal handler (terminate_all) may run while this thread holds the lock.
_live_lock = threading.RLock()


@dataclass(frozen=True)
class Result:
    """What a finished process gave: its exit code, captured stdout and stderr lines."""

    returncode: int
    stdout: str
    stderr_lines: list[str]
    seconds: float
    errors_seen: int = 0


class _StderrKeeper:
    """Keeps the first error-looking lines and the last lines of a stream."""

    def __init__(self, max_errors: int = FIRST_ERRORS) -> None:
        self.max_errors = max_errors
        self.first_errors: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.errors_seen = 0

    def __call__(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line:
            return
        self.tail.append(line)
        if any(marker in line for marker in _ERROR_MARKERS):
            self.errors_seen += 1
            if len(self.first_errors) < self.max_errors:
                self.first_errors.append(line)

    def lines(self) -> list[str]:
        """First error lines, then tail lines not already among them."""
        return self.first_errors + [t for t in self.tail if t not in self.first_errors]


def child_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The environment a child gets: the few variables every program may need from this
    process's (see `_INHERITED`), plus `extra`, what this child needs (its secrets
    included)."""
    inherited = {k: v for k, v in os.environ.items() if _INHERITED.match(k) and k != "PGPASSWORD"}
    return {**inherited, **(extra or {})}


def _kill_group(proc: Any) -> None:
    pid = proc.pid
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not proc.process.is_alive()[0]:
                return
            time.sleep(0.05)


def terminate_all() -> None:
    """Stop every process group this module started and that still runs (signal handlers)."""
    with _live_lock:
        running = list(_live.values())
    for proc in running:
        _kill_group(proc)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout_path: Path | None = None,
    timeout: float | None = None,
    ok_codes: Sequence[int] = (0,),
    max_errors: int = FIRST_ERRORS,
) -> Result:
    """Run `argv` to completion and give its Result.

    `env` is added to this process's environment (secrets go here, never in argv).
    Stdout goes to `stdout_path` when given, else it is captured (keep it small).
    Raises CommandFailed when the exit code is not in `ok_codes`, on a signal, or after
    `timeout` seconds (the process group is killed first). Up to `max_errors` error-looking
    stderr lines are kept (Result.stderr_lines), first errors first, then the tail.
    """
    program = Path(argv[0]).name
    log.info("command.start", command=shlex.join([program, *argv[1:]]))
    keeper = _StderrKeeper(max_errors)
    captured = io.StringIO()
    started = time.monotonic()
    full_env = child_environment(env)
    # a buffer, not a callable: sh's callable stdout sink adds a 0.1 s poll to every run
    out: Any = str(stdout_path) if stdout_path else captured
    try:
        command = sh.Command(argv[0])
    except sh.CommandNotFound:
        raise CommandFailed(program, "was not found", [f"no executable at {argv[0]}"]) from None
    proc: Any = None
    try:
        proc = command(
            *argv[1:],
            _env=full_env,
            _out=out,
            _err=keeper,
            _bg=True,
            _bg_exc=False,
            _new_session=True,
            _decode_errors="replace",  # strict decoding would kill sh's reader thread
            _ok_code=list(range(256)),
        )
        with _live_lock:
            _live[id(proc)] = proc
        code = _wait(proc, program, keeper, timeout)
    except BaseException:
        if proc is not None:
            _kill_group(proc)
        raise
    finally:
        with _live_lock:
            _live.pop(id(proc), None)
    seconds = time.monotonic() - started
    if code not in ok_codes:
        log.warning("command.failed", program=program, exit=code, seconds=round(seconds, 3))
        raise CommandFailed(program, _describe_exit(code), keeper.lines())
    log.info("command.done", program=program, exit=code, seconds=round(seconds, 3))
    return Result(code, captured.getvalue(), keeper.lines(), seconds, keeper.errors_seen)


def _wait(proc: Any, program: str, keeper: _StderrKeeper, timeout: float | None) -> int:
    # Poll rather than block so that signal handlers run promptly in this thread; the
    # final process.wait() reaps nothing new but joins sh's output threads, without
    # which the last chunks of stdout/stderr could still be in flight.
    deadline = None if timeout is None else time.monotonic() + timeout
    while proc.process.is_alive()[0]:
        if deadline is not None and time.monotonic() >= deadline:
            _kill_group(proc)
            raise CommandFailed(program, f"timed out after {timeout:g}s", keeper.lines())
        if cancel.stop_requested():
            _kill_group(proc)
            raise CommandFailed(program, "was stopped", [])
        time.sleep(POLL_SECONDS)
    return int(proc.process.wait())


@dataclass(frozen=True)
class Stage:
    """One program of a pipeline: its argv and what to add to its environment; `early`:
    started before the pipeline's gate opens (see `run_pipeline`)."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    early: bool = False


class Gate:
    """Holds back the stages of a pipeline not marked `early` until `open()`; `abandon()`
    ends the pipeline without starting them. Either may come from another thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._open = False

    def open(self) -> None:
        """Let the held stages start."""
        self._open = True
        self._event.set()

    def abandon(self) -> None:
        """End the pipeline without starting the held stages."""
        self._event.set()

    def wait(self, seconds: float) -> bool | None:
        """True once opened, False once abandoned, None while neither within `seconds`."""
        if not self._event.wait(seconds):
            return None
        return self._open


_CONSEQUENTIAL = ("Broken pipe", "could not write to output", "unexpected EOF")


def run_pipeline(
    stages: Sequence[Stage], *, timeout: float | None = None, gate: Gate | None = None
) -> list[Result]:
    """Run `stages` as a shell pipeline would (each one's stdout into the next one's stdin;
    the last one's stdout is discarded), each in its own process group; give each stage's
    Result.

    With a `gate`, the stages marked `early` start at once and the others when the gate
    opens, so that an early stage's start-up (an interpreter's imports) overlaps what the
    caller waits for; until then the early stages wait on their input.

    Every stage's exit code is checked, not only the last one's: raises CommandFailed when
    any stage fails, naming the stage whose error is the cause (a stage that only saw its
    neighbour vanish, e.g. a broken pipe, is named last), or when the gate is abandoned.
    The whole group is killed on timeout, on a stop request, or when a stage fails.

    (A group each, because a stage that exits at once would leave a shared group empty, and
    joining an empty group fails.)
    """
    names = [Path(stage.argv[0]).name for stage in stages]
    log.info(
        "command.start",
        command=" | ".join(
            shlex.join([n, *s.argv[1:]]) for n, s in zip(names, stages, strict=True)
        ),
    )
    keepers = [_StderrKeeper() for _stage in stages]
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    spawner = _Spawner(stages, keepers)
    try:
        if gate is not None:
            spawner.start(early=True)
            spawner.wait_for(gate, deadline)
        spawner.start(early=False)
    except BaseException:
        spawner.abandon()
        raise
    procs, drains = spawner.procs, spawner.drains
    try:
        codes = _wait_all(procs, names, keepers, timeout, deadline)
        for drain in drains:  # every stage's last lines, before one is named the cause
            drain.join(timeout=KILL_GRACE_SECONDS)
    except BaseException:
        _kill_pipeline(procs)
        raise
    finally:
        with _live_lock:
            for proc in procs:
                _live.pop(id(proc), None)
    seconds = time.monotonic() - started
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        cause = min(failed, key=lambda i: (_consequential(keepers[i]), i))
        log.warning(
            "command.failed", program=names[cause], exit=codes[cause], seconds=round(seconds, 3)
        )
        raise CommandFailed(names[cause], _describe_exit(codes[cause]), keepers[cause].lines())
    log.info("command.done", program=" | ".join(names), seconds=round(seconds, 3))
    return [
        Result(c, "", k.lines(), seconds, k.errors_seen)
        for c, k in zip(codes, keepers, strict=True)
    ]


def _consequential(keeper: _StderrKeeper) -> bool:
    """True when a stage's errors only say that its neighbour went away."""
    lines = keeper.lines()
    return not lines or all(any(m in line for m in _CONSEQUENTIAL) for line in lines)


class _GroupProcess:
    """A Popen leading its own process group, shaped for _kill_group and _live."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.process = self

    def is_alive(self) -> tuple[bool, int | None]:
        return self.popen.poll() is None, self.popen.returncode


class _Spawner:
    """Starts the stages of one pipeline, joined by OS pipes made up front (not `sh`, whose
    pipes copy every byte through Python threads: a pipeline moves whole tables); each pipe
    end is closed here once the stage using it holds it."""

    def __init__(self, stages: Sequence[Stage], keepers: list[_StderrKeeper]) -> None:
        self.stages, self.keepers = stages, keepers
        # [read end, write end] of each pipe; -1 once the stage using that end holds it
        self.pipes = [list(_wide_pipe()) for _stage in stages[1:]]
        self._started: dict[int, _GroupProcess] = {}
        self._drains: dict[int, threading.Thread] = {}  # each reads one stage's stderr

    @property
    def procs(self) -> list[_GroupProcess]:
        """The stages started, in pipeline order."""
        return [self._started[i] for i in sorted(self._started)]

    @property
    def drains(self) -> list[threading.Thread]:
        """The threads reading the started stages' stderr."""
        return list(self._drains.values())

    def start(self, early: bool) -> None:
        """Start the stages whose `early` is `early` (all when False: the rest), in order."""
        for index, stage in enumerate(self.stages):
            if index not in self._started and (stage.early or not early):
                self._start(index, stage)

    def _start(self, index: int, stage: Stage) -> None:
        stdin = self.pipes[index - 1][0] if index else subprocess.DEVNULL
        stdout = self.pipes[index][1] if index < len(self.pipes) else subprocess.DEVNULL
        popen = subprocess.Popen(
            list(stage.argv),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=child_environment(stage.env),
            start_new_session=True,
        )
        if index:  # the stage holds its ends now
            os.close(stdin)
            self.pipes[index - 1][0] = -1
        if index < len(self.pipes):
            os.close(stdout)
            self.pipes[index][1] = -1
        proc = self._started[index] = _GroupProcess(popen)
        with _live_lock:
            _live[id(proc)] = proc
        drain = threading.Thread(
            target=_drain, args=(popen.stderr, self.keepers[index]), daemon=True
        )
        drain.start()
        self._drains[index] = drain

    def wait_for(self, gate: Gate, deadline: float | None) -> None:
        """Wait until `gate` opens. Raises CommandFailed when it is abandoned, a stage
        started ends first (its input is still open: it failed), the deadline passes or a
        stop is requested."""
        name = Path(self.stages[0].argv[0]).name
        while (opened := gate.wait(POLL_SECONDS)) is None:
            for index, proc in self._started.items():
                if proc.popen.poll() is not None:
                    self._drains[index].join(timeout=KILL_GRACE_SECONDS)  # its last words
                    raise CommandFailed(
                        Path(self.stages[index].argv[0]).name,
                        _describe_exit(proc.popen.returncode),
                        self.keepers[index].lines(),
                    )
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandFailed(name, "timed out before it started", [])
            if cancel.stop_requested():
                raise CommandFailed(name, "was stopped", [])
        if not opened:
            raise CommandFailed(name, "was not started: the step before it failed", [])

    def abandon(self) -> None:
        """Close the pipe ends no stage took and end the stages started."""
        for pair in self.pipes:
            for end in pair:
                if end != -1:
                    os.close(end)
        self.pipes = [[-1, -1] for _pair in self.pipes]
        procs = self.procs
        _kill_pipeline(procs)
        with _live_lock:
            for proc in procs:
                _live.pop(id(proc), None)


def _wide_pipe() -> tuple[int, int]:
    """An OS pipe (read end, write end) holding PIPE_BYTES where the system allows (Linux:
    64 KiB by default). A stage then writes a whole block of rows and goes on with the
    next while the following stage reads it, instead of waiting for it to drain."""
    reader, writer = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # too much for this user, or no Linux
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return reader, writer


def _drain(stream: IO[bytes] | None, keeper: _StderrKeeper) -> None:
    if stream is None:
        return
    with stream:
        for raw in stream:
            keeper(raw.decode(errors="replace"))


def _wait_all(
    procs: list[_GroupProcess],
    names: list[str],
    keepers: list[_StderrKeeper],
    timeout: float | None,
    deadline: float | None,
) -> list[int]:
    """Wait for every stage until `deadline` (the pipeline's `timeout` after its start); a
    failed stage ends the others (they would wait on it)."""
    while any(p.popen.poll() is None for p in procs):
        if any(p.popen.returncode not in (None, 0) for p in procs):
            _kill_pipeline(procs)
            break
        if deadline is not None and time.monotonic() >= deadline:
            _kill_pipeline(procs)
            raise CommandFailed(names[0], f"timed out after {timeout:g}s", keepers[0].lines())
        if cancel.stop_requested():
            _kill_pipeline(procs)
            raise CommandFailed(names[0], "was stopped", [])
        time.sleep(POLL_SECONDS)
    return [int(p.popen.wait()) for p in procs]


def _kill_pipeline(procs: list[_GroupProcess]) -> None:
    for proc in procs:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        _kill_group(proc)  # waits for the group to go, SIGKILL after the grace period
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=KILL_GRACE_SECONDS)


def read_stream(
    argv: Sequence[str], consume: Callable[[IO[bytes]], T], *, timeout: float | None = None
) -> T:
    """Run `argv` and give what `consume` makes of its stdout, read as it comes.

    When `consume` stops reading early, the process (group) is ended and its exit does
    not count; when it ran to its end on its own, a non-zero exit raises CommandFailed.
    """
    program = Path(argv[0]).name
    log.info("command.start", command=shlex.join([program, *argv[1:]]))
    keeper = _StderrKeeper()
    popen = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=child_environment(None),
    )
    proc = _GroupProcess(popen)
    with _live_lock:
        _live[id(proc)] = proc
    drain = threading.Thread(target=_drain, args=(popen.stderr, keeper), daemon=True)
    drain.start()
    try:
        assert popen.stdout is not None
        with popen.stdout:
            found = consume(popen.stdout)
            finished = not popen.stdout.read(1)  # at the end of the output, or stopped early
    except BaseException:
        _kill_pipeline([proc])
        raise
    finally:
        with _live_lock:
            _live.pop(id(proc), None)
    if not finished:
        _kill_pipeline([proc])
        return found
    try:
        code = popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_pipeline([proc])
        raise CommandFailed(program, f"timed out after {timeout:g}s", keeper.lines()) from None
    drain.join(timeout=KILL_GRACE_SECONDS)
    if code != 0:
        raise CommandFailed(program, _describe_exit(code), keeper.lines())
    return found
