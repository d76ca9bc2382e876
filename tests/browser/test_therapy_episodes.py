"""Therapy episodes entered in place on the case page: a numbered systemic line and a
radiotherapy episode without a number, both with month-only dates; an immune-related adverse
event added from the immune section, entered once and shown in both sections."""

import pytest
from playwright.sync_api import expect

from tests.browser.pages import field, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_enters_a_systemic_line_and_a_radiotherapy_episode(page, alice, case):
    login(page)
    page.goto(f"/cases/{case.pk}/")
    therapy = page.locator("#therapy")

    therapy.get_by_role("link", name="Add therapy episode").click()
    field(page, "Line number").fill("1")
    field(page, "Position in the course of therapy").select_option("first_advanced")
    field(page, "Immune/antibody therapy").check()
    field(page, "Agents").fill("Nivolumab")
    field(page, "Start").fill("2021-02")
    field(page, "End").fill("2021-06")
    field(page, "End reason").select_option(label="Stopped for side effects")
    therapy.get_by_role("button", name="Save", exact=True).click()
    labels = therapy.get_by_test_id("episode-label")
    expect(labels).to_have_count(1)
    expect(labels.first).to_contain_text("Line 1 · first line for advanced disease")

    therapy.get_by_role("link", name="Add therapy episode").click()
    field(page, "Kind of episode").select_option("radiotherapy")
    field(page, "Radiotherapy").check()
    field(page, "Start").fill("2021-09")
    therapy.get_by_role("button", name="Save", exact=True).click()
    expect(labels).to_have_count(2)
    expect(labels.nth(1)).to_contain_text("Radiotherapy · 2021-09")
    expect(therapy).to_contain_text("2021-02 – 2021-06")
    expect(therapy).not_to_contain_text("2021-09-01")

    # From the immune section: the one adverse-event form opens in the therapy section with
    # the immune-related flag set; saved, the event shows in both sections.
    immune = page.locator("#immune")
    immune.get_by_role("link", name="Add immune-related adverse event").click()
    expect(field(page, "Immune-related")).to_be_checked()
    field(page, "Causative therapy episode").select_option(index=1)
    field(page, "Term").fill("Pneumonitis")
    field(page, "Grade").select_option("3")
    field(page, "CTCAE version").select_option("5.0")
    field(page, "Onset").fill("2021-05")
    field(page, "Systemic steroids given").select_option("yes")
    field(page, "Steroid dose").fill("prednisolone 1 mg/kg")
    field(page, "Course").select_option("improved")
    field(page, "Improved to grade").select_option("1")
    therapy.get_by_role("button", name="Save", exact=True).click()
    expect(therapy.locator("tr[id^=event-]")).to_have_count(1)
    expect(therapy.locator("tr[id^=event-]")).to_contain_text("improved to G1")
    expect(immune.locator("tr[id^=irae-]")).to_contain_text("Pneumonitis")
    expect(immune.locator("tr[id^=irae-]")).to_contain_text("prednisolone 1 mg/kg")
    expect(page.locator("#immune")).to_have_count(1)
