"""The main pages in English and German have no serious or critical axe-core violations: the
case list, a case page with rows of every kind, an inline row form open (with the OncoTree list
open and closed), the checklist, a note, the sign step, the audit trail, the case history, the
catalogue, the accounts and the tumour-board pages (boards, agenda, meeting mode). (The `page`
fixture checks every page any browser test visits; this test makes sure these pages are
visited, with data on them.)"""

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from checklist.models import Membership
from checklist.services import catalogue_draft_create
from tests.browser.pages import login, screenshot
from tests.factories import (
    create_note,
    logged_in,
    make_signable,
    seed_meeting,
    seed_rows,
    sign_note,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def german(page):
    host = page.url.split("//", 1)[1].split(":")[0]
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "de", "domain": host, "path": "/"}]
    )


def check(page, found: list[str], what: str) -> None:
    page.wait_for_load_state()
    found.extend(f"{what}: {v}" for v in page.axe_violations())


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_main_pages_have_no_serious_accessibility_violations(page, alice, adam, case, language):
    client = logged_in(alice)
    make_signable(client, case)
    seed_rows(case, 2)
    signed = create_note(client, case)
    assert sign_note(client, signed).status_code == 302
    draft = create_note(client, case, question="Another question?")
    draft_catalogue = catalogue_draft_create(practice=case.practice)
    category = draft_catalogue.categories.values_list("pk", flat=True).first()
    meeting = seed_meeting(case.practice, alice, 2, day=timezone.localdate())
    found: list[str] = []

    login(page)
    if language == "de":
        german(page)
    for what, url in [
        ("case list", "/cases/"),
        ("case page", f"/cases/{case.pk}/"),
        ("checklist", f"/cases/{case.pk}/checklist/"),
        ("signed note", f"/notes/{signed}/"),
        ("draft note", f"/notes/{draft}/"),
        ("sign step", f"/notes/{draft}/sign/"),
        ("notes", "/notes/"),
        ("case history", f"/cases/{case.pk}/history/"),
        ("catalogue", "/catalogue/"),
        ("my account", "/account/"),
        ("tumour boards", "/boards/"),
        ("board", f"/boards/{meeting.board_id}/"),
        ("agenda", f"/meetings/{meeting.pk}/"),
        ("meeting mode", f"/meetings/{meeting.pk}/run/"),
    ]:
        page.goto(url)
        check(page, found, what)

    # An inline row form open, and the OncoTree list open in it.
    page.goto(f"/cases/{case.pk}/")
    tumours = page.locator("#tumours")
    tumours.locator(".add-actions a").click()
    oncotree = page.locator("#id_oncotree")
    expect(oncotree).to_be_focused()
    expect(oncotree).to_have_attribute("aria-expanded", "false")
    check(page, found, "inline tumour form")
    oncotree.press_sequentially("ductal", delay=20)
    expect(page.locator("#oncotree-results [role=listbox]")).to_be_visible()
    expect(oncotree).to_have_attribute("aria-expanded", "true")
    check(page, found, "OncoTree list open")
    screenshot(page, f"a11y-oncotree-open-{language}")
    oncotree.press("Escape")
    expect(page.locator("#oncotree-results [role=listbox]")).to_have_count(0)
    expect(oncotree).to_have_attribute("aria-expanded", "false")
    page.locator("#staging .add-actions a").click()
    expect(page.locator("#staging form[data-inline-form]")).to_be_visible()
    check(page, found, "inline staging form")

    # The practice admin's pages.
    page.context.clear_cookies()
    login(page, "adam")
    if language == "de":
        german(page)
    for what, url in [
        ("accounts", "/accounts/"),
        ("audit trail", "/audit/"),
        ("new account", "/accounts/new/"),
        ("catalogue", "/catalogue/"),
        ("catalogue draft", f"/catalogue/{draft_catalogue.number}/"),
        ("catalogue category", f"/catalogue/{draft_catalogue.number}/categories/{category}/"),
        ("account", f"/accounts/{Membership.objects.get(user=alice).pk}/"),
    ]:
        page.goto(url)
        check(page, found, what)
        assert page.locator("html").get_attribute("lang") == language
    assert not found, "\n".join(found)
