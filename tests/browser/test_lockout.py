"""A physician locked out after failed logins sees how long the lockout lasts; the practice
admin unlocks the account on the accounts page; the physician logs in."""

import pytest

from tests.browser.pages import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_locked_out_physician_is_unlocked_by_the_admin(page, alice, adam, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page.goto("/login/")
    for _ in range(3):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("not her password")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    message = page.get_by_test_id("locked-out")
    assert "locked from this network address for 60 minutes" in message.inner_text()
    assert "ask your practice admin to unlock the account" in message.inner_text()
    screenshot(page, "lockout-message")

    login(page, "adam")  # another user from the same address is not locked
    page.goto("/accounts/")
    assert page.get_by_test_id("locked-alice").is_visible()
    screenshot(page, "lockout-accounts")
    page.get_by_role("button", name="Unlock alice").click()
    page.wait_for_url("**/accounts/")
    assert page.get_by_text("can log in again").is_visible()
    assert page.get_by_test_id("locked-alice").count() == 0
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")

    login(page, "alice")
    assert page.get_by_test_id("nav-practice").inner_text() == "Practice A"
