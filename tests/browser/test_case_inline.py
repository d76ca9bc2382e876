"""Rows recorded in place on the case page (htmx): the page never changes, forms open in their
section, save, and the section comes back with the row; keyboard: Enter saves, Escape cancels,
the focus goes to the first field and back to the new row."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from checklist.models import Membership
from tests.browser.pages import field, login, screenshot, state
from tests.factories import logged_in, make_user, post_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def forget_deliberate_failures(page):
    """Drops the console notes of the failures a test causes on purpose (a 500, a lost
    connection), so the fixture's check still fails on any other console error."""
    deliberate = re.compile(
        r"^(Failed to load resource: (the server responded with a status of 500|net::ERR_FAILED)"
        r"|Response Status Error Code 500 |htmx:(afterRequest|sendError),)"
    )
    page.console_errors[:] = [e for e in page.console_errors if not deliberate.match(e)]


def first_field(section):
    return section.locator("form [name]:not([type=hidden])").first


def open_case(page, case):
    """Logs in and opens the case page; returns the list of page loads that follow."""
    login(page)
    page.goto(f"/cases/{case.pk}/")
    loads: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: loads.append(frame.url) if frame == page.main_frame else None,
    )
    return loads


def test_a_physician_records_rows_without_leaving_the_case_page(page, alice, case):
    loads = open_case(page, case)
    address = page.url

    # A tumour, with the mouse: the form opens in the section, its first field focused.
    tumours = page.locator("#tumours")
    tumours.get_by_role("link", name="Add primary tumour").click()
    oncotree = field(page, "Tumour type (OncoTree)")
    expect(oncotree).to_be_focused()
    oncotree.press_sequentially("invasive ductal", delay=20)
    page.get_by_role("option", name=re.compile("Breast Invasive Ductal Carcinoma")).click()
    field(page, "Laterality").select_option("left")
    field(page, "Date of diagnosis").fill("2019-03-01")
    tumours.get_by_role("button", name="Save", exact=True).click()
    expect(tumours.locator("tbody tr")).to_have_count(1)
    expect(tumours.locator("[data-inline-message]")).to_contain_text("Saved")
    expect(tumours.locator("form")).to_have_count(0)
    expect(page.locator("tr[id^=tumour-]")).to_be_focused()
    # The factor summary above was updated with the section.
    assert state(page, "tumour_type") == "recorded"

    # Two staging records: "save and add another", then Escape closes the empty second form.
    staging = page.locator("#staging")
    staging.get_by_role("link", name="Add staging record").click()
    expect(first_field(staging)).to_be_focused()
    field(page, "Date").fill("2019-03-20")
    field(page, "Kind").select_option("pathological")
    field(page, "System").select_option("uicc_tnm")
    field(page, "TNM edition").select_option("8")
    for prefix, name, value in [
        ("T prefix", "T", "2"),
        ("N prefix", "N", "1a"),
        ("M prefix", "M", "0"),
    ]:
        field(page, prefix).select_option("p" if name != "M" else "c")
        field(page, name).select_option(value)
    staging.get_by_role("button", name="Save and add another").click()
    expect(staging.locator("tbody tr")).to_have_count(1)
    expect(staging.get_by_test_id("tnm")).to_have_text("pT2 pN1a cM0")
    expect(staging.locator("[data-inline-message]")).to_contain_text("Saved")
    expect(first_field(staging)).to_be_focused()
    expect(field(page, "Date")).to_have_value("")
    page.keyboard.press("Escape")
    expect(staging.locator("form")).to_have_count(0)
    expect(staging.get_by_role("link", name="Add staging record")).to_be_focused()
    assert state(page, "stage") == "recorded"

    # The metastasis status, in place too.
    metastases = page.locator("#metastases")
    metastases.get_by_role("link", name="Set status").click()
    field(page, "metastases present").check()
    metastases.get_by_role("button", name="Save", exact=True).click()
    expect(metastases.get_by_test_id("metastasis-status")).to_contain_text("metastases present")
    expect(metastases.get_by_test_id("metastasis-status")).to_be_focused()  # once settled

    # A metastasis with the keyboard only: Enter on the link opens the form, Enter saves.
    metastases.get_by_role("link", name="Add metastasis").focus()
    page.keyboard.press("Enter")
    expect(field(page, "Site")).to_be_focused()
    page.keyboard.type("Bone")
    for _field in ("side", "level or segment", "largest size"):  # left empty (issue 15)
        page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.type((timezone.localdate() - timedelta(days=400)).isoformat())
    page.keyboard.press("Tab")
    page.keyboard.type("metachronous")
    expect(field(page, "Timing")).to_have_value("metachronous")
    page.keyboard.press("Enter")
    expect(metastases.locator("tbody tr")).to_have_count(1)
    expect(metastases.locator("tbody tr")).to_contain_text("OSS")
    expect(page.locator("tr[id^=metastasis-]")).to_be_focused()
    assert state(page, "metastases") == "recorded"

    # A therapy line, then an adverse event in the line's own card.
    therapy = page.locator("#therapy")
    therapy.get_by_role("link", name="Add therapy episode").click()
    field(page, "Line number").fill("1")
    field(page, "Chemotherapy").check()
    field(page, "Regimen").fill("Capecitabine")
    field(page, "Position in the course of therapy").select_option("first_advanced")
    field(page, "Start").fill("2023-03-01")
    field(page, "End").fill("2023-09-01")
    field(page, "End reason").select_option(label="Stopped for side effects")
    therapy.get_by_role("button", name="Save", exact=True).click()
    line = therapy.get_by_test_id("therapy-line")
    expect(line).to_have_count(1)
    line.get_by_role("link", name="Add adverse event").click()
    expect(line.locator("form")).to_have_count(1)
    expect(first_field(line)).to_be_focused()
    field(page, "Term").fill("Hand-foot syndrome")
    field(page, "CTCAE version").select_option("5.0")
    field(page, "Grade").select_option("3")
    field(page, "Led to stopping the therapy").check()
    field(page, "Onset").fill("2023-08-20")
    line.get_by_role("button", name="Save", exact=True).click()
    expect(line.get_by_test_id("line-tolerability")).to_contain_text("Worst grade: G3")
    expect(page.locator("tr[id^=event-]")).to_be_focused()
    assert state(page, "prior_therapies") == "recorded"

    # Never left the page: no page load after the first, the address unchanged.
    assert page.url == address
    assert loads == []
    assert page.console_errors == []
    case.refresh_from_db()
    assert case.tumours.count() == 1
    assert case.staging_records.count() == 1
    assert case.metastases.count() == 1
    assert case.therapy_lines.get().events.count() == 1
    screenshot(page, "case-inline-recorded")


def test_my_own_saves_leave_other_open_forms_current_but_a_colleagues_change_is_caught(
    page, alice, case
):
    loads = open_case(page, case)
    situation, performance = page.locator("#situation"), page.locator("#performance")
    # A comorbidity form stays open (typed, not saved) while a performance status is saved.
    situation.get_by_role("link", name="Add comorbidity").click()
    field(page, "Comorbidity").fill("Type 2 diabetes")
    performance.get_by_role("link", name="Add performance status").click()
    field(page, "Assessed on").fill("2024-05-02")
    field(page, "ECOG").select_option("1")
    field(page, "ECOG").press("Enter")
    expect(performance.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("case-version")).to_contain_text("2")
    # The open form was moved to the new version: saving it is no conflict.
    assert situation.locator("input[name=expected_version]").get_attribute("value") == "2"
    situation.get_by_role("button", name="Save", exact=True).click()
    expect(situation.locator("li[id^=comorbidity-]")).to_have_count(1)
    expect(situation.locator("[data-stale]")).to_have_count(0)

    # A colleague saves while a biomarker form is open: that one is a real conflict.
    biomarkers = page.locator("#biomarkers")
    biomarkers.get_by_role("link", name="Add biomarker result").click()
    field(page, "Marker").fill("ER")
    field(page, "Kind").select_option("somatic")
    field(page, "Status").select_option("pending")
    colleague = logged_in(make_user("colin", case.practice, Membership.PHYSICIAN))
    assert post_row(colleague, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    biomarkers.get_by_role("button", name="Save", exact=True).click()
    expect(biomarkers.locator("[data-stale]")).to_be_focused()
    expect(biomarkers.get_by_test_id("changes-since")).to_contain_text("colin")
    expect(field(page, "Marker")).to_have_value("ER")  # the input is kept
    assert case.biomarkers.count() == 0
    biomarkers.get_by_role("button", name="Save again").click()
    expect(biomarkers.locator("tbody tr")).to_have_count(1)
    assert case.biomarkers.count() == 1
    assert loads == []
    assert page.console_errors == []


def test_errors_are_shown_in_the_form_with_the_input_kept(page, alice, case):
    open_case(page, case)
    situation = page.locator("#situation")
    situation.get_by_role("link", name="Add comorbidity").click()
    field(page, "Note").fill("on metformin")
    situation.get_by_role("button", name="Save", exact=True).click()
    # 422: the field's error in place, the typed note kept, the focus on the field in error.
    expect(field(page, "Comorbidity")).to_be_focused()
    expect(situation.locator(".invalid-feedback")).to_contain_text("required")
    expect(field(page, "Note")).to_have_value("on metformin")

    # 500 and a lost connection: said in the form; nothing typed is lost.
    field(page, "Comorbidity").fill("Type 2 diabetes")
    page.route("**/comorbidity/new/", lambda route: route.fulfill(status=500, body="oops"))
    situation.get_by_role("button", name="Save", exact=True).click()
    alert = situation.locator("[data-request-error]")
    expect(alert).to_contain_text("error 500")
    expect(field(page, "Comorbidity")).to_have_value("Type 2 diabetes")
    page.unroute("**/comorbidity/new/")
    page.route("**/comorbidity/new/", lambda route: route.abort())
    situation.get_by_role("button", name="Save", exact=True).click()
    expect(alert).to_contain_text("could not be reached")
    page.unroute("**/comorbidity/new/")
    situation.get_by_role("button", name="Save", exact=True).click()
    expect(situation.locator("li[id^=comorbidity-]")).to_contain_text("Type 2 diabetes")
    expect(alert).to_have_count(0)
    assert case.comorbidities.count() == 1
    # Chromium and htmx log the failed requests themselves; nothing else went wrong.
    forget_deliberate_failures(page)
    assert page.console_errors == []


@pytest.mark.parametrize("language", ["en", "de"])
def test_an_open_inline_form_looks_right(page, alice, case, language):
    open_case(page, case)
    if language == "de":
        page.get_by_role("button", name="Deutsch").click()
        page.wait_for_load_state()
    staging = page.locator("#staging")
    staging.locator("a[data-hx-get]").first.click()
    form = staging.locator("form[data-inline-form]")
    expect(form).to_be_visible()
    # The section's own add button steps aside while the form is open.
    expect(staging.locator(".add-actions")).to_be_hidden()
    another = {"en": "Save and add another", "de": "Speichern und weiteren hinzufügen"}
    expect(form.get_by_role("button", name=another[language])).to_be_visible()
    staging.locator("[data-save]").click()  # empty: the errors in place
    expect(form.locator(".is-invalid").first).to_be_focused()
    screenshot(page, f"case-inline-form-{language}")
    page.keyboard.press("Escape")
    expect(form).to_have_count(0)
    expect(staging.locator(".add-actions")).to_be_visible()
    assert page.console_errors == []


def test_the_case_header_is_edited_in_place(page, alice, case):
    loads = open_case(page, case)
    header = page.locator("#header")
    header.get_by_role("link", name="Edit case").click()
    expect(field(page, "Pseudonymous label")).to_be_focused()
    field(page, "Tumour situation").select_option("recurrence")
    field(page, "Cancer of unknown primary").check()
    field(page, "Pseudonymous label").press("Enter")
    expect(header).to_contain_text("recurrence")
    expect(page.get_by_test_id("case-label")).to_be_focused()
    expect(page.locator("#tumours")).to_contain_text("Cancer of unknown primary")
    assert state(page, "tumour_type") != "not_recorded"
    assert loads == []
    assert page.console_errors == []
