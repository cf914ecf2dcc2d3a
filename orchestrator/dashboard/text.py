"""Small pure helpers of the status page: reading loose values, human units, safe text."""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime

from orchestrator.logs import MASK, mask

MISSING = "—"
_MAX_LINE = 300  # characters of one error line shown on the page

# `scheme://user:password@host/path?query`: the user info goes, and so does the query
# (presigned URLs and webhooks carry tokens there).
_URL = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/?#]*@)?"
    r"(?P<rest>[^\s?#]*)(?P<query>\?[^\s#]*)?",
    re.IGNORECASE,
)
# `PGPASSWORD=x`, `AWS_SECRET_ACCESS_KEY: x`, `api_token=x`: logs.mask() knows only a bare
# `password=`, and this page shows free text from errors.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<head>\b\w*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)\w*\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;]+)",
    re.IGNORECASE,
)


def clean(text: str) -> str:
    """Give `text` fit to show: secrets masked (`orchestrator.logs.mask` and assignments
    like `PGPASSWORD=...`), user info and query strings cut from every URL. Not escaped."""
    text = mask(text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: m["head"] + MASK, text)
    return _URL.sub(_without_credentials, text)


def _without_credentials(match: re.Match[str]) -> str:
    query = "?…" if match["query"] else ""
    return f"{match['scheme']}{match['rest']}{query}"


def safe(text: str) -> str:
    """Give `text` cleaned (see `clean`) and HTML-escaped, quotes included."""
    return html.escape(clean(text), quote=True)


def as_text(value: object) -> str | None:
    """Give `value` when it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def as_number(value: object) -> float | None:
    """Give `value` as a float when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_time(value: object) -> datetime | None:
    """Give an aware UTC datetime from an ISO-8601 string (a naive one is taken as UTC),
    or None when `value` is missing or unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def first_line(text: str) -> str:
    """Give the first non-blank line of `text`, cut to 300 characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def _one_decimal(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def human_size(size: float) -> str:
    """Give a byte count in binary units: `512 B`, `89.2 MiB`, `1.4 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("not reached")


def human_seconds(seconds: float) -> str:
    """Give a duration as a stopwatch would: `4.2 s`, `3 min 05 s`, `1 h 02 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def human_age(seconds: float) -> str:
    """Give a span in one unit, rounded as a person would say it: `40 s`, `25 min`,
    `26 h`, `30.5 h`, `4 d`."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 120 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{_one_decimal(seconds / 3600)} h"
    return f"{_one_decimal(seconds / 86400)} d"


def ago(moment: datetime, now: datetime) -> str:
    """Give how long before `now` `moment` was: `3 h ago`, `just now`, `in 5 min`."""
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    return f"{human_age(seconds)} ago" if seconds > 0 else f"in {human_age(seconds)}"


def stamp(moment: datetime) -> str:
    """Give `moment` as `2026-11-25 06:00 UTC`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime) -> str:
    """Give `moment` as ISO-8601 UTC ending in Z (for `<time datetime>`)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
