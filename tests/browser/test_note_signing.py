"""Signing a board note in the browser: the Sign button opens a confirmation step with the
summary of what is signed and asks for the password; a wrong password signs nothing."""

import re

import pytest

from checklist.models import BoardNoteVersion
from tests.browser.pages import login, screenshot
from tests.factories import PASSWORD, create_note, make_signable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def note(alice_client, case):
    make_signable(alice_client, case)
    return create_note(alice_client, case)


def test_a_physician_confirms_with_the_password_before_the_note_is_signed(page, alice, note):
    login(page)
    page.goto(f"/notes/{note}/")
    assert page.get_by_test_id("draft-marker").inner_text() == "DRAFT, not signed"
    page.get_by_role("link", name="Sign", exact=True).click()
    page.wait_for_url(re.compile(rf"/notes/{note}/sign/$"))

    # What is signed: the sections, the categories by status, what is not yet reviewed.
    summary = page.get_by_test_id("sign-summary")
    assert "Registration" in summary.inner_text()
    assert "not yet reviewed" in page.get_by_test_id("sign-statuses").inner_text()
    assert "still “not yet reviewed”" in page.get_by_test_id("sign-not-reviewed").inner_text()
    assert BoardNoteVersion.objects.get().state == "draft"
    screenshot(page, "note-sign-confirm")

    password = page.get_by_label("Your password")
    assert password.evaluate("e => e === document.activeElement")  # focused, ready to type
    password.fill("not-my-password")
    page.get_by_role("button", name="Sign now").click()
    page.wait_for_load_state()
    assert "Nothing was signed" in page.get_by_test_id("sign-error").inner_text()
    assert BoardNoteVersion.objects.get().state == "draft"
    screenshot(page, "note-sign-refused")

    page.get_by_label("Your password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/notes/{note}/$"))
    assert page.get_by_test_id("note-state").inner_text() == "signed"
    assert page.get_by_test_id("draft-marker").count() == 0
    version = BoardNoteVersion.objects.get()
    assert version.state == "signed" and version.snapshot_hash in page.content()
    screenshot(page, "note-signed-after-confirm")
    assert not page.console_errors  # type: ignore[attr-defined]
