"""The status page: `PageData` in, one self-contained HTML5 document out (pure).

The document has an inline stylesheet and inline SVG only: no script, no external asset,
no web font. Every data-derived string goes through `text.safe` (masked, credentials cut
from URLs, HTML-escaped). Tables show the newest `MAX_ROWS` rows, charts the newest
`charts.MAX_POINTS` values, so the page stays small whatever the history holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from orchestrator.dashboard import docs
from orchestrator.dashboard.assess import Headline, assess
from orchestrator.dashboard.charts import (
    Chart,
    cycle_duration_chart,
    drill_rto_chart,
    dump_size_chart,
)
from orchestrator.dashboard.model import (
    BackupDoc,
    CycleDoc,
    DrillDoc,
    PageData,
    RunningDoc,
    TargetDoc,
)
from orchestrator.dashboard.style import STYLESHEET
from orchestrator.dashboard.text import (
    MISSING,
    as_number,
    as_text,
    clean,
    parse_time,
    safe,
)
from orchestrator.formats import ago, human_age, human_seconds, human_size, iso_z, stamp, utc
from orchestrator.progress import describe

__all__ = ["MAX_ROWS", "render_status_page"]

MAX_ROWS = 20

_DISC = '<circle class="disc" cx="8" cy="8" r="7.5"/>'
_ICON_PATHS = {
    "ok": _DISC + '<path class="mark" d="M4.6 8.3l2.3 2.3 4.5-4.8"/>',
    "bad": _DISC + '<path class="mark" d="M5.4 5.4l5.2 5.2m0-5.2l-5.2 5.2"/>',
    "warn": '<path class="disc" d="M8 .8l7.6 14H.4z"/><path class="mark" d="M8 5.6v4.2m0 2.4v.1"/>',
}


def render_status_page(data: PageData) -> str:
    """Give the whole status page for `data` as one HTML5 document (a str).

    Sections, in order: the headline (healthy or not, and why), the targets, three
    charts (dump size, cycle duration by step, drill RTO), then the recent cycles,
    drills and backups. Ages are relative to `data.generated_at`.
    """
    now = utc(data.generated_at)
    headline = assess(data)
    verdict = "Healthy" if headline.healthy else "Unhealthy"
    body = "\n".join(
        [
            _header(data),
            '<main class="wrap">',
            _headline(headline, now),
            _running(data.running),
            _targets(data, now),
            _trends(data),
            _cycles(data.cycles, now),
            _drills(data.drills, now),
            _backups(data.backups, now),
            "</main>",
            f'<footer class="wrap">orchestrator status page · generated '
            f"{_time(now, now)} · all times UTC</footer>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{verdict} · {safe(data.title)}</title>\n"
        f"<style>{STYLESHEET}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# --- small pieces ------------------------------------------------------------------------


def _icon(kind: str) -> str:
    return f'<svg class="icon" viewBox="0 0 16 16" aria-hidden="true">{_ICON_PATHS[kind]}</svg>'


def _pill(ok: bool | None, label: str) -> str:
    kind = "ok" if ok else "bad" if ok is False else "warn"
    return f'<span class="pill {kind}">{_icon(kind)}{safe(label)}</span>'


def _time(moment: datetime | None, now: datetime) -> str:
    """`<time>` showing the UTC stamp, with the age as its tooltip; "—" when unknown."""
    if moment is None:
        return MISSING
    return f'<time datetime="{iso_z(moment)}" title="{ago(moment, now)}">{stamp(moment)}</time>'


def _text(value: object) -> str:
    """A data string made safe, or "—"."""
    found = as_text(value)
    return safe(found) if found is not None else MISSING


def _code(value: object) -> str:
    found = as_text(value)
    return f"<code>{safe(found)}</code>" if found is not None else MISSING


def server_text(value: object) -> str | None:
    """Give a server as `host:port/database` without credentials: from a URL its host,
    port and path only; any other text cleaned; None when missing."""
    found = as_text(value)
    if found is None:
        return None
    if "://" in found:
        try:
            parts = urlsplit(found.strip())
            port = f":{parts.port}" if parts.port else ""
            host = parts.hostname or ""
        except ValueError:
            return clean(found)
        return clean(f"{host}{port}{parts.path}") or None
    return clean(found)


def _count(value: object) -> str:
    number = as_number(value)
    return f"{number:,.0f}" if number is not None else MISSING


def _seconds(value: float | None) -> str:
    return human_seconds(value) if value is not None else MISSING


def _shown(total: int, what: str) -> str:
    if total <= MAX_ROWS:
        return ""
    return f'<p class="note">Newest {MAX_ROWS} of {total} {what}.</p>'


Row = tuple[list[str], bool]  # the cells' markup, and whether the row is a failure


def _table(columns: list[tuple[str, str]], rows: list[Row]) -> str:
    """A table in a horizontally scrolling box. `columns`: (heading, kind) where kind is
    "num" (right-aligned figures), "msg" (text that wraps) or ""."""
    kinds = [kind for _, kind in columns]
    head = "".join(_cell("th", heading, kind) for heading, kind in columns)
    body = "".join(
        ('<tr class="failed">' if failed else "<tr>")
        + "".join(_cell("td", cell, kind) for cell, kind in zip(cells, kinds, strict=True))
        + "</tr>"
        for cells, failed in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _cell(tag: str, markup: str, kind: str) -> str:
    return f'<{tag} class="{kind}">{markup}</{tag}>' if kind else f"<{tag}>{markup}</{tag}>"


# --- sections ------------------------------------------------------------------------------


def _header(data: PageData) -> str:
    items = [
        ("Source", safe(server_text(data.source) or MISSING)),
        ("Cycles", _text(data.schedule)),
        ("Drills", _text(data.drill_schedule) if data.drill_schedule else "not scheduled"),
        ("Next cycle", _text(data.next_cycle) if data.next_cycle else MISSING),
        ("Next drill", _text(data.next_drill) if data.next_drill else MISSING),
        ("Alerts", _text(data.alerts) if data.alerts else "none"),
        ("Backup age limit", human_age(data.max_backup_age_seconds)),
    ]
    meta = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)
    return (
        f'<header class="top"><div class="wrap"><h1>{safe(data.title)}</h1>'
        f'<dl class="meta">{meta}</dl></div></header>'
    )


def _headline(headline: Headline, now: datetime) -> str:
    kind = "ok" if headline.healthy else "bad"
    verdict = "Healthy" if headline.healthy else "Unhealthy"
    checks = [
        f'<li class="bad">{_icon("bad")}<span>{safe(r)}</span></li>' for r in headline.reasons
    ]
    checks += [f'<li class="ok">{_icon("ok")}<span>{safe(f)}</span></li>' for f in headline.facts]
    return (
        f'<section class="panel headline {kind}" aria-labelledby="verdict">'
        f'<div class="verdict">{_icon(kind)}<h2 id="verdict">{verdict}</h2></div>'
        f'<ul class="checks">{"".join(checks)}</ul>'
        f'<p class="generated">Generated {_time(now, now)}</p></section>'
    )


def _running(running: RunningDoc | None) -> str:
    """What runs now (a cycle, its steps, bytes dumped and stored, tables done), or nothing."""
    if running is None:
        return ""
    return (
        '<section class="panel running" aria-labelledby="running">'
        f'<h2 id="running">Running now</h2><p>{safe(describe(running))}</p></section>'
    )


def _targets(data: PageData, now: datetime) -> str:
    cards = [_target_card(t, data.max_backup_age_seconds, now) for t in data.targets]
    inner = (
        f'<div class="cards">{"".join(cards)}</div>'
        if cards
        else '<p class="empty">No targets configured.</p>'
    )
    return f'<section aria-labelledby="targets"><h2 id="targets">Targets</h2>{inner}</section>'


def _target_card(target: TargetDoc, limit: float, now: datetime) -> str:
    name = _text(target.get("name"))
    badge = ' <span class="badge masked">masked</span>' if target.get("masked") is True else ""
    database = _text(target.get("database"))
    server = server_text(target.get("server"))
    where = f"{database}@{safe(server)}" if server else database
    refreshed = parse_time(target.get("last_refresh_at"))
    if refreshed is None:
        fresh = f'<p class="fresh">{_pill(None, "never refreshed")}</p>'
    else:
        age = (now - refreshed).total_seconds()
        state = _pill(None, "stale") + " " if age > limit else ""
        fresh = (
            f'<p class="fresh">{state}refreshed <strong>{ago(refreshed, now)}</strong>'
            f' <span class="muted">({_time(refreshed, now)})</span></p>'
        )
    return (
        f'<article class="panel card"><h3>{name}{badge}</h3><p class="where">{where}</p>'
        f'{fresh}<p class="from">from backup {_code(target.get("backup_id"))}</p>'
        f"{_unlisted(target)}</article>"
    )


def _unlisted(target: TargetDoc) -> str:
    """The unlisted columns the last masked refresh kept as they are (nothing when the
    refresh recorded no masking)."""
    unlisted = target.get("unlisted")
    if unlisted is None:
        return ""
    if not unlisted:
        return '<p class="unlisted">unlisted columns: none</p>'
    names = ", ".join(_code(column) for column in unlisted)
    return f'<p class="unlisted">unlisted columns kept as they are ({len(unlisted)}): {names}</p>'


def _trends(data: PageData) -> str:
    charts = [
        dump_size_chart(data.cycles),
        cycle_duration_chart(data.cycles),
        drill_rto_chart(data.drills),
    ]
    figures = "".join(_figure(c, i) for i, c in enumerate(charts))
    return (
        f'<section aria-labelledby="trends"><h2 id="trends">Trends</h2>'
        f'<div class="charts">{figures}</div></section>'
    )


def _figure(chart: Chart, index: int) -> str:
    heading = f'<h3 id="chart-{index}">{safe(chart.title)}</h3>'
    if chart.svg is None:
        return f'<figure class="panel">{heading}<p class="empty">{safe(chart.caption)}</p></figure>'
    legend = "".join(f"<li>{_swatch(css)}{safe(label)}</li>" for css, label in chart.legend)
    return (
        f'<figure class="panel" aria-labelledby="chart-{index}">{heading}{chart.svg}'
        f'<ul class="legend">{legend}</ul><figcaption>{safe(chart.caption)}</figcaption></figure>'
    )


def _swatch(css: str) -> str:
    if css == "fail-mark":
        return (
            '<svg class="icon" viewBox="0 0 10 10" aria-hidden="true">'
            '<path class="fail-mark" d="M2 2l6 6m0-6l-6 6"/></svg>'
        )
    return f'<span class="swatch {css}"></span>'


def _cycles(cycles: Sequence[CycleDoc], now: datetime) -> str:
    heading = '<section aria-labelledby="cycles"><h2 id="cycles">Recent cycles</h2>'
    if not cycles:
        return f'{heading}<p class="empty">No cycles recorded yet.</p></section>'
    columns = [
        ("Status", ""),
        ("Started", ""),
        ("Duration", "num"),
        ("Dump size", "num"),
        ("Backup", ""),
        ("Run", ""),
        ("First error", "msg"),
    ]
    rows = [_cycle_row(c, now) for c in cycles[:MAX_ROWS]]
    return f"{heading}{_shown(len(cycles), 'cycles')}{_table(columns, rows)}</section>"


def _cycle_row(cycle: CycleDoc, now: datetime) -> Row:
    status = docs.cycle_status(cycle)
    errors = docs.cycle_errors(cycle)
    warnings = docs.store_warnings(cycle)
    size = docs.dump_size(cycle)
    if errors:
        message = safe(errors[0])
    elif warnings:
        message = f"{_pill(None, 'warning')} {safe(warnings[0])}"
    else:
        message = ""
    cells = [
        _pill(status == docs.SUCCESS if status else None, status or "unknown"),
        _time(docs.cycle_started(cycle), now),
        _seconds(as_number(cycle.get("duration_seconds"))),
        human_size(size) if size is not None else MISSING,
        _code(docs.dump_backup_id(cycle)),
        _code(cycle.get("run_id")),
        message,
    ]
    return cells, status != docs.SUCCESS


def _drills(drills: Sequence[DrillDoc], now: datetime) -> str:
    heading = '<section aria-labelledby="drills"><h2 id="drills">Recent restore drills</h2>'
    if not drills:
        return f'{heading}<p class="empty">No restore drills recorded yet.</p></section>'
    columns = [
        ("Status", ""),
        ("Started", ""),
        ("Backup", ""),
        ("RTO", "num"),
        ("Tables", "num"),
        ("Rows", "num"),
        ("Server", ""),
        ("First problem", "msg"),
    ]
    rows = [_drill_row(d, now) for d in drills[:MAX_ROWS]]
    return f"{heading}{_shown(len(drills), 'drills')}{_table(columns, rows)}</section>"


def _drill_row(drill: DrillDoc, now: datetime) -> Row:
    status = docs.drill_status(drill)
    label = {docs.SUCCESS: "passed", docs.FAILURE: "failed"}.get(status or "", "unknown")
    problem = docs.drill_problem(drill)
    server = server_text(drill.get("server"))
    cells = [
        _pill(status == docs.SUCCESS if status else None, label),
        _time(parse_time(drill.get("started_at")), now),
        _code(drill.get("backup_id")),
        _seconds(docs.drill_rto(drill)),
        _count(drill.get("tables")),
        _count(drill.get("rows")),
        safe(server) if server else MISSING,
        safe(problem) if problem else "",
    ]
    return cells, status != docs.SUCCESS


def _store_labels(backup: BackupDoc) -> list[str]:
    stores = backup.get("stores")
    return [s for s in stores if as_text(s)] if isinstance(stores, list) else []


def _backups(backups: Sequence[BackupDoc], now: datetime) -> str:
    heading = '<section aria-labelledby="backups"><h2 id="backups">Newest backups</h2>'
    if not backups:
        return f'{heading}<p class="empty">No backups yet.</p></section>'
    shown = backups[:MAX_ROWS]
    labels = sorted({label for b in shown for label in _store_labels(b)})
    # the stores and encryption columns appear only when they tell the rows apart
    several = len(labels) > 1
    encryption = any(b.get("encrypted") is True for b in shown)
    columns = [("Backup", ""), ("Created", ""), ("Age", ""), ("Size", "num")]
    columns += [("Stores", "")] if several else []
    columns += [("Encryption", "")] if encryption else []
    rows = [_backup_row(b, now, several, encryption) for b in shown]
    where = ""
    if len(labels) == 1:
        where = f'<p class="note">All in store <code>{safe(labels[0])}</code>.</p>'
    return f"{heading}{_shown(len(backups), 'backups')}{where}{_table(columns, rows)}</section>"


def _backup_row(backup: BackupDoc, now: datetime, stores: bool, encryption: bool) -> Row:
    created = parse_time(backup.get("created_at"))
    size = as_number(backup.get("size_bytes"))
    cells = [
        _code(backup.get("id")),
        _time(created, now),
        ago(created, now) if created is not None else MISSING,
        human_size(size) if size is not None else MISSING,
    ]
    if stores:
        labels = _store_labels(backup)
        cells.append(", ".join(f"<code>{safe(s)}</code>" for s in labels) or MISSING)
    if encryption:
        encrypted = backup.get("encrypted") is True
        cells.append('<span class="badge">encrypted</span>' if encrypted else "")
    return cells, False
