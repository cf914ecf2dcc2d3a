"""What the status page is rendered from: plain, JSON-like values (no I/O, no settings).

The documents are the run records of `orchestrator.records`, the one shape a cycle, drill
or restore has from the run to the alert, the history, `status --json` and this page.
History written by older versions may lack keys, and every value may be None: the renderer
reads each key defensively and shows "—" for what is missing or of the wrong type, so a
damaged record never breaks the page.

Times inside documents are ISO-8601 strings in UTC ending in `Z` (as
`orchestrator.notify.CycleReport.as_dict()` writes them); `PageData.generated_at` is an
aware datetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.records import (
    BackupDoc,
    CycleDoc,
    DrillDoc,
    RunningDoc,
    StepDoc,
    TargetDoc,
)

__all__ = [
    "BackupDoc",
    "CycleDoc",
    "DrillDoc",
    "PageData",
    "RunningDoc",
    "StepDoc",
    "TargetDoc",
]


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
    running: RunningDoc | None = None  # the cycle or drill running now, if any
