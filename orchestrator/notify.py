"""Alerts for one cycle or drill: healthchecks.io-style pings, a JSON webhook, and messages
to chat and mail channels through Apprise (NOTIFY_URLS, see `orchestrator.channels`).

`Notifier.cycle()` wraps a cycle. It pings `<healthcheck>/start` on entry and, on exit,
`<healthcheck>` or `<healthcheck>/fail`, and POSTs a JSON summary to the webhook on failure
(and on success when asked), and sends the same events to each Apprise channel as a short
title and a plain-text body. A notification never fails the job and never hides its error:
every HTTP call has a timeout and one retry, every call runs in its own thread that the job
stops waiting for at a fixed bound, failures are logged as warnings, counted (see
`failure_counts`, exported on /metrics) and swallowed, and an exception raised by the
cycle's body propagates unchanged.

Only the standard library talks HTTP here (`urllib.request`). Every string that leaves
the process passes through `orchestrator.logs.mask`; URLs (which may carry tokens) are
logged as scheme and host only.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator import channels, tasks
from orchestrator.errors import ConfigError
from orchestrator.formats import human_seconds, human_size, iso_z, utc
from orchestrator.logs import get_logger, mask
from orchestrator.records import CycleDoc, DrillDoc

__all__ = [
    "CycleReport",
    "Notifier",
    "StepReport",
    "channel_message",
    "drill_summary",
    "drill_text",
    "failure_counts",
    "safe_url",
    "slack_text",
    "summary_line",
]

log = get_logger(__name__)

_RETRY_PAUSE = 0.5  # seconds between the first attempt and the retry
_MAX_ERROR_CHARS = 300  # of one error in the human-readable texts
_failures: Counter[str] = Counter()
_failures_lock = threading.Lock()
Task = tuple[str, str, Callable[[], bool]]  # kind, what may be logged of the URL, the call


def failure_counts() -> dict[str, int]:
    """Notifications that failed or were abandoned in this process, by kind (`webhook`,
    `healthcheck`, `apprise`)."""
    with _failures_lock:
        return dict(_failures)


def _count_failure(kind: str) -> None:
    with _failures_lock:
        _failures[kind] += 1


@dataclass
class StepReport:
    """The outcome of one step of a cycle (`dump`, `upload`, `restore:backup`, `prune`, ...).

    `detail` holds step-specific values such as `size_bytes`, `backup_id` or `target`.
    """

    name: str
    ok: bool
    seconds: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CycleReport:
    """What one cycle did; filled by the caller inside `Notifier.cycle()`."""

    run_id: str
    started_at: datetime
    steps: list[StepReport] = field(default_factory=list)
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the cycle had no error, at least one step, and every step succeeded."""
        return self.error is None and bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed_steps(self) -> list[StepReport]:
        """The steps that did not succeed, in the order they were recorded."""
        return [s for s in self.steps if not s.ok]

    def step(self, name: str) -> StepReport | None:
        """Give the last recorded step called `name`, or None when there is none."""
        for step in reversed(self.steps):
            if step.name == name:
                return step
        return None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to finish, or None while the cycle has not finished."""
        if self.finished_at is None:
            return None
        return (utc(self.finished_at) - utc(self.started_at)).total_seconds()

    def as_dict(self) -> CycleDoc:
        """Give a JSON-ready summary with every string masked.

        Keys: `status` ("success" or "failure"), `run_id`, `started_at`, `finished_at`
        (ISO-8601 UTC ending in Z, or None), `duration_seconds`, `steps` (each with
        `name`, `status`, `ok`, `seconds`, `error` and `detail`), `error`.
        """
        duration = self.duration_seconds
        return {
            "status": "success" if self.ok else "failure",
            "run_id": mask(self.run_id),
            "started_at": iso_z(self.started_at),
            "finished_at": iso_z(self.finished_at) if self.finished_at else None,
            "duration_seconds": round(duration, 3) if duration is not None else None,
            "steps": [
                {
                    "name": mask(s.name),
                    "status": "success" if s.ok else "failure",
                    "ok": s.ok,
                    "seconds": round(s.seconds, 3),
                    "error": mask(s.error) if s.error is not None else None,
                    "detail": _json_safe(s.detail),
                }
                for s in self.steps
            ],
            "error": mask(self.error) if self.error is not None else None,
        }


def _json_safe(value: Any) -> Any:
    """Give `value` as JSON types with every string masked (unknown types become strings)."""
    if isinstance(value, str):
        return mask(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, dict):
        return {mask(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return mask(str(value))


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 1] + "…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary_line(report: CycleReport) -> str:
    """Give one plain line saying how the cycle ended, e.g. for a healthcheck ping's body.

    Success: `orchestrator cycle <run_id> succeeded in 1 min 02 s (4 steps)`. Failure names the
    failed steps, or the cycle's own error when no step failed. Masked.
    """
    duration = report.duration_seconds
    took = f" in {human_seconds(duration)}" if duration is not None else ""
    if report.ok:
        return mask(
            f"orchestrator cycle {report.run_id} succeeded{took} ({len(report.steps)} steps)"
        )
    failed = report.failed_steps
    if failed:
        what = "failed steps: " + ", ".join(s.name for s in failed)
    elif report.error is not None:
        what = _first_line(report.error) or "error"
    else:
        what = "no step ran"
    after = f" after {human_seconds(duration)}" if duration is not None else ""
    return mask(f"orchestrator cycle {report.run_id} failed{after}: {what}")


def drill_summary(document: DrillDoc) -> str:
    """One plain line saying how a drill ended: `orchestrator drill of <id> passed: RTO 2 min 05 s`,
    or `... failed: <first problem or error>`. Masked."""
    backup = document.get("backup_id") or "the newest backup"
    if document.get("status") == "success":
        rto = document.get("rto_seconds")
        took = f": RTO {human_seconds(rto)}" if isinstance(rto, int | float) else ""
        return mask(f"orchestrator drill of {backup} passed{took}")
    problems = document.get("problems") or []
    first = document.get("error") or (problems[0] if problems else "") or "failed"
    return mask(f"orchestrator drill of {backup} failed: {_first_line(str(first))}")


def drill_text(document: DrillDoc) -> str:
    """A Slack-compatible text for a drill: the summary line, then each problem."""
    ok = document.get("status") == "success"
    lines = [(":white_check_mark: " if ok else ":x: ") + _slack_escape(drill_summary(document))]
    for problem in (document.get("problems") or [])[:5]:
        lines.append(_slack_escape(mask(f"• {_first_line(str(problem))}")))
    return "\n".join(lines)


def slack_text(report: CycleReport) -> str:
    """Give a short Slack-compatible (mrkdwn) text for the cycle: a headline, then one line
    per failed step with its first error line, the cycle's own error, or on success the
    steps with their durations and the dump size. Masked and escaped for Slack."""
    lines = [(":white_check_mark: " if report.ok else ":x: ") + _slack_escape(summary_line(report))]
    if report.ok:
        parts = []
        for s in report.steps:
            size = s.detail.get("size_bytes")
            sized = f" {human_size(size)}" if isinstance(size, int | float) else ""
            parts.append(f"{s.name}{sized} {human_seconds(s.seconds)}")
        lines.append(_slack_escape(mask(" · ".join(parts))))
    else:
        for s in report.failed_steps:
            error = _first_line(s.error) if s.error else "failed"
            lines.append(_slack_escape(mask(f"• {s.name}: {error}")))
        if report.error is not None and report.failed_steps:
            lines.append(_slack_escape(mask(f"• error: {_first_line(report.error) or 'error'}")))
    return "\n".join(lines)


def channel_message(
    document: Mapping[str, Any], subject: str | None, page_url: str | None
) -> tuple[str, str]:
    """The title and plain-text body of a chat or mail message about a cycle or drill
    `document`: `orchestrator: cycle failed on neondb`, then the summary, the first error,
    the steps with their times, and the status page's address when given. Masked. Pure."""
    kind = str(document.get("kind") or "cycle")
    ok = document.get("status") == "success"
    verb = "failed" if not ok else "succeeded" if kind == "cycle" else "passed"
    title = f"orchestrator: {kind} {verb} on {subject or 'the source database'}"
    lines = []
    first = _first_error(document)
    if first:
        lines += [f"First error: {first}", ""]
    lines += ["Steps:", *(f"  {line}" for line in _step_lines(document))]
    if page_url:
        lines += ["", f"Status page: {page_url}"]
    return mask(title), mask("\n".join(lines))


def _first_error(document: Mapping[str, Any]) -> str | None:
    """The first failed step's error (`restore:dev: cannot connect`), else the job's own
    error, else the first problem a drill found."""
    for step in document.get("steps") or []:
        if not step.get("ok") and step.get("error"):
            return f"{step.get('name')}: {_first_line(str(step['error']))}"
    if document.get("error"):
        return _first_line(str(document["error"]))
    problems = document.get("problems") or []
    return _first_line(str(problems[0])) if problems else None


def _step_lines(document: Mapping[str, Any]) -> list[str]:
    """One line per step with its outcome and time (a drill: fetch, restore, verify, RTO)."""
    if "steps" in document:
        found = []
        for step in document["steps"]:
            size = (step.get("detail") or {}).get("size_bytes")
            sized = f" ({human_size(size)})" if isinstance(size, int | float) else ""
            outcome = "ok" if step.get("ok") else "FAILED"
            found.append(
                f"{step.get('name')} {outcome} {human_seconds(step.get('seconds') or 0)}{sized}"
            )
        return found or ["none ran"]
    parts = ("fetch", "restore", "verify", "rto")
    found = [
        f"{part.upper() if part == 'rto' else part} {human_seconds(document[part + '_seconds'])}"
        for part in parts
        if isinstance(document.get(f"{part}_seconds"), int | float)
    ]
    return found or ["none ran"]


def safe_url(url: str) -> str:
    """Give only the scheme, host and port of `url`, for logs (paths and queries often hold
    tokens); `<unparsable url>` when it cannot be read."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}{port}"


def _check_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"notification URL {safe_url(url)} is not an http:// or https:// URL")
    return url


def _ping_url(base: str, suffix: str) -> str:
    """`https://hc/abc/` + `/fail` → `https://hc/abc/fail`, keeping any query string."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + suffix
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class Notifier:
    """Sends the pings and the webhook of each cycle; see `cycle()`.

    `webhook_url` and `healthcheck_url` may be None (or empty) to skip them; `channel_urls`
    are Apprise URLs (checked by `channels.parse_channels`), messages about `subject` (the
    source database) linking to `page_url`. `timeout` bounds each HTTP attempt; one call
    makes at most two attempts, and the job waits at most `2 * timeout + 1.5` seconds for
    all of them together. Raises `ConfigError` when a webhook or ping URL is not http(s).
    """

    def __init__(
        self,
        webhook_url: str | None,
        healthcheck_url: str | None,
        notify_on_success: bool,
        timeout: float = 10.0,
        channel_urls: Sequence[str] = (),
        subject: str | None = None,
        page_url: str | None = None,
    ) -> None:
        self.webhook_url = _check_url(webhook_url)
        self.healthcheck_url = _check_url(healthcheck_url)
        self.notify_on_success = notify_on_success
        self.timeout = timeout
        self.channel_urls = list(channel_urls)
        self.subject = subject
        self.page_url = page_url

    @contextmanager
    def cycle(self, run_id: str) -> Iterator[CycleReport]:
        """Wrap one cycle: ping start, yield the report for the caller to fill, then report.

        On exit `finished_at` is set. When the body raised, `error` becomes the masked
        exception text and the ORIGINAL exception is re-raised unchanged after the
        notifications. The cycle counts as a failure when `report.ok` is False (a step
        failed, no step was recorded, or the body raised). Never raises on its own.
        """
        report = CycleReport(run_id=run_id, started_at=datetime.now(UTC))
        self.start()
        try:
            yield report
        except GeneratorExit:
            raise
        except BaseException as exc:
            report.finished_at = datetime.now(UTC)
            report.error = mask(str(exc)) or type(exc).__name__
            self._report(report)
            raise
        report.finished_at = datetime.now(UTC)
        self._report(report)

    def send(self, report: CycleReport) -> None:
        """Send the end-of-cycle ping and, when due, the webhook for a finished `report`.

        For callers that do not use `cycle()`. Never raises.
        """
        self._report(report)

    def start(self) -> None:
        """Ping `<healthcheck>/start` (for jobs that do not use `cycle()`). Never raises."""
        if self.healthcheck_url:
            url = _ping_url(self.healthcheck_url, "/start")
            self._run_all([self._http("healthcheck", url, b"", "")])

    def finish(self, ok: bool, document: CycleDoc | DrillDoc, summary: str, text: str) -> None:
        """Ping `<healthcheck>` or `<healthcheck>/fail` with `summary`, and on failure (and
        on success when asked) POST `document` with a Slack `text` to the webhook and send a
        message to each Apprise channel. Strings are masked. Never raises."""
        try:
            calls: list[Task] = []
            if self.healthcheck_url:
                url = _ping_url(self.healthcheck_url, "" if ok else "/fail")
                body = mask(summary).encode()
                calls.append(self._http("healthcheck", url, body, "text/plain; charset=utf-8"))
            if not ok or self.notify_on_success:
                calls += self._messages(document, text)
            self._run_all(calls)
        except Exception as exc:  # a notification never fails the job
            log.warning("notify.error", error=f"{type(exc).__name__}: {exc}")

    def _report(self, report: CycleReport) -> None:
        document = report.as_dict()
        document["kind"] = "cycle"
        self.finish(report.ok, document, summary_line(report), slack_text(report))

    def _messages(self, document: CycleDoc | DrillDoc, text: str) -> list[Task]:
        """The webhook's POST and one message per Apprise channel for a finished job."""
        calls = []
        if self.webhook_url:
            payload = {**_json_safe(document), "text": mask(text)}
            body = json.dumps(payload, default=str).encode()
            calls.append(self._http("webhook", self.webhook_url, body, "application/json"))
        if self.channel_urls:
            title, message = channel_message(document, self.subject, self.page_url)
            calls += [self._channel(url, title, message) for url in self.channel_urls]
        return calls

    def _http(self, kind: str, url: str, body: bytes, content_type: str) -> Task:
        return kind, safe_url(url), lambda: self._post(kind, url, body, content_type)

    def _channel(self, url: str, title: str, body: str) -> Task:
        def call() -> bool:
            failed = channels.send([url], title, body, self.timeout)
            for failure in failed:
                log.warning(
                    "notify.failed", kind="apprise", url=failure.channel, error=failure.reason
                )
            if not failed:
                log.debug("notify.sent", kind="apprise", url=channels.label(url))
            return not failed

        return "apprise", channels.label(url), call

    def _run_all(self, calls: list[Task]) -> None:
        """Run every call concurrently; give up waiting at the worst-case bound. Never raises."""
        try:
            self._run_concurrently(calls)
        except Exception as exc:  # e.g. no thread could be started: never fail the job
            log.warning("notify.error", error=f"{type(exc).__name__}: {exc}")

    def _run_concurrently(self, calls: list[Task]) -> None:
        """Each call in the background with the job's log context (its run_id); a call
        still running at the bound is abandoned (its daemon thread ends with the process)."""
        if not calls:
            return
        running = [
            (kind, shown, tasks.in_background(partial(_counted, kind, shown, call), "notify"))
            for kind, shown, call in calls
        ]
        bound = 2 * self.timeout + _RETRY_PAUSE + 1.0
        _done, late = futures.wait([future for _k, _s, future in running], timeout=bound)
        for kind, shown, future in running:
            if future in late:
                log.warning("notify.abandoned", kind=kind, url=shown)

    def _post(self, kind: str, url: str, body: bytes, content_type: str) -> bool:
        """POST `body` to `url`: one retry on a connection error or a 5xx answer, none on a
        timeout or a 4xx. Give True on a 2xx/3xx answer; log a warning and give False
        otherwise. Never raises."""
        headers = {"User-Agent": "orchestrator-notify"}
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            retry = False
            try:
                # the scheme was checked to be http(s) in __init__
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    response.read(64 * 1024)
                log.debug("notify.sent", kind=kind, url=safe_url(url), status=response.status)
                return True
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
                retry = exc.code >= 500
            except TimeoutError:
                error = f"no answer within {self.timeout:g}s"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    error = f"no answer within {self.timeout:g}s"
                else:
                    error = f"cannot connect: {exc.reason}"
                    retry = True
            except OSError as exc:
                error = f"connection failed: {exc}"
                retry = True
            except Exception as exc:  # e.g. http.client.HTTPException on a broken answer
                error = f"{type(exc).__name__}: {exc}"
                retry = True
            if not (retry and attempt == 1):
                break
            time.sleep(_RETRY_PAUSE)
        log.warning(
            "notify.failed", kind=kind, url=safe_url(url), attempts=attempt, error=mask(error)
        )
        return False


def _counted(kind: str, _shown: str, call: Callable[[], bool]) -> None:
    """Run one notification call; count it when it fails or raises. Never raises."""
    try:
        ok = call()
    except Exception as exc:
        log.warning("notify.error", kind=kind, error=mask(f"{type(exc).__name__}: {exc}"))
        ok = False
    if not ok:
        _count_failure(kind)
