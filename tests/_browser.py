"""Debian's headless ``chromium``, driven by Playwright, for the tests of the web pages."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from _helpers import ROOT
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
NODE_MODULES = ROOT / "api" / "static" / "node_modules"
LEAFLET = NODE_MODULES / "leaflet"
SWAGGER_UI = NODE_MODULES / "swagger-ui-dist"
# As the machine's docs prescribe: no sandbox (root), no GPU, and nothing that phones home
# (this machine has no network; Chromium's background connections would only fail).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def missing(what: str) -> None:
    # CI must run these tests; elsewhere a machine without the browser skips them.
    if os.environ.get("CI"):
        pytest.fail(f"{what} (make setup installs it)")
    pytest.skip(f"{what}: run make setup")


@contextmanager
def chromium(package: Path) -> Iterator[Browser]:
    """Chromium, launched headless for the pages that need the npm ``package``; without
    either the test is skipped (failed on CI). Playwright gives every launch a fresh, empty
    profile directory of its own."""
    if not CHROMIUM.exists():
        missing(f"no {CHROMIUM}")
    if not package.exists():
        missing("the pages' npm packages are not installed (api/static/node_modules)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def browser_fixture(package: Path) -> Callable[[], Iterator[Browser]]:
    """A test module's ``browser`` fixture (``browser = browser_fixture(AXE)``): one
    :func:`chromium` for the module's tests, for the pages that need ``package``."""
    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with chromium(package) as launched:
            yield launched
    return browser


def watched_tab(browser: Browser, *, script: str | None = None, tolerated: str | None = None,
                **options: Any) -> tuple[Page, list[str]]:
    """A tab in a fresh German desktop context (``options`` for the context, ``script`` a file
    run in every page first), and the JavaScript errors it logs: uncaught ones and console
    errors, but for those containing ``tolerated``."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 860},
                                     "locale": "de-DE", **options})
    if script is not None:
        context.add_init_script(path=script)  # by the debugging protocol: the page's policy
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error"
           and (tolerated is None or tolerated not in message.text) else None)
    return tab, errors


@contextmanager
def error_free_tab(browser: Browser, **options: Any) -> Iterator[Page]:
    """:func:`watched_tab`'s tab for the block, its context closed after it; the block fails
    if the page logged a JavaScript error."""
    tab, errors = watched_tab(browser, **options)
    try:
        yield tab
    finally:
        tab.context.close()
    assert not errors, f"errors in the page: {errors}"


def policy_page(browser: Browser) -> tuple[Page, list[str]]:
    """A new tab and the JavaScript errors on it; every violation of the page's
    Content-Security-Policy goes to ``window.violations`` as "directive blocked-URI"."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Injected by the browser's debugging protocol, which the policy does not govern.
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', event =>"
        " window.violations.push(event.effectiveDirective + ' ' + event.blockedURI));")
    return page, errors
