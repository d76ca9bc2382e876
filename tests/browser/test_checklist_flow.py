import pytest

from checklist.models import Category, ChecklistItem
from checklist.wording import recommending_words
from tests.browser.pages import login, screenshot
from tests.factories import post_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_marks_two_categories_to_raise(page, alice, alice_client, case):
    dc = Category.objects.get(practice=case.practice, code="dendritic_cell_therapy")
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["IM"],
            "regimen": "DC vaccine",
            "position": "first_advanced",
            "started_on": "2022-01-01",
            "ended_on": "2022-06-01",
            "end_reason": "A",
            "category": dc.pk,
        },
    )
    login(page)
    page.goto(f"/cases/{case.pk}/")
    page.get_by_role("link", name="Therapy categories to consider").click()
    page.wait_for_url(f"**/cases/{case.pk}/checklist/")
    cards = page.get_by_test_id("category")
    assert cards.count() == 6
    assert "states no priority" in page.get_by_test_id("order-note").inner_text()
    linked = page.locator("#category-dendritic_cell_therapy").inner_text()
    assert "Line 1 · first line for advanced disease" in linked

    for code, note in [
        ("radiotherapy", "Bone pain: ask radiotherapy."),
        ("immune_supportive", "Patient asks about supportive measures."),
    ]:
        card = page.locator(f"#category-{code}")
        card.get_by_label("Note").fill(note)
        card.get_by_label("raise at board").check()  # htmx posts on change
        page.locator(f"#category-{code} [data-testid=set-by]").filter(
            has_text="set by Alice"
        ).wait_for()
    assert ChecklistItem.objects.filter(status="raise").count() == 2
    assert set(ChecklistItem.objects.values_list("note", flat=True)) == {
        "Bone pain: ask radiotherapy.",
        "Patient asks about supportive measures.",
    }
    screenshot(page, "checklist-en")

    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("category").count() == 6
    html = page.content()
    assert not recommending_words(html, html=True)
    screenshot(page, "checklist-de")
