"""`orchestrator run`: the long-running loop. Cycles on SCHEDULE, optionally one at start,
a /healthz and /metrics endpoint, and a clean stop on SIGTERM/SIGINT.

A failed cycle never stops the loop. A stop request ends child processes and in-flight
uploads through the cancel flag; targets are left as they were by the restore's design.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import schedule as schedule_lib

from orchestrator import cancel
from orchestrator.actions.pipeline import pipeline
from orchestrator.errors import AlreadyRunning, ConfigError, Interrupted, OrchestratorError
from orchestrator.health import HealthServer, HealthState, serve
from orchestrator.logs import get_logger, mask
from orchestrator.notify import CycleReport
from orchestrator.schedule_spec import Schedule, apply, parse_schedule
from orchestrator.settings import Settings

log = get_logger(__name__)
MAX_SLEEP = 1.0


def schedule_from(settings: Settings) -> Schedule:
    """SCHEDULE parsed; ConfigError naming it when malformed."""
    try:
        return parse_schedule(settings.schedule)
    except ValueError as exc:
        raise ConfigError(f"SCHEDULE: {exc}") from None


def run_cycle(settings: Settings, state: HealthState) -> None:
    """Run one pipeline cycle and record its outcome; never raises except on a stop request."""
    started = datetime.now(UTC)
    try:
        state.record(pipeline(settings).report)
    except AlreadyRunning as exc:
        log.warning("cycle.skipped", reason=str(exc))
    except Interrupted:
        raise
    except OrchestratorError as exc:
        log.error("cycle.failed", error=str(exc))
        state.record(CycleReport(run_id="-", started_at=started, error=mask(str(exc))))
    except Exception:  # a bug must not end the service; it is logged with its traceback
        log.exception("cycle.crashed")
        state.record(CycleReport(run_id="-", started_at=started, error="internal error"))


def run_forever(settings: Settings) -> int:
    """Serve the schedule until a stop is requested; give the exit code (0 on a clean stop)."""
    spec = schedule_from(settings)
    state = HealthState()
    server = _start_health(settings, state)
    scheduler = schedule_lib.Scheduler()
    apply(spec, scheduler, lambda: run_cycle(settings, state))
    log.info("run.start", schedule=spec.describe(), run_on_start=settings.run_on_start)
    try:
        if settings.run_on_start:
            run_cycle(settings, state)
        while not cancel.stop_requested():
            scheduler.run_pending()
            idle = scheduler.idle_seconds
            time.sleep(MAX_SLEEP if idle is None else max(0.05, min(MAX_SLEEP, idle)))
    except Interrupted as exc:
        log.info("run.stopping", reason=str(exc))
    finally:
        if server is not None:
            server.stop()
    log.info("run.stopped")
    return 0


def _start_health(settings: Settings, state: HealthState) -> HealthServer | None:
    if settings.health_port is None:
        return None
    max_age = timedelta(seconds=settings.health_max_age)
    try:
        server = serve(state, "0.0.0.0", settings.health_port, max_age)  # noqa: S104 - container
    except OSError as exc:
        raise ConfigError(f"HEALTH_PORT: cannot listen on {settings.health_port}: {exc}") from None
    log.info("health.listening", port=server.port)
    return server
