"""Logging set-up: structlog to stderr, JSON lines off a TTY, readable lines on one.

Every event passes through `redact`, which masks registered secret values and any
password embedded in a URL or a libpq keyword string, wherever it appears in the event.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, ParamSpec, TextIO, TypeVar

import structlog

P = ParamSpec("P")
R = TypeVar("R")
_SECRETS: set[str] = set()
MASK = "***"
# the password runs to the last @ before the host: an unencoded @ inside it is masked too
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>\S*?)(?=@[^@\s/?#]*(?:[/?#\s]|$))", re.I
)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\S+)", re.I)
# NAME=value where the name says it holds a secret (PGPASSWORD=, AWS_SECRET_ACCESS_KEY=,
# ?token=, api_key=): the value is masked; a message that only names the setting is not
_NAMED_SECRET = re.compile(
    r"(?P<head>\b\w*(?:password|passwd|secret|token|api_?key|private_?key)\w*=)(?P<pw>[^\s&]+)",
    re.I,
)


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked in every later log line (ignores short values)."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """Give `text` with registered secrets and URL / keyword passwords replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _NAMED_SECRET.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return mask(str(value))
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every value of the event."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(value)
    return event_dict


def _redact_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    # Tracebacks and exception text are rendered last; mask the final string too.
    return mask(rendered) if isinstance(rendered, str) else rendered


def configure(level: str = "INFO", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Set up structlog for the process: JSON when `stream` is not a TTY (or `json=True`)."""
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def with_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap `fn` to run in a copy of the caller's context, so that log lines from a worker
    thread carry the same bound values (run_id, step) as the thread that submitted it."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run


def get_logger(name: str) -> Any:
    """Give a lazy structlog logger bound to `component=<module>` (honours later configure())."""
    return structlog.get_logger(component=name.removeprefix("orchestrator."))
