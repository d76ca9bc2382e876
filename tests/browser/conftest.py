"""Playwright driving Debian's Chromium against pytest-django's live server.

In CI (CI=true) a missing browser is a failure; on a developer machine the tests skip and say
why. `playwright install` cannot work here: we always launch /usr/bin/chromium.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

# Browser test files begun before tests/browser/pages.py existed import these from here; new
# code imports them from tests.browser.pages.
from tests.browser.pages import ARTIFACTS, screenshot  # noqa: F401

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ANSWERED_IN_PLACE = re.compile(
    r"^Failed to load resource: the server responded with a status of (409|422) "
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    # Every browser test fails on a console error or an uncaught exception: a CSP violation
    # (the CSP allows no inline script or style), a failed request, a script error.
    # Not counted: Chromium's note on a 409 or 422 answer, which the case page's inline forms
    # get on purpose (a conflict, a form sent back with its errors) and show in place.
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not ANSWERED_IN_PLACE.match(m.text)
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not errors, f"console errors: {errors}"
