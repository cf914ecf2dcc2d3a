"""`orchestrator verify`: a backup's checksum and a readable table of contents."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import catalog
from orchestrator.actions.backup import work_dir
from orchestrator.actions.common import client_for, storage_from
from orchestrator.actions.fetch import download_checked
from orchestrator.catalog import Manifest
from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger
from orchestrator.names import table_key
from orchestrator.postgres import restore
from orchestrator.settings import Settings

log = get_logger(__name__)


@dataclass
class VerifyResult:
    """Each check by name with its outcome; `ok` only when every check passed."""

    manifest: Manifest
    checks: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems


def verify(settings: Settings, ref: str) -> VerifyResult:
    """Download backup `ref`, check its SHA-256, and read it with `pg_restore --list`.

    Problems found in the archive are reported in the result; ConfigError and
    StorageError (cannot even look) are raised.
    """
    storage = storage_from(settings)
    storage.check()
    manifest = catalog.find(storage, ref)
    result = VerifyResult(manifest)
    with work_dir(settings) as folder:
        path = folder / "archive.dump"
        try:
            download_checked(storage, manifest, path)
            result.checks["sha256"] = "ok"
        except OrchestratorError as exc:
            result.problems.append(str(exc))
            result.checks["sha256"] = "failed"
            return result
        client = client_for(
            settings,
            "pg_restore",
            manifest.dump_major,
            f"written by pg_dump {manifest.pg_dump_version}",
        )
        try:
            toc = restore.list_toc(client, path)
        except OrchestratorError as exc:
            result.problems.append(str(exc))
            result.checks["toc"] = "failed"
            return result
    missing = _missing_tables(toc, manifest)
    if missing:
        result.problems.append(f"table data missing from the archive: {', '.join(missing)}")
    result.checks["toc"] = "failed" if missing else "ok"
    log.info("verify.done", backup_id=manifest.id, ok=result.ok)
    return result


def _missing_tables(toc: str, manifest: Manifest) -> list[str]:
    present = set(restore.table_data_tables(toc, manifest.tables))
    return sorted(table_key(s, t) for s, t in manifest.tables if (s, t) not in present)
