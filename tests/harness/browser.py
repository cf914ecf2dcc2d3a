"""Debian's headless Chromium, driven by Playwright, for pages written to local files.

Playwright's own browser download cannot work on these machines, so the browser is
always `/usr/bin/chromium` (scripts/bootstrap installs Debian's `chromium` package),
started with a fresh profile and the flags that keep it off the network on its own.

`visit()` opens a page and records what a test needs to judge it: console errors,
page errors, and every request the page made (anything but the page's own file is
aborted, so nothing can leave). `screenshot()` saves a PNG of an HTML file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# As root, Chromium needs --no-sandbox; the networking flags stop its background
# connections (updates, sync, field trials), which this machine's closed network refuses.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ColorScheme = Literal["light", "dark"]

try:
    from playwright.sync_api import BrowserContext, Page, Request, Route, sync_playwright
except ImportError:  # judged in require_browser(), with a clear message
    sync_playwright = None  # type: ignore[assignment]


def require_browser() -> None:
    """Skip when neither Chromium nor Playwright is there and scripts/bootstrap has not
    run; fail when the bootstrap ran (it installs both), so a broken set-up is loud."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    if sync_playwright is None:
        missing.append("the playwright Python package (dev extras)")
    if not missing:
        return
    bootstrapped = any((REPO / ".venv").glob(".installed-*"))
    message = "browser tests need " + " and ".join(missing)
    if bootstrapped:
        pytest.fail(f"{message}, which scripts/bootstrap installs: run it again, as root")
    pytest.skip(f"{message}: run scripts/bootstrap (as root) first")


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    """Give a headless Chromium context with a fresh, empty profile; closed on exit."""
    require_browser()
    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


@dataclass
class Visit:
    """An open page and what happened while it loaded."""

    page: Page
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def foreign_requests(self) -> list[str]:
        """Requests for anything but the page itself."""
        return [url for url in self.requests if url != self.url]

    def js(self, expression: str) -> object:
        """Evaluate `expression` in the page and give its value."""
        return self.page.evaluate(expression)


@contextmanager
def visit(
    context: BrowserContext,
    html_file: Path,
    width: int = 1440,
    height: int = 900,
    color_scheme: ColorScheme = "light",
) -> Iterator[Visit]:
    """Open `html_file` in a new page at `width` x `height` in `color_scheme`; give the
    Visit once the page has loaded; close the page on exit."""
    page = context.new_page()
    url = html_file.resolve().as_uri()
    seen = Visit(page, url)

    def route(route: Route) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort("blockedbyclient")

    def on_console(message: object) -> None:
        if getattr(message, "type", "") == "error":
            seen.console_errors.append(str(getattr(message, "text", message)))

    def on_request(request: Request) -> None:
        seen.requests.append(request.url)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.route("**/*", route)
    page.set_viewport_size({"width": width, "height": height})
    page.emulate_media(color_scheme=color_scheme)
    try:
        page.goto(url, wait_until="load")
        yield seen
    finally:
        page.close()


def screenshot(
    html_file: Path,
    png: Path,
    width: int = 1440,
    color_scheme: ColorScheme = "light",
    full_page: bool = True,
) -> Path:
    """Save a PNG of `html_file` rendered at `width` CSS pixels in `color_scheme` (the
    whole page unless `full_page` is False); give the PNG's path. For the README's
    screenshot: render the page from real data to a file, then call this."""
    with chromium() as context, visit(context, html_file, width, color_scheme=color_scheme) as v:
        v.page.screenshot(path=str(png), full_page=full_page)
    return png
