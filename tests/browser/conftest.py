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
from django.conf import settings
from playwright.sync_api import expect

# Browser test files begun before tests/browser/pages.py existed import these from here; new
# code imports them from tests.browser.pages.
from tests.browser.pages import ARTIFACTS, screenshot  # noqa: F401
from tests.factories import logged_in

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ANSWERED_IN_PLACE = re.compile(
    r"^Failed to load resource: the server responded with a status of (409|422|429) "
)
# axe-core (npm, installed by `make`) is put into every page the browser tests visit by
# Playwright (CDP, so the CSP, which refuses script tags, does not apply); it checks each page
# when it has loaded and reports through a binding; the test's last page is checked again at
# the end (what its clicks and htmx swaps left). Serious and critical violations fail the test.
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => {
  while (window.__axeRunning) await new Promise((r) => setTimeout(r, 20));
  window.__axeRunning = true;
  try {
    // Colours mid-transition (a button just clicked) are no one's contrast: wait them out.
    await Promise.race([
      Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null))),
      new Promise((r) => setTimeout(r, 2000)),
    ]);
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  } finally {
    window.__axeRunning = false;
  }
}"""
AXE_ON_LOAD = f"""
if (window.top === window) {{
  window.addEventListener("load", () => setTimeout(async () => {{
    window.__axeReport(location.href, await ({AXE_RUN})());
  }}, 0));
}}"""
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


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make node_modules/axe-core/axe.min.js` (npm ci)")
    return AXE.read_text()


def axe_violations(page, axe_source: str) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now: "impact rule: targets"."""
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.evaluate(axe_source)
    return [f"{page.url}: {v}" for v in page.evaluate(AXE_RUN)]


# `expect` waits as long as an action does (page.set_default_timeout below): on a busy CI
# machine an in-place save's answer came after expect's default 5 s.
expect.set_options(timeout=10_000)

# Bootstrap's transitions and smooth scrolling are off, as for a user who asks for reduced
# motion: axe-core read a link's colours or position mid-animation after an inline form
# closed (a color-contrast violation in CI on the link below the form).
MOTION = {"reduced_motion": "reduce"}


@pytest.fixture
def page(browser, live_server, axe_source):
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **MOTION)
    page = context.new_page()
    page.set_default_timeout(10_000)
    # Every browser test fails on a console error or an uncaught exception: a CSP violation
    # (the CSP allows no inline script or style), a failed request, a script error.
    # Not counted: Chromium's note on a 409 or 422 answer, which the case page's inline forms
    # get on purpose (a conflict, a form sent back with its errors) and show in place, and on
    # the 429 of the login lockout's page.
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
    violations: list[str] = []
    page.expose_binding(
        "__axeReport", lambda _source, url, found: violations.extend(f"{url}: {v}" for v in found)
    )
    page.add_init_script(axe_source + AXE_ON_LOAD)
    page.axe_violations = lambda: axe_violations(page, axe_source)  # type: ignore[attr-defined]
    yield page
    if not page.is_closed() and page.url.startswith("http"):
        violations.extend(axe_violations(page, axe_source))
    context.close()
    assert not errors, f"console errors: {errors}"
    unique = list(dict.fromkeys(violations))
    assert not unique, "axe-core (serious/critical):\n" + "\n".join(unique)


@pytest.fixture
def german_page(browser, live_server, alice):
    """A page logged in as alice, German interface language and German browser locale."""
    context = browser.new_context(base_url=live_server.url, locale="de-DE", **MOTION)
    session = logged_in(alice).cookies[settings.SESSION_COOKIE_NAME].value
    host = live_server.url.split("//", 1)[1].split(":")[0]
    context.add_cookies(
        [
            {"name": settings.SESSION_COOKIE_NAME, "value": session, "domain": host, "path": "/"},
            {"name": settings.LANGUAGE_COOKIE_NAME, "value": "de", "domain": host, "path": "/"},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
