"""Therapy episodes entered in place on the case page: a numbered systemic line and a
radiotherapy episode without a number, both with month-only dates."""

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
