"""The page's three charts, drawn as inline SVG (pure; no library, no script).

Each chart is an `<svg viewBox>` that scales to its container's width; colours come from
CSS classes (`s-dump`, `s-branch`, ...) that the page's stylesheet maps to variables, so
the charts follow the light and dark schemes. Every data-derived text is passed through
`text.safe`. A chart draws the newest `MAX_POINTS` values, oldest on the left.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.dashboard import docs
from orchestrator.dashboard.model import CycleDoc, DrillDoc, StepDoc
from orchestrator.dashboard.text import as_number, parse_time, safe
from orchestrator.formats import human_seconds, human_size, stamp

__all__ = ["MAX_POINTS", "Chart", "cycle_duration_chart", "drill_rto_chart", "dump_size_chart"]

MAX_POINTS = 100
# About as wide as a chart is on the page (a third of a wide screen, or a whole phone), so
# that the labels' 12 units stay about 12 px.
WIDTH, HEIGHT = 360, 210
# the plot area inside the viewBox; the rest holds the axis labels
LEFT, RIGHT, TOP, BOTTOM = 40.0, 352.0, 26.0, 182.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BRANCH_STEPS = ("upload", "restore:")  # run concurrently, right after the dump


@dataclass(frozen=True)
class Chart:
    """One drawn chart: `svg` is the markup (None when there is nothing to draw),
    `legend` the (css class, label) pairs its colours mean, `caption` plain text."""

    title: str
    svg: str | None
    legend: list[tuple[str, str]]
    caption: str


@dataclass(frozen=True)
class _Bar:
    when: datetime | None
    segments: list[tuple[str, float]]  # (css class, seconds), bottom to top
    failed: bool
    tooltip: str


def _n(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing `.0`."""
    return f"{value:.1f}".removesuffix(".0")


def _ticks(top_value: float) -> list[float]:
    """Give 0 and 3-6 evenly spaced round values reaching at least `top_value`."""
    top_value = top_value if top_value > 0 else 1.0
    raw = top_value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    count = math.ceil(top_value / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _tick_label(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:g}"


def _size_unit(largest: float) -> tuple[float, str]:
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if largest >= 1024**power:
            return float(1024**power), unit
    return 1.0, "B"


def _time_unit(largest: float) -> tuple[float, str]:
    if largest >= 2 * 3600:
        return 3600.0, "h"
    if largest >= 120:
        return 60.0, "min"
    return 1.0, "s"


def _date_label(moment: datetime | None, span_seconds: float) -> str:
    if moment is None:
        return ""
    day = f"{_MONTHS[moment.month - 1]} {moment.day}"
    return day if span_seconds >= 2 * 86400 else f"{day} {moment:%H:%M}"


def _y(value: float, top_value: float) -> float:
    return BOTTOM - value / top_value * (BOTTOM - TOP)


def _open_svg(title: str, summary: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{safe(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{safe(title)}</title><desc>{safe(summary)}</desc>",
    ]


def _y_axis(ticks: list[float], unit: str) -> list[str]:
    """Horizontal grid lines with their labels, and the unit above the axis."""
    top_value = ticks[-1]
    parts = [
        f'<text class="unit" x="{_n(LEFT - 6)}" y="{_n(TOP - 7)}" text-anchor="end">{unit}</text>'
    ]
    for tick in ticks:
        y = _n(_y(tick, top_value))
        parts.append(f'<line class="grid" x1="{_n(LEFT)}" x2="{_n(RIGHT)}" y1="{y}" y2="{y}"/>')
        parts.append(
            f'<text x="{_n(LEFT - 6)}" y="{y}" dy="0.32em" text-anchor="end">'
            f"{_tick_label(tick)}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{_n(LEFT)}" x2="{_n(RIGHT)}" y1="{_n(BOTTOM)}" y2="{_n(BOTTOM)}"/>'
    )
    return parts


MIN_LABEL_GAP = 80.0  # a "Nov 30 07:17" label is about 70 units wide


def _spaced(labels: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The labels worth drawing: each text once, and only the outer ones when they would
    run into each other (points close in time on a narrow axis)."""
    kept: list[tuple[float, str]] = []
    for x, label in labels:
        if all(label != text for _x, text in kept):
            kept.append((x, label))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(kept)]
    if gaps and min(gaps) < MIN_LABEL_GAP:
        outer = [kept[0], kept[-1]]
        kept = outer if outer[1][0] - outer[0][0] >= 2 * MIN_LABEL_GAP else outer[:1]
    return kept


def _x_labels(labels: list[tuple[float, str]]) -> list[str]:
    """Labels under the plot at x positions; of several, the first is left-aligned and the
    last right-aligned, so that none is cut at the edges."""
    labels = _spaced(labels)
    parts = []
    for index, (x, label) in enumerate(labels):
        anchor = "middle"
        if len(labels) > 1 and index in (0, len(labels) - 1):
            anchor = "start" if index == 0 else "end"
        parts.append(
            f'<text x="{_n(x)}" y="{_n(BOTTOM + 16)}" text-anchor="{anchor}">{safe(label)}</text>'
        )
    return parts


def _fail_mark(x: float, y: float) -> str:
    return f'<path class="fail-mark" d="M{_n(x - 2.5)} {_n(y - 2.5)}l5 5m0-5l-5 5"/>'


# --- dump size ---------------------------------------------------------------------------


def dump_size_chart(cycles: Sequence[CycleDoc]) -> Chart:
    """Give a line chart of each successful dump's size against its start time."""
    title = "Dump size over time"
    points = [
        (when, size)
        for cycle in list(cycles[:MAX_POINTS])[::-1]
        if (when := docs.cycle_started(cycle)) is not None
        and (size := docs.dump_size(cycle)) is not None
    ]
    if not points:
        return Chart(title, None, [], "No successful dump recorded yet.")
    newest = points[-1][1]
    caption = (
        f"Size of each successful dump of the newest {min(len(cycles), MAX_POINTS)} cycles, "
        f"by start time. Latest: {human_size(newest)}"
    )
    if len(points) > 1:
        change = newest - points[0][1]
        sign = "+" if change >= 0 else "\N{MINUS SIGN}"
        caption += f" ({sign}{human_size(abs(change))} since {stamp(points[0][0])})"
    summary = f"{len(points)} dumps, latest {human_size(newest)}"
    return Chart(title, _line_svg(title, summary, points), [("s-dump", "dump size")], caption + ".")


def _line_svg(title: str, summary: str, points: list[tuple[datetime, float]]) -> str:
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds()
    divisor, unit = _size_unit(max(size for _, size in points))
    ticks = _ticks(max(size for _, size in points) / divisor)

    def x_of(moment: datetime) -> float:
        if span <= 0:
            return (LEFT + RIGHT) / 2
        return LEFT + 6 + (moment - first).total_seconds() / span * (RIGHT - LEFT - 12)

    coords = [(x_of(when), _y(size / divisor, ticks[-1])) for when, size in points]
    parts = [*_open_svg(title, summary), *_y_axis(ticks, unit)]
    line = " ".join(f"{_n(x)} {_n(y)}" for x, y in coords)
    if len(coords) > 1:
        area = f"M{_n(coords[0][0])} {_n(BOTTOM)}L{line}L{_n(coords[-1][0])} {_n(BOTTOM)}Z"
        parts.append(f'<path class="area s-dump" d="{area}"/>')
        parts.append(f'<path class="line s-dump" d="M{line}"/>')
    for (x, y), (when, size) in zip(coords, points, strict=True):
        parts.append(
            f'<circle class="dot s-dump" cx="{_n(x)}" cy="{_n(y)}" r="2.2">'
            f"<title>{safe(stamp(when))}: {human_size(size)}</title></circle>"
        )
    labels = [(x_of(first), _date_label(first, span))]
    if span > 0:
        middle = first + (last - first) / 2
        labels += [(x_of(middle), _date_label(middle, span)), (x_of(last), _date_label(last, span))]
    parts += _x_labels(labels)
    parts.append("</svg>")
    return "".join(parts)


# --- bars: cycle durations and drill RTOs --------------------------------------------------


def _bars_svg(title: str, summary: str, bars: list[_Bar]) -> str:
    totals = [sum(seconds for _, seconds in bar.segments) for bar in bars]
    divisor, unit = _time_unit(max(totals))
    ticks = _ticks(max(totals) / divisor)
    slot = (RIGHT - LEFT) / len(bars)
    width = min(slot * 0.72, 26.0)
    parts = [*_open_svg(title, summary), *_y_axis(ticks, unit)]
    for index, bar in enumerate(bars):
        center = LEFT + (index + 0.5) * slot
        parts.append('<g class="failed">' if bar.failed else "<g>")
        parts.append(f"<title>{bar.tooltip}</title>")
        base = 0.0
        for css, seconds in bar.segments:
            y_top = _y((base + seconds) / divisor, ticks[-1])
            height = _y(base / divisor, ticks[-1]) - y_top
            if height > 0:
                parts.append(
                    f'<rect class="{css}" x="{_n(center - width / 2)}" y="{_n(y_top)}" '
                    f'width="{_n(width)}" height="{_n(height)}"/>'
                )
            base += seconds
        if bar.failed:
            parts.append(_fail_mark(center, _y(base / divisor, ticks[-1]) - 6))
        parts.append("</g>")
    moments = [bar.when for bar in bars]
    known = [m for m in moments if m is not None]
    span = (max(known) - min(known)).total_seconds() if known else 0.0
    picks = sorted({0, len(bars) // 2, len(bars) - 1})
    parts += _x_labels([(LEFT + (i + 0.5) * slot, _date_label(moments[i], span)) for i in picks])
    parts.append("</svg>")
    return "".join(parts)


def _seconds(step: StepDoc) -> float:
    return max(0.0, as_number(step.get("seconds")) or 0.0)


def _cycle_bar(cycle: CycleDoc) -> _Bar | None:
    """Give the cycle's bar: dump, the longest concurrent branch, prune, then the rest of
    the wall time; None when the cycle has no step and no duration."""
    dump = prune = 0.0
    branches: list[tuple[str, float]] = []
    for step in docs.steps(cycle):
        name = str(step.get("name", ""))
        if name == "dump":
            dump += _seconds(step)
        elif name == "prune":
            prune += _seconds(step)
        elif name.startswith(BRANCH_STEPS):
            branches.append((docs.step_name(step), _seconds(step)))
    branch = max((seconds for _, seconds in branches), default=0.0)
    total = as_number(cycle.get("duration_seconds"))
    other = max(0.0, total - dump - branch - prune) if total is not None else 0.0
    if total is None and not docs.steps(cycle):
        return None
    failed = docs.cycle_status(cycle) != docs.SUCCESS
    started = docs.cycle_started(cycle)
    wall = total if total is not None else dump + branch + prune
    tooltip = (
        f"{safe(stamp(started)) if started else 'start unknown'} · "
        f"{'failed' if failed else 'succeeded'} · {human_seconds(wall)}: dump "
        f"{human_seconds(dump)}"
    )
    if branches:
        concurrent = ", ".join(f"{safe(name)} {human_seconds(sec)}" for name, sec in branches)
        tooltip += f"; at the same time: {concurrent}"
    if prune:
        tooltip += f"; prune {human_seconds(prune)}"
    tooltip += f"; other {human_seconds(other)}"
    segments = [("s-dump", dump), ("s-branch", branch), ("s-prune", prune), ("s-other", other)]
    return _Bar(started, segments, failed, tooltip)


def cycle_duration_chart(cycles: Sequence[CycleDoc]) -> Chart:
    """Give stacked bars of each cycle's wall time: dump, the longest of the concurrent
    upload and restores, prune, and the rest."""
    title = "Cycle duration by step"
    bars = [b for c in list(cycles[:MAX_POINTS])[::-1] if (b := _cycle_bar(c)) is not None]
    if not bars or not any(sum(s for _, s in b.segments) > 0 for b in bars):
        return Chart(title, None, [], "No cycle recorded yet.")
    legend = [
        ("s-dump", "dump"),
        ("s-branch", "upload ∥ restores (longest)"),
        ("s-prune", "prune"),
        ("s-other", "other"),
        ("fail-mark", "failed cycle"),
    ]
    caption = (
        f"Wall time of the newest {len(bars)} cycles, stacked in the order things happen: "
        "the dump, then the upload and the restores, which run at the same time from the "
        "same file (that segment is as tall as the longest of them), then prune; “other” is "
        "the rest (lock, checks, notifications). Point at a bar for every step's time."
    )
    summary = f"{len(bars)} cycles, {sum(b.failed for b in bars)} failed"
    return Chart(title, _bars_svg(title, summary, bars), legend, caption)


def _drill_bar(drill: DrillDoc) -> _Bar | None:
    fetch = as_number(drill.get("fetch_seconds"))
    restore = as_number(drill.get("restore_seconds"))
    rto = docs.drill_rto(drill)
    if rto is None:
        return None
    if fetch is not None and restore is not None:
        segments = [("s-fetch", max(0.0, fetch)), ("s-restore", max(0.0, restore))]
        parts = f"fetch {human_seconds(fetch)} + restore {human_seconds(restore)}"
    else:
        segments, parts = [("s-other", max(0.0, rto))], "parts not recorded"
    failed = docs.drill_status(drill) != docs.SUCCESS
    started = parse_time(drill.get("started_at"))
    tooltip = (
        f"{safe(stamp(started)) if started else 'start unknown'} · "
        f"{'failed' if failed else 'passed'} · RTO {human_seconds(rto)} ({parts})"
    )
    return _Bar(started, segments, failed, tooltip)


def drill_rto_chart(drills: Sequence[DrillDoc]) -> Chart:
    """Give stacked bars of each drill's RTO: fetching the archive, then restoring it."""
    title = "Restore drill RTO"
    bars = [b for d in list(drills[:MAX_POINTS])[::-1] if (b := _drill_bar(d)) is not None]
    if not bars or not any(sum(s for _, s in b.segments) > 0 for b in bars):
        return Chart(title, None, [], "No restore drill recorded yet.")
    legend = [("s-fetch", "fetch"), ("s-restore", "restore"), ("fail-mark", "failed drill")]
    caption = (
        f"Recovery time of the newest {len(bars)} drills: getting the archive from the store "
        "plus pg_restore into a scratch database, what an incident would wait for. "
        "Verification afterwards is not counted."
    )
    summary = f"{len(bars)} drills, {sum(b.failed for b in bars)} failed"
    return Chart(title, _bars_svg(title, summary, bars), legend, caption)
