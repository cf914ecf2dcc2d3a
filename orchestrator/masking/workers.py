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
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult
from typing import TypeAlias

from orchestrator.masking.stream import BlockMasker, RunBlocks

IN_FLIGHT_PER_WORKER = 2
POOL_AFTER_BLOCKS = 8  # about 8 MiB of rows, masked here before a pool starts

_masker: BlockMasker | None = None  # set in the parent just before the workers fork
Pending: TypeAlias = "AsyncResult[tuple[bytes, dict[str, int]]] | bytes"  # bytes: masked here


def _mask(block: bytes) -> tuple[bytes, dict[str, int]]:
    """Mask a block in a worker; give it with the items its columns counted."""
    assert _masker is not None
    out = _masker(block)
    return out, _masker.take_counts()


def _counted(masker: BlockMasker, pending: Pending) -> bytes:
    """Give a masked block: one masked here as it is, a worker's once it is done, its
    counts added to the parent's masker."""
    if isinstance(pending, bytes):
        return pending
    out, counts = pending.get()
    masker.add_counts(counts)
    return out


def runner(workers: int) -> RunBlocks | None:
    """Give the block runner for `workers` processes (None: mask in this process)."""
    if workers <= 1:
        return None

    def run(masker: BlockMasker, blocks: Iterator[bytes]) -> Iterator[bytes]:
        global _masker
        yield from map(masker, itertools.islice(blocks, POOL_AFTER_BLOCKS))
        after = next(blocks, None)
        if after is None:  # a small table: no pool
            return
        blocks = itertools.chain([after], blocks)
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
            for index, block in enumerate(blocks):
                if index % workers == workers - 1:  # the workers have theirs queued first
                    pending.append(masker(block))
                else:
                    pending.append(pool.apply_async(_mask, (block,)))
                while len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    yield _counted(masker, pending.popleft())
            while pending:
                yield _counted(masker, pending.popleft())

    return run
