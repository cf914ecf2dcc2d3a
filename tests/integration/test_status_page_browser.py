"""The status page in a real browser: Debian's headless Chromium, driven by Playwright.

Pages are rendered from realistic data (tests/harness/status_data.py), from an empty
history, and from hostile data (long unbroken strings, markup, passwords), written to temp
files and opened as file:// URLs. Every request other than the page itself is aborted and
recorded, so a reference to anything outside would show up here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator.dashboard import PageData, render_status_page
from tests.harness import status_data
from tests.harness.browser import ColorScheme, chromium, screenshot, visit
from tests.harness.status_data import NOW

pytestmark = pytest.mark.integration

WIDTHS = (390, 1440)
SCHEMES: tuple[ColorScheme, ...] = ("light", "dark")
PAGES = ("realistic", "empty", "hostile")


def hostile_data() -> PageData:
    """Long unbroken strings where a layout breaks first, markup, and credentials."""
    data = status_data.page_data()
    long_word = "x" * 240
    cycle: dict[str, Any] = {
        **data.cycles[0],
        "status": "failure",
        "steps": [
            {
                "name": "restore:dev",
                "status": "failure",
                "ok": False,
                "seconds": 3.0,
                "error": f"<script>alert(1)</script> postgresql://u:pw-leak@h/db {long_word}",
                "detail": {},
            }
        ],
    }
    target: dict[str, Any] = {
        **data.targets[0],
        "name": f"target-{long_word}",
        "database": long_word,
    }
    return status_data.page_data(
        title=f"orchestrator — {long_word}",
        source=f"{long_word}.example/{long_word}",
        cycles=[cycle, *data.cycles],
        targets=[target],
    )


def empty_data() -> PageData:
    return PageData(
        title="orchestrator — shop",
        generated_at=NOW,
        schedule="daily at 06:00, 18:00 UTC",
        max_backup_age_seconds=26 * 3600,
        source="db.internal/shop",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("status-page")
    made = {}
    for name, data in (
        ("realistic", status_data.page_data()),
        ("empty", empty_data()),
        ("hostile", hostile_data()),
    ):
        made[name] = folder / f"{name}.html"
        made[name].write_text(render_status_page(data), encoding="utf-8")
    return made


def rgb(css: str) -> tuple[float, ...]:
    """`rgb(1, 2, 3)` or `rgba(1, 2, 3, 1)` -> (1, 2, 3)."""
    found = re.findall(r"[\d.]+", css)
    return tuple(float(v) for v in found[:3])


def contrast(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(color: tuple[float, ...]) -> float:
        channels = [c / 255 for c in color]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_without_errors_and_requests_nothing_but_itself(browser, pages, name):
    with visit(browser, pages[name]) as page:
        assert page.console_errors == []
        assert page.page_errors == []
        assert page.requests == [page.url]
        assert page.foreign_requests == []
        assert page.js("document.scripts.length") == 0


def test_the_harness_sees_what_a_page_asks_for_and_its_errors(browser, tmp_path):
    # the checks above would pass vacuously if requests or errors went unseen
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><link rel="stylesheet" href="https://cdn.example.com/x.css">'
        '<img src="http://img.example.com/x.png"><script>console.error("oops");'
        "throw new Error('boom')</script>"
    )
    with visit(browser, bad) as page:
        assert sorted(page.foreign_requests) == [
            "http://img.example.com/x.png",
            "https://cdn.example.com/x.css",
        ]
        assert "oops" in page.console_errors
        assert any("boom" in error for error in page.page_errors)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_nothing_overflows_the_viewport(browser, pages, name, width, scheme):
    with visit(browser, pages[name], width=width, color_scheme=scheme) as page:
        scroll_width = page.js("document.documentElement.scrollWidth")
        inner_width = page.js("window.innerWidth")
        assert inner_width == width
        assert isinstance(scroll_width, int) and scroll_width <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_headline_targets_and_three_charts_are_visible(browser, pages, width):
    with visit(browser, pages["realistic"], width=width) as page:
        verdict = page.page.locator(".headline .verdict")
        assert verdict.is_visible() and verdict.inner_text().strip() == "Healthy"
        checks = page.page.locator(".headline .checks li")
        assert checks.count() == 3 and all(checks.nth(i).is_visible() for i in range(3))
        cards = page.page.locator("#targets ~ .cards .card")
        assert cards.count() == 2
        for index, name in enumerate(("backup", "dev")):
            card = cards.nth(index)
            assert card.is_visible()
            text = " ".join(card.inner_text().split())
            assert text.startswith(name)
            assert "refreshed 69 min ago (2026-11-25 06:03 UTC)" in text
        charts = page.page.locator("svg.chart")
        assert charts.count() == 3
        for index in range(3):
            chart = charts.nth(index)
            assert chart.is_visible()
            box = chart.bounding_box()
            assert box is not None and box["width"] >= 300 and box["height"] >= 150
            assert box["x"] >= 0 and box["x"] + box["width"] <= width


def test_charts_sit_side_by_side_on_a_wide_screen_and_stack_on_a_phone(browser, pages):
    tops = {}
    for width in WIDTHS:
        with visit(browser, pages["realistic"], width=width) as page:
            charts = page.page.locator("svg.chart")
            tops[width] = [charts.nth(i).bounding_box()["y"] for i in range(3)]  # type: ignore[index]
    assert len(set(tops[1440])) == 1
    assert tops[390] == sorted(tops[390]) and len(set(tops[390])) == 3


def test_wide_tables_scroll_in_their_box_on_a_phone(browser, pages):
    with visit(browser, pages["realistic"], width=390) as page:
        boxes = page.js(
            "[...document.querySelectorAll('.scroll')]"
            ".map(box => [box.scrollWidth, box.clientWidth, getComputedStyle(box).overflowX])"
        )
        assert isinstance(boxes, list) and len(boxes) == 3
        assert all(overflow == "auto" for _, _, overflow in boxes)
        assert any(scroll > client for scroll, client, _ in boxes)


def test_schemes_change_the_colours_and_chart_labels_stay_readable(browser, pages):
    found = {}
    for scheme in SCHEMES:
        with visit(browser, pages["realistic"], color_scheme=scheme) as page:
            found[scheme] = page.js(
                "({body: getComputedStyle(document.body).backgroundColor,"
                " text: getComputedStyle(document.body).color,"
                " panel: getComputedStyle(document.querySelector('figure')).backgroundColor,"
                " label: getComputedStyle(document.querySelector('svg.chart text')).fill,"
                " bar: getComputedStyle(document.querySelector('svg.chart rect')).fill})"
            )
    assert found["light"] != found["dark"]
    for scheme in SCHEMES:
        colors = found[scheme]
        assert isinstance(colors, dict)
        assert contrast(rgb(colors["text"]), rgb(colors["body"])) >= 7, scheme
        assert contrast(rgb(colors["label"]), rgb(colors["panel"])) >= 4.5, scheme
        assert contrast(rgb(colors["bar"]), rgb(colors["panel"])) >= 3, scheme


def test_hostile_data_shows_as_text_without_the_password(browser, pages):
    with visit(browser, pages["hostile"], width=390) as page:
        text = page.page.locator("body").inner_text()
        assert "<script>alert(1)</script>" in text
        assert "pw-leak" not in page.page.content()
        assert "Unhealthy" in text


def test_screenshot_helper_saves_a_png_of_the_page_at_the_given_width(pages, tmp_path):
    # Its own browser, as a user calls it; in another thread, because Playwright's sync API
    # cannot start inside the one this module's browser runs in.
    with ThreadPoolExecutor(1) as pool:
        png = pool.submit(
            screenshot, pages["realistic"], tmp_path / "page.png", width=390, color_scheme="dark"
        ).result(timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert width == 390 and height > 2000  # the whole page, not only the first screen
