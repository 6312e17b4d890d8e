"""Driving Debian's chromium with Playwright for the run browser's tests: a page that records
its console, its requests and its dialogs, signs in, runs axe-core and saves screenshots."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from stack import browser as browser_setup
from stack import config

ARTIFACTS = config.STACK_DIR / "artifacts" / "browser"
# A zone far from UTC, so that a time shown in the reader's zone differs from the UTC one.
READER_ZONE = "America/New_York"
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}


def launch() -> tuple[object, Browser]:
    """Playwright and Debian's chromium; fails loudly (never skips) when either is missing."""
    missing = [
        str(path)
        for path in (browser_setup.CHROMIUM, browser_setup.AXE_SCRIPT)
        if not path.exists()
    ]
    if missing:
        raise AssertionError(
            f"the browser tests need {', '.join(missing)}: run `make browser` "
            "(make test does it: chromium with apt, axe-core with npm)"
        )
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(browser_setup.CHROMIUM))
    except Exception:
        playwright.stop()
        raise
    return playwright, browser


@dataclass
class Watched:
    """A page and what it did: console errors, requests, dialogs (scripts that ran)."""

    page: Page
    origin: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # Console errors a step caused on purpose (a refused sign-in answers 401), by pattern.
    expected_errors: list[re.Pattern] = field(default_factory=list)

    def unexpected_console_errors(self) -> list[str]:
        return [
            text
            for text in self.console_errors
            if not any(pattern.search(text) for pattern in self.expected_errors)
        ]

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if _origin(url) != self.origin]

    def sign_in(self, token: str) -> None:
        """Sign in through the form; the page ends on the run list."""
        self.page.goto(f"{self.origin}/ui/")
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/ui/runs$"))

    def axe_violations(self) -> list[dict]:
        """axe-core's violations on the current page (evaluated, not injected: the CSP holds)."""
        self.page.evaluate(browser_setup.AXE_SCRIPT.read_text() + "\n;true")
        return self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
        )

    def screenshot(self, name: str, full_page: bool = True, selector: str | None = None) -> Path:
        """A PNG under .stack/artifacts/browser/: the page, or only the element `selector`."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if selector:
            self.page.locator(selector).screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)
        return path


def watch(browser: Browser, origin: str, viewport: dict = DESKTOP) -> Watched:
    """A fresh context (no cookies) and page, in the reader's zone, recording what it does."""
    context = browser.new_context(viewport=viewport, timezone_id=READER_ZONE, locale="en-US")
    page = context.new_page()
    watched = Watched(page=page, origin=origin)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    def on_request(request: Request) -> None:
        watched.requests.append(request.url)

    def on_dialog(dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.console_errors.append(f"page error: {error}"))
    context.on("request", on_request)
    page.on("dialog", on_dialog)
    return watched


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
