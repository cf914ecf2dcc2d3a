"""Masking blocks in worker processes, results in input order, a bounded number in flight.

The workers are forked after the masker is built, so they inherit it (with the key)
instead of receiving it through a pipe; only blocks of rows travel.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.pool import AsyncResult

from orchestrator.masking.stream import BlockMasker

RunBlocks = Callable[[BlockMasker, Iterator[bytes]], Iterator[bytes]]
IN_FLIGHT_PER_WORKER = 2

_masker: BlockMasker | None = None  # set in the parent just before the workers fork


def _mask(block: bytes) -> bytes:
    assert _masker is not None
    return _masker(block)


def runner(workers: int) -> RunBlocks | None:
    """Give the block runner for `workers` processes (None: mask in this process)."""
    if workers <= 1:
        return None

    def run(masker: BlockMasker, blocks: Iterator[bytes]) -> Iterator[bytes]:
        global _masker
        _masker = masker
        # A forked worker holds a copy of every unflushed output buffer, and Python
        # flushes its standard streams when a worker process ends: write them out now,
        # or the script's first lines could reach psql twice.
        sys.stdout.flush()
        sys.stderr.flush()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[AsyncResult[bytes]] = deque()
            for block in blocks:
                pending.append(pool.apply_async(_mask, (block,)))
                if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()

    return run
