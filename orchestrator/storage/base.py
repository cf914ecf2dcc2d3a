"""The Storage protocol every backend implements, and `open_storage(url)`.

Keys are `/`-separated paths relative to the store's root (the bucket prefix or the
folder); a backend never touches anything outside its root.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

from orchestrator.errors import ConfigError, LocalDiskFull
from orchestrator.formats import iso_z

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the last call."""

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def local_disk_full(exc: OSError, dest: Path) -> LocalDiskFull | None:
    """The error to raise when writing `dest`, a file on this host, failed for lack of room
    (no space left, over quota, read-only) rather than because of the store; else None."""
    if exc.errno not in _FULL:
        return None
    return LocalDiskFull(
        f"cannot write {dest}: {exc.strerror} (downloads go to WORK_DIR, fetch's to its "
        "--output: make room there or point WORK_DIR at a larger disk)"
    )


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key under the root, size and last-modified time."""

    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class S3Options:
    """Client options for S3-compatible stores (from settings).

    Credentials left None come from boto3's chain (AWS_* variables, profiles, roles).
    `suffix` is appended to setting names in messages ("_2" for STORAGE_URL_2's store).
    """

    endpoint_url: str | None = None
    region: str | None = None
    checksum_algorithm: Literal["CRC32", "SHA256"] = "CRC32"
    checksum_calculation: Literal["when_supported", "when_required"] = "when_supported"
    checksum_validation: Literal["when_supported", "when_required"] = "when_supported"
    max_concurrency: int = 4
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    suffix: str = ""
    # AWS_* variables an env file gave this store (AWS_PROFILE, AWS_CA_BUNDLE, ...), handed
    # to its own boto3 session rather than to the process environment
    session_variables: tuple[tuple[str, str], ...] = ()


MARKER_KEY = "_orchestrator/store.json"  # written by `orchestrator init`


def marker_document(how: str) -> bytes:
    """The marker `orchestrator init` writes into a store (`how`: `init` or `adopted`)."""
    found = {
        "tool": "orchestrator",
        "format": 1,
        "how": how,
        "created_at": iso_z(datetime.now(UTC)),
    }
    return json.dumps(found, indent=2).encode()


class Storage(Protocol):
    """put / get / list / delete over keys under one root."""

    def check(self) -> None:
        """Raise ConfigError when the store is missing or refuses these credentials, and
        StoreNotInitialised when a folder store lacks the marker of `orchestrator init`."""

    def initialise(self) -> bool:
        """Make the store ready (`orchestrator init`): write the marker unless it is there
        and read it back. Give True when it was written now. Raises the store's errors."""

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Store the file at `path` under `key`, whole or not at all. Raises StorageError."""

    def put_stream(self, key: str, chunks: Iterable[bytes], size_hint: int | None = None) -> None:
        """Store the bytes `chunks` yields, in order, under `key`, whole or not at all: when
        iterating raises, nothing is stored and that error propagates. Memory stays bounded
        whatever the length; `size_hint` (about how many bytes will come) lets a backend
        choose its part size. Raises StorageError."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object (manifests). Raises StorageError."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store a small object only when `key` does not exist yet (atomically: of two
        writers one wins); give False when it existed. Raises StorageError."""

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        """Write the object to `dest` (the caller makes it atomic). Raises NotFound."""

    def get_bytes(self, key: str) -> bytes:
        """Give a small object's bytes. Raises NotFound, StorageError."""

    def size_of(self, key: str) -> int:
        """Give the stored object's size in bytes. Raises NotFound, StorageError."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with `prefix`, in key order."""

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` (missing ones are fine). Raises StorageError naming failed keys."""

    def describe(self, key: str = "") -> str:
        """A human-readable location (s3://bucket/prefix/key or a path) for messages."""


_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


def check_key(key: str) -> str:
    """Give `key` unchanged, or raise ValueError when it could escape the root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


def open_storage(url: str, s3: S3Options | None = None) -> Storage:
    """Open the store named by STORAGE_URL: `s3://bucket/prefix`, `file:///abs/path` or a path.

    Raises ConfigError naming STORAGE_URL (with the options' suffix) when the URL is not
    one of those forms.
    """
    from orchestrator.storage.local import LocalStorage

    options = s3 or S3Options()
    setting = f"STORAGE_URL{options.suffix}"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{setting}: is not a valid URL") from None
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"{setting}: s3:// URL names no bucket (s3://BUCKET/prefix)")
        if not _BUCKET.fullmatch(parts.netloc):
            raise ConfigError(
                f"{setting}: the bucket must be a plain bucket name (s3://BUCKET/prefix; "
                "credentials and endpoints go in AWS_* and S3_ENDPOINT_URL)"
            )
        from orchestrator.storage.s3 import S3Storage  # boto3: only for an s3:// store

        return S3Storage(parts.netloc, parts.path.strip("/"), options)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{setting}: file:// URL must be file:///absolute/path")
        return LocalStorage(Path(unquote(parts.path)), setting)
    if parts.scheme == "" and url:
        return LocalStorage(Path(url).absolute(), setting)
    raise ConfigError(
        f"{setting}: unsupported scheme {parts.scheme!r} (use s3://bucket/prefix or file:///path)"
    )
