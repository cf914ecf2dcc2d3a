"""Health of the `run` loop: what the last cycles did, `/healthz` and Prometheus `/metrics`.

`HealthState` collects finished `CycleReport`s (thread-safe), `render_metrics` turns it into
the Prometheus text exposition format 0.0.4, and `serve` answers `/healthz` and `/metrics`
from a small threaded HTTP server in a daemon thread.

Step names this module understands: `dump` (its `detail["size_bytes"]` is the dump size)
and `restore:<target>` (per-target last success). Every step's duration is exported.
"""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orchestrator.logs import mask
from orchestrator.notify import CycleReport

__all__ = ["CONTENT_TYPE", "HealthServer", "HealthState", "render_metrics", "serve"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RESTORE_PREFIX = "restore:"


def _utc(moment: datetime) -> datetime:
    """Give `moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ago(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class _Snapshot:
    started_at: datetime
    last_success: datetime | None
    last_report: CycleReport | None
    successes: int
    failures: int
    dump_size_bytes: int | float | None
    target_success: dict[str, datetime]


class HealthState:
    """What the loop has done since the process started. Every method is thread-safe.

    `started_at` (default: now) starts the grace period during which the process counts as
    healthy before its first successful cycle.
    """

    def __init__(self, started_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._started_at = _utc(started_at or datetime.now(UTC))
        self._last_success: datetime | None = None
        self._last_report: CycleReport | None = None
        self._successes = 0
        self._failures = 0
        self._dump_size: int | float | None = None
        self._target_success: dict[str, datetime] = {}

    def record(self, report: CycleReport) -> None:
        """Remember a finished cycle (a copy of it); `finished_at` defaults to now if unset."""
        report = copy.deepcopy(report)
        finished = _utc(report.finished_at or datetime.now(UTC))
        with self._lock:
            self._last_report = report
            if report.ok:
                self._successes += 1
                self._last_success = finished
            else:
                self._failures += 1
            dump = report.step("dump")
            size = dump.detail.get("size_bytes") if dump is not None and dump.ok else None
            if isinstance(size, int | float) and not isinstance(size, bool):
                self._dump_size = size
            for step in report.steps:
                if step.ok and step.name.startswith(RESTORE_PREFIX):
                    self._target_success[step.name.removeprefix(RESTORE_PREFIX)] = finished

    @property
    def started_at(self) -> datetime:
        """When the grace period started (UTC)."""
        return self._started_at

    @property
    def last_success(self) -> datetime | None:
        """When the newest successful cycle finished (UTC), or None before the first one."""
        with self._lock:
            return self._last_success

    @property
    def last_report(self) -> CycleReport | None:
        """The newest recorded cycle, successful or not, or None before the first one."""
        with self._lock:
            return self._last_report

    def healthy(self, now: datetime, max_age: timedelta) -> tuple[bool, str]:
        """Give (healthy, reason) at `now`.

        Unhealthy when the newest successful cycle finished more than `max_age` before
        `now`, or when there has been none and more than `max_age` has passed since the
        state was created. Exactly `max_age` still counts as healthy.
        """
        now = _utc(now)
        snap = self._snapshot()
        limit = _ago(max_age.total_seconds())
        last = snap.last_report
        failed_note = ""
        if last is not None and not last.ok:
            failed = ", ".join(s.name for s in last.failed_steps) or mask(last.error or "error")
            failed_note = f"; last cycle {last.run_id} failed: {failed.splitlines()[0]}"
        if snap.last_success is not None:
            age = (now - snap.last_success).total_seconds()
            stamp = snap.last_success.isoformat(timespec="seconds").replace("+00:00", "Z")
            if age > max_age.total_seconds():
                return False, (
                    f"newest successful cycle finished {_ago(age)} ago ({stamp}), "
                    f"older than {limit}{failed_note}"
                )
            return True, f"newest successful cycle finished {_ago(age)} ago ({stamp})"
        up = (now - snap.started_at).total_seconds()
        if up > max_age.total_seconds():
            return (
                False,
                f"no successful cycle in {_ago(up)} since start (limit {limit}){failed_note}",
            )
        return True, f"no successful cycle yet, started {_ago(up)} ago (limit {limit}){failed_note}"

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            return _Snapshot(
                started_at=self._started_at,
                last_success=self._last_success,
                last_report=self._last_report,
                successes=self._successes,
                failures=self._failures,
                dump_size_bytes=self._dump_size,
                target_success=dict(self._target_success),
            )


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        rendered = ""
        if labels:
            rendered = "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"
        self.lines.append(f"{name}{rendered} {_number(value)}")


def render_metrics(state: HealthState, now: datetime) -> str:
    """Give the Prometheus text exposition (format 0.0.4) of `state` at `now`. Pure.

    Families: `orchestrator_last_success_timestamp_seconds` (0 before the first success),
    `orchestrator_last_success_age_seconds` (only after one), `orchestrator_last_cycle_success`,
    `orchestrator_cycles_total{status}`, `orchestrator_step_duration_seconds{step}` and
    `orchestrator_last_cycle_timestamp_seconds` (last cycle), `orchestrator_dump_size_bytes`,
    `orchestrator_target_last_success_timestamp_seconds{target}`. A family with nothing to
    report yet has its HELP and TYPE lines only.
    """
    snap = state._snapshot()
    now = _utc(now)
    out = _Exposition()

    out.family(
        "orchestrator_last_success_timestamp_seconds",
        "gauge",
        "Unix time the newest successful cycle finished (0: none since start).",
    )
    out.sample(
        "orchestrator_last_success_timestamp_seconds",
        snap.last_success.timestamp() if snap.last_success else 0,
    )
    out.family(
        "orchestrator_last_success_age_seconds",
        "gauge",
        "Seconds since the newest successful cycle finished.",
    )
    if snap.last_success is not None:
        age = max(0.0, (now - snap.last_success).total_seconds())
        out.sample("orchestrator_last_success_age_seconds", age)

    last = snap.last_report
    out.family(
        "orchestrator_last_cycle_success",
        "gauge",
        "1 when the newest cycle succeeded, 0 when it failed.",
    )
    if last is not None:
        out.sample("orchestrator_last_cycle_success", 1 if last.ok else 0)
    out.family(
        "orchestrator_last_cycle_timestamp_seconds",
        "gauge",
        "Unix time the newest cycle finished, successful or not.",
    )
    if last is not None and last.finished_at is not None:
        out.sample("orchestrator_last_cycle_timestamp_seconds", _utc(last.finished_at).timestamp())

    out.family("orchestrator_cycles_total", "counter", "Cycles finished since start, by outcome.")
    out.sample("orchestrator_cycles_total", snap.successes, {"status": "success"})
    out.sample("orchestrator_cycles_total", snap.failures, {"status": "failure"})

    out.family(
        "orchestrator_step_duration_seconds",
        "gauge",
        "Duration of each step of the newest cycle.",
    )
    if last is not None:
        durations: dict[str, float] = {}
        for step in last.steps:  # a step recorded twice: the last one wins
            durations[step.name] = step.seconds
        for name, seconds in durations.items():
            out.sample("orchestrator_step_duration_seconds", seconds, {"step": mask(name)})

    out.family(
        "orchestrator_dump_size_bytes",
        "gauge",
        "Size of the newest successful dump.",
    )
    if snap.dump_size_bytes is not None:
        out.sample("orchestrator_dump_size_bytes", snap.dump_size_bytes)

    out.family(
        "orchestrator_target_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the cycle that last restored each target successfully.",
    )
    for target, moment in sorted(snap.target_success.items()):
        out.sample(
            "orchestrator_target_last_success_timestamp_seconds",
            moment.timestamp(),
            {"target": mask(target)},
        )
    return "\n".join(out.lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # seconds a client may take to send its request
    server_version = "orchestrator"
    sys_version = ""

    def _answer(self, head_only: bool) -> None:
        path = self.path.split("?", 1)[0]
        now = datetime.now(UTC)
        status, kind = 200, "text/plain; charset=utf-8"
        if path == "/healthz":
            ok, reason = self.server.state.healthy(now, self.server.max_age)
            status, body = (200, f"ok: {reason}\n") if ok else (503, f"unhealthy: {reason}\n")
        elif path == "/metrics":
            body, kind = render_metrics(self.server.state, now), CONTENT_TYPE
        else:
            status, body = 404, "not found: try /healthz or /metrics\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no line per request on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: HealthState, max_age: timedelta) -> None:
        self.state = state
        self.max_age = max_age
        super().__init__(address, _Handler)


class HealthServer:
    """A running `/healthz` + `/metrics` server; `port` is the bound port."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    def stop(self) -> None:
        """Stop answering and close the socket; waits up to 5 s for the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(state: HealthState, host: str, port: int, max_age: timedelta) -> HealthServer:
    """Start serving `state` on `host:port` (port 0: any free port) in a daemon thread.

    GET/HEAD `/healthz`: 200 `ok: <reason>` or 503 `unhealthy: <reason>` (see
    `HealthState.healthy`); `/metrics`: 200 in the Prometheus text format; anything else
    404. Gives the running `HealthServer`; raises `OSError` when the address cannot be
    bound (port in use, unknown host).
    """
    server = _Server((host, port), state, max_age)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.2,), name="health-server", daemon=True
    )
    thread.start()
    return HealthServer(server, thread)
