"""`orchestrator status`: recent backups, age of the newest one, outcome of the last cycle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import catalog
from orchestrator.actions.common import storage_from
from orchestrator.actions.listing import summary
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.logs import get_logger
from orchestrator.settings import Settings
from orchestrator.storage import Storage

log = get_logger(__name__)
LAST_CYCLE_KEY = f"{catalog.STATUS_PREFIX}last-cycle.json"
RECENT = 5


@dataclass
class Status:
    """What `status` shows."""

    backups: list[dict[str, Any]] = field(default_factory=list)
    newest_age_seconds: float | None = None
    last_cycle: dict[str, Any] | None = None


def save_last_cycle(storage: Storage, document: dict[str, Any]) -> None:
    """Store the last cycle's report beside the backups (best effort: a failure is logged)."""
    try:
        storage.put_bytes(LAST_CYCLE_KEY, json.dumps(document, indent=2).encode())
    except OrchestratorError as exc:
        log.warning("status.save_failed", error=str(exc))


def status(settings: Settings, now: datetime | None = None) -> Status:
    """Give recent backups (newest first), the newest one's age and the last cycle."""
    storage = storage_from(settings)
    storage.check()
    backups = catalog.list_backups(storage)
    result = Status(backups=[summary(m) for m in backups[:RECENT]])
    if backups:
        result.newest_age_seconds = round(
            ((now or datetime.now(UTC)) - backups[0].created_at).total_seconds(), 1
        )
    try:
        result.last_cycle = json.loads(storage.get_bytes(LAST_CYCLE_KEY))
    except NotFound:
        result.last_cycle = None
    return result
