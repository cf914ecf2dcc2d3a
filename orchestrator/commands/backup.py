"""`orchestrator backup`: dump the source once, archive it in every store (encrypted on the way)."""

from __future__ import annotations

from orchestrator import progress
from orchestrator.job import Job
from orchestrator.operations.archiver import Archiver
from orchestrator.operations.common import work_dir
from orchestrator.operations.dump import take_dump
from orchestrator.operations.upload import (
    BackupResult,
    open_stores,
    with_unused_id,
)
from orchestrator.storage.locks import store_locks
from orchestrator.storage.multi import combined


def backup(job: Job) -> BackupResult:
    """Take one backup of the source, encrypt it when recipients are set, and archive it in
    every store; give the stored backup.

    The stores are checked and the recipients read before the dump starts, so a wrong
    bucket or key costs no dump, and when no store can take the backup (an uninitialised
    folder, a store that is down) nothing is dumped: that store's error is raised. Raises
    UploadFailed when a store did not get it, and AlreadyRunning (nothing dumped) when
    another backup, cycle, prune, rekey or sync holds a store's lock of the source's
    database: two runs started in the same second would take the same id and write into
    each other's backup.
    """
    recipients = job.recipients()
    database = job.require_source().database
    stores = open_stores(job)
    if not stores.usable:
        raise combined(stores.failed, "open a store")
    with (
        store_locks([(store, database) for store in stores.usable], "backup"),
        progress.running("backup"),
        work_dir(job) as folder,
        Archiver(lambda: stores, recipients) as archiver,
    ):
        with progress.step("dump"):  # a directory dump's files are stored meanwhile
            dump = take_dump(job, folder, archiver)
        if not dump.manifest.directory:  # the archiver took a free id before the dump
            dump = with_unused_id(stores.usable, dump)
        with progress.step("upload"):
            stored = archiver.finish(dump)
    return BackupResult(stored.manifest, stored.manifest.dump_key)
