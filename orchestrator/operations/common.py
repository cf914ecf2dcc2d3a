"""Small pieces every operation shares: a work folder, the stores for best-effort writes,
the notifier, choosing clients, hashing files."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.conninfo import ConnInfo
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.job import Job
from orchestrator.logs import get_logger
from orchestrator.notify import Notifier
from orchestrator.postgres import clients, queries
from orchestrator.storage.multi import NamedStore

log = get_logger(__name__)
NOTIFY_TIMEOUT = 5.0
HASH_CHUNK = 4 * 1024 * 1024


def stores_or_none(job: Job) -> list[NamedStore]:
    """The job's stores, for best-effort writes such as the history: none (logged) when
    they cannot even be opened."""
    try:
        return job.stores()
    except ConfigError as exc:
        log.warning("stores.unusable", error=str(exc))
        return []


def notifier_for(job: Job, healthcheck_url: str | None) -> Notifier:
    """The webhook and Apprise channels of the job and the given healthcheck URL
    (HEALTHCHECK_URL for cycles, DRILL_HEALTHCHECK_URL for drills); does nothing when no
    URL is set. Raises ConfigError naming NOTIFY_URLS when a channel is unknown."""
    # 5 s per request keeps a hung alert endpoint inside the 30 s stop budget of `run`
    return Notifier(
        job.alerts.webhook_url,
        healthcheck_url,
        job.alerts.on_success,
        timeout=NOTIFY_TIMEOUT,
        channel_urls=job.channel_urls(),
        subject=job.source_database,
        page_url=job.alerts.status_page_url,
    )


def client_for(job: Job, tool: str, needed_major: int, why: str) -> clients.ClientSet:
    """Find the `tool` binary of `needed_major` or the nearest newer one; ConfigError if none."""
    found = clients.discover(list(job.pg_bin_dirs), tool)
    return clients.choose(found, needed_major, tool, why)


def sha256_of(path: Path) -> str:
    """Give the hex SHA-256 of the file at `path`, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def work_dir(job: Job) -> Iterator[Path]:
    """A private temporary folder (under WORK_DIR when set), removed afterwards."""
    base = job.work_dir
    try:
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="orchestrator-", dir=base))
    except OSError as exc:
        raise ConfigError(
            f"WORK_DIR: cannot make a work folder in {base}: {exc.strerror}"
        ) from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def source_identity(job: Job) -> str | None:
    """The source's cluster identity, asked once per job (the guard of each target and the
    choice of the latest backup use it); None when the source is unset or unreachable."""
    return job.remember("source_identity", lambda: _ask_source_identity(job.source))


def _ask_source_identity(source: ConnInfo | None) -> str | None:
    if source is None:
        return None
    try:
        with contextlib.closing(queries.connect(source, "SOURCE_DATABASE_URL")) as conn:
            return queries.cluster_identity(conn)
    except OrchestratorError as exc:
        log.warning("restore.source_unreachable", error=str(exc), note="guard uses URL + manifest")
        return None
