"""Masking blocks in worker processes, results in input order, a bounded number in flight.

The workers are forked after the masker is built, so they inherit it (with the key)
instead of receiving it through a pipe; only blocks of rows travel. With N workers the
filter's own process is one of them: it masks every N-th block itself and N - 1 forked
processes mask the others, so one block in N crosses no pipe (a block sent to a worker
and back is copied four times: on a million notes, 90 MB, two forked workers beside an
idle parent took 1.65 s of CPU in all against 1.50 s this way, means of six alternating
runs, at the same speed). A table's first POOL_AFTER_BLOCKS blocks are masked in the
filter's own process as they come, and the workers are forked only when a block follows
them: most tables of a schema have no more (one filter masks many), and for those forking
workers and handing them the blocks costs more CPU than they save (measured on 18 tables
of 500 to 40,000 rows: 1.32 s of CPU with a pool for each table of two blocks or more,
0.79 s without), and beside the other pipelines of a restore there is no idle core for
them to use. The first blocks go out at once (psql and the server start on them) rather
than waiting, held in memory, for the pool.

Workers are forked only when a core was idle enough while blocks were masked here (half
a core, from /proc/stat, checked every POOL_AFTER_BLOCKS blocks): when the target server
runs on this machine its COPY keeps the other core busy, and a worker would only take
CPU from it and add the copies (a million scrubbed notes into a local server: 2.57 s
against 2.96 s with two workers, medians of eight alternating runs; a million customers
with three masked columns: 4.54 s against 4.50 s). A server elsewhere leaves the core
idle, and the workers use it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, TypeAlias

from orchestrator.masking.stream import Masks, RunBlocks

IN_FLIGHT_PER_WORKER = 2
POOL_AFTER_BLOCKS = 8  # about 8 MiB of rows, masked here before a pool starts
IDLE_FOR_POOL = 0.5  # of a core, idle while blocks were masked here: room for workers
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

_masker: Masks | None = None  # set in the parent just before the workers fork
Pending: TypeAlias = "AsyncResult[tuple[bytes, dict[str, Any]]] | bytes"  # bytes: masked here


def _mask(block: bytes) -> tuple[bytes, dict[str, Any]]:
    """Mask a block in a worker; give it with the items its columns counted."""
    assert _masker is not None
    out = _masker(block)
    return out, _masker.take_counts()


def _counted(masker: Masks, pending: Pending) -> bytes:
    """Give a masked block: one masked here as it is, a worker's once it is done, its
    counts added to the parent's masker."""
    if isinstance(pending, bytes):
        return pending
    out, counts = pending.get()
    masker.add_counts(counts)
    return out


def runner(workers: int, idle: Callable[[], IdleMark] | None = None) -> RunBlocks | None:
    """Give the block runner for `workers` processes (None: mask in this process).
    `idle` measures the machine's idle time (default: /proc/stat's)."""
    if workers <= 1:
        return None
    measure = idle or idle_mark

    def run(masker: Masks, blocks: Iterator[bytes]) -> Iterator[bytes]:
        global _masker
        if not masker.forkable:
            yield from map(masker, blocks)
            return
        ahead = _Ahead(blocks)
        while True:  # here, 8 blocks at a time, until a core is idle enough for workers
            mark = measure()
            yield from map(masker, ahead.take(POOL_AFTER_BLOCKS))
            if ahead.done():  # a small table: no pool
                return
            if mark.idle_cores(measure()) >= IDLE_FOR_POOL:
                break
        _masker = masker
        # A forked worker holds a copy of every unflushed output buffer, and Python
        # flushes its standard streams when a worker process ends: write them out now,
        # or the script's first lines could reach psql twice. It also holds a copy of
        # the masker's counts, which it sends back with its first block: they are taken
        # out before the fork and put back after it, or they would count twice.
        sys.stdout.flush()
        sys.stderr.flush()
        counted = masker.take_counts()
        with multiprocessing.get_context("fork").Pool(workers - 1) as pool:
            masker.add_counts(counted)
            pending: deque[Pending] = deque()
            for index, block in enumerate(ahead.rest()):
                if index % workers == workers - 1:  # the workers have theirs queued first
                    pending.append(masker(block))
                else:
                    pending.append(pool.apply_async(_mask, (block,)))
                while len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    yield _counted(masker, pending.popleft())
            while pending:
                yield _counted(masker, pending.popleft())

    return run


class _Ahead:
    """Blocks, taken as they come, that can say whether more follow (reading one ahead
    only then)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.peeked: list[bytes] = []

    def take(self, count: int) -> Iterator[bytes]:
        """Up to `count` blocks."""
        for _ in range(count):
            block = self.peeked.pop() if self.peeked else next(self.blocks, None)
            if block is None:
                return
            yield block

    def done(self) -> bool:
        """Whether every block was taken."""
        if not self.peeked:
            block = next(self.blocks, None)
            if block is None:
                return True
            self.peeked.append(block)
        return False

    def rest(self) -> Iterator[bytes]:
        """Every block not yet taken."""
        yield from self.peeked
        self.peeked.clear()
        yield from self.blocks


@dataclass(frozen=True)
class IdleMark:
    """The machine's idle CPU time (all cores) and the wall clock, at one moment; None
    idle when it cannot be read (then workers are always worth it)."""

    idle: float | None
    at: float

    def idle_cores(self, later: IdleMark) -> float:
        """How many cores were idle, on average, from this mark to `later`."""
        if self.idle is None or later.idle is None or later.at <= self.at:
            return float("inf")
        return (later.idle - self.idle) / (later.at - self.at)


def idle_mark() -> IdleMark:
    """Now's IdleMark from /proc/stat (idle and iowait of all cores)."""
    at = time.monotonic()
    try:
        with Path("/proc/stat").open("rb") as stat:
            fields = stat.readline().split()
        ticks = int(fields[4]) + int(fields[5])
    except (OSError, IndexError, ValueError):
        return IdleMark(None, at)
    return IdleMark(ticks / _TICKS_PER_SECOND, at)
