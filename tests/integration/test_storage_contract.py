"""One contract, two backends: the same test bodies against SeaweedFS S3 and a local folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, JobError, NotFound, StorageError, StoreNotInitialised
from orchestrator.storage import Storage, open_storage
from orchestrator.storage import s3 as s3_backend
from orchestrator.storage.base import MARKER_KEY, S3Options
from orchestrator.storage.local import CHUNK
from tests.conftest import initialised
from tests.harness import s3
from tests.harness.faulty_proxy import FaultyProxy

pytestmark = pytest.mark.integration


@pytest.fixture(params=["s3", "folder"])
def storage(request, tmp_path: Path, monkeypatch) -> Storage:
    if request.param == "folder":
        return initialised(open_storage(f"file://{tmp_path}/store"))
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("bucket")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return initialised(
        open_storage(f"s3://{bucket}/some/prefix", S3Options(endpoint_url=server.endpoint))
    )


def keys(storage: Storage, prefix: str = "") -> list[str]:
    """The keys under `prefix`, without the marker of `orchestrator init`."""
    return [o.key for o in storage.list(prefix) if o.key != MARKER_KEY]


def make_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_check_passes_on_an_existing_store(storage: Storage):
    storage.check()


def test_put_get_file_round_trip(storage: Storage, tmp_path: Path):
    source = make_file(tmp_path / "in.bin", 3 * 1024 * 1024 + 17)
    moved: list[int] = []
    storage.put_file("db/2026/01/01/a.dump", source, progress=moved.append)
    assert sum(moved) == source.stat().st_size
    out = tmp_path / "out.bin"
    storage.get_file("db/2026/01/01/a.dump", out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_large_file_goes_up_in_parts_and_comes_back_whole(storage: Storage, tmp_path: Path):
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(70):
            handle.write(os.urandom(1024 * 1024))
    storage.put_file("db/big.dump", source)
    out = tmp_path / "big.out"
    got: list[int] = []
    storage.get_file("db/big.dump", out, progress=got.append)
    assert sum(got) == source.stat().st_size
    assert out.read_bytes() == source.read_bytes()


def test_bytes_round_trip_and_overwrite(storage: Storage):
    storage.put_bytes("db/m.json", b'{"a": 1}')
    assert storage.get_bytes("db/m.json") == b'{"a": 1}'
    storage.put_bytes("db/m.json", b'{"a": 2}')
    assert storage.get_bytes("db/m.json") == b'{"a": 2}'


def test_missing_objects_raise_not_found(storage: Storage, tmp_path: Path):
    with pytest.raises(NotFound):
        storage.get_bytes("db/nothing.json")
    with pytest.raises(NotFound):
        storage.get_file("db/nothing.dump", tmp_path / "x")


def test_list_is_sorted_filtered_by_prefix_and_sized(storage: Storage):
    for key in ("b/2.json", "a/1.json", "a/sub/3.json", "ab/4.json"):
        storage.put_bytes(key, key.encode())
    assert keys(storage) == ["a/1.json", "a/sub/3.json", "ab/4.json", "b/2.json"]
    assert keys(storage, "a/") == ["a/1.json", "a/sub/3.json"]
    sizes = {o.key: o.size for o in storage.list()}
    assert sizes["a/1.json"] == len(b"a/1.json")
    assert all(o.modified.tzinfo is not None for o in storage.list())


def test_delete_removes_only_named_keys_and_ignores_missing(storage: Storage):
    for key in ("x/1", "x/2", "y/1"):
        storage.put_bytes(key, b"data")
    storage.delete(["x/1", "x/does-not-exist"])
    assert keys(storage) == ["x/2", "y/1"]
    storage.delete([])


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_keys_that_could_escape_the_root_are_refused(storage: Storage, bad: str):
    with pytest.raises(StorageError):
        storage.put_bytes(bad, b"x")


def test_describe_names_the_location(storage: Storage):
    described = storage.describe("db/a.dump")
    assert described.endswith("db/a.dump")
    assert described.startswith(("s3://", "/"))


def test_folder_backend_hides_temp_files(tmp_path: Path):
    store = initialised(open_storage(f"file://{tmp_path}/store"))
    (tmp_path / "store" / "db").mkdir(parents=True)
    (tmp_path / "store" / "db" / ".tmp-leftover").write_bytes(b"partial")
    store.put_bytes("db/a.json", b"{}")
    assert keys(store) == ["db/a.json"]


def test_folder_writes_are_atomic_readers_see_the_old_object_or_the_new_one(tmp_path: Path):
    """While a write is under way (its progress calls), a reader still gets the whole old
    object; a write that fails midway leaves the old object and no temp file."""
    store = initialised(open_storage(f"file://{tmp_path}/store"))
    store.put_bytes("db/a.dump", b"old")
    new = make_file(tmp_path / "new.bin", 3 * CHUNK + 5)
    seen: list[tuple[bytes, list[str]]] = []

    def read_midway(_moved: int) -> None:
        seen.append((store.get_bytes("db/a.dump"), keys(store)))

    store.put_file("db/a.dump", new, progress=read_midway)
    assert (
        seen == [(b"old", ["db/a.dump"])] * 4
    )  # one call per 1 MiB chunk, the last before the rename
    assert store.get_bytes("db/a.dump") == new.read_bytes()

    def disk_full(_moved: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match="No space left"):
        store.put_file("db/a.dump", make_file(tmp_path / "newer.bin", 2 * CHUNK), disk_full)
    assert store.get_bytes("db/a.dump") == new.read_bytes()
    assert [p.name for p in (tmp_path / "store" / "db").iterdir()] == ["a.dump"]


def test_folder_backend_check_refuses_an_unwritable_root(tmp_path: Path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        open_storage(f"file://{blocker}/store").initialise()


def test_missing_bucket_is_a_config_error(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_storage("s3://absent-bucket/p", S3Options(endpoint_url=s3_server.endpoint))
    with pytest.raises(ConfigError, match="bucket 'absent-bucket' does not exist"):
        store.check()


@pytest.mark.parametrize(
    ("algorithm", "field"), [("CRC32", "ChecksumCRC32"), ("SHA256", "ChecksumSHA256")]
)
def test_s3_uploads_carry_the_chosen_checksum(
    algorithm, field, s3_server, bucket, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_storage(
        f"s3://{bucket}/c", S3Options(endpoint_url=s3_server.endpoint, checksum_algorithm=algorithm)
    )
    store.put_file("db/small.dump", make_file(tmp_path / "small", 1024))
    head = s3_server.client().head_object(
        Bucket=bucket, Key="c/db/small.dump", ChecksumMode="ENABLED"
    )
    assert head.get(field)


PART = 5 * 1024 * 1024  # S3's smallest part


@pytest.fixture
def small_parts(monkeypatch) -> None:
    """Multipart from 5 MiB on, in 5 MiB parts: several parts without a 70 MiB file."""
    monkeypatch.setattr(s3_backend, "MULTIPART_THRESHOLD", PART)
    monkeypatch.setattr(s3_backend, "MIN_PART", PART)


def s3_store(endpoint: str, bucket: str, monkeypatch, algorithm: str = "CRC32") -> Storage:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return open_storage(
        f"s3://{bucket}/c", S3Options(endpoint_url=endpoint, checksum_algorithm=algorithm)
    )


@pytest.mark.parametrize(
    ("algorithm", "field"), [("CRC32", "ChecksumCRC32"), ("SHA256", "ChecksumSHA256")]
)
def test_s3_multipart_uploads_carry_a_checksum_on_every_part(
    algorithm, field, small_parts, s3_server, bucket, tmp_path, monkeypatch
):
    """The server keeps a composite checksum ("...-4") only when every part carried one."""
    store = s3_store(s3_server.endpoint, bucket, monkeypatch, algorithm)
    source = make_file(tmp_path / "parts.bin", 3 * PART + 17)
    store.put_file("db/parts.dump", source)
    client = s3_server.client()
    parts = client.get_object_attributes(
        Bucket=bucket, Key="c/db/parts.dump", ObjectAttributes=["ObjectParts"]
    )["ObjectParts"]
    assert parts["TotalPartsCount"] == 4
    head = client.head_object(Bucket=bucket, Key="c/db/parts.dump", ChecksumMode="ENABLED")
    assert head.get(field, "").endswith("-4") and head.get("ChecksumType") == "COMPOSITE"
    out = tmp_path / "parts.out"
    store.get_file("db/parts.dump", out)
    assert out.read_bytes() == source.read_bytes()


def test_s3_a_part_corrupted_on_the_way_is_rejected_and_nothing_is_left(
    small_parts, s3_server, bucket, tmp_path, monkeypatch
):
    """One byte of part 2 flipped between us and the server (signature untouched): the
    server refuses the part on its checksum, the upload fails and is aborted."""
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.corrupt = lambda method, path: method == "PUT" and "partNumber=2&" in f"{path}&"
    try:
        store = s3_store(proxy.endpoint, bucket, monkeypatch)
        with pytest.raises(StorageError, match="BadDigest"):
            store.put_file("db/bad.dump", make_file(tmp_path / "bad.bin", 3 * PART))
    finally:
        proxy.stop()
    assert [(status, b"BadDigest" in answer) for _r, status, answer in proxy.corrupted] == [
        (400, True)
    ]
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_init_writes_the_marker_once_and_is_idempotent(storage: Storage):
    assert storage.initialise() is False  # the fixture initialised it already
    document = json.loads(storage.get_bytes(MARKER_KEY))
    assert document["tool"] == "orchestrator" and document["how"] == "init"


def test_folder_without_marker_is_refused_and_init_makes_it_a_store(tmp_path: Path):
    mount_point = tmp_path / "mnt" / "nas"
    mount_point.mkdir(parents=True)  # an empty mount point: the share is not mounted
    store = open_storage(f"file://{mount_point}", S3Options(suffix="_2"))
    for attempt in (store.check, lambda: store.put_bytes("db/x.json", b"{}")):
        with pytest.raises(StoreNotInitialised, match=r"^STORAGE_URL_2: .*orchestrator init"):
            attempt()
    assert list(mount_point.iterdir()) == []
    missing = open_storage(f"file://{tmp_path}/not-there")
    with pytest.raises(StoreNotInitialised, match="does not exist"):
        missing.check()
    assert not (tmp_path / "not-there").exists()
    assert store.initialise() is True
    store.check()
    store.put_bytes("db/x.json", b"{}")


def test_folder_holding_our_backups_is_adopted_on_first_use(tmp_path: Path):
    old = tmp_path / "old"
    manifest = old / "shop" / "2026" / "11" / "25" / "shop-20261125T070000Z.manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    store = open_storage(str(old))
    store.check()
    assert json.loads(store.get_bytes(MARKER_KEY))["how"] == "adopted"


def chunks_of(
    data: bytes, sizes: tuple[int, ...] = (1, 70_000, 1024 * 1024 + 3)
) -> Iterator[bytes]:
    """`data` cut into chunks of varying sizes, as an encryptor hands them over."""
    start, turn = 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        yield data[start : start + size]
        start, turn = start + size, turn + 1


def test_a_stream_is_stored_whole_in_parts(small_parts, storage: Storage, tmp_path: Path):
    data = os.urandom(3 * PART + 17)
    storage.put_stream("db/streamed.dump.age", chunks_of(data), size_hint=len(data))
    assert storage.get_bytes("db/streamed.dump.age") == data
    assert storage.size_of("db/streamed.dump.age") == len(data)
    storage.put_stream("db/empty", iter(()))
    storage.put_stream("db/small", chunks_of(b"x" * 1000))  # under one part: a single put
    assert (storage.get_bytes("db/empty"), storage.get_bytes("db/small")) == (b"", b"x" * 1000)


class SourceFailed(JobError):
    pass


def test_a_stream_that_fails_midway_stores_nothing(small_parts, storage: Storage, tmp_path: Path):
    """The chunks' producer fails after two parts went up: its error is raised, and no
    object, multipart upload or temporary file is left."""

    def failing() -> Iterator[bytes]:
        yield from chunks_of(os.urandom(2 * PART + 5))
        raise SourceFailed("encryption failed: injected")

    with pytest.raises(SourceFailed, match="injected"):
        storage.put_stream("db/half.dump.age", failing(), size_hint=4 * PART)
    assert keys(storage) == []
    if isinstance(storage, s3_backend.S3Storage):
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []
    else:
        assert list(Path(storage.describe()).rglob(".tmp-*")) == []


def test_s3_a_stream_part_that_fails_is_retried_alone(small_parts, s3_server, bucket, monkeypatch):
    """Part 2's first attempt gets a 503: that part is sent again, no other part is, and
    the object is whole."""
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.status = 503
    sent: list[str] = []

    def first_part_two(method: str, path: str) -> bool:
        if method == "PUT" and "partNumber=" in path:
            sent.append(path.split("partNumber=")[1].split("&")[0])
            return sent.count("2") == 1 and sent[-1] == "2"
        return False

    proxy.rule = first_part_two
    data = os.urandom(4 * PART)
    try:
        store = s3_store(proxy.endpoint, bucket, monkeypatch)
        store.put_stream("db/retried.dump.age", chunks_of(data), size_hint=len(data))
    finally:
        proxy.stop()
    assert sorted(sent) == ["1", "2", "2", "3", "4"]
    assert store.get_bytes("db/retried.dump.age") == data


def test_s3_a_stream_holds_a_bounded_number_of_parts_in_memory(
    small_parts, s3_server, bucket, monkeypatch
):
    """20 parts go up while at most about S3_MAX_CONCURRENCY parts are held at once."""
    store = s3_store(s3_server.endpoint, bucket, monkeypatch)
    block = os.urandom(1024 * 1024)

    def twenty_parts() -> Iterator[bytes]:
        for _ in range(20 * PART // len(block)):
            yield block

    tracemalloc.start()
    try:
        store.put_stream("db/long.dump.age", twenty_parts(), size_hint=20 * PART)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * PART, f"peak {peak / PART:.1f} parts"
    assert store.size_of("db/long.dump.age") == 20 * PART


def test_s3_a_stream_refused_by_the_server_stops_reading_and_leaves_nothing(
    small_parts, s3_server, bucket, monkeypatch
):
    """Part 2 is refused: the upload fails naming S3's answer, is aborted, and reads no more
    of the stream than the parts already under way (it does not drain the rest)."""
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.rule = lambda method, path: method == "PUT" and "partNumber=2&" in f"{path}&"
    block = os.urandom(1024 * 1024)
    read: list[int] = []

    def forty_parts() -> Iterator[bytes]:
        for _ in range(40 * PART // len(block)):
            read.append(len(block))
            yield block

    try:
        store = s3_store(proxy.endpoint, bucket, monkeypatch)
        with pytest.raises(StorageError, match="InvalidRequest"):
            store.put_stream("db/refused.dump.age", forty_parts(), size_hint=40 * PART)
    finally:
        proxy.stop()
    assert sum(read) < 12 * PART
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
