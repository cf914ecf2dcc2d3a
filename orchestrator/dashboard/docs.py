"""Reading cycle and drill documents defensively: a missing key or a value of the wrong
type gives None or an empty list, never an exception. Texts given here are cleaned (see
`text.clean`) but not escaped."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.dashboard.model import CycleDoc, DrillDoc, StepDoc
from orchestrator.dashboard.text import as_number, as_text, clean, first_line, parse_time

SUCCESS = "success"
FAILURE = "failure"


def steps(cycle: CycleDoc) -> list[StepDoc]:
    """Give the cycle's steps that are mappings, in recorded order."""
    found = cycle.get("steps")
    return [s for s in found if isinstance(s, Mapping)] if isinstance(found, list) else []


def find_step(cycle: CycleDoc, name: str) -> StepDoc | None:
    """Give the last step called `name`, or None."""
    return next((s for s in reversed(steps(cycle)) if s.get("name") == name), None)


def detail(step: StepDoc | None) -> Mapping[str, Any]:
    """Give the step's `detail` mapping, or an empty one."""
    found = step.get("detail") if step is not None else None
    return found if isinstance(found, Mapping) else {}


def step_failed(step: StepDoc) -> bool:
    """True when the step says it failed (`status` "failure" or `ok` false)."""
    return step.get("status") == FAILURE or step.get("ok") is False


def step_succeeded(step: StepDoc) -> bool:
    """True when the step says it succeeded and nothing says otherwise."""
    return not step_failed(step) and (step.get("status") == SUCCESS or step.get("ok") is True)


def step_name(step: StepDoc) -> str:
    """Give the step's name, cleaned, or `step`."""
    return clean(as_text(step.get("name")) or "step")


def failed_stores(step: StepDoc) -> str | None:
    """Give `label: error` for each store the step's `detail["stores"]` does not call "ok",
    joined by "; ", or None when there is none."""
    stores = detail(step).get("stores")
    if not isinstance(stores, Mapping):
        return None
    bad = [f"{k}: {first_line(v)}" for k, v in stores.items() if isinstance(v, str) and v != "ok"]
    return "; ".join(bad) or None


def step_error(step: StepDoc) -> str:
    """Give `name — first error line`; for an upload without an error text, the stores
    that failed; `name — failed` when nothing says why."""
    error = as_text(step.get("error")) or failed_stores(step)
    return f"{step_name(step)} — {clean(first_line(error)) if error else 'failed'}"


def store_warnings(cycle: CycleDoc) -> list[str]:
    """Give `name — label: error` for each successful step that reports failed stores
    (an upload that reached some stores but not all)."""
    return [
        f"{step_name(s)} — {clean(bad)}"
        for s in steps(cycle)
        if not step_failed(s) and (bad := failed_stores(s)) is not None
    ]


def cycle_status(cycle: CycleDoc) -> str | None:
    """Give "success", "failure", or None when the document says neither."""
    status = cycle.get("status")
    return status if status in (SUCCESS, FAILURE) else None


def cycle_errors(cycle: CycleDoc) -> list[str]:
    """Give one text per failed step (see `step_error`); when no step failed, the cycle's own
    error's first line; empty when nothing failed."""
    failed = [step_error(s) for s in steps(cycle) if step_failed(s)]
    if failed:
        return failed
    error = as_text(cycle.get("error"))
    return [clean(first_line(error))] if error else []


def cycle_started(cycle: CycleDoc) -> datetime | None:
    """Give when the cycle started, or None."""
    return parse_time(cycle.get("started_at"))


def cycle_finished(cycle: CycleDoc) -> datetime | None:
    """Give when the cycle finished, else when it started, else None."""
    return parse_time(cycle.get("finished_at")) or cycle_started(cycle)


def dump_size(cycle: CycleDoc) -> float | None:
    """Give the size in bytes of the cycle's successful dump, or None."""
    dump = find_step(cycle, "dump")
    if dump is None or not step_succeeded(dump):
        return None
    return as_number(detail(dump).get("size_bytes"))


def dump_backup_id(cycle: CycleDoc) -> str | None:
    """Give the backup id the cycle's dump produced, cleaned, or None."""
    backup_id = as_text(detail(find_step(cycle, "dump")).get("backup_id"))
    return clean(backup_id) if backup_id else None


def drill_status(drill: DrillDoc) -> str | None:
    """Give "success", "failure", or None when the document says neither."""
    status = drill.get("status")
    return status if status in (SUCCESS, FAILURE) else None


def drill_problem(drill: DrillDoc) -> str | None:
    """Give the drill's error, else its first problem (first line, cleaned), else None."""
    error = as_text(drill.get("error"))
    if error is None:
        problems = drill.get("problems")
        texts = [p for p in problems if as_text(p)] if isinstance(problems, list) else []
        error = texts[0] if texts else None
    return clean(first_line(error)) if error else None


def drill_rto(drill: DrillDoc) -> float | None:
    """Give the drill's RTO in seconds: `rto_seconds`, else fetch + restore, else None."""
    rto = as_number(drill.get("rto_seconds"))
    if rto is not None:
        return rto
    fetch, restore = as_number(drill.get("fetch_seconds")), as_number(drill.get("restore_seconds"))
    return fetch + restore if fetch is not None and restore is not None else None
