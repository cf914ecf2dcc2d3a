"""The keyed PRF: the construction the docs describe, one value and a column alike."""

from __future__ import annotations

import random

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from orchestrator.masking._prf import Prf
from orchestrator.masking._vector import values_of
from orchestrator.masking.transforms import TransformSpec, load_key

KEYS = (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96)))


def _aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _reference(value: bytes, blocks: int) -> bytes:
    """The construction written out plainly, block by block."""
    enc, off, fin = KEYS
    message = len(value).to_bytes(4, "big") + value
    message += bytes(-len(message) % 16)
    total = bytes(16)
    for i in range(len(message) // 16):
        offset = _aes(off, i.to_bytes(16, "big"))
        total = _xor(total, _aes(enc, _xor(message[16 * i : 16 * i + 16], offset)))
    return b"".join(_aes(fin, _xor(total, j.to_bytes(16, "big"))) for j in range(blocks))


def _random_values() -> list[bytes]:
    rng = random.Random(11)
    alphabet = "abcXYZ019 @.+-()/é漢Ω\U0001f600"
    texts = ["".join(rng.choice(alphabet) for _ in range(size)) for size in range(301)]
    values = [text.encode()[:size] for size, text in enumerate(texts)]  # every byte length
    return values + [bytes(rng.randrange(256) for _ in range(rng.randrange(90))) for _ in range(99)]


VALUES = _random_values()


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_one_value_tokens_follow_the_documented_construction(blocks: int) -> None:
    prf = Prf(*KEYS)
    for value in VALUES[:80] + VALUES[290:310]:
        assert prf.token(value, blocks) == _reference(value, blocks)


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_column_tokens_equal_one_value_tokens_for_every_length(blocks: int) -> None:
    prf = Prf(*KEYS)
    values = [value for value in VALUES if b"\n" not in value]
    found = values_of(values)
    assert found is not None
    tokens = prf.tokens(found, blocks)
    assert tokens.shape == (len(values), 16 * blocks)
    assert [row.tobytes() for row in tokens] == [prf.token(value, blocks) for value in values]


def test_column_tokens_of_values_of_one_size_and_of_none() -> None:
    prf = Prf(*KEYS)
    for values in ([b"x" * 12] * 5, [b""] * 3, [b"y" * 5000, b"z"], []):
        found = values_of(values)
        assert found is not None
        assert [row.tobytes() for row in prf.tokens(found, 2)] == [
            prf.token(value, 2) for value in values
        ]


def test_a_shorter_token_is_a_prefix_of_a_longer_one() -> None:
    prf = Prf(*KEYS)
    assert prf.token(b"value", 3)[:16] == prf.token(b"value", 1)


def test_the_length_prefix_keeps_trailing_zero_bytes_apart() -> None:
    prf = Prf(*KEYS)
    assert len({prf.token(b"ab" + b"\0" * n, 1) for n in range(40)}) == 40


def test_each_transform_and_key_gets_its_own_prf() -> None:
    key, other = load_key("prf-test-key-00001"), load_key("prf-test-key-00002")
    email, hash_ = TransformSpec("email", {"domain": "example.com"}), TransformSpec("hash")
    tokens = {
        key.prf(email).token(b"v", 1),
        key.prf(hash_).token(b"v", 1),
        other.prf(email).token(b"v", 1),
        key.prf(TransformSpec("email", {"domain": "example.org"})).token(b"v", 1),
    }
    assert len(tokens) == 4
    assert key.prf(email).token(b"v", 1) == key.prf(email).token(b"v", 1)


def test_values_holding_a_newline_cannot_form_a_column() -> None:
    assert values_of([b"a", b"b\nc"]) is None
    found = values_of([b"a", b"", b"bc"])
    assert found is not None
    assert [found.item(i) for i in range(3)] == [b"a", b"", b"bc"]
    assert np.array_equal(found.lengths, [1, 0, 2])
