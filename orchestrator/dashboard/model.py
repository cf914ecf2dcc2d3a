"""What the status page is rendered from: plain, JSON-like values (no I/O, no settings).

The documents are TypedDicts with `total=False`: history written by older versions may
lack keys, and every value may be None. The renderer reads each key defensively and shows
"—" for what is missing or of the wrong type, so a damaged record never breaks the page.

Times inside documents are ISO-8601 strings in UTC ending in `Z` (as
`orchestrator.notify.CycleReport.as_dict()` writes them); `PageData.generated_at` is an
aware datetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

__all__ = [
    "BackupDoc",
    "CycleDoc",
    "DrillDoc",
    "PageData",
    "StepDoc",
    "TargetDoc",
]


class StepDoc(TypedDict, total=False):
    """One step of a cycle, as in `CycleReport.as_dict()["steps"]`.

    `name`: `dump`, `upload`, `restore:<target>`, `prune`, `sync`, ...; `status`:
    "success" or "failure". `detail` depends on the step: `dump` has `backup_id` and
    `size_bytes`; `restore:*` has `target`, `strategy`, `previous` and may have
    `backup_id`; `upload` may have `stores` (store label -> "ok" or the error text).
    """

    name: str
    status: str
    ok: bool
    seconds: float | None
    error: str | None
    detail: dict[str, Any]


class CycleDoc(TypedDict, total=False):
    """One cycle, exactly the shape of `CycleReport.as_dict()`."""

    status: str
    run_id: str
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    steps: list[StepDoc]
    error: str | None


class DrillDoc(TypedDict, total=False):
    """One restore drill. `rto_seconds` is fetch + restore; `server` is a URL without a
    password (the page strips credentials anyway)."""

    status: str
    run_id: str
    started_at: str | None
    finished_at: str | None
    backup_id: str | None
    server: str | None
    fetch_seconds: float | None
    restore_seconds: float | None
    verify_seconds: float | None
    rto_seconds: float | None
    tables: int | None
    rows: int | None
    problems: list[str]
    error: str | None


class BackupDoc(TypedDict, total=False):
    """One backup in the catalog (it exists where its manifest exists)."""

    id: str
    created_at: str | None
    size_bytes: int | None
    stores: list[str]
    encrypted: bool


class TargetDoc(TypedDict, total=False):
    """One restore target and what it holds now."""

    name: str
    database: str | None
    server: str | None
    last_refresh_at: str | None
    backup_id: str | None
    masked: bool
    unlisted: list[str]  # columns the last masked refresh kept because no rule names them


@dataclass(frozen=True)
class PageData:
    """Everything the status page shows. Lists are newest first.

    `max_backup_age_seconds`: the newest backup older than this makes the page unhealthy.
    `source`: host/database of the source, without a password. `generated_at` is "now"
    for every age on the page, which keeps rendering pure.
    """

    title: str
    generated_at: datetime
    schedule: str
    max_backup_age_seconds: float
    source: str
    drill_schedule: str | None = None
    next_cycle: str | None = None
    next_drill: str | None = None
    alerts: str | None = None
    cycles: Sequence[CycleDoc] = field(default_factory=list)
    drills: Sequence[DrillDoc] = field(default_factory=list)
    backups: Sequence[BackupDoc] = field(default_factory=list)
    targets: Sequence[TargetDoc] = field(default_factory=list)
