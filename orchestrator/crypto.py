"""age encryption of archives to public keys (age-encryption.org/v1), streamed file to file.

The host that makes backups holds only recipients (public keys): what it encrypts it cannot
read back. Identities (private keys) are read only where an archive is restored from the
store. The output is standard age: `age -d -i key.txt X.dump.age > X.dump` opens it.

Encryption goes through pyrage (the Rust `age` crate). Its file-like calls run in small
reads and writes, so other threads keep running; an error on its last buffered write could
go unnoticed, so every output is checked afterwards: it must open with the age header and
have exactly the length the STREAM format gives for the plaintext's length.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyrage

from orchestrator import cancel
from orchestrator.errors import ConfigError, Interrupted, JobError
from orchestrator.logs import register_secret
from orchestrator.setting_files import setting_file_text

SCHEME = "age"
AGE_NAME = ".age"
HEADER = b"age-encryption.org/v1\n"
CHUNK = 64 * 1024  # age STREAM chunk size
NONCE = 16
TAG = 16
IO_CHUNK = 1024 * 1024
HEAD_KEPT = 64 * 1024  # an age header of many recipients still fits
_COMMENT = re.compile(r"#.*$")
SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")

Recipient = Any  # pyrage.x25519.Recipient | pyrage.ssh.Recipient (untyped library)
Identity = Any  # pyrage.x25519.Identity


class Writable(Protocol):
    """Where ciphertext goes: a file, or the stores' broadcast."""

    def write(self, data: bytes, /) -> int:
        """Take `data`; give how many bytes were taken."""
        ...

    def flush(self) -> None:
        """Push what is buffered."""
        ...


class EncryptionError(JobError):
    """Encrypting failed: nothing may be uploaded."""


class DecryptionError(JobError):
    """Decrypting failed: wrong identity, or damaged ciphertext."""


@dataclass(frozen=True)
class Sealed:
    """What encrypt_file wrote: the stored (encrypted) bytes and the plain bytes they hold."""

    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


def recipient_lines(text: str) -> list[str]:
    """Give the recipients in `text`: separated by commas or newlines, `#` comments dropped."""
    entries: list[str] = []
    for line in text.splitlines():
        line = _COMMENT.sub("", line)
        entries += [part.strip() for part in line.split(",") if part.strip()]
    return entries


def parse_recipient(text: str) -> Recipient:
    """Give the pyrage recipient for an `age1…` public key.

    Raises ValueError naming the entry (its start only) when it is not one. SSH keys are
    refused: the tool reads only age identities back, so a backup encrypted to an SSH key
    alone could not be restored by it.
    """
    try:
        if text.startswith(SSH_PREFIXES):
            raise ValueError(
                f"{text[:12]!r}…: SSH keys are not supported; use an age key (age-keygen)"
            )
        if text.startswith("AGE-SECRET-KEY-"):
            raise ValueError("is a private key (an identity), not a recipient; use its public key")
        return pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        shown = text if len(text) <= 16 else text[:12] + "…"
        raise ValueError(
            f"{shown!r} is not an age public key (age1…, from age-keygen -y)"
        ) from None


def check_recipients(entries: list[str]) -> list[str]:
    """Give `entries` unchanged once each parses as a recipient; ValueError otherwise."""
    for entry in entries:
        parse_recipient(entry)
    return entries


def load_identities(text: str, setting: str) -> list[Identity]:
    """Give the age identities (`AGE-SECRET-KEY-1…` lines; `#` comments and blank lines
    skipped) in `text`, each registered as a secret so no log line can show it.

    Raises ConfigError naming `setting` (never the key) when a line is not an identity or
    there is none.
    """
    identities = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        register_secret(line)
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ConfigError(
                f"{setting}: line {number} is not an age identity (AGE-SECRET-KEY-1…)"
            ) from None
    if not identities:
        raise ConfigError(f"{setting}: holds no age identity (AGE-SECRET-KEY-1…)")
    return identities


def read_identity_file(path: Path, setting: str) -> list[Identity]:
    """load_identities() of the file at `path`; ConfigError naming `setting` when unreadable."""
    return load_identities(setting_file_text(path, setting), setting)


class _Stream:
    """What pyrage reads from or writes to: it hashes and counts the bytes, stops the work
    when a stop is requested, and keeps the first exception raised in it, which pyrage
    would otherwise turn into its own error (a SIGTERM must stay a stop)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def _step(self) -> None:
        if cancel.stop_requested():
            raise StoppedError("stopped (shutdown requested)")

    def _keep(self, exc: BaseException) -> BaseException:
        if self.failure is None:
            self.failure = exc
        return exc


class _HashingReader(_Stream):
    """A reader that hashes and counts what passes through it."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self.inner = inner

    def read(self, size: int = -1) -> bytes:
        try:
            self._step()
            data = self.inner.read(size)
            self.digest.update(data)
            self.size += len(data)
        except BaseException as exc:
            raise self._keep(exc) from None
        return data


class _HashingWriter(_Stream):
    """A writer that hashes and counts what passes through it, keeping the first
    HEAD_KEPT bytes (where the age header is)."""

    def __init__(self, inner: Writable) -> None:
        super().__init__()
        self.sink = inner
        self.head = b""

    def write(self, data: bytes) -> int:
        try:
            self._step()
            written = self.sink.write(data)
            self.digest.update(data)
            if len(self.head) < HEAD_KEPT:
                self.head += data[: HEAD_KEPT - len(self.head)]
            self.size += len(data)
        except BaseException as exc:
            raise self._keep(exc) from None
        return written

    def flush(self) -> None:
        self.sink.flush()


class StoppedError(JobError):
    """Encryption or decryption stopped because a stop was requested."""


def _reraise_kept(*streams: _Stream) -> None:
    """Raise what was raised inside a stream (a stop, a signal), if anything was."""
    for stream in streams:
        if isinstance(stream.failure, StoppedError | Interrupted | KeyboardInterrupt):
            raise stream.failure


def expected_size(header_length: int, plain_size: int) -> int:
    """The length of an age file whose header is `header_length` bytes long and whose
    payload holds `plain_size` bytes: nonce, then 64 KiB chunks each with a 16-byte tag
    (at least one chunk, empty for an empty plaintext)."""
    chunks = max(1, math.ceil(plain_size / CHUNK))
    return header_length + NONCE + plain_size + TAG * chunks


def header_length(head: bytes, name: str) -> int:
    """The length of the age header at the start of `head`, the first bytes of the file
    `name` (through the `---` MAC line).

    Raises EncryptionError when `head` does not start with a whole age header.
    """
    if not head.startswith(HEADER):
        raise EncryptionError(f"{name} does not start with an age header")
    mac = head.find(b"\n---")
    end = head.find(b"\n", mac + 1) if mac >= 0 else -1
    if end < 0:
        raise EncryptionError(f"{name} has an incomplete age header")
    return end + 1


def encrypt_to(source: Path, out: Writable, recipients: list[str]) -> Sealed:
    """Encrypt the file `source` to `recipients`, writing the age file to `out` as it is
    made (nothing is kept but its first bytes); give sizes and hashes of both.

    Raises EncryptionError when encryption fails (an error `out` raised included, unless
    it was a stop) or its output is not exactly an age file of the plaintext's length.
    """
    try:
        parsed = [parse_recipient(r) for r in recipients]
        with source.open("rb") as plain:
            reader, writer = _HashingReader(plain), _HashingWriter(out)
            try:
                pyrage.encrypt_io(reader, writer, parsed)
            except pyrage.EncryptError:
                _reraise_kept(reader, writer)
                raise
            out.flush()
    except (ValueError, OSError, pyrage.EncryptError) as exc:
        raise EncryptionError(f"encryption failed: {exc}") from None
    sealed = Sealed(writer.size, writer.digest.hexdigest(), reader.size, reader.digest.hexdigest())
    want = expected_size(header_length(writer.head, source.name + AGE_NAME), sealed.plain_size)
    if sealed.size != want:
        raise EncryptionError(
            f"encryption output is {sealed.size} bytes where {want} were expected; not uploading it"
        )
    return sealed


def encrypt_file(source: Path, dest: Path, recipients: list[str]) -> Sealed:
    """Encrypt `source` to `recipients` into `dest`, streamed; give sizes and hashes of both.

    Raises EncryptionError (and removes `dest`) when encryption fails or its output is not
    exactly an age file of the plaintext's length.
    """
    try:
        with dest.open("wb") as out:
            sealed = encrypt_to(source, out, recipients)
        if dest.stat().st_size != sealed.size:
            raise EncryptionError(
                f"{dest.name} holds {dest.stat().st_size} bytes where {sealed.size} were "
                "written; not uploading it"
            )
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EncryptionError(f"encryption failed: {exc}") from None
        raise
    return sealed


def decrypt_file(source: Path, dest: Path, identities: list[Identity]) -> tuple[int, str]:
    """Decrypt the age file `source` into `dest`, streamed; give the plaintext's size and
    sha256. Raises DecryptionError (and removes `dest`) when no identity opens it or the
    ciphertext is damaged."""
    try:
        with source.open("rb") as sealed, dest.open("wb") as out:
            reader, writer = _HashingReader(sealed), _HashingWriter(out)
            try:
                pyrage.decrypt_io(reader, writer, identities)
            except pyrage.DecryptError:
                _reraise_kept(reader, writer)
                raise
            out.flush()
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, pyrage.DecryptError | OSError | ValueError):
            raise DecryptionError(
                f"cannot decrypt {source.name}: {exc} (is ARCHIVE_IDENTITY_FILE the private key "
                "of one of the manifest's recipients?)"
            ) from None
        raise
    return writer.size, writer.digest.hexdigest()
