"""The archive's catalog: the manifest model, the object key layout, list and resolve.

Layout under the store's root (bucket prefix or folder):

    <database>/<YYYY>/<MM>/<DD>/<database>-<YYYYMMDDTHHMMSSZ>.dump
    <database>/<YYYY>/<MM>/<DD>/<database>-<YYYYMMDDTHHMMSSZ>.manifest.json

A backup exists only when its manifest exists: the manifest is written after the dump
object is stored, and deleted first when a backup is pruned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.logs import get_logger, with_context
from orchestrator.names import split_table_key
from orchestrator.storage import ObjectInfo, Storage

log = get_logger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
DUMP_SUFFIX = ".dump"
FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ID = re.compile(r"^(?P<db>[A-Za-z0-9_.-]+)-(?P<ts>\d{8}T\d{6}Z)$")
STAMP = "%Y%m%dT%H%M%SZ"
STATUS_PREFIX = "_orchestrator/"  # the tool's own state (last cycle), not backups


class Manifest(BaseModel):
    """What one backup is: written as JSON beside its dump object."""

    model_config = ConfigDict(frozen=True, extra="allow")

    format_version: int = FORMAT_VERSION
    id: str
    created_at: datetime
    database: str
    dump_key: str
    size_bytes: int
    sha256: str
    server_version: str
    server_version_num: int
    pg_dump_version: str
    duration_seconds: float
    compression: str | None = None
    row_counts: dict[str, int] = Field(default_factory=dict)
    source_identity: str | None = None
    tool_version: str = ""

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def manifest_key(self) -> str:
        """The manifest's own key."""
        return self.dump_key.removesuffix(DUMP_SUFFIX) + MANIFEST_SUFFIX

    @property
    def tables(self) -> list[tuple[str, str]]:
        """(schema, table) of every table whose rows the manifest counted."""
        return [split_table_key(name) for name in self.row_counts]

    @property
    def dump_major(self) -> int:
        """Major version of the pg_dump that wrote the archive (what pg_restore must read)."""
        return int(self.pg_dump_version.split(".")[0])

    def to_json(self) -> bytes:
        """The manifest as indented JSON bytes."""
        return self.model_dump_json(indent=2).encode() + b"\n"


def safe_name(database: str) -> str:
    """Give `database` reduced to characters safe in a key and a file name."""
    return _UNSAFE.sub("_", database).strip("._") or "database"


def new_backup_id(database: str, when: datetime) -> str:
    """`<database>-<YYYYMMDDTHHMMSSZ>` for a backup of `database` started at `when`."""
    return f"{safe_name(database)}-{when.astimezone(UTC).strftime(STAMP)}"


def dump_key_for(backup_id: str) -> str:
    """The dump object's key for `backup_id`; raises ConfigError when the id is malformed."""
    match = _ID.match(backup_id)
    if not match:
        raise ConfigError(f"{backup_id!r} is not a backup id like mydb-20260101T060000Z")
    ts = match["ts"]
    return f"{match['db']}/{ts[0:4]}/{ts[4:6]}/{ts[6:8]}/{backup_id}{DUMP_SUFFIX}"


def manifest_key_for(backup_id: str) -> str:
    """The manifest's key for `backup_id`."""
    return dump_key_for(backup_id).removesuffix(DUMP_SUFFIX) + MANIFEST_SUFFIX


def is_manifest_key(key: str) -> bool:
    """True for keys laid out as this tool writes manifests."""
    name = key.rsplit("/", 1)[-1].removesuffix(MANIFEST_SUFFIX)
    return key.endswith(MANIFEST_SUFFIX) and bool(_ID.match(name))


def read_manifest(storage: Storage, key: str) -> Manifest:
    """Load and validate one manifest. Raises NotFound, StorageError, or JobError when invalid."""
    raw = storage.get_bytes(key)
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]["msg"]
        raise IntegrityError(f"manifest {storage.describe(key)} is invalid: {first}") from None


def list_backups(storage: Storage, database: str | None = None) -> list[Manifest]:
    """Give every backup (one per readable manifest), newest first.

    Unreadable manifests are logged and skipped: one bad object must not hide the others.
    """
    prefix = f"{safe_name(database)}/" if database else ""
    keys = [o.key for o in storage.list(prefix) if is_manifest_key(o.key)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(with_context(_try_read), [storage] * len(keys), keys))
    # a manifest copied elsewhere (or a store nested in another's prefix) is not a backup
    backups = [m for m, key in zip(loaded, keys, strict=True) if m and m.manifest_key == key]
    if database:
        backups = [m for m in backups if m.database == database]
    return sorted(backups, key=lambda m: (m.created_at, m.id), reverse=True)


def _try_read(storage: Storage, key: str) -> Manifest | None:
    try:
        return read_manifest(storage, key)
    except Exception as exc:
        log.warning("catalog.bad_manifest", key=key, error=str(exc))
        return None


def resolve(backups: Iterable[Manifest], ref: str) -> Manifest:
    """Give the backup named by `ref` (an id, or `latest`) among `backups` (newest first).

    Raises NotFound when there is no such backup.
    """
    items = list(backups)
    if ref == "latest":
        if not items:
            raise NotFound("there are no backups yet")
        return items[0]
    for manifest in items:
        if manifest.id == ref:
            return manifest
    raise NotFound(f"no backup with id {ref!r} (see `orchestrator list`)")


def find(
    storage: Storage, ref: str, database: str | None = None, source_identity: str | None = None
) -> Manifest:
    """Resolve `ref` against the store; for an id, read its manifest directly.

    `latest` considers only `database` when given, and only backups of the cluster
    `source_identity` (or of unknown identity) when given: a store shared by two sources
    whose databases have the same name never hands one source's data to the other.
    """
    if ref == "latest":
        backups = list_backups(storage, database)
        if source_identity is not None:
            backups = [m for m in backups if m.source_identity in (None, source_identity)]
        return resolve(backups, ref)
    try:
        return read_manifest(storage, manifest_key_for(ref))
    except NotFound:
        raise NotFound(f"no backup with id {ref!r} (see `orchestrator list`)") from None


def foreign_objects(objects: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
    """Yield objects that are neither a manifest, a dump nor state written by this tool."""
    for obj in objects:
        if obj.key.startswith(STATUS_PREFIX):
            continue
        name = obj.key.rsplit("/", 1)[-1]
        stem = name.removesuffix(MANIFEST_SUFFIX).removesuffix(DUMP_SUFFIX)
        if stem == name or not _ID.match(stem):
            yield obj
