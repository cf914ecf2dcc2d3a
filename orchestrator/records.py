"""The run records: the one shape each cycle, drill, restore, backup and target has from
the run that made it to the alert, the history kept in the stores, `status --json` and the
status page. Pure: TypedDicts of JSON values, no I/O.

They are `total=False`: a record written by an older version may lack keys, and its
readers (the page above all) read each key defensively. Times are ISO-8601 strings in UTC
ending in `Z` (`formats.iso_z`).
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "BackupDoc",
    "CycleDoc",
    "DrillDoc",
    "RestoreDoc",
    "RunDoc",
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


class RunDoc(TypedDict, total=False):
    """What every run kept in the history holds: `kind` (`cycle`, `drill`, `restore`) and
    `database` (added by the history), its outcome, id, start, end and first error."""

    kind: str
    database: str | None
    status: str
    run_id: str
    started_at: str | None
    finished_at: str | None
    error: str | None


class CycleDoc(RunDoc, total=False):
    """One cycle, as `notify.CycleReport.as_dict()` writes it (the history adds `kind` and
    `database`)."""

    duration_seconds: float | None
    steps: list[StepDoc]


class DrillDoc(RunDoc, total=False):
    """One restore drill. `rto_seconds` is fetch + restore; `server` is a URL without a
    password (the page strips credentials anyway)."""

    backup_id: str | None
    server: str | None
    fetch_seconds: float | None
    restore_seconds: float | None
    verify_seconds: float | None
    rto_seconds: float | None
    tables: int | None
    rows: int | None
    problems: list[str]
    scratch_database: str
    pg_restore_version: str
    ignored_errors: list[str]


class RestoreDoc(RunDoc, total=False):
    """One restore by `orchestrator restore` (the cycle's restores are its steps)."""

    target: str
    server: str | None
    backup_id: str | None
    strategy: str | None
    seconds: float | None
    masked: bool
    masking: dict[str, Any] | None


class BackupDoc(TypedDict, total=False):
    """One backup in the catalog (it exists where its manifest exists), as `list --json`
    and `status --json` print it."""

    id: str
    key: str
    created_at: str | None
    database: str
    size_bytes: int | None
    sha256: str
    encrypted: bool
    format: str
    jobs: int
    files: int
    server_version: str
    pg_dump_version: str
    tables: int
    rows: int
    stores: list[str]


class RunningDoc(TypedDict, total=False):
    """A job running now (progress.Activity): its kind, start, running steps and counts."""

    kind: str
    started_at: str
    seconds: float
    steps: list[str]
    dumped_bytes: int
    stored_bytes: int
    tables_done: int
    tables_total: int


class TargetDoc(TypedDict, total=False):
    """One restore target and what it holds now."""

    name: str
    database: str | None
    server: str | None
    last_refresh_at: str | None
    backup_id: str | None
    masked: bool
    unlisted: list[str]  # columns the last masked refresh kept because no rule names them
