"""`orchestrator run`: the long-running loop. Cycles on SCHEDULE (optionally one at start),
restore drills on DRILL_SCHEDULE, `/healthz`, `/metrics` and the status page at `/`, and a
clean stop on SIGTERM/SIGINT.

The loop computes each job's next run itself (`Schedule.next_run`, cron semantics in
SCHEDULE_TZ) and sleeps until the earliest one, waking at least once a second to notice a
stop. Jobs run one after another in this thread, so a drill never overlaps a cycle here;
the cycle lock keeps them apart across processes too. A job that is due while another
runs starts when that one ends (the cycle first when both are due); runs missed meanwhile
are not made up: after a job its next run is the first one after its end. A failed cycle
or drill never stops the loop. A stop request ends child processes and in-flight uploads
through the cancel flag; targets are left as they were by the restore's design.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orchestrator import cancel, progress
from orchestrator.commands import status as status_action
from orchestrator.commands.drill import drill_notifier, recorded_drill
from orchestrator.commands.pipeline import pipeline
from orchestrator.dashboard import render_status_page
from orchestrator.errors import AlreadyRunning, ConfigError, Interrupted, OrchestratorError
from orchestrator.health import DrillOutcome, HealthServer, HealthState, Seed, serve
from orchestrator.history import History
from orchestrator.job import Job, ScheduleConfig
from orchestrator.logs import get_logger, mask
from orchestrator.notify import CycleReport
from orchestrator.schedule_spec import Schedule
from orchestrator.settings import Settings

log = get_logger(__name__)
MAX_SLEEP = 1.0


@dataclass
class Scheduled:
    """A scheduled job: what to run, on which schedule, and when it is next due (UTC)."""

    name: str
    spec: Schedule
    action: Callable[[], None]
    due: datetime

    def run(self) -> None:
        """Run the job, then set its next run to the first one after the job's end."""
        log.info("job.start", job=self.name, due=self.due.isoformat())
        self.action()
        self.due = self.spec.next_run(datetime.now(UTC))
        log.info("job.next", job=self.name, due=self.due.isoformat())


def due_job(jobs: list[Scheduled], now: datetime) -> Scheduled | None:
    """The job to run at `now`: the earliest due one (the first listed on a tie). Pure."""
    ready = [job for job in jobs if job.due <= now]
    return min(ready, key=lambda job: job.due) if ready else None


def serve_jobs(jobs: list[Scheduled]) -> None:
    """Run `jobs` when due, one at a time, until a stop is requested (Interrupted)."""
    while not cancel.stop_requested():
        now = datetime.now(UTC)
        job = due_job(jobs, now)
        if job is not None:
            job.run()
            continue
        wait = min(job.due for job in jobs) - now
        time.sleep(max(0.05, min(MAX_SLEEP, wait.total_seconds())))


class StatusBoard:
    """What the status page shows, read from the stores after each job (and at start), so a
    page request costs a render, not a round of store reads."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._lock = threading.Lock()
        self._snapshot: status_action.Snapshot | None = None

    def refresh(self) -> None:
        """Read the stores again; on failure keep what was read before (logged)."""
        try:
            snapshot = status_action.read_snapshot(self.job)
        except Interrupted:
            raise
        except Exception as exc:
            log.warning("status.refresh_failed", error=mask(str(exc)))
            return
        with self._lock:
            self._snapshot = snapshot
        log.debug("status.refreshed")

    def seed(self) -> Seed:
        """What the history read at the last refresh says, for /healthz and /metrics."""
        with self._lock:
            snapshot = self._snapshot
        return status_action.health_seed(snapshot.history if snapshot else History())

    def page(self) -> str:
        """The status page, rendered now."""
        with self._lock:
            snapshot = self._snapshot or status_action.Snapshot([], History())
        now = datetime.now(UTC)
        activity = progress.current()
        running = activity.as_doc(now) if activity is not None else None
        return render_status_page(status_action.page_data(self.job, snapshot, now, running))


def run_cycle(settings: Settings, state: HealthState, board: StatusBoard | None = None) -> None:
    """Run one pipeline cycle, with a job resolved for it (key files and stores read anew),
    and record its outcome; never raises except on a stop request."""
    started = datetime.now(UTC)
    try:
        state.record(pipeline(settings.job()).report)
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
    if board is not None:
        board.refresh()


def run_drill(settings: Settings, state: HealthState, board: StatusBoard | None = None) -> None:
    """Drill the newest backup under the cycle lock, keep it in the history, alert on
    failure, record the outcome; never raises except on a stop request."""
    outcome = DrillOutcome(False, datetime.now(UTC))
    try:
        job = settings.job()
        report, _kept = recorded_drill(job, drill_notifier(job), lock=True)
        rto = report.rto_seconds if report is not None else None
        outcome = DrillOutcome(report is not None and report.ok, datetime.now(UTC), rto)
    except AlreadyRunning as exc:
        log.warning("drill.skipped", reason=str(exc))
        return
    except Interrupted:
        raise
    except OrchestratorError as exc:  # kept in the history and alerted already
        log.error("drill.failed", error=str(exc))
    except Exception:
        log.exception("drill.crashed")
    state.record_drill(outcome)
    if board is not None:
        board.refresh()


def run_forever(settings: Settings) -> int:
    """Serve the schedules until a stop is requested; give the exit code (0 on a clean stop)."""
    first = settings.job()
    spec, drills = first.schedule.cycles, first.schedule.drills
    first.channel_urls()  # a channel Apprise does not know stops `run` at once
    state = HealthState()
    board = StatusBoard(first)
    board.refresh()
    state.seed(board.seed())  # after a restart: the last cycle, drill and refreshes
    server = _start_health(first.schedule, state, board)
    now = datetime.now(UTC)
    jobs = [Scheduled("cycle", spec, lambda: run_cycle(settings, state, board), spec.next_run(now))]
    if drills is not None:
        action = lambda: run_drill(settings, state, board)  # noqa: E731
        jobs.append(Scheduled("drill", drills, action, drills.next_run(now)))
    log.info(
        "run.start",
        schedule=spec.describe(),
        drills=drills.describe() if drills else "never",
        next_cycle=jobs[0].due.isoformat(),
        run_on_start=first.schedule.run_on_start,
    )
    try:
        if first.schedule.run_on_start:
            run_cycle(settings, state, board)
        serve_jobs(jobs)
    except Interrupted as exc:
        log.info("run.stopping", reason=str(exc))
    finally:
        if server is not None:
            server.stop()
    log.info("run.stopped")
    return 0


def _start_health(
    schedule: ScheduleConfig, state: HealthState, board: StatusBoard
) -> HealthServer | None:
    port = schedule.health_port
    if port is None:
        return None
    max_age = timedelta(seconds=schedule.health_max_age)
    try:
        # in a container, all interfaces: the port is what the platform exposes
        server = serve(state, "0.0.0.0", port, max_age, board.page)  # noqa: S104
    except OSError as exc:
        raise ConfigError(f"HEALTH_PORT: cannot listen on {port}: {exc}") from None
    log.info("health.listening", port=server.port)
    return server
