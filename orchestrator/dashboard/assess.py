"""The page's verdict: healthy or not, and why (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.dashboard import docs
from orchestrator.dashboard.model import PageData
from orchestrator.dashboard.text import clean, parse_time
from orchestrator.formats import ago, human_age, human_seconds, utc

__all__ = ["Headline", "assess"]


@dataclass(frozen=True)
class Headline:
    """The verdict. `reasons`: what is wrong (empty exactly when healthy); `facts`: the
    checks that passed. Both are plain masked text, one short sentence each."""

    healthy: bool
    reasons: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


Check = tuple[bool, str]


def assess(data: PageData) -> Headline:
    """Give the headline at `data.generated_at`.

    Healthy only when the newest backup in the catalog is at most
    `max_backup_age_seconds` old, the newest cycle succeeded, and the newest drill, if
    any, succeeded.
    """
    now = utc(data.generated_at)
    checks = [_backup_check(data, now), _cycle_check(data, now)]
    drill = _drill_check(data, now)
    if drill is not None:
        checks.append(drill)
    reasons = [clean(text) for ok, text in checks if not ok]
    facts = [clean(text) for ok, text in checks if ok]
    return Headline(healthy=not reasons, reasons=reasons, facts=facts)


def _backup_check(data: PageData, now: datetime) -> Check:
    if not data.backups:
        return False, "no backups yet"
    times = [t for b in data.backups if (t := parse_time(b.get("created_at"))) is not None]
    if not times:
        return False, "no backup has a readable creation time"
    age = max(0.0, (now - max(times)).total_seconds())
    limit = data.max_backup_age_seconds
    if age > limit:
        return False, f"newest good backup is {human_age(age)} old (limit {human_age(limit)})"
    return True, f"newest backup is {human_age(age)} old (limit {human_age(limit)})"


def _cycle_check(data: PageData, now: datetime) -> Check:
    if not data.cycles:
        return False, "no cycles recorded yet"
    cycle = data.cycles[0]
    status = docs.cycle_status(cycle)
    finished = docs.cycle_finished(cycle)
    when = f" {ago(finished, now)}" if finished is not None else ""
    if status == docs.SUCCESS:
        return True, f"last cycle succeeded{when}"
    if status == docs.FAILURE:
        errors = docs.cycle_errors(cycle)
        return False, f"last cycle failed{when}: " + ("; ".join(errors) or "no error recorded")
    return False, "last cycle's outcome is not recorded"


def _drill_check(data: PageData, now: datetime) -> Check | None:
    if not data.drills:
        return None
    drill = data.drills[0]
    status = docs.drill_status(drill)
    finished = parse_time(drill.get("finished_at")) or parse_time(drill.get("started_at"))
    when = f" {ago(finished, now)}" if finished is not None else ""
    if status == docs.SUCCESS:
        rto = docs.drill_rto(drill)
        return True, f"last drill passed{when}" + (
            f" (RTO {human_seconds(rto)})" if rto is not None else ""
        )
    if status == docs.FAILURE:
        return (
            False,
            f"last drill failed{when}: {docs.drill_problem(drill) or 'no problem recorded'}",
        )
    return False, "last drill's outcome is not recorded"
