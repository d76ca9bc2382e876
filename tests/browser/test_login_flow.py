import pytest
from playwright.sync_api import expect

from checklist.models import Practice
from tests.browser.pages import screenshot
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_logs_in_switches_language_and_logs_out(page, alice):
    # The password step alone: the practice asks no second factor of its physicians
    # (tests/browser/test_second_factor.py logs in with one).
    Practice.objects.update(second_factor_for_physicians=False)
    page.goto("/")
    assert "/login/" in page.url
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("The user name or password is not correct")).to_be_visible()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/cases/")
    assert page.get_by_test_id("empty-case-list").is_visible()
    assert page.get_by_test_id("nav-practice").inner_text() == "Practice A"
    screenshot(page, "case-list-en")

    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Fälle").is_visible()
    assert page.locator("html").get_attribute("lang") == "de"
    screenshot(page, "case-list-de")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Cases")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    page.goto("/cases/")
    assert "/login/" in page.url
    # The CSP holds: no inline style or script was refused on these pages.
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
