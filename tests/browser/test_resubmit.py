"""Silent failures 2 and 4 of issue 13 in the browser: Back and Save again must not save a
second identical row or re-apply a note edit unasked; a metastasis row sets the status.

Self-contained helpers, so the file also runs against older trees."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from checklist import services
from checklist.models import BoardNoteVersion, Comorbidity, Metastasis
from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _login(page, username="alice"):
    login(page, username)


def _field(page, label):
    return page.get_by_label(re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$"))


def _save(page):
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()


def test_back_and_save_again_asks_before_a_second_identical_comorbidity(page, alice, case):
    _login(page)
    page.goto(f"/cases/{case.pk}/comorbidity/new/")
    _field(page, "Comorbidity").fill("Diabetes mellitus type 2")
    _save(page)
    page.wait_for_url(re.compile(rf"/cases/{case.pk}/#"))
    assert Comorbidity.objects.filter(case=case).count() == 1

    # Back: the form page is fetched again (fresh token, current version); the browser
    # restores the typed text. Saving again asks first and saves nothing.
    page.go_back()
    page.wait_for_url(re.compile(r"/comorbidity/new/$"))
    assert _field(page, "Comorbidity").input_value() == "Diabetes mellitus type 2"
    _save(page)
    question = page.get_by_test_id("duplicate-question")
    question.wait_for()
    assert re.search(
        r"You saved the same comorbidity at \d\d:\d\d\. Save again\?", question.inner_text()
    )
    _screenshot(page, "resubmit-duplicate-question")
    assert Comorbidity.objects.filter(case=case).count() == 1

    # Saving once more without the confirmation asks again.
    _save(page)
    page.get_by_test_id("duplicate-question").wait_for()
    assert Comorbidity.objects.filter(case=case).count() == 1

    # Confirmed, the second row is saved.
    page.get_by_label("Yes, save it again").check()
    _save(page)
    page.wait_for_url(re.compile(rf"/cases/{case.pk}/#"))
    assert Comorbidity.objects.filter(case=case).count() == 2
    assert page.console_errors == []


def test_back_and_save_again_on_a_note_edit_changes_nothing(page, alice, case):
    version = services.note_create(
        case=case,
        acting_user=alice,
        data={
            "registering_physician": "Dr. Alice",
            "target_board": "Tumorkonferenz",
            "board_type": "postth",
            "board_date": timezone.localdate() + timedelta(days=4),
            "question": "First question?",
        },
    )
    _login(page)
    page.goto(f"/notes/{version.note_id}/edit/")
    _field(page, "Question for the board").fill("Second-line options after progression?")
    _save(page)
    page.wait_for_url(re.compile(rf"/notes/{version.note_id}/$"))
    version.refresh_from_db()
    assert version.revision == 2

    page.go_back()
    page.wait_for_url(re.compile(r"/edit/$"))
    _save(page)
    page.wait_for_url(re.compile(rf"/notes/{version.note_id}/$"))
    assert page.get_by_text(re.compile(r"Already saved at \d\d:\d\d")).is_visible()
    version = BoardNoteVersion.objects.get(pk=version.pk)
    assert version.revision == 2
    assert page.console_errors == []


def test_a_metastasis_row_sets_the_status_and_a_status_save_says_saved(page, alice, case):
    _login(page)
    page.goto(f"/cases/{case.pk}/metastasis/new/")
    _field(page, "Site").select_option("HEP")
    _field(page, "Detected on").fill((timezone.localdate() - timedelta(days=60)).isoformat())
    _field(page, "Timing").select_option("metachronous")
    _save(page)
    page.wait_for_url(re.compile(rf"/cases/{case.pk}/#"))
    assert Metastasis.objects.filter(case=case).count() == 1
    status = page.get_by_test_id("metastasis-status")
    assert "metastases present" in status.inner_text()
    assert page.locator('[data-group="metastases"]').get_attribute("data-state") == "recorded"
    assert page.get_by_text("Metastasis status set to “metastases present”.").is_visible()
    _screenshot(page, "resubmit-metastasis-status")

    # "None known" with the row still there asks to remove it first.
    page.goto(f"/cases/{case.pk}/metastasis-status/")
    page.get_by_label("no metastases known").check()
    _field(page, "Assessed on").fill((timezone.localdate() - timedelta(days=5)).isoformat())
    _field(page, "Assessed by").select_option("ct")
    _save(page)
    assert page.get_by_text(
        "1 metastasis row is recorded for this case. Remove it first (Delete beside the row),"
        " then set “no metastases known”."
    ).is_visible()

    # Setting a status says "Saved." as every save does.
    page.get_by_label("metastases present").check()
    _save(page)
    page.wait_for_url(re.compile(rf"/cases/{case.pk}/"))
    assert page.get_by_text("Saved.", exact=True).is_visible()
    assert page.console_errors == []


def test_the_same_comorbidity_added_again_in_place_asks_first(page, alice, case):
    _login(page)
    page.goto(f"/cases/{case.pk}/")
    for attempt in range(2):
        page.get_by_role("link", name="Add comorbidity").click()
        _field(page, "Comorbidity").fill("Chronic kidney disease")
        page.get_by_role("button", name="Save", exact=True).click()
        if attempt == 0:
            # The row saved in place: a second "Add" clicked before this answer opened a form
            # the answer then swapped away (a network-idle wait does not wait for this answer).
            expect(page.locator("#situation li[id^=comorbidity-]")).to_have_count(1)
    question = page.get_by_test_id("duplicate-question")
    question.wait_for()
    assert "You saved the same comorbidity at" in question.inner_text()
    _screenshot(page, "resubmit-inline")
    assert Comorbidity.objects.filter(case=case).count() == 1
    page.get_by_label("Yes, save it again").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("duplicate-question").wait_for(state="detached")
    assert Comorbidity.objects.filter(case=case).count() == 2
    assert page.url.endswith(f"/cases/{case.pk}/")  # never left the case page
    # The browser logs the answer that sent the form back with the question (a 422) itself.
    assert [e for e in page.console_errors if "422 (Unprocessable" not in e] == []
