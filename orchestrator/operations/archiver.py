"""Archiving a dump as it is taken: a directory dump's files go to every store while
pg_dump still writes the others; a custom-format dump goes once it is done.

Each file of a directory dump is stored in every store as soon as pg_dump closes it: read
once, hashed, and with recipients encrypted once into a broadcast every store reads
(operations/upload.sealed_to_each). The table of contents goes last, once pg_dump has
exited, then each store's manifest. A store that fails a file gets no more files and no
manifest, and what it received is deleted; the others go on. A dump that fails leaves no
manifest anywhere, and its files are deleted (what a crash leaves is an orphan that prune
removes after its grace period).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator import catalog, progress, tasks
from orchestrator.catalog import DumpFile, Encryption, Manifest
from orchestrator.errors import Interrupted, JobError, OrchestratorError
from orchestrator.logs import get_logger, with_context
from orchestrator.operations.common import sha256_of
from orchestrator.operations.dump import LocalDump
from orchestrator.operations.upload import (
    Archived,
    OpenStores,
    SealedPut,
    archive_everywhere,
    archived,
    check_stored_size,
    delete_quietly,
    must_be_free,
    sealed_to_each,
    with_unused_id,
)
from orchestrator.postgres import copy_rows
from orchestrator.storage import Storage
from orchestrator.storage.multi import NamedStore, Outcome, fan_out

log = get_logger(__name__)
FILES_AT_ONCE = 2  # files streamed at once; each holds at most two parts per store in memory


class Archiver:
    """Stores one dump in every store: a directory dump's files as pg_dump closes them
    (`start` and `closed`, the operations/dump.DumpSink), the rest with `finish`.

    Use it as a context manager around the dump and `finish`: leaving it with an error
    deletes what a directory dump had stored.
    """

    def __init__(self, stores: Callable[[], OpenStores], recipients: Sequence[str]) -> None:
        self._stores = stores
        self._recipients = list(recipients)
        self._pool = ThreadPoolExecutor(FILES_AT_ONCE, thread_name_prefix="file")
        self._lock = threading.Lock()
        self._submitted: dict[str, Future[None]] = {}
        self._planned: Manifest | None = None
        self._open: OpenStores | None = None
        self._tally = FileTally([])
        self._complete: set[str] = set()  # labels of the stores holding the manifest

    def __enter__(self) -> Archiver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for future in self._submitted.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        if self._open is not None:  # a failed dump or upload: stores with a manifest keep theirs
            self._remove_from([s for s in self._open.usable if s.label not in self._complete])

    def start(self, planned: Manifest) -> Manifest:
        """Take the id `planned` has, or the next free one, for a directory dump about to
        start; give the manifest to dump under (encrypted to the recipients when set)."""
        self._open = self._stores()
        free = with_unused_id(self._open.usable, LocalDump(Path(), planned)).manifest
        if self._recipients:
            free = free.model_copy(
                update={"encryption": Encryption(recipients=tuple(self._recipients))}
            )
        self._planned = free
        self._tally = FileTally(self._open.usable)
        # a store that cannot say the id is free gets nothing (and loses nothing)
        self._tally.refuse(
            fan_out(self._open.usable, lambda store: must_be_free(store.storage, free))
        )
        return free

    def closed(self, path: Path) -> None:
        """Store a file pg_dump has finished (not the table of contents, which goes last)."""
        if path.name != catalog.TOC_FILE:
            self._submit(path)

    def finish(self, dump: LocalDump) -> Archived:
        """Store what is left of `dump` (all of a custom-format dump; a directory dump's
        remaining files, then its table of contents), then each store's manifest. Give the
        stored manifest and the stores holding it. Raises UploadFailed when a store does
        not hold it (the others do), EncryptionError when no store does."""
        if not dump.manifest.directory:  # its id is checked by the caller (with_unused_id)
            stored = archive_everywhere(self._open or self._stores(), dump, self._recipients)
            progress.now_running().add_stored(dump.manifest.plain_size)
            return stored
        early = len(self._submitted)  # handed over as pg_dump closed them
        names = sorted(path.name for path in dump.path.iterdir())
        log.info("backup.files", backup_id=dump.manifest.id, files=len(names), reported=early)
        for name in names:
            self.closed(dump.path / name)
        for future in list(self._submitted.values()):
            tasks.result_unless_stopped(future, "storing the dump's files")
        self._store_file(dump.path / catalog.TOC_FILE)
        return self._manifests(dump.manifest, names)

    def _submit(self, path: Path) -> None:
        with self._lock:
            if path.name not in self._submitted:
                work = with_context(self._store_file)
                self._submitted[path.name] = self._pool.submit(work, path)
                if copy_rows.dump_id(path.name) is not None:  # a table's rows
                    progress.now_running().table_done()

    def _store_file(self, path: Path) -> None:
        """Store one file in every store still taking files; record each store's outcome."""
        planned = self._planned
        stores = self._tally.live()
        if planned is None or not stores:
            return
        if self._recipients:
            outcomes = sealed_to_each(
                stores,
                path,
                self._recipients,
                lambda store, put: sealed_file(planned, path, store, put),
            )
        else:
            size, digest = path.stat().st_size, sha256_of(path)
            file = DumpFile(
                name=path.name,
                size_bytes=size,
                sha256=digest,
                plain_size_bytes=size,
                plain_sha256=digest,
            )
            outcomes = fan_out(
                stores, lambda store: stored_file(store.storage, planned, file, path)
            )
        self._tally.record(outcomes)
        if any(outcome.ok for outcome in outcomes):
            progress.now_running().add_stored(path.stat().st_size)

    def _manifests(self, dumped: Manifest, names: list[str]) -> Archived:
        """Write the manifest of the dump's files `names` in each live store; remove what
        failed stores hold."""
        opened = self._open or OpenStores([], [])
        outcomes = fan_out(
            self._tally.live(), lambda store: self._manifest_in(store, dumped, names)
        )
        failed = [
            *opened.failed,
            *((s, e) for s in opened.usable if (e := self._tally.failed.get(s.label))),
        ]
        failed += [(o.store, o.error) for o in outcomes if o.error is not None]
        self._remove_from([store for store, _error in failed if store in opened.usable])
        return archived([(o.store, o.value) for o in outcomes if o.value is not None], failed)

    def _manifest_in(self, store: NamedStore, dumped: Manifest, names: list[str]) -> Manifest:
        files = self._tally.held(store)
        missing = sorted(set(names) - files.keys())
        if missing:
            raise JobError(f"files {', '.join(missing)} of backup {dumped.id} were not stored")
        listed = tuple(files[name] for name in sorted(files))
        encryption = self._planned.encryption if self._planned else None
        manifest = dumped.model_copy(update={"encryption": encryption, **directory_sums(listed)})
        store.storage.put_bytes(manifest.manifest_key, manifest.to_json())
        self._complete.add(store.label)
        log.info("backup.stored", backup_id=manifest.id, store=store.label, files=len(listed))
        return manifest

    def _remove_from(self, stores: list[NamedStore]) -> None:
        """Delete the planned directory dump from `stores`, its manifest first (a write that
        failed may have landed), then its files (best effort). Stores that could not say
        the id was free are left alone: the prefix may be another run's."""
        planned = self._planned
        if planned is None or not planned.directory:
            return
        for store in stores:
            if store.label not in self._tally.unchecked:
                delete_quietly(store.storage, [planned.manifest_key])
                remove_prefix(store, planned.dump_key)


def directory_sums(files: tuple[DumpFile, ...]) -> dict[str, Any]:
    """The manifest fields a directory dump's files give: the files in name order, and
    the sizes and digests over them."""
    listed = tuple(sorted(files, key=lambda f: f.name))
    return {
        "files": listed,
        "size_bytes": sum(f.size_bytes for f in listed),
        "sha256": catalog.files_digest(listed),
        "plain_size_bytes": sum(f.plain_size_bytes for f in listed),
        "plain_sha256": catalog.files_digest(listed, plain=True),
    }


def sealed_file(planned: Manifest, path: Path, store: NamedStore, put: SealedPut) -> DumpFile:
    """Store the file at `path` encrypted (`put`), its stored size checked."""
    sealed = put(f"{planned.dump_key}{path.name}{catalog.AGE_SUFFIX}")
    file = DumpFile(
        name=path.name,
        size_bytes=sealed.size,
        sha256=sealed.sha256,
        plain_size_bytes=sealed.plain_size,
        plain_sha256=sealed.plain_sha256,
    )
    check_stored_size(store.storage, planned.file_key(file), file.size_bytes)
    return file


def stored_file(storage: Storage, planned: Manifest, file: DumpFile, path: Path) -> DumpFile:
    """Store the file at `path` as it is, its stored size checked."""
    key = planned.file_key(file)
    storage.put_file(key, path)
    check_stored_size(storage, key, file.size_bytes)
    return file


class FileTally:
    """Which files each store holds so far, and the first error of each store that failed
    (it gets no more files). Thread-safe."""

    def __init__(self, stores: Sequence[NamedStore]) -> None:
        self.stores = list(stores)
        self._files: dict[str, dict[str, DumpFile]] = {store.label: {} for store in stores}
        self.failed: dict[str, OrchestratorError] = {}
        self.unchecked: set[str] = set()  # stores that failed before writing anything
        self._lock = threading.Lock()

    def live(self) -> list[NamedStore]:
        """The stores that have not failed."""
        with self._lock:
            return [store for store in self.stores if store.label not in self.failed]

    def record(self, outcomes: Sequence[Outcome[DumpFile]]) -> None:
        """Count each store's outcome of storing one file."""
        with self._lock:
            for outcome in outcomes:
                label = outcome.store.label
                if outcome.error is not None:
                    self.failed.setdefault(label, outcome.error)
                    log.error("backup.file_failed", store=label, error=str(outcome.error))
                elif outcome.value is not None:
                    self._files[label][outcome.value.name] = outcome.value

    def refuse(self, outcomes: Sequence[Outcome[None]]) -> None:
        """Stores whose check before the first file failed: they get nothing, and no
        cleanup touches them (what is under the prefix may not be this run's)."""
        with self._lock:
            for outcome in outcomes:
                if outcome.error is not None:
                    self.failed.setdefault(outcome.store.label, outcome.error)
                    self.unchecked.add(outcome.store.label)
                    log.error(
                        "backup.store_refused", store=outcome.store.label, error=str(outcome.error)
                    )

    def fail(self, stores: Sequence[NamedStore], error: OrchestratorError) -> None:
        """`stores` failed with `error` (each keeps its first error)."""
        with self._lock:
            for store in stores:
                self.failed.setdefault(store.label, error)

    def held(self, store: NamedStore) -> dict[str, DumpFile]:
        """The files `store` holds, by name."""
        with self._lock:
            return dict(self._files[store.label])


def copy_file_by_file(
    stores: Sequence[NamedStore],
    files: Sequence[DumpFile],
    fetch: Callable[[DumpFile, Path], None],
    put: Callable[[list[NamedStore], DumpFile, Path], list[Outcome[DumpFile]]],
    planned: Manifest,
    folder: Path,
    replacing: bool = False,
) -> list[Outcome[Manifest]]:
    """Store a directory backup's `files` in `stores` one at a time, as `planned` lays them
    out: `fetch(file, path)` writes a file into `folder` (once for every store), `put(live,
    file, path)` stores it in the stores still going. Then each store that got every file
    gets `planned`'s manifest with its files. Give each store's outcome (its manifest).

    A new copy (sync) goes only to stores that say they hold no manifest of the id; one
    that fails gets nothing, and what it received is deleted (its manifest first, should
    the write have landed). `replacing` (rekey, a new prefix beside the copy each store
    holds): a store that fails before its manifest loses the new files; one whose manifest
    write fails keeps both, for the next run to sort out (see catalog.stray_dumps)."""
    tally = FileTally(stores)
    if not replacing:
        tally.refuse(fan_out(stores, lambda store: must_be_free(store.storage, planned)))
    _each_file(tally, files, fetch, put, folder)

    def manifest_in(store: NamedStore) -> Manifest:
        if store.label in tally.failed:
            if store.label not in tally.unchecked:
                remove_prefix(store, planned.dump_key)
            raise tally.failed[store.label]
        manifest = planned.model_copy(update=directory_sums(tuple(tally.held(store).values())))
        try:
            store.storage.put_bytes(manifest.manifest_key, manifest.to_json())
        except OrchestratorError:
            if not replacing:
                delete_quietly(store.storage, [manifest.manifest_key])
                remove_prefix(store, planned.dump_key)
            raise
        return manifest

    return fan_out(stores, manifest_in)


def _each_file(
    tally: FileTally,
    files: Sequence[DumpFile],
    fetch: Callable[[DumpFile, Path], None],
    put: Callable[[list[NamedStore], DumpFile, Path], list[Outcome[DumpFile]]],
    folder: Path,
) -> None:
    """Fetch each file into `folder` and put it in the stores still going (copy_file_by_file)."""
    for file in files:
        live = tally.live()
        if not live:
            return
        path = folder / file.name
        try:
            fetch(file, path)
            tally.record(put(live, file, path))
        except Interrupted:
            raise
        except OrchestratorError as exc:
            tally.fail(live, exc)
        finally:
            path.unlink(missing_ok=True)


def seal_to_each(
    stores: list[NamedStore], planned: Manifest, file: DumpFile, path: Path, recipients: list[str]
) -> list[Outcome[DumpFile]]:
    """Store the plain `file` at `path` encrypted to `recipients` (one encryption, checked
    against the file's plain size and sha256) in every store at once, as `planned` lays
    it out."""
    return sealed_to_each(
        stores,
        path,
        recipients,
        functools.partial(sealed_file, planned, path),
        (file.plain_size_bytes, file.plain_sha256),
    )


def remove_prefix(store: NamedStore, prefix: str) -> None:
    """Delete every object under `prefix` in `store` (best effort: logged when it fails)."""
    try:
        store.storage.delete([info.key for info in store.storage.list(prefix)])
    except OrchestratorError as exc:
        log.warning("backup.cleanup_failed", store=store.label, error=str(exc))
