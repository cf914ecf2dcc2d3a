"""Health of the `run` loop: what the last cycles and drills did, `/healthz`, Prometheus
`/metrics` and the status page at `/`.

`HealthState` collects finished `CycleReport`s and drill outcomes (thread-safe),
`render_metrics` turns it into the Prometheus text exposition format 0.0.4 through
prometheus-client, and `serve` answers `/healthz`, `/metrics` and `/` (a page the caller
renders) from a small threaded HTTP server in a daemon thread.

Step names this module understands: `dump` (its `detail["size_bytes"]` is the dump size)
and `restore:<target>` (per-target last success). Every step's duration is exported.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from orchestrator.formats import human_age, iso_z, utc
from orchestrator.logs import mask
from orchestrator.notify import CycleReport, failure_counts

__all__ = [
    "CONTENT_TYPE",
    "DrillOutcome",
    "HealthServer",
    "HealthState",
    "Seed",
    "render_metrics",
    "serve",
]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
HTML = "text/html; charset=utf-8"
RESTORE_PREFIX = "restore:"


@dataclass(frozen=True)
class DrillOutcome:
    """What the metrics say of one finished drill."""

    ok: bool
    finished_at: datetime
    rto_seconds: float | None = None


@dataclass(frozen=True)
class Seed:
    """What the history in the stores says, to start from after a restart: the newest
    cycle, the newest successful one's end, its dump size, each target's last refresh and
    the newest drill."""

    last_report: CycleReport | None = None
    last_success: datetime | None = None
    dump_size_bytes: int | float | None = None
    target_success: dict[str, datetime] | None = None
    last_drill: DrillOutcome | None = None


@dataclass(frozen=True)
class _Snapshot:
    started_at: datetime
    last_success: datetime | None
    last_report: CycleReport | None
    successes: int
    failures: int
    dump_size_bytes: int | float | None
    target_success: dict[str, datetime]
    last_drill: DrillOutcome | None
    drills_passed: int
    drills_failed: int


class HealthState:
    """What the loop has done since the process started. Every method is thread-safe.

    `started_at` (default: now) starts the grace period during which the process counts as
    healthy before its first successful cycle.
    """

    def __init__(self, started_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._started_at = utc(started_at or datetime.now(UTC))
        self._last_success: datetime | None = None
        self._last_report: CycleReport | None = None
        self._successes = 0
        self._failures = 0
        self._dump_size: int | float | None = None
        self._target_success: dict[str, datetime] = {}
        self._last_drill: DrillOutcome | None = None
        self._drills = {True: 0, False: 0}

    def seed(self, found: Seed) -> None:
        """Start from what the history says (after a restart); what this process recorded
        already wins. The `_total` counters stay counts of this process."""
        with self._lock:
            self._last_report = self._last_report or found.last_report
            self._last_success = self._last_success or (
                utc(found.last_success) if found.last_success else None
            )
            if self._dump_size is None:
                self._dump_size = found.dump_size_bytes
            for target, moment in (found.target_success or {}).items():
                self._target_success.setdefault(target, utc(moment))
            self._last_drill = self._last_drill or found.last_drill

    def record_drill(self, drill: DrillOutcome) -> None:
        """Remember a finished drill."""
        with self._lock:
            self._last_drill = drill
            self._drills[drill.ok] += 1

    def record(self, report: CycleReport) -> None:
        """Remember a finished cycle (a copy of it); `finished_at` defaults to now if unset."""
        report = copy.deepcopy(report)
        finished = utc(report.finished_at or datetime.now(UTC))
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
        now = utc(now)
        snap = self._snapshot()
        limit = human_age(max_age.total_seconds())
        last = snap.last_report
        failed_note = ""
        if last is not None and not last.ok:
            failed = ", ".join(s.name for s in last.failed_steps) or mask(last.error or "error")
            failed_note = f"; last cycle {last.run_id} failed: {failed.splitlines()[0]}"
        if snap.last_success is not None:
            age = (now - snap.last_success).total_seconds()
            stamp = iso_z(snap.last_success)
            if age > max_age.total_seconds():
                return False, (
                    f"newest successful cycle finished {human_age(age)} ago ({stamp}), "
                    f"older than {limit}{failed_note}"
                )
            return True, f"newest successful cycle finished {human_age(age)} ago ({stamp})"
        up = (now - snap.started_at).total_seconds()
        if up > max_age.total_seconds():
            return (
                False,
                f"no successful cycle in {human_age(up)} since start (limit {limit}){failed_note}",
            )
        started = f"started {human_age(up)} ago"
        return True, f"no successful cycle yet, {started} (limit {limit}){failed_note}"

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
                last_drill=self._last_drill,
                drills_passed=self._drills[True],
                drills_failed=self._drills[False],
            )


class _StateCollector(Collector):
    """The metric families of one snapshot of the state, at one moment."""

    def __init__(self, snap: _Snapshot, now: datetime) -> None:
        self.snap = snap
        self.now = now

    def collect(self) -> Iterator[Metric]:
        yield from self._cycles()
        yield from self._steps()
        yield from self._drills()
        yield from self._notifications()

    def _notifications(self) -> Iterator[Metric]:
        failed = CounterMetricFamily(
            "orchestrator_notify_failures",
            "Notifications (webhook, healthcheck ping, Apprise channel) that failed since start.",
            labels=["kind"],
        )
        counts = failure_counts()
        for kind in ("apprise", "healthcheck", "webhook"):
            failed.add_metric([kind], counts.get(kind, 0))
        yield failed

    def _cycles(self) -> Iterator[Metric]:
        snap, last = self.snap, self.snap.last_report
        success = GaugeMetricFamily(
            "orchestrator_last_success_timestamp_seconds",
            "Unix time the newest successful cycle finished (0: none since start).",
            value=snap.last_success.timestamp() if snap.last_success else 0,
        )
        age = GaugeMetricFamily(
            "orchestrator_last_success_age_seconds",
            "Seconds since the newest successful cycle finished.",
        )
        if snap.last_success is not None:
            age.add_metric([], max(0.0, (self.now - snap.last_success).total_seconds()))
        outcome = GaugeMetricFamily(
            "orchestrator_last_cycle_success",
            "1 when the newest cycle succeeded, 0 when it failed.",
        )
        finished = GaugeMetricFamily(
            "orchestrator_last_cycle_timestamp_seconds",
            "Unix time the newest cycle finished, successful or not.",
        )
        if last is not None:
            outcome.add_metric([], 1 if last.ok else 0)
            if last.finished_at is not None:
                finished.add_metric([], utc(last.finished_at).timestamp())
        total = CounterMetricFamily(
            "orchestrator_cycles", "Cycles finished since start, by outcome.", labels=["status"]
        )
        total.add_metric(["success"], snap.successes)
        total.add_metric(["failure"], snap.failures)
        yield from (success, age, outcome, finished, total)

    def _steps(self) -> Iterator[Metric]:
        snap, last = self.snap, self.snap.last_report
        durations = GaugeMetricFamily(
            "orchestrator_step_duration_seconds",
            "Duration of each step of the newest cycle.",
            labels=["step"],
        )
        if last is not None:
            latest = {step.name: step.seconds for step in last.steps}  # the last one wins
            for name, seconds in latest.items():
                durations.add_metric([mask(name)], seconds)
        size = GaugeMetricFamily(
            "orchestrator_dump_size_bytes", "Size of the newest successful dump."
        )
        if snap.dump_size_bytes is not None:
            size.add_metric([], snap.dump_size_bytes)
        targets = GaugeMetricFamily(
            "orchestrator_target_last_success_timestamp_seconds",
            "Unix time of the cycle that last restored each target successfully.",
            labels=["target"],
        )
        for target, moment in sorted(snap.target_success.items()):
            targets.add_metric([mask(target)], moment.timestamp())
        yield from (durations, size, targets)

    def _drills(self) -> Iterator[Metric]:
        drill = self.snap.last_drill
        outcome = GaugeMetricFamily(
            "orchestrator_last_drill_success", "1 when the newest drill passed, 0 when it failed."
        )
        rto = GaugeMetricFamily(
            "orchestrator_last_drill_rto_seconds",
            "Fetch plus restore time of the newest drill that got that far (the RTO).",
        )
        finished = GaugeMetricFamily(
            "orchestrator_last_drill_timestamp_seconds", "Unix time the newest drill finished."
        )
        if drill is not None:
            outcome.add_metric([], 1 if drill.ok else 0)
            finished.add_metric([], drill.finished_at.timestamp())
            if drill.rto_seconds is not None:
                rto.add_metric([], drill.rto_seconds)
        total = CounterMetricFamily(
            "orchestrator_drills", "Drills finished since start, by outcome.", labels=["status"]
        )
        total.add_metric(["success"], self.snap.drills_passed)
        total.add_metric(["failure"], self.snap.drills_failed)
        yield from (outcome, rto, finished, total)


def render_metrics(state: HealthState, now: datetime) -> str:
    """Give the Prometheus text exposition (format 0.0.4) of `state` at `now`. Pure.

    Families: `orchestrator_last_success_timestamp_seconds` (0 before the first success),
    `orchestrator_last_success_age_seconds` (only after one), `orchestrator_last_cycle_success`,
    `orchestrator_cycles_total{status}`, `orchestrator_step_duration_seconds{step}` and
    `orchestrator_last_cycle_timestamp_seconds` (last cycle), `orchestrator_dump_size_bytes`,
    `orchestrator_target_last_success_timestamp_seconds{target}`, and for drills
    `orchestrator_last_drill_success`, `orchestrator_last_drill_rto_seconds`,
    `orchestrator_last_drill_timestamp_seconds`, `orchestrator_drills_total{status}`, and
    `orchestrator_notify_failures_total{kind}` (this process's failed notifications). A
    family with nothing to report yet has its HELP and TYPE lines only.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StateCollector(state._snapshot(), utc(now)))
    return generate_latest(registry).decode()


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
        elif path in ("/", "/index.html") and self.server.page is not None:
            body, kind = self._page(), HTML
        else:
            status, body = 404, "not found: try /, /healthz or /metrics\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _page(self) -> str:
        try:
            return self.server.page() if self.server.page else ""
        except Exception as exc:  # a broken page must never take /healthz down with it
            return f"<!doctype html><title>status</title><p>the page failed: {type(exc).__name__}"

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no line per request on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        state: HealthState,
        max_age: timedelta,
        page: Callable[[], str] | None,
    ) -> None:
        self.state = state
        self.max_age = max_age
        self.page = page
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


def serve(
    state: HealthState,
    host: str,
    port: int,
    max_age: timedelta,
    page: Callable[[], str] | None = None,
) -> HealthServer:
    """Start serving `state` on `host:port` (port 0: any free port) in a daemon thread.

    GET/HEAD `/healthz`: 200 `ok: <reason>` or 503 `unhealthy: <reason>` (see
    `HealthState.healthy`); `/metrics`: 200 in the Prometheus text format; `/`: the HTML
    that `page()` gives, when given; anything else 404. Gives the running `HealthServer`;
    raises `OSError` when the address cannot be bound (port in use, unknown host).
    """
    server = _Server((host, port), state, max_age, page)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.2,), name="health-server", daemon=True
    )
    thread.start()
    return HealthServer(server, thread)
