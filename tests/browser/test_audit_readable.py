"""What a practice admin sees in the audit trail and a case's history (issue 14): names, labels,
local times, the note's snapshot folded away until asked for, in English and German; the case
history without "case viewed" rows until the toggle shows them. Screenshots in test-artifacts/.
"""

from __future__ import annotations

import pytest

from checklist.models import BoardNoteVersion, Category
from checklist.services import account_set_title
from tests.browser.pages import login, screenshot
from tests.factories import PASSWORD, create_note, make_signable, record_stage_change

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def recorded(alice_client, alice, case):
    """Dr. Alice Adler changes the stage, signs a board note, raises the first category."""
    alice.last_name = "Adler"
    alice.save()
    account_set_title(user=alice, title="Dr.")
    record_stage_change(alice_client, case)
    make_signable(alice_client, case)
    note = create_note(alice_client, case)
    version = BoardNoteVersion.objects.get(note_id=note)
    alice_client.post(
        f"/notes/{note}/sign/",
        {"revision": version.revision, "case_version": case.version, "password": PASSWORD},
    )
    category = Category.objects.filter(practice=case.practice, active=True).order_by("position")[0]
    alice_client.post(f"/cases/{case.pk}/checklist/{category.pk}/", {"status": "raise"})
    return case


def _switch_to_german(page) -> None:
    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_load_state()


def test_an_admin_reads_who_changed_what_in_the_trail(page, recorded, adam):
    login(page, "adam")
    page.goto(f"/audit/?case={recorded.label}&kind=change")
    events = page.get_by_test_id("audit-events")
    signing = events.locator("tbody tr").filter(has_text="signed by")
    assert "Dr. Alice Adler" in signing.inner_text()
    assert "— → Dr. Alice Adler" in signing.inner_text()
    assert "(alice)" in signing.get_by_test_id("who").inner_text()
    assert "raise at board" in events.inner_text()

    snapshot = page.get_by_test_id("snapshot")
    assert snapshot.count() == 1 and snapshot.get_attribute("open") is None
    inside = snapshot.locator("section").first
    assert not inside.is_visible()  # folded away
    screenshot(page, "audit-trail-readable-en")
    snapshot.locator("summary").click()
    assert inside.is_visible() and "Dr. Alice Adler" in snapshot.inner_text()
    screenshot(page, "audit-trail-readable-en-snapshot")

    _switch_to_german(page)
    events = page.get_by_test_id("audit-events")
    assert "signiert von" in events.inner_text()
    assert "in der Tumorkonferenz ansprechen" in events.inner_text()
    assert page.get_by_text("Momentaufnahme anzeigen").is_visible()
    screenshot(page, "audit-trail-readable-de")
    assert page.console_errors == []


def test_the_case_history_shows_views_only_on_request(page, recorded, adam):
    login(page, "adam")
    page.goto(f"/cases/{recorded.pk}/history/")
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    assert rows.filter(has_text="case viewed").count() == 0
    assert rows.filter(has_text="staging record").count() >= 2
    screenshot(page, "case-history-en")

    page.get_by_role("link", name="Show “case viewed” events too").click()
    page.wait_for_url("**views=1**")  # the count below reads the new page, not the old one
    assert rows.filter(has_text="case viewed").count() >= 1
    screenshot(page, "case-history-en-with-views")
    page.get_by_role("link", name="Hide “case viewed” events").click()
    page.wait_for_url(lambda url: "views=1" not in url)
    assert rows.filter(has_text="case viewed").count() == 0

    _switch_to_german(page)
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    assert rows.filter(has_text="Fall angesehen").count() == 0
    assert "Dr. Alice Adler" in rows.first.inner_text()
    screenshot(page, "case-history-de")
    page.get_by_role("link", name="Auch Ereignisse „Fall angesehen“ zeigen").click()
    page.wait_for_url("**views=1**")
    assert rows.filter(has_text="Fall angesehen").count() >= 1
    screenshot(page, "case-history-de-with-views")
    assert page.console_errors == []
