import base64

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from tests.browser.pages import screenshot
from tests.factories import PASSWORD, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _password(page, username):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_admin_enrols_an_authenticator_and_logs_in_with_it(page, adam):
    _password(page, "adam")
    page.wait_for_url("**/login/enrol/**")
    assert page.get_by_test_id("otp-qr").is_visible()
    screenshot(page, "second-factor-enrol")
    # The authenticator app's part: the key typed in by hand, its current code.
    secret = page.get_by_test_id("otp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Code").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Confirm").click()

    # The codes are shown at the same address: wait for them (all_inner_texts does not).
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    screenshot(page, "second-factor-recovery-codes")
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/cases/")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    _password(page, "adam")
    page.wait_for_url("**/login/code/**")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("This code is not correct")).to_be_visible()
    # The same key's next accepted code (the device takes each 30-second code once).
    page.get_by_label("Code").fill(totp_code(TOTPDevice.objects.get(user=adam)))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/cases/")
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
