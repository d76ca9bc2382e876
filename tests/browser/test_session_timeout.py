"""The idle timeout as a user meets it: a warning before the end, "Stay signed in" keeps the
page and what was typed, and without it the next request lands on the login page saying why.
The live server runs with a 6-second idle timeout and the warning 4 seconds before it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.pages import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TYPED = "Prof. Dr."


@pytest.fixture
def short_sessions(settings):
    settings.SESSION_IDLE_SECONDS = 6
    settings.SESSION_WARNING_SECONDS = 4


def test_a_warning_lets_the_user_stay_signed_in_and_keep_their_input(page, alice, short_sessions):
    login(page)
    page.goto("/account/")
    title = page.get_by_label("Title")
    title.fill(TYPED)
    warning = page.get_by_role("alert").filter(has_text="Your session will end soon")
    expect(warning).to_be_visible(timeout=5_000)
    stay = warning.get_by_role("button", name="Stay signed in")
    stay.focus()
    expect(stay).to_be_focused()
    screenshot(page, "session-warning")

    stay.press("Enter")
    expect(warning).to_be_hidden()
    assert page.url.endswith("/account/")
    expect(title).to_have_value(TYPED)

    # Warned again two seconds later; still on the page, still with the input, and then past
    # the idle end the page says the session has ended.
    expect(warning).to_be_visible(timeout=5_000)
    ended = page.get_by_role("alert").filter(has_text="Your session has ended")
    expect(ended).to_be_visible(timeout=10_000)
    expect(ended.get_by_role("button", name="Stay signed in")).to_be_hidden()
    expect(title).to_have_value(TYPED)
    screenshot(page, "session-ended")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/login/**")
    expect(page.get_by_text("Your session ended after 6 seconds without activity.")).to_be_visible()
    screenshot(page, "session-ended-login")


def test_the_next_page_after_the_idle_time_is_the_login_page(page, alice, short_sessions):
    """Without the script's help (a page left alone, then a link followed): the server ends the
    session and the login page says why."""
    login(page)
    page.wait_for_timeout(6_500)
    # Nothing asked the server in between (the warning's own question is not activity).
    page.get_by_role("link", name="My account").click()
    page.wait_for_url("**/login/**")
    expect(page.get_by_text("Your session ended after 6 seconds without activity.")).to_be_visible()
