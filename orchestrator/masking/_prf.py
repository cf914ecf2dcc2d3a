"""The keyed PRF behind every token: PMAC-style on AES-256, one value or a whole column.

For a value `v` (bytes) and three AES-256 keys (`enc`, `off`, `fin`, derived per transform
and parameters from MASK_KEY):

- `M = len(v).to_bytes(4, "big") + v`, zero-padded to a multiple of 16 bytes (at least one
  block); its blocks are `M_0 .. M_{m-1}`;
- offsets `D_i = AES_off(i.to_bytes(16, "big"))`;
- `S = XOR over i of AES_enc(M_i XOR D_i)`;
- output block `j` is `T_j = AES_fin(S XOR j.to_bytes(16, "big"))`; a token of `J` blocks
  is `T_0 + .. + T_{J-1}`, so a shorter token is a prefix of a longer one.

The length prefix keeps `v` and `v + b"\\0"` apart. `Prf.token` computes it for one value
with Python integers; `Prf.tokens` for a whole column with numpy, in a few AES calls (one
per group of values of about the same number of blocks, one for all the output blocks);
both give the same bytes, and a test holds them to it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from orchestrator.masking._vector import Bytes, Ints, Values, keep_mask, windows

BLOCK = 16
PREFIX = 4  # bytes of the big-endian length in front of the value
SMALL_SIZE = 256  # up to this many bytes per value, masks come from a table
SMALL_WIDTH = 16  # up to this many blocks, sums are XORed block by block
MASKS_KEPT = 64  # offsets kept as integers for values of up to this many blocks

Words = npt.NDArray[np.uint64]


def _ecb(key: bytes) -> CipherContext:
    """An AES-256-ECB encryptor; ECB keeps no state between calls given whole blocks."""
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305  # PRF blocks


class Prf:
    """The PRF under three AES-256 keys; grows its table of offsets as values need."""

    __slots__ = ("_deltas", "_enc", "_fin", "_masks", "_off")

    def __init__(self, enc: bytes, off: bytes, fin: bytes) -> None:
        self._enc, self._off, self._fin = _ecb(enc), _ecb(off), _ecb(fin)
        self._deltas = b""
        self._masks: list[int] = []  # the offsets of the first m blocks as one integer, by m

    def token(self, value: bytes, blocks: int) -> bytes:
        """Give the `blocks` * 16 bytes of the token of `value`."""
        size = len(value)
        count = (size + PREFIX + BLOCK - 1) // BLOCK
        message = int.from_bytes((size.to_bytes(PREFIX) + value).ljust(count * BLOCK, b"\0"))
        encrypted = self._enc.update((message ^ self._mask(count)).to_bytes(count * BLOCK))
        if count == 1:
            total = int.from_bytes(encrypted)
        else:
            total = 0
            for start in range(0, count * BLOCK, BLOCK):
                total ^= int.from_bytes(encrypted[start : start + BLOCK])
        finals = total.to_bytes(BLOCK)
        if blocks > 1:
            finals += b"".join([(total ^ j).to_bytes(BLOCK) for j in range(1, blocks)])
        return self._fin.update(finals)

    def block(self, data: bytes) -> bytes:
        """Give AES under the final key of one 16-byte block: a keyed function of small
        inputs (the rounds of a Feistel permutation), far cheaper than `token`."""
        return self._fin.update(data)

    def tokens(self, values: Values, blocks: int) -> Bytes:
        """Give the tokens of every value, `blocks` * 16 bytes each, as an (n, 16 * blocks)
        array: row `i` equals `token(values.item(i), blocks)`."""
        sums = np.empty((len(values), 2), np.uint64)
        counts = (values.lengths + PREFIX + BLOCK - 1) // BLOCK
        if len(values):
            self._grow(int(counts.max()))
        for rows, width in _groups(counts):
            if rows is None:
                sums = self._sums(values, None, counts, width)
            else:
                sums[rows] = self._sums(values, rows, counts[rows], width)
        finals = np.repeat(sums, blocks, axis=0).reshape(len(values), 2 * blocks)
        for block in range(1, blocks):  # C_j: only the low word is not zero
            finals[:, 2 * block + 1] ^= _constants(blocks)[block, 1]
        out = self._fin.update(finals.view(np.uint8).data)
        return np.frombuffer(out, np.uint8).reshape(len(values), blocks * BLOCK)

    def _sums(self, values: Values, rows: Ints | None, counts: Ints, width: int) -> Words:
        """The XOR sums S of the values at `rows` (or all), each padded to `width` blocks;
        blocks past a value's own count are encrypted but left out of its sum."""
        lengths = values.lengths if rows is None else values.lengths[rows]
        size = width * BLOCK
        messages = windows(values, size, PREFIX, rows)  # each from 4 bytes ahead of the value
        if size <= SMALL_SIZE:  # zero what follows the value: a mask from a table
            messages &= keep_mask(size).take(lengths + PREFIX, 0)
        else:
            messages *= np.arange(size) < (lengths + PREFIX)[:, None]
        messages.view(np.uint32)[:, 0] = lengths.astype(">u4").view(np.uint32)
        words = messages.view(np.uint64)
        offsets = self._offsets(width)
        if width > SMALL_WIDTH:
            words ^= offsets
        else:  # one long run per word beats a short broadcast per row
            for word in range(2 * width):
                words[:, word] ^= offsets[word]
        encrypted = np.frombuffer(self._enc.update(messages.data), np.uint64)
        encrypted = encrypted.reshape(len(lengths), 2 * width)
        fewest = int(counts.min())
        if width > SMALL_WIDTH:
            if fewest < width:
                encrypted = encrypted * np.repeat(np.arange(width) < counts[:, None], 2, axis=1)
            reduced: Words = np.bitwise_xor.reduce(encrypted.reshape(-1, width, 2), axis=1)
            return reduced
        total = encrypted[:, :2].copy()
        for block in range(1, width):
            low, high = encrypted[:, 2 * block], encrypted[:, 2 * block + 1]
            if block >= fewest:  # not a block of every value
                counted = counts > block
                low, high = low * counted, high * counted
            total[:, 0] ^= low
            total[:, 1] ^= high
        return total

    def _mask(self, count: int) -> int:
        """The offsets D_0 .. D_{count-1} as one big-endian integer."""
        if count < len(self._masks):
            return self._masks[count]
        self._grow(count)
        while len(self._masks) <= min(count, MASKS_KEPT):
            self._masks.append(int.from_bytes(self._deltas[: len(self._masks) * BLOCK]))
        if count < len(self._masks):
            return self._masks[count]
        return int.from_bytes(self._deltas[: count * BLOCK])

    def _grow(self, count: int) -> None:
        """Make the table of offsets hold at least `count` (doubling, so rarely)."""
        if count * BLOCK > len(self._deltas):
            grown = max(count, 2 * len(self._deltas) // BLOCK, 8)
            self._deltas = self._off.update(b"".join(i.to_bytes(BLOCK) for i in range(grown)))

    def _offsets(self, count: int) -> Words:
        """D_0 .. D_{count-1} as 2 * count words."""
        return np.frombuffer(self._deltas, np.uint64, count * 2)


def _groups(counts: Ints) -> list[tuple[Ints | None, int]]:
    """Split rows by block count into groups whose counts lie in (2^(k-1), 2^k], or keep
    them together when the largest count is at most twice the smallest, so that padding
    to a group's widest costs at most as much AES again: (rows or None for all, width)."""
    if not len(counts):
        return []
    low, high = int(counts.min()), int(counts.max())
    if high <= 2 * low:
        return [(None, high)]
    found = np.flatnonzero(np.bincount(counts))
    classes = np.ceil(np.log2(found)).astype(np.int64)
    lookup = np.zeros(high + 1, np.int64)
    lookup[found] = classes
    of_row = lookup.take(counts)
    groups: list[tuple[Ints | None, int]] = []
    for kind in np.unique(classes):
        groups.append((np.flatnonzero(of_row == kind), int(found[classes == kind].max())))
    return groups


def _constants(blocks: int) -> Words:
    """C_0 .. C_{blocks-1} (C_j is j as 16 big-endian bytes) as (blocks, 2) words."""
    encoded = b"".join(j.to_bytes(BLOCK) for j in range(blocks))
    return np.frombuffer(encoded, np.uint64).reshape(blocks, 2)
