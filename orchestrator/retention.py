"""Pure retention policy: decide which backup snapshots to keep.

The rules follow restic's ``forget`` (``--keep-last``, ``--keep-hourly``, ...,
``--keep-within``) with a few deliberate differences, all documented on
:func:`apply_policy`. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = [
    "Decision",
    "Duration",
    "Policy",
    "Snapshot",
    "apply_policy",
    "parse_duration",
]

_DURATION_RE = re.compile(
    r"(?:(?P<y>[0-9]+)y)?(?:(?P<m>[0-9]+)m)?(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?"
)

BucketKey = tuple[int, ...]


@dataclass(frozen=True)
class Duration:
    """A calendar duration (restic style): years, months, days and hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def __post_init__(self) -> None:
        values = [getattr(self, f.name) for f in fields(self)]
        if any(v < 0 for v in values) or not any(values):
            raise ValueError(f"a duration needs parts >= 0, not all 0: {self!r}")

    def __str__(self) -> str:
        """Return the canonical form, e.g. ``1y6m`` or ``14d``."""
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{value}{unit}" for value, unit in parts if value)

    def subtract_from(self, dt: datetime) -> datetime:
        """Return ``dt`` minus this duration.

        Years, months and days are calendar steps on ``dt``'s wall clock; a day of
        month that does not exist is clamped to the month's end (Mar 31 - 1m is
        Feb 28 or 29). Hours are then subtracted as elapsed time (in UTC when
        ``dt`` is aware). Raises ``OverflowError`` or ``ValueError`` when the
        result falls before year 1.
        """
        year, month = divmod(dt.year * 12 + dt.month - 1 - self.years * 12 - self.months, 12)
        if year < 1:
            raise ValueError(f"{dt.isoformat()} - {self} is before year 1")
        last_day = calendar.monthrange(year, month + 1)[1]
        shifted = dt.replace(year=year, month=month + 1, day=min(dt.day, last_day))
        shifted -= timedelta(days=self.days)
        if self.hours == 0 or shifted.tzinfo is None:
            return shifted - timedelta(hours=self.hours)
        return (shifted.astimezone(UTC) - timedelta(hours=self.hours)).astimezone(dt.tzinfo)


def parse_duration(text: str) -> Duration:
    """Parse a duration such as ``7d``, ``2w`` (14 days), ``1y6m``, ``12h`` or ``1y2m3d4h``.

    Units must appear in the order y, m, w, d, h, each at most once. Returns the
    :class:`Duration`; raises ``ValueError`` on anything else, including an empty
    or all-zero duration.
    """
    match = _DURATION_RE.fullmatch(text)
    groups = match.groupdict("0") if match else {}
    numbers = {unit: int(value) for unit, value in groups.items()}
    if not any(numbers.values()):
        raise ValueError(f"{text!r} is not a duration like 7d, 2w, 1y6m or 12h")
    return Duration(
        years=numbers["y"],
        months=numbers["m"],
        days=numbers["w"] * 7 + numbers["d"],
        hours=numbers["h"],
    )


@dataclass(frozen=True)
class Policy:
    """How many snapshots to keep per rule; the rules are OR-ed.

    Counts must be non-negative (restic's ``-1`` meaning "unlimited" is not
    supported). ``tz`` is the calendar used for hour/day/week/month/year buckets
    and for the ``within`` arithmetic.
    """

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    tz: tzinfo = UTC

    def __post_init__(self) -> None:
        for name, count in self.counts():
            if count < 0:
                raise ValueError(f"retention count {name} must be >= 0, not {count}")

    def counts(self) -> tuple[tuple[str, int], ...]:
        """Return ``(rule name, count)`` for last, hourly, daily, weekly, monthly, yearly."""
        names = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        return tuple((name, getattr(self, name)) for name in names)

    @property
    def is_empty(self) -> bool:
        """True when every count is 0 and there is no ``within``: such a policy keeps nothing."""
        return self.within is None and not any(count for _, count in self.counts())


@dataclass(frozen=True)
class Snapshot:
    """One backup: an opaque id and its timezone-aware creation time."""

    id: str
    created_at: datetime

    def __post_init__(self) -> None:
        if self.created_at.utcoffset() is None:
            raise ValueError(f"snapshot {self.id}: created_at must be timezone-aware")


@dataclass(frozen=True)
class Decision:
    """Whether a snapshot is kept, and by which rules (empty when removed)."""

    snapshot: Snapshot
    keep: bool
    reasons: tuple[str, ...]


_BUCKET_KEYS: dict[str, Callable[[datetime], BucketKey]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: (t.isocalendar().year, t.isocalendar().week),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


def _bucket_winners(
    ordered: Sequence[Snapshot], count: int, rule: str, tz: tzinfo
) -> Iterator[int]:
    """Yield the index of the newest snapshot in each of the ``count`` newest buckets."""
    seen: set[BucketKey] = set()
    for index, snapshot in enumerate(ordered):
        if len(seen) >= count:
            return
        bucket = _BUCKET_KEYS[rule](snapshot.created_at.astimezone(tz))
        if bucket not in seen:
            seen.add(bucket)
            yield index


def _winners(ordered: Sequence[Snapshot], rule: str, count: int, tz: tzinfo) -> Iterator[int]:
    """Yield the indexes of ``ordered`` (newest first) that the count rule keeps."""
    if rule == "last":
        return iter(range(min(count, len(ordered))))
    return _bucket_winners(ordered, count, rule, tz)


def _window_start(newest: datetime, within: Duration, tz: tzinfo) -> datetime:
    """Return ``newest - within`` in ``tz``'s calendar, or the earliest time if that underflows."""
    try:
        return within.subtract_from(newest.astimezone(tz))
    except (OverflowError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


def apply_policy(snapshots: Sequence[Snapshot], policy: Policy) -> list[Decision]:
    """Decide, for every snapshot, whether ``policy`` keeps it.

    Returns one :class:`Decision` per input snapshot (duplicates included), newest
    first; equal ``created_at`` are ordered by id, descending. Returns ``[]`` for
    no snapshots. Raises ``ValueError`` if ``policy.is_empty``.

    Rules, as in restic's ``forget``, each independent and OR-ed:

    * ``last N``: the N newest snapshots (reason ``"last"``).
    * ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` N: walking newest
      first, the first snapshot of each bucket not seen yet is kept, until N
      buckets are kept. Buckets are computed in ``policy.tz``; weeks are ISO
      weeks (``isocalendar()`` year and week).
    * ``within D``: every snapshot with ``created_at >= newest - D`` (reason
      ``"within <D>"``, e.g. ``"within 14d"``), relative to the newest snapshot,
      not to now.

    Reasons are listed in that rule order. The newest snapshot is always kept;
    ``"newest"`` is added only if no rule kept it (with a non-empty policy every
    rule keeps it, so this is a safety net that does not occur in practice).

    Differences from restic: ``within`` is inclusive (restic: strictly after) and
    clamps month ends (Go's AddDate overflows Mar 31 - 1m into March); restic
    0.17+ also keeps the oldest snapshot while a bucket count is left, this does
    not; ties are broken by id rather than by input order.
    """
    if policy.is_empty:
        raise ValueError("a retention policy that keeps nothing is refused")
    ordered = sorted(snapshots, key=lambda s: (s.created_at, s.id), reverse=True)
    if not ordered:
        return []
    reasons: list[list[str]] = [[] for _ in ordered]
    for rule, count in policy.counts():
        for index in _winners(ordered, rule, count, policy.tz):
            reasons[index].append(rule)
    if policy.within is not None:
        start = _window_start(ordered[0].created_at, policy.within, policy.tz)
        for index, snapshot in enumerate(ordered):
            if snapshot.created_at >= start:
                reasons[index].append(f"within {policy.within}")
    if not reasons[0]:
        reasons[0].append("newest")
    return [Decision(s, bool(r), tuple(r)) for s, r in zip(ordered, reasons, strict=True)]
