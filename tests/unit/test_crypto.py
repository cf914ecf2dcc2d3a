"""age encryption: recipients and identities as read from settings, the streamed round trip,
and the output check that stops a short or damaged ciphertext from being uploaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyrage
import pytest

from orchestrator import cancel, crypto
from orchestrator.errors import ConfigError, Interrupted
from orchestrator.logs import mask

IDENTITY = pyrage.x25519.Identity.generate()
RECIPIENT = str(IDENTITY.to_public())
OTHER = pyrage.x25519.Identity.generate()


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("", []),
        ("age1a", ["age1a"]),
        ("age1a, age1b", ["age1a", "age1b"]),
        ("age1a\nage1b\n", ["age1a", "age1b"]),
        ("# ops team\nage1a  # alice\n\n  age1b,age1c", ["age1a", "age1b", "age1c"]),
        (" , ,\n#only comments\n", []),
    ],
)
def test_recipient_lines_split_on_commas_and_newlines_and_drop_comments(
    text: str, entries: list[str]
) -> None:
    assert crypto.recipient_lines(text) == entries


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("age1notakey", "is not an age public key"),
        ("hello", "is not an age public key"),
        # a generated key: a fixed id, the same on every pytest-xdist worker (and no key shown)
        pytest.param(str(IDENTITY), "is a private key", id="private key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "SSH keys are not supported"),
    ],
)
def test_malformed_recipients_are_refused_without_echoing_them_whole(
    entry: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        crypto.parse_recipient(entry)
    assert str(IDENTITY) not in str(caught.value)


def test_a_real_public_key_is_a_recipient() -> None:
    assert crypto.check_recipients([RECIPIENT]) == [RECIPIENT]


def test_identities_are_read_and_registered_as_secrets() -> None:
    text = f"# created: today\n# public key: {RECIPIENT}\n{IDENTITY}\n"
    assert len(crypto.load_identities(text, "ARCHIVE_IDENTITY_FILE")) == 1
    assert str(IDENTITY) not in mask(f"oops: {IDENTITY}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no age identity"),
        ("# nothing\n", "holds no age identity"),
        ("AGE-SECRET-KEY-1NOTAKEY\n", "line 1 is not an age identity"),
        pytest.param(
            f"{IDENTITY}\nsomething else\n", "line 2 is not an age identity", id="key then junk"
        ),
    ],
)
def test_bad_identity_files_name_the_setting_and_the_line_never_the_key(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        crypto.load_identities(text, "ARCHIVE_IDENTITY_FILE")
    assert str(caught.value).startswith("ARCHIVE_IDENTITY_FILE: ")
    assert "NOTAKEY" not in str(caught.value) and str(IDENTITY) not in str(caught.value)


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 5])
def test_round_trip_gives_back_the_bytes_and_both_hashes(tmp_path: Path, size: int) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(size))
    sealed = crypto.encrypt_file(plain, tmp_path / "sealed.age", [RECIPIENT])
    stored = (tmp_path / "sealed.age").read_bytes()
    assert stored.startswith(crypto.HEADER) and b"PGDMP" not in stored[:64]
    assert sealed.size == len(stored) and sealed.sha256 == hashlib.sha256(stored).hexdigest()
    assert sealed.plain_size == size
    assert sealed.plain_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    out = tmp_path / "out"
    assert crypto.decrypt_file(tmp_path / "sealed.age", out, [IDENTITY]) == (
        size,
        sealed.plain_sha256,
    )
    assert out.read_bytes() == plain.read_bytes()


def test_two_recipients_each_open_it(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"PGDMP" + os.urandom(1000))
    crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT, str(OTHER.to_public())])
    for identity in (IDENTITY, OTHER):
        crypto.decrypt_file(tmp_path / "s.age", tmp_path / "o", [identity])
        assert (tmp_path / "o").read_bytes() == plain.read_bytes()


def test_the_wrong_identity_cannot_open_it_and_leaves_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"secret rows")
    crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    with pytest.raises(crypto.DecryptionError, match="ARCHIVE_IDENTITY_FILE"):
        crypto.decrypt_file(tmp_path / "s.age", tmp_path / "o", [OTHER])
    assert not (tmp_path / "o").exists()


def test_damaged_ciphertext_fails_to_decrypt(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(200_000))
    crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    data = bytearray((tmp_path / "s.age").read_bytes())
    data[-70_000] ^= 0x01
    (tmp_path / "s.age").write_bytes(bytes(data))
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_file(tmp_path / "s.age", tmp_path / "o", [IDENTITY])
    assert not (tmp_path / "o").exists()


def test_output_short_of_the_stream_length_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyrage may drop an error on its last buffered write: the length check catches it."""
    real = pyrage.encrypt_io

    def lossy(reader: object, writer: object, recipients: object) -> None:
        class Dropping:
            def write(self, data: bytes) -> int:
                writer.write(data[:-1] if len(data) > 100 else data)  # type: ignore[attr-defined]
                return len(data)  # claims it all, as a lost buffered write would

            def flush(self) -> None:
                writer.flush()  # type: ignore[attr-defined]

        real(reader, Dropping(), recipients)

    monkeypatch.setattr(crypto.pyrage, "encrypt_io", lossy)
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(300_000))
    with pytest.raises(crypto.EncryptionError, match="not uploading"):
        crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    assert not (tmp_path / "s.age").exists()


def test_a_failure_inside_the_encryption_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_reader: object, writer: object, _recipients: object) -> None:
        writer.write(b"age-encryption.org/v1\n-> X25519 partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(crypto.pyrage, "encrypt_io", broken)
    plain = tmp_path / "plain"
    plain.write_bytes(b"data")
    with pytest.raises(crypto.EncryptionError, match="No space left"):
        crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    assert not (tmp_path / "s.age").exists()


@pytest.mark.parametrize(
    ("header", "plain", "expected"),
    [(100, 0, 132), (100, 1, 133), (100, 65536, 65668), (100, 65537, 65685)],
)
def test_expected_size_follows_the_age_stream_format(
    header: int, plain: int, expected: int
) -> None:
    assert crypto.expected_size(header, plain) == expected


def test_a_stop_ends_encryption_as_a_stop_and_leaves_no_output(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(3_000_000))
    with cancel.stoppable() as stop:
        stop.set()
        with pytest.raises(crypto.StoppedError):
            crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    assert not (tmp_path / "s.age").exists()


def test_a_signal_inside_the_stream_stays_a_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SIGTERM handler raises Interrupted wherever the main thread is, here inside a
    read pyrage asked for; pyrage would wrap it into its own error."""
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(300_000))
    steps = 0

    def interrupted(self: crypto._Stream) -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            raise Interrupted("stopped by SIGTERM", 15)

    monkeypatch.setattr(crypto._Stream, "_step", interrupted)
    with pytest.raises(Interrupted):
        crypto.encrypt_file(plain, tmp_path / "s.age", [RECIPIENT])
    assert not (tmp_path / "s.age").exists()
