"""Genomic findings and family history recorded in place on the case page (htmx): the form
opens in its section, a syntax error of the HGVS notation comes back inline with the input
kept, and the saved finding appears as a card; the family history's cancer type is picked
from the OncoTree list into its own input."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import field, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_records_a_variant_through_the_inline_form(page, alice, case):
    login(page)
    page.goto(f"/cases/{case.pk}/")
    address = page.url
    genomics = page.locator("#genomics")
    genomics.get_by_role("link", name="Add genomic finding").click()
    expect(field(page, "Result")).to_be_focused()
    field(page, "Result").select_option("variant")
    field(page, "Status").select_option("result")
    field(page, "Gene").fill("EGFR")
    field(page, "Coding DNA change (HGVS c.)").fill("c.2573 T>G")
    field(page, "Protein change (HGVS p.)").fill("p.(Leu858Arg)")
    field(page, "Variant type").select_option("snv")
    field(page, "Origin").select_option("somatic")
    field(page, "Variant allele frequency (%)").fill("23,5")
    field(page, "Laboratory").fill("Institut für Pathologie Nord")
    field(page, "Report date").fill("2024-02")  # the report's month only
    genomics.get_by_role("button", name="Save", exact=True).click()

    # The typo comes back in place, the other input kept.
    expect(genomics).to_contain_text("HGVS notation has no spaces.")
    expect(field(page, "Protein change (HGVS p.)")).to_have_value("p.(Leu858Arg)")
    field(page, "Coding DNA change (HGVS c.)").fill("c.2573T>G")
    genomics.get_by_role("button", name="Save", exact=True).click()

    card = genomics.get_by_test_id("genomic-finding")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("variant: EGFR")
    expect(card).to_contain_text("c.2573T>G")
    expect(card).to_contain_text("p.(Leu858Arg)")
    expect(card).to_contain_text("23.5 %")
    expect(genomics.locator("[data-inline-message]")).to_contain_text("VAF 23.5 % saved.")
    expect(genomics.locator("form")).to_have_count(0)
    expect(page.locator("article[id^=variant-]")).to_be_focused()
    expect(card.locator('dt:has-text("Report date") + dd')).to_have_text("2024-02")
    # The timeline, updated with the section, has the report's finding at its month.
    expect(page.locator("#timeline figcaption")).to_contain_text("2024-02 EGFR c.2573T>G")
    assert page.url == address
    screenshot(page, "genomic-finding-inline")


def test_the_family_history_picks_an_oncotree_type_into_its_own_input(page, alice, case):
    login(page)
    page.goto(f"/cases/{case.pk}/")
    family = page.locator("#family")
    family.get_by_role("link", name="Add family history").click()
    field(page, "Degree of kinship").select_option("first")
    field(page, "Relation").select_option("mother")
    cancer = field(page, "Cancer type (OncoTree or free text)")
    cancer.press_sequentially("invasive breast", delay=20)
    page.get_by_role("option", name=re.compile("Invasive Breast Carcinoma")).first.click()
    expect(cancer).to_have_value(re.compile(r"^Invasive Breast Carcinoma \(BRCA\)$"))
    expect(cancer).to_be_focused()
    field(page, "Age at diagnosis").fill("42")
    family.get_by_role("button", name="Save", exact=True).click()
    expect(family.locator("tbody tr")).to_have_count(1)
    expect(family.locator("tbody tr")).to_contain_text("Invasive Breast Carcinoma BRCA")
    expect(family.locator("tbody tr")).to_contain_text("mother (first-degree)")
