"""Masking blocks in worker processes, results in input order, a bounded number in flight.

The workers are forked after the masker is built, so they inherit it (with the key)
instead of receiving it through a pipe; only blocks of rows travel. A table of fewer than
POOL_AFTER_BLOCKS blocks (most tables of a schema: one filter masks many) is masked in the
filter's own process: forking workers and handing them its blocks costs more CPU than
they save (measured on 18 tables of 500 to 40,000 rows: 1.32 s of CPU with a pool for
each table of two blocks or more, 0.79 s without), and beside the other pipelines of a
restore there is no idle core for them to use.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult

from orchestrator.masking.stream import BlockMasker, RunBlocks

IN_FLIGHT_PER_WORKER = 2
POOL_AFTER_BLOCKS = 8  # about 8 MiB of rows; held in memory until the pool starts

_masker: BlockMasker | None = None  # set in the parent just before the workers fork


def _mask(block: bytes) -> tuple[bytes, dict[str, int]]:
    """Mask a block in a worker; give it with the items its columns counted."""
    assert _masker is not None
    out = _masker(block)
    return out, _masker.take_counts()


def _counted(masker: BlockMasker, result: tuple[bytes, dict[str, int]]) -> bytes:
    """Add a worker's counts to the parent's masker; give the masked block."""
    out, counts = result
    masker.add_counts(counts)
    return out


def runner(workers: int) -> RunBlocks | None:
    """Give the block runner for `workers` processes (None: mask in this process)."""
    if workers <= 1:
        return None

    def run(masker: BlockMasker, blocks: Iterator[bytes]) -> Iterator[bytes]:
        global _masker
        head = list(itertools.islice(blocks, POOL_AFTER_BLOCKS))
        if len(head) < POOL_AFTER_BLOCKS:  # a small table: no pool
            yield from map(masker, head)
            return
        blocks = itertools.chain(head, blocks)
        _masker = masker
        # A forked worker holds a copy of every unflushed output buffer, and Python
        # flushes its standard streams when a worker process ends: write them out now,
        # or the script's first lines could reach psql twice.
        sys.stdout.flush()
        sys.stderr.flush()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[AsyncResult[tuple[bytes, dict[str, int]]]] = deque()
            for block in blocks:
                pending.append(pool.apply_async(_mask, (block,)))
                if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    yield _counted(masker, pending.popleft().get())
            while pending:
                yield _counted(masker, pending.popleft().get())

    return run
