"""`orchestrator status`: recent backups, age of the newest one, outcome of the last cycle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import catalog
from orchestrator.actions.common import stores_from
from orchestrator.actions.listing import located_summary
from orchestrator.errors import OrchestratorError
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
    """Give recent backups (newest first, across every store), the newest one's age and the
    last cycle (from the first store that has a record of it)."""
    stores = stores_from(settings)
    backups, _failed = catalog.list_located(stores)
    result = Status(backups=[located_summary(b) for b in backups[:RECENT]])
    if backups:
        age = (now or datetime.now(UTC)) - backups[0].manifest.created_at
        result.newest_age_seconds = round(age.total_seconds(), 1)
    for store in stores:
        try:
            result.last_cycle = json.loads(store.storage.get_bytes(LAST_CYCLE_KEY))
            break
        except (OrchestratorError, ValueError):
            continue
    return result
