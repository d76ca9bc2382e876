"""Numbers and dates typed as a German physician types them (issue 13, silent failure 1).

The interface language is German (the `django_language` cookie the language switch sets) and so
is the browser locale (de-DE): the browser's own number and date handling followed the browser
locale, and a lymphocyte count typed as "0,9" was saved as 9.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from checklist.models import ImmuneFinding
from tests.browser.pages import field, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def save(page):
    """Clicks Save and waits for the confirmation: on the case page after a redirect, or in
    the section when the form was opened in place."""
    page.get_by_role("button", name="Speichern", exact=True).click()
    page.locator(".alert-success").first.wait_for()
    return page.locator(".alert-success").first.inner_text()


def findings_on_the_case_page(page, case):
    page.goto(f"/cases/{case.pk}/")
    return page.locator("#immune").inner_text()


def test_a_lymphocyte_count_typed_with_a_decimal_comma_is_saved_as_typed(german_page, case):
    page = german_page
    page.goto(f"/cases/{case.pk}/")
    page.get_by_role("link", name="Befunde hinzufügen").click()
    assessed = timezone.localdate() - timedelta(days=3)
    field(page, "Datum").fill(assessed.isoformat())
    field(page, "Lymphozyten").press_sequentially("0,9")
    message = save(page)
    screenshot(page, "decimal-entry-de")

    finding = ImmuneFinding.objects.get(case=case)
    assert finding.lymphocytes == Decimal("0.9")
    assert "Lymphozyten 0,9 × 10⁹/L gespeichert." in message
    assert re.search(r"Lymphozyten\s+0,9 × 10⁹/L", findings_on_the_case_page(page, case))
    assert page.console_errors == []  # type: ignore[attr-defined]

    # Opened again for editing, the form shows the value with the German decimal comma, and
    # saving it unchanged keeps 0.9.
    page.goto(f"/cases/{case.pk}/immune/{finding.pk}/")
    assert field(page, "Lymphozyten").input_value() == "0,9"
    save(page)
    finding.refresh_from_db()
    assert finding.lymphocytes == Decimal("0.9")


def test_a_date_typed_in_the_german_format_is_saved_as_that_day(german_page, case):
    page = german_page
    page.goto(f"/cases/{case.pk}/immune/new/")
    assessed = timezone.localdate() - timedelta(days=40)
    date_field = field(page, "Datum")
    assert date_field.get_attribute("placeholder") == "TT.MM.JJJJ, MM/JJJJ oder JJJJ"
    date_field.press_sequentially(assessed.strftime("%d.%m.%Y"))
    field(page, "Lymphozyten").press_sequentially("1,2")
    save(page)
    assert ImmuneFinding.objects.get(case=case).assessed_on == assessed
    assert assessed.strftime("%d.%m.%Y") in findings_on_the_case_page(page, case)


def test_a_tenfold_change_is_saved_after_a_confirmation(german_page, case):
    page = german_page
    earlier = timezone.localdate() - timedelta(days=20)
    ImmuneFinding.objects.create(
        case=case, practice=case.practice, assessed_on=earlier, lymphocytes=Decimal("0.9")
    )
    page.goto(f"/cases/{case.pk}/")
    page.get_by_role("link", name="Befunde hinzufügen").click()
    field(page, "Datum").press_sequentially(timezone.localdate().strftime("%d.%m.%Y"))
    field(page, "Lymphozyten").press_sequentially("9")
    page.get_by_role("button", name="Speichern", exact=True).click()
    confirm = page.get_by_label("Die oben markierten Werte stimmen: so speichern, wie eingegeben")
    confirm.wait_for()
    screenshot(page, "decimal-entry-tenfold-de")
    assert (
        "ist das Zehnfache oder mehr des vorherigen Werts" in page.locator("form").last.inner_text()
    )
    assert ImmuneFinding.objects.count() == 1
    confirm.check()
    assert "Lymphozyten 9 × 10⁹/L gespeichert." in save(page)
    assert ImmuneFinding.objects.count() == 2
    # The browser logs the answer to the refused form (422, when it was sent in place) itself.
    errors = page.console_errors  # type: ignore[attr-defined]
    assert [e for e in errors if "422 (Unprocessable" not in e] == []
