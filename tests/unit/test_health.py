"""HealthState.healthy() edge cases and the Prometheus text, parsed back line by line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.health import DrillOutcome, HealthState, render_metrics
from orchestrator.notify import CycleReport, StepReport

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=13)


def cycle(finished: datetime, *steps: StepReport, error: str | None = None) -> CycleReport:
    return CycleReport("run", finished - timedelta(minutes=5), list(steps), finished, error)


def good(finished: datetime, size: int = 1000) -> CycleReport:
    return cycle(
        finished,
        StepReport("dump", True, 10.5, detail={"size_bytes": size}),
        StepReport("upload", True, 4.0),
        StepReport("restore:backup", True, 20.0),
        StepReport("restore:dev", True, 25.0),
        StepReport("prune", True, 0.25),
    )


def bad(finished: datetime) -> CycleReport:
    return cycle(
        finished,
        StepReport("dump", True, 11.0, detail={"size_bytes": 2000}),
        StepReport("restore:backup", True, 21.0),
        StepReport("restore:dev", False, 1.0, "dev unreachable"),
    )


# ---------------------------------------------------------------- healthy()


@pytest.mark.parametrize(
    ("since_start", "ok", "words"),
    [
        (timedelta(0), True, "no successful cycle yet"),
        (MAX_AGE, True, "no successful cycle yet"),
        (MAX_AGE + timedelta(seconds=1), False, "no successful cycle in 13 h"),
    ],
)
def test_grace_period_before_the_first_success(since_start, ok, words):
    state = HealthState(started_at=T0)
    healthy, reason = state.healthy(T0 + since_start, MAX_AGE)
    assert healthy is ok and words in reason


def test_failures_during_the_grace_period_stay_healthy_but_are_named():
    state = HealthState(started_at=T0)
    state.record(bad(T0 + timedelta(hours=1)))
    assert state.healthy(T0 + timedelta(hours=2), MAX_AGE) == (
        True,
        "no successful cycle yet, started 2 h ago (limit 13 h); last cycle run failed: restore:dev",
    )
    healthy, reason = state.healthy(T0 + timedelta(hours=14), MAX_AGE)
    assert not healthy and "restore:dev" in reason


@pytest.mark.parametrize(
    ("age", "ok"),
    [
        (timedelta(0), True),
        (MAX_AGE - timedelta(seconds=1), True),
        (MAX_AGE, True),
        (MAX_AGE + timedelta(seconds=1), False),
        (timedelta(days=3), False),
    ],
)
def test_age_of_the_newest_success(age, ok):
    state = HealthState(started_at=T0 - timedelta(days=10))
    state.record(good(T0))
    healthy, reason = state.healthy(T0 + age, MAX_AGE)
    assert healthy is ok
    assert "2026-11-25T06:00:00Z" in reason
    assert ("older than 13 h" in reason) is not ok


def test_failure_after_success_keeps_the_last_success():
    state = HealthState(started_at=T0 - timedelta(hours=1))
    state.record(good(T0))
    state.record(bad(T0 + timedelta(hours=12)))
    assert state.last_success == T0
    assert state.last_report is not None and not state.last_report.ok
    assert state.healthy(T0 + timedelta(hours=12, minutes=1), MAX_AGE)[0]
    healthy, reason = state.healthy(T0 + timedelta(hours=14), MAX_AGE)
    assert not healthy and "last cycle run failed: restore:dev" in reason


def test_a_newer_success_resets_the_age():
    state = HealthState(started_at=T0)
    state.record(good(T0))
    state.record(good(T0 + timedelta(hours=12)))
    assert state.healthy(T0 + timedelta(hours=20), MAX_AGE)[0]


def test_record_keeps_a_copy_and_naive_times_are_utc():
    state = HealthState(started_at=T0.replace(tzinfo=None))
    report = good(T0)
    state.record(report)
    report.steps.clear()
    assert state.last_report is not None and len(state.last_report.steps) == 5
    assert state.started_at == T0


# ---------------------------------------------------------------- render_metrics()

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"(?:,|$)')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), value)


def parse(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """Give ({family: type}, {(name, labels): value}); fail on any malformed line."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in helps and name not in types, line
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, line
            assert match["name"] in types, f"sample before its TYPE: {line}"
            raw = match["labels"] or ""
            labels = [(m["key"], unescape(m["value"])) for m in LABEL.finditer(raw)]
            assert "".join(m[0] for m in LABEL.finditer(raw)) == raw, line
            key = (match["name"], frozenset(labels))
            assert key not in samples, f"duplicate sample: {line}"
            samples[key] = float(match["value"])
    return types, samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_metrics_before_any_cycle():
    types, samples = parse(render_metrics(HealthState(started_at=T0), T0))
    assert types == {
        "orchestrator_last_success_timestamp_seconds": "gauge",
        "orchestrator_last_success_age_seconds": "gauge",
        "orchestrator_last_cycle_success": "gauge",
        "orchestrator_last_cycle_timestamp_seconds": "gauge",
        "orchestrator_cycles_total": "counter",
        "orchestrator_step_duration_seconds": "gauge",
        "orchestrator_dump_size_bytes": "gauge",
        "orchestrator_target_last_success_timestamp_seconds": "gauge",
        "orchestrator_last_drill_success": "gauge",
        "orchestrator_last_drill_rto_seconds": "gauge",
        "orchestrator_last_drill_timestamp_seconds": "gauge",
        "orchestrator_drills_total": "counter",
        "orchestrator_notify_failures_total": "counter",
    }
    samples = {k: v for k, v in samples.items() if k[0] != "orchestrator_notify_failures_total"}
    assert samples == {
        ("orchestrator_last_success_timestamp_seconds", frozenset()): 0.0,
        ("orchestrator_cycles_total", frozenset({("status", "success")})): 0.0,
        ("orchestrator_cycles_total", frozenset({("status", "failure")})): 0.0,
        ("orchestrator_drills_total", frozenset({("status", "success")})): 0.0,
        ("orchestrator_drills_total", frozenset({("status", "failure")})): 0.0,
    }


def test_drill_metrics_follow_the_newest_drill():
    state = HealthState(started_at=T0)
    state.record_drill(DrillOutcome(True, T0, 125.5))
    failed_at = T0 + timedelta(days=7)
    state.record_drill(DrillOutcome(False, failed_at))
    _, samples = parse(render_metrics(state, failed_at))
    assert value(samples, "orchestrator_last_drill_success") == 0
    assert value(samples, "orchestrator_last_drill_timestamp_seconds") == failed_at.timestamp()
    assert ("orchestrator_last_drill_rto_seconds", frozenset()) not in samples  # it never got there
    assert value(samples, "orchestrator_drills_total", status="success") == 1
    assert value(samples, "orchestrator_drills_total", status="failure") == 1
    state.record_drill(DrillOutcome(True, failed_at + timedelta(hours=1), 90.0))
    _, samples = parse(render_metrics(state, failed_at))
    assert value(samples, "orchestrator_last_drill_success") == 1
    assert value(samples, "orchestrator_last_drill_rto_seconds") == 90.0


def test_metrics_after_a_success_then_a_failure():
    state = HealthState(started_at=T0)
    state.record(good(T0, size=123456789))
    failed_at = T0 + timedelta(hours=12)
    state.record(bad(failed_at))
    now = T0 + timedelta(hours=12, minutes=30)
    _, samples = parse(render_metrics(state, now))

    assert value(samples, "orchestrator_last_success_timestamp_seconds") == T0.timestamp()
    assert value(samples, "orchestrator_last_success_age_seconds") == 12.5 * 3600
    assert value(samples, "orchestrator_last_cycle_success") == 0
    assert value(samples, "orchestrator_last_cycle_timestamp_seconds") == failed_at.timestamp()
    assert value(samples, "orchestrator_cycles_total", status="success") == 1
    assert value(samples, "orchestrator_cycles_total", status="failure") == 1
    # step durations are those of the newest cycle only
    durations = {
        dict(labels)["step"]: v
        for (name, labels), v in samples.items()
        if name == "orchestrator_step_duration_seconds"
    }
    assert durations == {"dump": 11.0, "restore:backup": 21.0, "restore:dev": 1.0}
    # the newest successful dump step's size
    assert value(samples, "orchestrator_dump_size_bytes") == 2000
    # backup was restored in the failing cycle too; dev only in the good one
    target = "orchestrator_target_last_success_timestamp_seconds"
    assert value(samples, target, target="backup") == failed_at.timestamp()
    assert value(samples, target, target="dev") == T0.timestamp()


def test_a_failed_dump_keeps_the_previous_size():
    state = HealthState(started_at=T0)
    state.record(good(T0, size=500))
    state.record(cycle(T0 + timedelta(hours=1), StepReport("dump", False, 1, "boom")))
    _, samples = parse(render_metrics(state, T0 + timedelta(hours=2)))
    assert value(samples, "orchestrator_dump_size_bytes") == 500
    assert value(samples, "orchestrator_last_cycle_success") == 0


def test_label_values_are_escaped():
    state = HealthState(started_at=T0)
    weird = 'a"b\\c\nd'
    state.record(cycle(T0, StepReport(weird, True, 1.0), StepReport(f"restore:{weird}", True, 2.0)))
    text = render_metrics(state, T0)
    assert 'step="a\\"b\\\\c\\nd"' in text
    _, samples = parse(text)
    assert value(samples, "orchestrator_step_duration_seconds", step=weird) == 1.0
    target = "orchestrator_target_last_success_timestamp_seconds"
    assert value(samples, target, target=weird) == T0.timestamp()


def test_render_depends_only_on_the_state_and_the_time_given():
    """The age is measured at `now` (not the wall clock), a later `now` changes only the
    age, and rendering leaves the state as it was."""
    state = HealthState(started_at=T0)
    state.record(good(T0))
    now = T0 + timedelta(hours=1)
    first = render_metrics(state, now)
    assert value(parse(first)[1], "orchestrator_last_success_age_seconds") == 3600
    later = render_metrics(state, now + timedelta(minutes=30))
    changed = [
        (a, b) for a, b in zip(first.splitlines(), later.splitlines(), strict=True) if a != b
    ]
    assert changed == [
        (
            "orchestrator_last_success_age_seconds 3600.0",
            "orchestrator_last_success_age_seconds 5400.0",
        )
    ]
    assert render_metrics(state, now) == first
