"""`orchestrator pipeline`: one cycle. Dump once; archive it and restore every configured
target from the same local file, concurrently; prune after a successful backup; report.

A failing branch does not stop the others: the archive is written even when a target is
down, and each target is restored even when the upload fails. The cycle succeeds only
when every step did. One cycle at a time per source database (advisory lock).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from orchestrator import cancel, history, progress, tasks
from orchestrator.conninfo import ConnInfo
from orchestrator.errors import (
    AlreadyRunning,
    CommandFailed,
    ConfigError,
    Interrupted,
    JobError,
    OrchestratorError,
)
from orchestrator.job import TARGET_NAMES, Job, TargetSettings
from orchestrator.logs import get_logger, mask
from orchestrator.notify import CycleReport, Notifier, StepReport
from orchestrator.operations import restore as restore_action
from orchestrator.operations import subset as subset_operation
from orchestrator.operations.archiver import Archiver
from orchestrator.operations.common import client_for, notifier_for, work_dir
from orchestrator.operations.dump import LocalDump, take_dump
from orchestrator.operations.masked_load import load_masking
from orchestrator.operations.prune import prune
from orchestrator.operations.sync import sync
from orchestrator.operations.upload import (
    OpenStores,
    UploadFailed,
    open_stores,
    with_unused_id,
)
from orchestrator.postgres import clients
from orchestrator.postgres.lock import cycle_lock
from orchestrator.storage.locks import store_locks
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)


@dataclass
class PipelineResult:
    """The cycle's report; `ok` only when every step succeeded."""

    report: CycleReport

    @property
    def ok(self) -> bool:
        """True when every step succeeded."""
        return self.report.ok


def configured_targets(job: Job) -> list[TargetSettings]:
    """The targets whose URL is set, in a fixed order."""
    return [job.targets[name] for name in TARGET_NAMES if name in job.targets]


def notifier_from(job: Job) -> Notifier:
    """The notifier of cycles: the webhook and HEALTHCHECK_URL's pings."""
    return notifier_for(job, job.alerts.healthcheck_url)


def _step(report: CycleReport, name: str, work: Callable[[], dict[str, Any] | None]) -> bool:
    """Run one step, record it in `report` with its duration and outcome; give success.

    Every log line written while the step runs carries `step=<name>`.
    """
    started = time.monotonic()
    with structlog.contextvars.bound_contextvars(step=name), progress.step(name):
        log.info("step.start")
        try:
            detail = work() or {}
        except OrchestratorError as exc:
            failed_detail = {"stores": exc.stores} if isinstance(exc, UploadFailed) else {}
            report.steps.append(
                StepReport(name, False, _since(started), mask(str(exc)), failed_detail)
            )
            log.error("step.failed", error=str(exc))
            if isinstance(exc, Interrupted):  # SIGTERM/SIGINT ends the cycle (exit 128+N)
                raise
            return False
        except Exception as exc:  # a bug in one branch must not lose the others' outcome
            report.steps.append(StepReport(name, False, _since(started), mask(repr(exc))))
            log.exception("step.crashed")
            return False
        report.steps.append(StepReport(name, True, _since(started), None, detail))
        log.info("step.done", seconds=_since(started))
        return True


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def preflight(job: Job, targets: list[TargetSettings]) -> list[str]:
    """Refuse before dumping when a target is the source, the retention policy is void or a
    recipient is malformed; give the recipients."""
    if job.prune_after_backup:
        job.policy()  # an all-zero policy is a ConfigError before any dump
    recipients = job.recipients()
    for target in targets:
        masking = load_masking(job, target)
        if masking is not None and target.strategy == "transaction":
            raise ConfigError(
                f"{target.name.upper()}_RESTORE_STRATEGY=transaction cannot mask: a masked copy "
                "is loaded into a new database and swapped in (set it to auto or swap)"
            )
        if masking is not None and masking.rules.subset is not None:
            with work_dir(job) as folder:  # conditions that do not parse: before the dump
                subset_operation.check_conditions(
                    None, masking.rules.subset, masking.setting, folder
                )
        identity = restore_action.target_identity(target.url, job.restore.maintenance_database)
        restore_action.guard(job, target.url, identity)
    return recipients


def pipeline(job: Job, notifier: Notifier | None = None) -> PipelineResult:
    """Run one cycle and give its report (step failures are inside, not raised).

    Raises AlreadyRunning when another cycle holds the lock, or a prune, rekey or sync
    holds a store's lock of the source's database (nothing done, nothing sent).
    Failures that end the cycle (source unreachable, a target that is the source, a
    missing bucket) are raised too, after the notifier has reported them.
    """
    run_id = secrets.token_hex(6)
    source = job.require_source()
    targets = configured_targets(job)
    with structlog.contextvars.bound_contextvars(run_id=run_id), contextlib.ExitStack() as stack:
        with structlog.contextvars.bound_contextvars(step="preflight"):
            # opening and checking the stores (importing boto3, loading its models: 0.2 s of
            # CPU) and finding the clients run beside the cycle lock; the store locks then
            # wait for the check, and a failed check stops the dump as soon as it starts
            store = tasks.in_background(lambda: open_stores(job), "open-stores")
            discovering = tasks.in_background(lambda: clients.discover(job.pg_bin_dirs), "discover")
            stack.callback(wait, [discovering])  # its last log line comes before the cycle's
            lock_error = _take_lock(stack, source)
            if lock_error is None:
                _take_store_locks(stack, store, source.database)
        with (notifier or notifier_from(job)).cycle(run_id) as report, progress.running("cycle"):
            _run_cycle(job, store, targets, lock_error, report)
    return PipelineResult(report)


def _take_lock(
    stack: contextlib.ExitStack[bool | None], source: ConnInfo
) -> OrchestratorError | None:
    """Take the cycle lock for the rest of `stack`; give the error when the source could not
    be asked (it must alert). Raises AlreadyRunning when another cycle holds it."""
    try:
        stack.enter_context(cycle_lock(source, "SOURCE_DATABASE_URL"))
    except AlreadyRunning:
        raise
    except OrchestratorError as exc:
        return exc
    return None


def _take_store_locks(
    stack: contextlib.ExitStack[bool | None], store: Future[OpenStores], database: str
) -> None:
    """Hold each usable store's lock of `database` for the rest of `stack`, so no prune,
    rekey or sync changes its backups meanwhile. Raises AlreadyRunning when one of them
    holds it. Waits for the stores' check first: a lock is never written into a store that
    failed it (an S3 server that creates buckets on write would then pass a missing bucket's
    check), and misconfigured stores are left to the cycle to report."""
    try:
        usable = _stores_when_ready(store).usable
    except Interrupted:
        raise
    except OrchestratorError:
        return
    stack.enter_context(store_locks([(named, database) for named in usable], "pipeline"))


def _run_cycle(
    job: Job,
    store: Future[OpenStores],
    targets: list[TargetSettings],
    lock_error: OrchestratorError | None,
    report: CycleReport,
) -> None:
    """The cycle after the lock: preflight, then the steps; whatever happens, the report is
    finished, summarised and kept (last cycle and history) in every store that answered."""
    try:
        if lock_error is not None:
            raise lock_error
        with structlog.contextvars.bound_contextvars(step="preflight"):
            recipients = preflight(job, targets)
        _cycle(job, store, targets, recipients, report)
    except BaseException as exc:
        report.error = mask(str(exc)) or type(exc).__name__
        raise
    finally:
        report.finished_at = datetime.now(UTC)
        _summary(report)
        _keep(job, store, report)


def _keep(job: Job, store: Future[OpenStores], report: CycleReport) -> None:
    """Keep the cycle's report in the history of every store that answered (written once:
    `status` reads the last cycle from there); when there is none (misconfigured, or a stop
    while it was being opened), nowhere."""
    try:
        usable = _stores_when_ready(store).usable
    except Interrupted:
        raise
    except Exception as exc:  # OrchestratorError, or a crash opening the stores
        log.warning("pipeline.report_not_kept", error=mask(str(exc)))
        return
    history.record(usable, "cycle", report.as_dict(), job.require_source().database)


def _cycle(
    job: Job,
    store: Future[OpenStores],
    targets: list[TargetSettings],
    recipients: list[str],
    report: CycleReport,
) -> None:
    """The steps. A store found misconfigured while the dump runs stops the dump and ends
    the cycle with its ConfigError, so a wrong bucket costs no more than a second of dump."""
    archiver = Archiver(lambda: _stores_when_ready(store), recipients)
    with work_dir(job) as folder, archiver:
        dump = _dump_step(job, store, folder, report, archiver)
        if dump is None:
            return
        stores = store.result()
        uploaded = _branches(job, stores, targets, dump, archiver, report)
        if len(uploaded) > 1 and not stores.failed and len(uploaded) == len(stores.usable):
            _step(report, "sync", lambda: _sync_step(job, uploaded))
        if uploaded and job.prune_after_backup:
            _step(report, "prune", lambda: _prune_step(job, uploaded))


def _dump_step(
    job: Job, store: Future[OpenStores], folder: Path, report: CycleReport, archiver: Archiver
) -> LocalDump | None:
    """The dump step; give the dump, or None when it failed (recorded in `report`).

    A store found misconfigured (by the check the store locks wait for, or one still
    running) stops the dump at once and its ConfigError ends the cycle, so a wrong bucket
    costs no more than a second of dump.
    """
    dumped: Future[LocalDump] = Future()

    def work() -> dict[str, Any]:
        try:
            dump = take_dump(job, folder, archiver)  # a directory's files stored meanwhile
        except CommandFailed:
            _raise_if_failed(store)  # a refused store stopped the dump: say why
            raise
        if not dump.manifest.directory:  # the archiver took a free id before the dump
            dump = with_unused_id(_stores_when_ready(store).usable, dump)
        dumped.set_result(dump)
        manifest = dumped.result().manifest
        return {"backup_id": manifest.id, "size_bytes": manifest.size_bytes}

    with cancel.stoppable() as stop:
        store.add_done_callback(lambda done: stop.set() if done.exception() else None)
        if _step(report, "dump", work):
            return dumped.result()
    _raise_if_failed(store)  # a misconfigured store ends the cycle (exit 2)
    return None


def _stores_when_ready(store: Future[OpenStores]) -> OpenStores:
    return tasks.result_unless_stopped(store, "the stores were being opened")


def _raise_if_failed(future: Future[OpenStores]) -> None:
    """Raise the error `future` ended with, if it has ended with one (never waits)."""
    error = future.exception() if future.done() else None
    if error is not None:
        raise error


def _branches(
    job: Job,
    stores: OpenStores,
    targets: list[TargetSettings],
    dump: LocalDump,
    archiver: Archiver,
    report: CycleReport,
) -> list[NamedStore]:
    """Upload (what the archiver has not stored during the dump) and every restore at once,
    from the same local dump, each a step of `report`; give the stores that received the
    backup (even when others failed)."""
    received: Future[list[NamedStore]] = Future()  # set once, by the upload branch

    def upload() -> dict[str, Any]:
        try:  # with recipients, nothing leaves the host unencrypted
            stored = archiver.finish(dump)
        except UploadFailed as exc:
            received.set_result(exc.stored_in)
            raise
        received.set_result(stored.stores)
        key = stored.manifest.dump_key
        encrypted = stored.manifest.encrypted
        return {"key": key, "encrypted": encrypted, "stores": stored.report}

    work: dict[str, Callable[[], dict[str, Any] | None]] = {"upload": upload}
    for target in targets:
        work[f"restore:{target.name}"] = _restore_work(job, target, dump)
    # _step records every failure in the report; only a stop or a crash surfaces here
    tasks.run_together({name: _as_step(report, name, fn) for name, fn in work.items()}, "cycle")
    return received.result() if received.done() else []


def _as_step(
    report: CycleReport, name: str, work: Callable[[], dict[str, Any] | None]
) -> Callable[[], bool]:
    return lambda: _step(report, name, work)


def _restore_work(
    job: Job, target: TargetSettings, dump: LocalDump
) -> Callable[[], dict[str, Any]]:
    def work() -> dict[str, Any]:
        manifest = dump.manifest
        client = client_for(
            job, "pg_restore", manifest.dump_major, f"pg_dump {manifest.pg_dump_version}"
        )
        result = restore_action.Restorer(job, target, manifest, client, dump.path).run()
        return {
            "target": target.name,
            "database": target.url.database,
            "server": restore_action.target_server(target.url),
            "backup_id": manifest.id,
            "strategy": result.strategy,
            "previous": result.previous,
            "masked": result.masking is not None,
            **({"masking": result.masking} if result.masking is not None else {}),
        }

    return work


def _sync_step(job: Job, stores: list[NamedStore]) -> dict[str, Any]:
    """Copy the source database's backups that a store lacks (a store that missed a cycle)."""
    result = sync(job, False, job.require_source().database, stores)
    if not result.ok:
        raise JobError("; ".join(result.errors))
    return {"copied": len(result.copied)}


def _prune_step(job: Job, stores: list[NamedStore]) -> dict[str, Any]:
    """Prune the source database's backups in each store that received this cycle's backup."""
    results = prune(job, False, job.require_source().database, stores)
    errors = [f"{r.store}: {e}" if len(results) > 1 else e for r in results for e in r.errors]
    if errors:
        raise JobError("; ".join(errors))
    return {"removed": sum(len(r.removals) for r in results)}


def _summary(report: CycleReport) -> None:
    steps = {s.name: ("ok" if s.ok else "failed") for s in report.steps}
    seconds = (datetime.now(UTC) - report.started_at).total_seconds()
    status = "success" if report.ok else "failure"
    log.info("pipeline.summary", status=status, steps=steps, seconds=round(seconds, 3))
