"""S3-compatible object storage through boto3 (AWS, MinIO, SeaweedFS, R2, B2, Railway).

Large files go up in parallel multipart uploads whose part size grows with the file
so that a 5 TB dump stays under S3's 10,000-part limit; every request carries a checksum
(CRC32 or SHA-256) the server verifies. A failed upload leaves no multipart upload behind.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound
from s3transfer.subscribers import BaseSubscriber

from orchestrator import cancel
from orchestrator.errors import ConfigError, NotFound, OrchestratorError, StorageError
from orchestrator.storage.base import (
    MARKER_KEY,
    ObjectInfo,
    Progress,
    S3Options,
    check_key,
    local_disk_full,
    marker_document,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
POLL_SECONDS = 0.1
FIRST_POLL_SECONDS = 0.002
MIN_PART = 8 * MiB
MAX_PARTS = 10_000
PART_HEADROOM = 9_000
MULTIPART_THRESHOLD = 64 * MiB
STREAM_SIZE_GUESS = 40 * 1024 * MiB  # a stream without a size hint: 5 MiB parts, up to 48 GiB
MIN_STREAM_PART = 5 * MiB
STREAM_MEMORY = 10 * MiB  # the parts a streamed upload holds at once, per store (two)
DELETE_BATCH = 1000
_WRAPPED = re.compile(r"\((?P<code>\w+)\) when calling the (?P<op>\w+) operation: (?P<msg>.*)$")
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_DENIED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def part_size_for(size: int, smallest: int | None = None) -> int:
    """Give a multipart part size (whole MiB, at least `smallest`, 8 MiB unless given)
    keeping `size` under 9,000 parts."""
    needed = math.ceil(size / PART_HEADROOM) if size > 0 else 0
    return max(MIN_PART if smallest is None else smallest, math.ceil(needed / MiB) * MiB)


def stream_parts(size: int, concurrency: int) -> tuple[int, int]:
    """Give (part size, parts held at once) for a stream of about `size` bytes: parts of
    at least 5 MiB (S3's smallest) keeping under 9,000 parts, and as many parts at once as
    fit in STREAM_MEMORY, at least one and at most `concurrency`. Memory stays within
    STREAM_MEMORY until a part alone is larger (a stream of more than 200 GiB)."""
    part = part_size_for(size, MIN_STREAM_PART)
    return part, max(1, min(concurrency, STREAM_MEMORY // part))


def _session(variables: Sequence[tuple[str, str]]) -> boto3.session.Session:
    """A boto3 session of its own, with the AWS_* `variables` an env file gave (profile,
    region, CA bundle, ...) set on it as the environment would have set them. Sessions
    share one loader of botocore's service models (`_shared_loader`) unless the variables
    name a data path of their own."""
    core = botocore.session.Session()
    by_variable: dict[str, str] = {}
    for logical, (_config, names, _default, _convert) in core.session_var_map.items():
        for name in [names] if isinstance(names, str) else names or []:
            by_variable[name] = logical
    for name, value in variables:
        if name in by_variable:
            core.set_config_variable(by_variable[name], value)
    if not any(by_variable.get(name) == "data_path" for name, _value in variables):
        core.register_component("data_loader", _shared_loader(core))
    return boto3.session.Session(botocore_session=core)


_loader: Any = None
_loader_lock = threading.Lock()


def _shared_loader(core: botocore.session.Session) -> Any:
    """The first session's loader of botocore's JSON service models, kept for the others:
    each loader holds its own parsed copy of the S3 model, 12 MiB a store."""
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        return _loader


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _ProgressSubscriber(BaseSubscriber):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self.progress(bytes_transferred)


def _wait_cancellable(future: Any) -> None:
    """Wait for a transfer; cancel it (s3transfer then aborts the multipart upload) when a
    stop is requested, raising StorageError."""
    pause = FIRST_POLL_SECONDS  # a small object is done in milliseconds: look soon, then
    while not future.done():  # less and less often, up to POLL_SECONDS
        if cancel.stop_requested():
            future.cancel()
            break
        time.sleep(pause)
        pause = min(pause * 2, POLL_SECONDS)
    try:
        future.result()
    except CancelledError:
        raise StorageError("upload stopped (shutdown requested)") from None


class _ChunkReader:
    """A file-like, unseekable reader over an iterator of chunks, as s3transfer reads it:
    one part at a time, each part's bytes copied once. `abandoned` is asked between chunks;
    once it gives True (the transfer failed or was cancelled) reading raises instead of
    draining the stream."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending: deque[bytes] = deque()
        self._held = 0
        self._ended = False
        self.abandoned: Callable[[], bool] = lambda: False

    def read(self, size: int = -1) -> bytes:
        """Give up to `size` bytes (all that is left when `size` < 0); b"" at the end."""
        while not self._ended and (size < 0 or self._held < size):
            if self.abandoned():
                raise StorageError("upload abandoned")
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
            else:
                self._pending.append(chunk)
                self._held += len(chunk)
        wanted = self._held if size < 0 else min(size, self._held)
        taken: list[bytes] = []
        while wanted > 0:
            chunk = self._pending.popleft()
            if len(chunk) > wanted:  # the rest of it starts the next part
                self._pending.appendleft(chunk[wanted:])
                chunk = chunk[:wanted]
            taken.append(chunk)
            wanted -= len(chunk)
            self._held -= len(chunk)
        return b"".join(taken)


class S3Storage:
    """Objects under `s3://bucket/prefix/`."""

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.options = options
        config = Config(
            request_checksum_calculation=options.checksum_calculation,
            response_checksum_validation=options.checksum_validation,
            retries={"mode": "standard", "max_attempts": 5},
            s3={"addressing_style": "path" if options.endpoint_url else "auto"},
            max_pool_connections=max(10, options.max_concurrency * 2),
        )
        try:
            # A session of its own: credentials are resolved for this store now, never
            # taken from what boto3's process-wide default session resolved earlier.
            self.client: S3Client = _session(options.session_variables).client(
                "s3",
                endpoint_url=options.endpoint_url,
                region_name=options.region,
                config=config,
                aws_access_key_id=options.access_key_id,
                aws_secret_access_key=options.secret_access_key,
                aws_session_token=options.session_token,
            )
        except ProfileNotFound as exc:
            raise ConfigError(f"AWS_PROFILE: {exc}") from None
        except (ValueError, BotoCoreError) as exc:
            raise ConfigError(
                f"S3_ENDPOINT_URL{options.suffix}: cannot make an S3 client: {exc}"
            ) from None

    def _full(self, key: str) -> str:
        try:
            check_key(key)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str = "") -> str:
        """`s3://bucket/prefix/key`."""
        path = "/".join(p for p in (self.prefix, key) if p)
        return f"s3://{self.bucket}/{path}"

    def _fail(self, exc: Exception, doing: str) -> OrchestratorError:
        suffix = self.options.suffix
        if isinstance(exc, NoCredentialsError):
            return ConfigError(
                f"AWS_ACCESS_KEY_ID{suffix}: no S3 credentials found (set "
                f"AWS_ACCESS_KEY_ID{suffix} and AWS_SECRET_ACCESS_KEY{suffix}, or a profile or "
                "instance role)"
            )
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in _DENIED_CODES:
                return ConfigError(
                    f"AWS_ACCESS_KEY_ID{suffix}: access to {self.describe()} was denied ({code}) "
                    f"while trying to {doing}"
                )
            if code == "NoSuchBucket":
                return ConfigError(
                    f"STORAGE_URL{suffix}: bucket {self.bucket!r} does not exist"
                    + (f" at {self.options.endpoint_url}" if self.options.endpoint_url else "")
                )
            return StorageError(f"S3 refused to {doing}: {code or exc}")
        if isinstance(exc, Boto3Error):  # transfer failures wrap the S3 error in their text
            found = _WRAPPED.search(str(exc))
            detail = f"{found['op']} {found['code']}: {found['msg']}" if found else str(exc)
            return StorageError(f"S3 refused to {doing}: {detail}")
        return StorageError(f"could not {doing}: {exc}")

    def check(self) -> None:
        """Raise ConfigError when the bucket is missing or the credentials are refused."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise self._fail(
                    ClientError({"Error": {"Code": "NoSuchBucket"}}, "HeadBucket"), "check"
                ) from None
            raise self._fail(exc, f"open bucket {self.bucket!r}") from None
        except (BotoCoreError, NoCredentialsError) as exc:
            raise self._fail(exc, f"reach {self.describe()}") from None

    def initialise(self) -> bool:
        """Check the bucket, write the marker unless it is there and read it back (proves
        the store reachable and writable); give True when written now. Raises ConfigError
        (missing bucket, refused credentials) or StorageError."""
        self.check()
        try:
            self.get_bytes(MARKER_KEY)
            return False
        except NotFound:
            pass
        written = marker_document("init")
        self.put_bytes(MARKER_KEY, written)
        if self.get_bytes(MARKER_KEY) != written:
            raise StorageError(f"{self.describe(MARKER_KEY)} reads back different bytes")
        return True

    def _checksum_args(self) -> dict[str, Any]:
        """A checksum on every write (part) that the server verifies, S3_CHECKSUM_ALGORITHM,
        unless the store wants checksums only when required (S3_REQUEST_CHECKSUM_CALCULATION=
        when_required, for stores that reject them). The object's SHA-256 is in the manifest
        and is checked end to end on every fetch and restore."""
        if self.options.checksum_calculation == "when_required":
            return {}
        return {"ChecksumAlgorithm": self.options.checksum_algorithm}

    def _transfer_config(self, size: int) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=part_size_for(size),
            max_concurrency=self.options.max_concurrency,
            use_threads=True,
        )

    def _stream_config(self, size: int) -> TransferConfig:
        """Multipart from the first part on, stream_parts() parts held and sent at once."""
        part, held = stream_parts(size, self.options.max_concurrency)
        config = TransferConfig(
            multipart_threshold=part,
            multipart_chunksize=part,
            max_concurrency=held,
            use_threads=True,
        )
        config.max_in_memory_upload_chunks = held  # s3transfer's own setting (default 10)
        return config

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Upload `path` (multipart when large, SHA-256 checksummed); abort leftovers on failure."""
        self._upload(key, str(path), self._transfer_config(path.stat().st_size), progress)

    def put_stream(self, key: str, chunks: Iterable[bytes], size_hint: int | None = None) -> None:
        """Upload the chunks as a multipart upload of parts sized for `size_hint`, at most
        about STREAM_MEMORY of them in memory and in flight (stream_parts()); each part is
        checksummed and retried on its own (botocore's retries), and the upload completes
        only once the chunks have ended. A failure (of S3 or of the chunks) aborts the
        multipart upload."""
        reader = _ChunkReader(chunks)
        config = self._stream_config(size_hint or STREAM_SIZE_GUESS)
        self._upload(key, reader, config, None)

    def _upload(
        self,
        key: str,
        source: str | _ChunkReader,
        config: TransferConfig,
        progress: Progress | None,
    ) -> None:
        """Upload `source` (a file name or a reader) to `key` through s3transfer; abort
        leftovers on failure. Raises StorageError or ConfigError, or what reading raised."""
        full = self._full(key)
        try:
            with create_transfer_manager(self.client, config) as manager:
                future = manager.upload(
                    cast("IO[bytes] | str", source),  # s3transfer reads any object with read()
                    self.bucket,
                    full,
                    extra_args=self._checksum_args(),
                    subscribers=[_ProgressSubscriber(progress)] if progress else None,
                )
                if isinstance(source, _ChunkReader):
                    source.abandoned = future.done
                _wait_cancellable(future)
        except BaseException as exc:
            self.abort_uploads(full)
            if isinstance(exc, ClientError | BotoCoreError | Boto3Error | OSError):
                raise self._fail(exc, f"upload {self.describe(key)}") from None
            raise

    def abort_uploads(self, full_key: str) -> int:
        """Abort every unfinished multipart upload of `full_key`; give how many were aborted."""
        aborted = 0
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=full_key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == full_key:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=full_key, UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except (ClientError, BotoCoreError):
            pass  # best effort: the original failure is what the user must see
        return aborted

    def put_bytes(self, key: str, data: bytes) -> None:
        """Put a small object with a SHA-256 checksum."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=data, **self._checksum_args()
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"write {self.describe(key)}") from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A conditional put (`If-None-Match: *`); False when the object existed."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                IfNoneMatch="*",
                **self._checksum_args(),
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self._fail(exc, f"write {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"write {self.describe(key)}") from None
        return True

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        """Download the object to `dest` with parallel ranged reads."""
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=self._full(key))["ContentLength"]
            self.client.download_file(
                self.bucket,
                self._full(key),
                str(dest),
                Callback=progress,
                Config=self._transfer_config(size),
            )
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise NotFound(f"no object {self.describe(key)}") from None
            raise self._fail(exc, f"download {self.describe(key)}") from None
        except (BotoCoreError, OSError) as exc:
            full = local_disk_full(exc, dest) if isinstance(exc, OSError) else None
            raise full or self._fail(exc, f"download {self.describe(key)}") from None

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """Map S3's answers while reading `key`: a missing object is NotFound."""
        try:
            yield
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise NotFound(f"no object {self.describe(key)}") from None
            raise self._fail(exc, f"read {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"read {self.describe(key)}") from None

    def get_bytes(self, key: str) -> bytes:
        """Give a small object's bytes."""
        with self._reading(key):
            body: Any = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
            return bytes(body.read())

    def size_of(self, key: str) -> int:
        """The stored object's size (HEAD)."""
        with self._reading(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return int(head["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield objects under the root whose key starts with `prefix`."""
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][len(root) :], item["Size"], item["LastModified"])
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"list {self.describe(prefix)}") from None

    def delete(self, keys: Sequence[str]) -> None:
        """Batch-delete `keys`, checking each key's result; raise StorageError naming failures."""
        failed: list[str] = []
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            objects: Any = [{"Key": self._full(k)} for k in batch]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, f"delete {len(batch)} object(s)") from None
            failed += [f"{e.get('Key')} ({e.get('Code')})" for e in answer.get("Errors", [])]
        if failed:
            raise StorageError(f"could not delete {len(failed)} object(s): {', '.join(failed)}")
