"""The archive's catalog: the manifest model, the object key layout, listing and locating backups.

Layout under the store's root (bucket prefix or folder):

    <database>/<YYYY>/<MM>/<DD>/<id>.dump              a plain pg_dump archive, or
    <database>/<YYYY>/<MM>/<DD>/<id>.dump.age          the same, age-encrypted, or
    <database>/<YYYY>/<MM>/<DD>/<id>.<gen>.dump.age    re-encrypted by `rekey`
    <database>/<YYYY>/<MM>/<DD>/<id>.d/<file>[.age]    a directory-format dump (DUMP_JOBS > 1):
                                                       each file of pg_dump's folder on its own
    <database>/<YYYY>/<MM>/<DD>/<id>.<gen>.d/<file>.age  the same, re-encrypted by `rekey`
    <database>/<YYYY>/<MM>/<DD>/<id>.manifest.json     where <id> = <database>-<YYYYMMDDTHHMMSSZ>

A backup exists only when its manifest exists: the manifest is written after the dump
object (every file of a directory dump) is stored, and deleted first when a backup is
pruned. With several stores, each store holds its own copy and its own manifest;
`Located` gathers them by id.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import ConfigError, IntegrityError, JobError, NotFound, OrchestratorError
from orchestrator.formats import utc
from orchestrator.logs import get_logger, with_context
from orchestrator.schema_facts import SchemaFacts
from orchestrator.storage import ObjectInfo, Storage
from orchestrator.storage.multi import NamedStore, combined, fan_out, first_success
from orchestrator.table_names import split_table_key

log = get_logger(__name__)
T = TypeVar("T")

MANIFEST_SUFFIX = ".manifest.json"
DUMP_SUFFIX = ".dump"
DIR_SUFFIX = ".d/"
AGE_SUFFIX = ".age"
TOC_FILE = "toc.dat"  # a directory dump's table of contents: stored last, fetched first
FORMAT_VERSION = 3  # 3: directory dumps (format, jobs, files); 2: encryption, plain_* and
# schema_facts; versions 1 and 2 still read
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ID_TEXT = r"(?P<db>[A-Za-z0-9_.-]+)-(?P<ts>\d{8}T\d{6}Z)"
_ID = re.compile(rf"^{_ID_TEXT}$")
_DUMP_NAME = re.compile(rf"^(?P<id>{_ID_TEXT})(?:\.(?P<gen>[0-9a-f]{{8}}))?\.dump(?P<age>\.age)?$")
_DIR_NAME = re.compile(rf"^(?P<id>{_ID_TEXT})(?:\.(?P<gen>[0-9a-f]{{8}}))?\.d$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # what pg_dump names its files
STAMP = "%Y%m%dT%H%M%SZ"
STATUS_PREFIX = "_orchestrator/"  # the tool's own state (last cycle, history), not backups


class Encryption(BaseModel):
    """How the stored dump object is encrypted: age, to these recipients (public keys)."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["age"] = "age"
    recipients: tuple[str, ...]


class DumpFile(BaseModel):
    """One file of a directory-format dump as stored: its name in pg_dump's folder, the
    stored object's size and SHA-256 and the plain file's (the same when not encrypted)."""

    model_config = ConfigDict(frozen=True)

    name: str
    size_bytes: int
    sha256: str
    plain_size_bytes: int
    plain_sha256: str

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _FILE_NAME.match(value):
            raise ValueError(f"{value!r} is not a file name pg_dump writes")
        return value


def tables_by_oid(facts: SchemaFacts | None) -> dict[int, tuple[str, str]]:
    """(schema, table) by the table's oid in the dumped snapshot, which ties a line of
    `pg_restore --list` to exactly one table (empty when the schema facts have none)."""
    if facts is None:
        return {}
    return {oid: split_table_key(key) for oid, key in facts.by_oid().items()}


class Manifest(BaseModel):
    """What one backup is: written as JSON beside its dump object.

    `size_bytes` and `sha256` describe the stored object (checkable without any key);
    `plain_size_bytes` and `plain_sha256` the pg_dump archive inside it (the same values
    when the object is not encrypted). A directory-format dump (`format` "directory",
    written by `jobs` connections) is stored as one object per file under the prefix
    `dump_key`, each described in `files`; its sizes are the files' sums and its hashes
    digests of the files' (files_digest()).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    format_version: int = FORMAT_VERSION
    id: str
    created_at: datetime
    database: str
    dump_key: str
    size_bytes: int
    sha256: str
    plain_size_bytes: int | None = None
    plain_sha256: str | None = None
    encryption: Encryption | None = None
    server_version: str
    server_version_num: int
    pg_dump_version: str
    duration_seconds: float
    compression: str | None = None
    row_counts: dict[str, int] = Field(default_factory=dict)
    source_identity: str | None = None
    schema_facts: SchemaFacts | None = None
    tool_version: str = ""
    format: Literal["custom", "directory"] = "custom"
    jobs: int = 1
    jobs_reason: str | None = None
    files: tuple[DumpFile, ...] = ()

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @property
    def manifest_key(self) -> str:
        """The manifest's own key (where the layout puts it for this id)."""
        try:
            return manifest_key_for(self.id)
        except ConfigError:  # not an id of ours: beside its dump, as version 1 put it
            return self.dump_key.removesuffix(DUMP_SUFFIX) + MANIFEST_SUFFIX

    @property
    def encrypted(self) -> bool:
        """True when the stored object is encrypted."""
        return self.encryption is not None

    @property
    def directory(self) -> bool:
        """True for a directory-format dump (one object per file under `dump_key`)."""
        return self.format == "directory"

    def file_key(self, file: DumpFile) -> str:
        """The stored object of one file of a directory dump."""
        return f"{self.dump_key}{file.name}{AGE_SUFFIX if self.encrypted else ''}"

    @property
    def object_keys(self) -> list[str]:
        """Every stored object of the dump (not the manifest): the dump object, or each
        file of a directory dump."""
        if self.directory:
            return [self.file_key(file) for file in self.files]
        return [self.dump_key]

    @property
    def plain_size(self) -> int:
        """Size of the pg_dump archive itself."""
        return self.size_bytes if self.plain_size_bytes is None else self.plain_size_bytes

    @property
    def plain_digest(self) -> str:
        """SHA-256 of the pg_dump archive itself."""
        return self.sha256 if self.plain_sha256 is None else self.plain_sha256

    @property
    def tables(self) -> list[tuple[str, str]]:
        """(schema, table) of every table whose rows the manifest counted."""
        return [split_table_key(name) for name in self.row_counts]

    @property
    def tables_by_oid(self) -> dict[int, tuple[str, str]]:
        """(schema, table) by the table's oid in the dumped snapshot (`tables_by_oid`)."""
        return tables_by_oid(self.schema_facts)

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


CLOCK_SKEW_NOTICE = timedelta(minutes=1)


def clock_skew(host: datetime, server: datetime) -> timedelta | None:
    """How far the host's clock is ahead of the source server's (negative: behind) when
    the two differ by more than CLOCK_SKEW_NOTICE, else None. A backup is named after the
    server's clock, so a host clock that is wrong never dates one in the future or the
    past, but the user should hear of it."""
    skew = utc(host) - utc(server)
    return skew if abs(skew) > CLOCK_SKEW_NOTICE else None


def _folder(backup_id: str) -> str:
    match = _ID.match(backup_id)
    if not match:
        raise ConfigError(f"{backup_id!r} is not a backup id like mydb-20260101T060000Z")
    ts = match["ts"]
    return f"{match['db']}/{ts[0:4]}/{ts[4:6]}/{ts[6:8]}"


def dump_key_for(backup_id: str, encrypted: bool = False, generation: str | None = None) -> str:
    """The dump object's key for `backup_id` (`.dump.age` when encrypted; `generation`, 8 hex
    digits, names a re-encrypted object). Raises ConfigError when the id is malformed."""
    gen = f".{generation}" if generation else ""
    age = AGE_SUFFIX if encrypted else ""
    return f"{_folder(backup_id)}/{backup_id}{gen}{DUMP_SUFFIX}{age}"


def id_parts(backup_id: str) -> tuple[str, datetime]:
    """The database name (as safe_name gives it) and the start time of a backup id. Raises
    ConfigError when the id is malformed."""
    match = _ID.match(backup_id)
    if not match:
        raise ConfigError(f"{backup_id!r} is not a backup id like mydb-20260101T060000Z")
    return match["db"], datetime.strptime(match["ts"], STAMP).replace(tzinfo=UTC)


def dir_key_for(backup_id: str, generation: str | None = None) -> str:
    """The prefix (ending in /) under which a directory dump of `backup_id` is stored
    (`generation`: re-encrypted by rekey). Raises ConfigError when the id is malformed."""
    gen = f".{generation}" if generation else ""
    return f"{_folder(backup_id)}/{backup_id}{gen}{DIR_SUFFIX}"


def files_digest(files: Iterable[DumpFile], plain: bool = False) -> str:
    """SHA-256 over the files' names and hashes (stored ones, or `plain`), in name order:
    a directory dump's one checksum, changed by any file's."""
    lines = sorted(f"{f.name}\t{f.plain_sha256 if plain else f.sha256}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def manifest_key_for(backup_id: str) -> str:
    """The manifest's key for `backup_id`."""
    return f"{_folder(backup_id)}/{backup_id}{MANIFEST_SUFFIX}"


def is_manifest_key(key: str) -> bool:
    """True for keys laid out as this tool writes manifests."""
    name = key.rsplit("/", 1)[-1].removesuffix(MANIFEST_SUFFIX)
    return key.endswith(MANIFEST_SUFFIX) and bool(_ID.match(name))


def dump_backup_id(key: str) -> str | None:
    """The backup id a dump object's key belongs to (any of the layout's dump names, or a
    file under one of its directory prefixes, in the id's own folder), or None for other
    keys."""
    folder, _, name = key.rpartition("/")
    match = _DUMP_NAME.match(name)
    if not match and _FILE_NAME.match(name):
        folder, _, name = folder.rpartition("/")
        match = _DIR_NAME.match(name)
    if not match:
        return None
    try:
        return match["id"] if _folder(match["id"]) == folder else None
    except ConfigError:
        return None


def stray_dumps(storage: Storage, manifest: Manifest) -> list[str]:
    """Dump objects of the manifest's backup that it does not name: what an interrupted
    rekey left (the old or the new object or files). Only keys of the layout, in the id's
    folder."""
    folder = manifest_key_for(manifest.id).rsplit("/", 1)[0] + "/"
    named = set(manifest.object_keys)
    return [
        info.key
        for info in storage.list(folder + manifest.id)
        if dump_backup_id(info.key) == manifest.id and info.key not in named
    ]


def whole_backups(manifests: Iterable[Manifest], objects: Iterable[ObjectInfo]) -> set[str]:
    """Give the ids of the backups whose dump objects are all in the listing `objects`,
    each of the size its manifest gives (pure): the others lost a file or hold one cut
    short."""
    sizes = {info.key: info.size for info in objects}
    return {
        m.id for m in manifests if all(sizes.get(key) == size for key, size in _stored_sizes(m))
    }


def _stored_sizes(manifest: Manifest) -> list[tuple[str, int]]:
    """Each dump object of `manifest` with its size as stored."""
    if manifest.directory:
        return [(manifest.file_key(file), file.size_bytes) for file in manifest.files]
    return [(manifest.dump_key, manifest.size_bytes)]


def owns_dump_key(manifest: Manifest) -> bool:
    """True when the manifest's dump key (and every file key) is one the layout gives for
    its id."""
    if manifest.directory != manifest.dump_key.endswith(DIR_SUFFIX):
        return False
    probe = manifest.dump_key + TOC_FILE if manifest.directory else manifest.dump_key
    return dump_backup_id(probe) == manifest.id


def read_manifest(storage: Storage, key: str) -> Manifest:
    """Load and validate one manifest. Raises NotFound, StorageError, or JobError when invalid."""
    raw = storage.get_bytes(key)
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]["msg"]
        raise IntegrityError(f"manifest {storage.describe(key)} is invalid: {first}") from None
    if manifest.directory != (TOC_FILE in {file.name for file in manifest.files}):
        raise IntegrityError(
            f"manifest {storage.describe(key)} is invalid: a directory dump lists its files "
            "with toc.dat, a single-file dump none"
        )
    return manifest


def list_backups(
    storage: Storage, database: str | None = None, unread: list[str] | None = None
) -> list[Manifest]:
    """Give every backup (one per readable manifest), newest first.

    Unreadable manifests are logged and skipped: one bad object must not hide the others;
    each one's error is added to `unread` when given.
    """
    prefix = f"{safe_name(database)}/" if database else ""
    keys = [o.key for o in storage.list(prefix) if is_manifest_key(o.key)]
    read = functools.partial(_try_read, unread=unread)
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(with_context(read), [storage] * len(keys), keys))
    # a manifest copied elsewhere (or a store nested in another's prefix) is not a backup
    backups = [m for m, key in zip(loaded, keys, strict=True) if m and m.manifest_key == key]
    if database:
        backups = [m for m in backups if m.database == database]
    return sorted(backups, key=lambda m: (m.created_at, m.id), reverse=True)


def newest_backup(storage: Storage, database: str) -> Manifest | None:
    """The newest readable backup of `database` in one store, reading only the manifests
    it takes to find it (ids sort by time)."""
    keys = [o.key for o in storage.list(f"{safe_name(database)}/") if is_manifest_key(o.key)]
    for key in sorted(keys, key=lambda k: k.rsplit("/", 1)[-1], reverse=True):
        manifest = _try_read(storage, key)
        if manifest is not None and manifest.manifest_key == key and manifest.database == database:
            return manifest
    return None


def _try_read(storage: Storage, key: str, unread: list[str] | None = None) -> Manifest | None:
    """The manifest at `key`, or None (logged, and its error added to `unread` unless it
    is gone meanwhile) when it cannot be read."""
    try:
        return read_manifest(storage, key)
    except Exception as exc:
        log.warning("catalog.bad_manifest", key=key, error=str(exc))
        if unread is not None and not isinstance(exc, NotFound):
            unread.append(str(exc))
        return None


def foreign_objects(objects: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
    """Yield objects that are neither a manifest, a dump nor state written by this tool."""
    for obj in objects:
        if obj.key.startswith(STATUS_PREFIX) or is_manifest_key(obj.key):
            continue
        if dump_backup_id(obj.key) is None:
            yield obj


@dataclass(frozen=True)
class Copy:
    """One store's copy of a backup, described by that store's own manifest."""

    store: NamedStore
    manifest: Manifest


@dataclass(frozen=True)
class Located:
    """A backup and every store that holds it (in store order); `unreachable` are the
    stores that could not be asked (label and why), which may hold it too."""

    copies: tuple[Copy, ...]
    unreachable: tuple[tuple[str, str], ...] = ()

    @property
    def manifest(self) -> Manifest:
        """The manifest of the first store that holds the backup."""
        return self.copies[0].manifest

    @property
    def stores(self) -> list[str]:
        """Labels of the stores that hold the backup."""
        return [c.store.label for c in self.copies]

    def first_good(self, attempt: Callable[[Copy], T], what: str) -> T:
        """`attempt` on the first copy where it succeeds, trying the copies' stores in
        order; each failure is logged before the next is tried (storage.multi.first_success,
        which raises the stores' errors when every copy fails)."""
        by_label = {c.store.label: c for c in self.copies}
        return first_success(
            [c.store for c in self.copies], lambda store: attempt(by_label[store.label]), what
        )


def list_located(
    stores: Sequence[NamedStore],
    database: str | None = None,
    unread: dict[str, list[str]] | None = None,
) -> tuple[list[Located], list[tuple[NamedStore, OrchestratorError]]]:
    """Give every backup found in any store (newest first) with the stores holding it, and
    the stores that could not be listed with their errors. With `unread`, the errors of
    the manifests that could not be read are added under their store's label.

    Raises the error when no store could be listed at all.
    """
    per_store: dict[str, list[str]] = {s.label: [] for s in stores} if unread is not None else {}
    outcomes = fan_out(
        stores, lambda store: list_backups(store.storage, database, per_store.get(store.label))
    )
    if unread is not None:
        unread.update({label: errors for label, errors in per_store.items() if errors})
    failed = [(o.store, o.error) for o in outcomes if o.error is not None]
    if len(failed) == len(outcomes):
        raise combined(failed, "list backups")
    for store, error in failed:
        log.warning("catalog.store_unreadable", store=store.label, error=str(error))
    copies: dict[str, list[Copy]] = {}
    for outcome in outcomes:
        for manifest in outcome.value or []:
            copies.setdefault(manifest.id, []).append(Copy(outcome.store, manifest))
    located = [Located(tuple(found)) for found in copies.values()]
    located.sort(key=lambda b: (b.manifest.created_at, b.manifest.id), reverse=True)
    return located, failed


def find_located(
    stores: Sequence[NamedStore],
    ref: str,
    database: str | None = None,
    source_identity: str | None = None,
) -> Located:
    """Resolve `ref` (an id or `latest`) across the stores.

    `latest` considers only `database` when given, and only backups of the cluster
    `source_identity` (or of unknown identity) when given: a store shared by two sources
    whose databases have the same name never hands one source's data to the other.

    A store that cannot be asked is logged and passed over (and named in `unreachable`).
    Raises NotFound when every store answered and none holds such a backup, JobError when
    the stores that answered do not hold it but others could not be asked, or the stores'
    errors when none could be asked.
    """
    if ref == "latest":
        located, failed = list_located(stores, database)
        if source_identity is not None:
            located = [b for b in located if b.manifest.source_identity in (None, source_identity)]
        if not located:
            _not_found(failed, "there are no backups yet")
        return Located(located[0].copies, _why(failed))
    key = manifest_key_for(ref)
    outcomes = fan_out(stores, lambda store: read_manifest(store.storage, key))
    found = [Copy(o.store, o.value) for o in outcomes if o.value is not None]
    failed = [(o.store, o.error) for o in outcomes if not isinstance(o.error, NotFound | None)]
    if found:
        return Located(tuple(found), _why(failed))
    if len(failed) == len(outcomes):
        raise combined(failed, f"read backup {ref}")
    _not_found(failed, f"no backup with id {ref!r} (see `orchestrator list`)")


def _why(failed: Sequence[tuple[NamedStore, OrchestratorError]]) -> tuple[tuple[str, str], ...]:
    for store, error in failed:
        log.warning("catalog.store_unreadable", store=store.label, error=str(error))
    return tuple((store.label, str(error)) for store, error in failed)


def _not_found(failed: Sequence[tuple[NamedStore, OrchestratorError]], message: str) -> NoReturn:
    """NotFound when every store answered; when some could not be asked, a JobError naming
    them (they may hold it: that is no configuration error)."""
    if failed:
        names = "; ".join(f"{store.label}: {error}" for store, error in failed)
        raise JobError(f"{message} in the stores that answered; could not ask {names}")
    raise NotFound(message)
