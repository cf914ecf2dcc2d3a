"""A folder as an archive store: the same contract as S3, for laptops, NAS mounts and tests.

Writes go to a hidden temporary file beside the target, are fsynced, then renamed, so a
reader never sees a partial object.

A folder is a store only once it holds the marker `_orchestrator/store.json`, written by
`orchestrator init` (as `restic init` and `borg init` make a repository): a folder
without it is refused for every write, so a NAS path whose share is not mounted is never
silently filled on the host's own disk. A folder that already holds this tool's backups
or state (from before markers existed) gets its marker on first use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import ConfigError, NotFound, StorageError, StoreNotInitialised
from orchestrator.logs import get_logger
from orchestrator.storage.base import (
    MARKER_KEY,
    ObjectInfo,
    Progress,
    check_key,
    local_disk_full,
    marker_document,
)

log = get_logger(__name__)

CHUNK = 1024 * 1024
TEMP_PREFIX = ".tmp-"
OWN_FOLDER = "_orchestrator"
ADOPT_DEPTH = 4  # <database>/YYYY/MM/DD: where manifests sit


class LocalStorage:
    """Objects are files under `root`; keys are their relative paths."""

    def __init__(self, root: Path, setting: str = "STORAGE_URL") -> None:
        self.root = root
        self.setting = setting
        self._marked = False

    def _path(self, key: str) -> Path:
        try:
            return self.root / check_key(key)
        except ValueError as exc:
            raise StorageError(str(exc)) from None

    def describe(self, key: str = "") -> str:
        """The absolute path of `key` (or of the root)."""
        return str(self.root / key) if key else str(self.root)

    def check(self) -> None:
        """Raise StoreNotInitialised when the folder is not a store (see the module), and
        ConfigError when it cannot be written."""
        self._require_marker()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.setting}: {self.root} is not writable")

    def initialise(self) -> bool:
        """Create the folder (and its parents) and write the marker unless it is there; give
        True when written now. Raises ConfigError when the folder cannot be made or written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{self.setting}: cannot create {self.root}: {exc.strerror}"
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.setting}: {self.root} is not writable")
        if (self.root / MARKER_KEY).is_file():
            self._marked = True
            return False
        self._write_marker("init")
        return True

    def _require_marker(self) -> None:
        """Pass when the folder holds the marker (adopting a folder of this tool's backups);
        raise StoreNotInitialised otherwise."""
        if self._marked or (self.root / MARKER_KEY).is_file():
            self._marked = True
            return
        if self._holds_our_files():
            self._write_marker("adopted")
            log.info("store.adopted", store=str(self.root), marker=MARKER_KEY)
            return
        state = "exists" if self.root.is_dir() else "does not exist"
        raise StoreNotInitialised(
            f"{self.setting}: {self.root} {state} but is not an initialised store (no "
            f"{MARKER_KEY}); if the path is right (a mounted share, not an empty mount "
            "point), run `orchestrator init` once"
        )

    def _holds_our_files(self) -> bool:
        """True when the folder holds this tool's state or a backup's manifest."""
        if not self.root.is_dir():
            return False
        if (self.root / OWN_FOLDER).is_dir():
            return True
        for dirpath, dirs, files in os.walk(self.root):
            if any(name.endswith(".manifest.json") for name in files):
                return True
            if len(Path(dirpath).relative_to(self.root).parts) >= ADOPT_DEPTH:
                dirs.clear()
        return False

    def _write_marker(self, how: str) -> None:
        self._marked = True
        self._atomic_write(MARKER_KEY, None, marker_document(how))

    def _atomic_write(
        self, key: str, write: Progress | None, source: Path | bytes | Iterable[bytes]
    ) -> None:
        self._require_marker()
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                elif isinstance(source, Path):
                    _copy(source, out, write)
                else:
                    for chunk in source:
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(target)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write {target}: {exc.strerror}") from None
            raise

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Copy `path` to `key` atomically."""
        self._atomic_write(key, progress, path)

    def put_stream(self, key: str, chunks: Iterable[bytes], size_hint: int | None = None) -> None:
        """Write the chunks to a temporary file, then rename it to `key`."""
        self._atomic_write(key, None, chunks)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write `data` to `key` atomically."""
        self._atomic_write(key, None, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the file `key` exclusively, fsynced; False when it existed."""
        self._require_marker()
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return True

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> None:
        """Copy the object to `dest`; raise NotFound when it does not exist."""
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"no object {self.describe(key)}")
        try:
            with dest.open("wb") as out:
                _copy(source, out, progress)
        except OSError as exc:
            full = local_disk_full(exc, dest)
            raise full or StorageError(f"cannot copy {source} to {dest}: {exc.strerror}") from None

    def get_bytes(self, key: str) -> bytes:
        """Read the object; raise NotFound when it does not exist."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object {self.describe(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.describe(key)}: {exc.strerror}") from None

    def size_of(self, key: str) -> int:
        """The file's size; raise NotFound when it does not exist."""
        path = self._path(key)
        try:
            if path.is_file():
                return path.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot read {self.describe(key)}: {exc.strerror}") from None
        raise NotFound(f"no object {self.describe(key)}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield files under the root whose key starts with `prefix`, skipping temp files."""
        if not self.root.is_dir():
            return
        found = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        stat = path.stat()
                    except OSError:  # a dangling symlink, or removed while listing
                        continue
                    found.append(
                        ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
                    )
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, keys: Sequence[str]) -> None:
        """Remove the files (missing ones are fine) and empty folders left behind."""
        failed = []
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                failed.append(f"{key} ({exc.strerror})")
                continue
            self._prune_empty_dirs(path.parent)
        if failed:
            raise StorageError(f"could not delete {len(failed)} object(s): {', '.join(failed)}")

    def _prune_empty_dirs(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _copy(source: Path, out: BinaryIO, progress: Progress | None) -> None:
    with source.open("rb") as src:
        if progress is None:
            shutil.copyfileobj(src, out, CHUNK)
            return
        while chunk := src.read(CHUNK):
            out.write(chunk)
            progress(len(chunk))
