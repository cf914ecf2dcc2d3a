"""Small pure helpers of the status page: reading loose values and safe text.

Human units and times are in `orchestrator.formats`."""

from __future__ import annotations

import html
import math
import re
from datetime import datetime

from orchestrator.formats import utc
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
    return utc(moment)


def first_line(text: str) -> str:
    """Give the first non-blank line of `text`, cut to 300 characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"
