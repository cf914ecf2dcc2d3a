"""The status page as a document: its sections, its safety (escaping, no secrets, nothing
external, no script), graceful gaps, and its size."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from orchestrator.dashboard import PageData, render_status_page
from orchestrator.logs import register_secret
from tests.harness import status_data
from tests.harness.status_data import NOW

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}


class Outline(HTMLParser):
    """Collects tags, attributes and text; checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if not self.open or self.open[-1] != "style":
            self.text.append(data)


def outline(html: str) -> Outline:
    parsed = Outline()
    parsed.feed(html)
    parsed.close()
    assert parsed.errors == []
    assert parsed.open == []
    return parsed


def visible_text(html: str) -> str:
    """The document's text with tags removed and entities decoded, whitespace collapsed."""
    return " ".join(" ".join(outline(html).text).split())


def section(html: str, heading_id: str) -> str:
    """The text of the section headed by `heading_id`."""
    found = re.search(rf'<section aria-labelledby="{heading_id}">.*?</section>', html, re.S)
    assert found is not None, heading_id
    return visible_text(found.group(0))


def page(**changes: Any) -> str:
    return render_status_page(status_data.page_data(**changes))


def step(name: str, ok: bool, error: str | None = None, **detail: Any) -> dict[str, Any]:
    status = "success" if ok else "failure"
    return {
        "name": name,
        "status": status,
        "ok": ok,
        "seconds": 2.0,
        "error": error,
        "detail": detail,
    }


def failed_cycle(error: str) -> dict[str, Any]:
    return {
        "status": "failure",
        "run_id": "abc",
        "started_at": "2026-11-25T06:00:00Z",
        "finished_at": "2026-11-25T06:01:00Z",
        "duration_seconds": 60.0,
        "steps": [step("dump", True, size_bytes=10), step("restore:dev", False, error)],
        "error": None,
    }


def test_page_is_one_html5_document_with_charset_viewport_and_title():
    html = page()
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">')
    parsed = outline(html)
    metas = [attrs for tag, attrs in parsed.tags if tag == "meta"]
    assert {"charset": "utf-8"} in metas
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert "<title>Healthy · orchestrator — shop</title>" in html
    assert [tag for tag, _ in parsed.tags].count("style") == 1


def test_sections_come_in_order_headline_targets_charts_cycles_drills_backups():
    html = page()
    markers = [
        'id="verdict"',
        'id="targets"',
        'id="trends"',
        'id="cycles"',
        'id="drills"',
        'id="backups"',
    ]
    positions = [html.index(marker) for marker in markers]
    assert positions == sorted(positions)


def test_headline_says_healthy_and_why_with_the_generation_time():
    text = visible_text(page())
    assert "Healthy" in text
    assert "newest backup is 72 min old (limit 26 h)" in text
    assert "last cycle succeeded 69 min ago" in text
    assert "Generated 2026-11-25 07:12 UTC" in text


def test_unhealthy_headline_names_the_failed_step_and_its_first_error_line():
    data = status_data.page_data()
    cycles = [failed_cycle("pg_restore: error: relation missing\nsecond line"), *data.cycles]
    text = visible_text(render_status_page(status_data.page_data(cycles=cycles)))
    assert "Unhealthy" in text
    assert "last cycle failed 72 min ago: restore:dev — pg_restore: error: relation missing" in text
    assert "second line" not in text


def test_targets_show_where_freshness_backup_and_masked_badge():
    html = page()
    text = visible_text(html)
    assert "backup shop@backup-db.internal:5432 refreshed 69 min ago" in text
    assert "dev masked shop@dev-db.internal:5432 refreshed 69 min ago" in text
    assert "from backup shop-20261125T060002Z" in text
    assert html.count('class="badge masked"') == 1


def test_a_target_older_than_the_limit_is_marked_stale_and_one_never_refreshed_says_so():
    targets = [
        {
            "name": "dev",
            "database": "shop",
            "server": "h:5432",
            "last_refresh_at": "2026-11-20T06:00:00Z",
        },
        {"name": "qa", "database": "shop", "server": "h:5432", "last_refresh_at": None},
    ]
    text = visible_text(page(targets=targets))
    assert "stale refreshed 5.1 d ago" in text
    assert "never refreshed" in text


def test_three_charts_are_inline_svg_scaled_by_viewbox_with_title_and_caption():
    parsed = outline(page())
    charts = [attrs for tag, attrs in parsed.tags if tag == "svg" and attrs.get("class") == "chart"]
    assert [c["aria-label"] for c in charts] == [
        "Dump size over time",
        "Cycle duration by step",
        "Restore drill RTO",
    ]
    assert all(c["viewbox"] and c["role"] == "img" for c in charts)
    assert [tag for tag, _ in parsed.tags].count("figcaption") == 3


def test_cycle_chart_draws_a_bar_per_cycle_up_to_one_hundred():
    many = status_data.cycles(count=150)
    html = page(cycles=many, backups=status_data.backups(many), targets=status_data.targets(many))
    chart = re.search(r'aria-label="Cycle duration by step".*?</svg>', html, re.S)
    assert chart is not None
    assert chart.group(0).count("<g") == 100


def test_tables_list_cycles_drills_and_backups_newest_first_at_most_twenty_rows():
    html = page()
    text = visible_text(html)
    assert "Newest 20 of 60 cycles." in text
    assert "Newest 20 of 28 backups." in text
    cycles = html[html.index('id="cycles"') : html.index('id="drills"')]
    assert cycles.count("<tr") == 21  # the head and 20 rows
    assert cycles.index("2026-11-25 06:00 UTC") < cycles.index("2026-11-24 18:00 UTC")
    assert "failure" in cycles and "restore:dev — pg_restore: error: could not execute" in cycles


def test_drill_table_shows_rto_and_the_first_problem_of_a_failed_drill():
    text = section(page(), "drills")
    assert "failed" in text and status_data.DRILL_PROBLEM in text
    assert re.search(r"passed 2026-11-22 09:00 UTC shop-20261122T060002Z \d min \d\d s 42", text)
    assert "backup-db.internal:5432/postgres" in text
    assert "drill@" not in text


def test_backups_show_human_sizes_stores_when_several_and_encryption():
    html = page()
    backups = html[html.index('id="backups"') :]
    assert "104.8 MiB" in backups
    assert "<code>s3-main</code>, <code>r2-offsite</code>" in backups
    assert backups.count(">encrypted<") == 20


def test_backups_in_one_store_name_it_once_and_plain_backups_have_no_encryption_column():
    backups = [
        {
            "id": "shop-1",
            "created_at": "2026-11-25T06:00:00Z",
            "size_bytes": 2048,
            "stores": ["s3"],
            "encrypted": False,
        }
    ]
    html = page(backups=backups)
    text = visible_text(html)
    assert "All in store s3" in text
    assert "2.0 KiB" in text
    assert "Encryption" not in text and "Stores" not in text


def test_data_strings_are_escaped_so_markup_in_an_error_shows_as_text():
    html = render_status_page(
        status_data.page_data(cycles=[failed_cycle('<script>alert("x")</script><img src=x>')])
    )
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'restore:dev — <script>alert("x")</script>' in visible_text(html)


def test_titles_and_names_from_data_are_escaped_too():
    targets = [{"name": "<b>dev</b>", "database": "a&b", "server": '"x"', "masked": True}]
    html = page(title="<i>t</i>", targets=targets, source="<src>")
    assert "<i>" not in html and "<b>" not in html and "<src>" not in html
    assert "&lt;b&gt;dev&lt;/b&gt;" in html and "a&amp;b@&quot;x&quot;" in html


@pytest.mark.parametrize(
    "where",
    ["step error", "drill server", "drill problem", "target server", "source", "title"],
)
def test_a_password_in_a_url_anywhere_in_the_data_is_not_shown(where):
    url = "postgresql://admin:S3cr3t-pw@db.internal:5432/shop"
    data = status_data.page_data()
    drill = {**data.drills[0]}
    target = {**data.targets[0]}
    changes: dict[str, Any] = {}
    if where == "step error":
        changes["cycles"] = [failed_cycle(f"could not connect to {url}: refused")]
    elif where == "drill server":
        drill["server"] = url
    elif where == "drill problem":
        drill.update(status="failure", problems=[f"restore failed on {url}"])
    elif where == "target server":
        target["server"] = url
    elif where == "source":
        changes["source"] = url
    else:
        changes["title"] = f"orchestrator — {url}"
    changes.setdefault("drills", [drill])
    changes.setdefault("targets", [target])
    html = render_status_page(status_data.page_data(**changes))
    assert "S3cr3t-pw" not in html
    assert "admin" not in html
    assert "db.internal:5432" in html


def test_other_secrets_are_masked_registered_ones_and_assignments():
    register_secret("zq-registered-secret-41")
    error = (
        "boom: zq-registered-secret-41 PGPASSWORD=pw-one AWS_SECRET_ACCESS_KEY='k two' password=x3"
    )
    html = render_status_page(status_data.page_data(cycles=[failed_cycle(error)]))
    for secret in ("zq-registered-secret-41", "pw-one", "k two", "x3"):
        assert secret not in html
    assert "PGPASSWORD=***" in html


def test_query_strings_of_urls_in_errors_are_cut():
    error = "PUT https://s3.example.com/b/k?X-Amz-Signature=abc123 failed"
    html = render_status_page(status_data.page_data(cycles=[failed_cycle(error)]))
    assert "abc123" not in html
    assert "https://s3.example.com/b/k?…" in html


def test_document_references_nothing_external_and_has_no_script():
    html = page()
    parsed = outline(html)
    assert "script" not in [tag for tag, _ in parsed.tags]
    for _tag, attrs in parsed.tags:
        for name in ("href", "src", "srcset", "xlink:href", "action", "poster", "data"):
            assert name not in attrs, (name, attrs)
        assert not any(name.startswith("on") for name in attrs)
    assert "url(" not in html and "@import" not in html
    assert re.search(r"https?://", html) is None


def test_empty_history_renders_a_sensible_page():
    data = PageData(
        title="orchestrator — shop",
        generated_at=NOW,
        schedule="daily at 06:00 UTC",
        max_backup_age_seconds=3600,
        source="db/shop",
    )
    html = render_status_page(data)
    text = visible_text(html)
    for words in (
        "Unhealthy",
        "no backups yet",
        "no cycles recorded yet",
        "No targets configured.",
        "No successful dump recorded yet.",
        "No cycle recorded yet.",
        "No restore drill recorded yet.",
        "No cycles recorded yet.",
        "No restore drills recorded yet.",
        "No backups yet.",
        "Drills not scheduled",
    ):
        assert words in text


def test_missing_and_malformed_values_show_a_dash():
    cycles: list[Any] = [
        {"status": "success"},
        {"status": "failure", "steps": "not a list", "started_at": "yesterday"},
        {
            "steps": [
                {
                    "name": "dump",
                    "status": "success",
                    "seconds": "slow",
                    "detail": {"size_bytes": "big"},
                }
            ]
        },
        {
            "status": "failure",
            "steps": [None, {"status": "failure"}],
            "duration_seconds": float("nan"),
        },
    ]
    drills: list[Any] = [{"status": "failure"}, {"rto_seconds": True, "problems": [None]}]
    backups: list[Any] = [{"id": None, "created_at": 5, "size_bytes": None, "stores": "s3"}]
    targets: list[Any] = [{"name": "dev"}]
    html = page(cycles=cycles, drills=drills, backups=backups, targets=targets)
    text = visible_text(html)
    assert "—" in text
    assert "unknown" in text
    assert "step — failed" in text


def test_page_stays_small_for_five_hundred_cycles():
    many = status_data.cycles(count=500)
    html = page(
        cycles=many, backups=status_data.backups(many, keep=500), targets=status_data.targets(many)
    )
    assert len(html.encode()) < 200_000


RENDER_ELSEWHERE = (
    "import copy, sys\n"
    "from orchestrator.dashboard import render_status_page\n"
    "from tests.harness import status_data\n"
    "data = status_data.page_data()\n"
    "before = copy.deepcopy(data)\n"
    "sys.stdout.write(render_status_page(data))\n"
    "assert data == before, 'rendering changed its data'\n"
)


@pytest.mark.parametrize(
    ("zone", "seed"), [("Pacific/Kiritimati", "1"), ("America/Los_Angeles", "2")]
)
def test_rendering_is_pure_the_same_page_in_another_process_zone_and_hash_seed(zone, seed):
    """Nothing but the data shapes the page: not the machine's time zone, not the hash
    seed (set order), not what an earlier call left behind, and the data is not changed."""
    env = {**os.environ, "TZ": zone, "PYTHONHASHSEED": seed}
    elsewhere = subprocess.run(
        [sys.executable, "-c", RENDER_ELSEWHERE],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
        check=True,
    ).stdout
    page()  # an earlier call in this process must leave nothing behind
    assert page() == elsewhere


def test_ages_are_measured_at_the_data_s_generated_at():
    later = status_data.page_data(generated_at=NOW + timedelta(hours=1))
    assert "2 h ago" in visible_text(render_status_page(later))


def test_a_store_that_failed_in_a_successful_upload_is_shown_as_a_warning():
    data = status_data.page_data()
    cycle: dict[str, Any] = {**data.cycles[0], "steps": [dict(s) for s in data.cycles[0]["steps"]]}
    cycle["steps"][1]["detail"] = {"stores": {"s3-main": "ok", "r2-offsite": "timed out\nretry"}}
    text = section(render_status_page(status_data.page_data(cycles=[cycle])), "cycles")
    assert "success" in text
    assert "warning upload — r2-offsite: timed out" in text
    assert "retry" not in text


def test_a_running_cycle_is_shown_with_its_steps_and_counts_and_nothing_when_idle():
    running = {
        "kind": "cycle",
        "started_at": "2026-11-25T06:00:00Z",
        "seconds": 185.0,
        "steps": ["upload", "restore:dev"],
        "dumped_bytes": 3 * 1024**3,
        "stored_bytes": 1024**3,
        "tables_done": 12,
        "tables_total": 40,
    }
    html = page(running=running)
    found = re.search(r'<section class="panel running".*?</section>', html, re.S)
    assert found is not None
    assert visible_text(found.group(0)) == (
        "Running now cycle 3 min 05 s: upload, restore:dev · 3.0 GiB dumped · 1.0 GiB stored"
        " · 12 of 40 tables"
    )
    assert html.index('id="verdict"') < html.index('id="running"') < html.index('id="targets"')
    assert 'id="running"' not in page()
