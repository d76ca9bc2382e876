"""An admin imports the MII therapy-type template as a draft, adds one of its categories to
the own catalogue instead, and publishes; the physician's checklist then shows it."""

import pytest

from checklist.models import CatalogueVersion
from checklist.wording import recommending_words
from tests.browser.pages import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MII_ORDER = ["OP", "ST", "CH", "HO", "IM", "ZS", "SZ", "AS", "WS", "WW", "SO"]


def test_an_admin_imports_and_publishes_the_mii_template(page, adam, alice, case):
    login(page, "adam")
    page.get_by_role("link", name="Catalogue").first.click()
    page.get_by_role("button", name="Import the MII therapy-type template as a draft").click()
    page.wait_for_url("**/catalogue/2/")
    cards = page.locator("li.card")
    assert [cards.nth(i).get_attribute("id") for i in range(cards.count())] == [
        f"c-{code}" for code in MII_ORDER
    ]
    chemo = page.locator("#c-CH")
    assert "Chemotherapy / Chemotherapie" in chemo.inner_text()
    assert "mii-cs-onko-therapie-typ|2025.0.0" in chemo.inner_text()
    screenshot(page, "catalogue-mii-draft")

    page.get_by_label("Change note").fill("The MII therapy types as our catalogue.")
    page.get_by_role("button", name="Publish as a new version").click()
    page.get_by_text("Version 2 is published.").wait_for()
    version = CatalogueVersion.objects.get(practice=case.practice, number=2)
    assert not version.is_draft and version.published_by == adam

    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_load_state()
    assert "Zielgerichtete Substanzen" in page.locator("#c-ZS").inner_text()
    assert not recommending_words(page.content(), html=True)
    screenshot(page, "catalogue-mii-published-de")


def test_an_admin_adds_template_categories_to_the_own_draft(page, adam, case):
    login(page, "adam")
    page.goto("/catalogue/")
    page.get_by_role("button", name="Edit: start a draft").click()
    page.wait_for_url("**/catalogue/2/")
    page.get_by_role("link", name="Add categories from the MII therapy-type template").click()
    page.get_by_label("WW · Watchful waiting").check()
    page.get_by_label("OP · Surgery").check()
    page.get_by_role("button", name="Add to the draft").click()
    page.wait_for_url("**/catalogue/2/")
    page.get_by_text("2 categories added at the end of the draft.").wait_for()
    cards = page.locator("li.card")
    ids = [cards.nth(i).get_attribute("id") for i in range(cards.count())]
    assert ids[-2:] == ["c-OP", "c-WW"]
    page.locator("#c-WW").get_by_role("button", name="Move up").click()
    page.wait_for_load_state()
    cards = page.locator("li.card")
    ids = [cards.nth(i).get_attribute("id") for i in range(cards.count())]
    assert ids[-2:] == ["c-WW", "c-OP"]
