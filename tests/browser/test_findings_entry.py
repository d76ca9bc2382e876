"""A German physician enters platelets as the laboratory reported them, in /µL, and a
haemoglobin with a decimal comma (issue 15): stored converted, with the lab's value and unit
kept and shown beside the converted value."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from checklist.models import ImmuneFinding
from tests.browser.pages import field, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_platelets_in_per_microlitre_and_a_decimal_comma_are_saved_as_reported(german_page, case):
    page = german_page
    page.goto(f"/cases/{case.pk}/")
    page.get_by_role("link", name="Befunde hinzufügen").click()
    assessed = timezone.localdate() - timedelta(days=2)
    field(page, "Datum").fill(assessed.strftime("%d.%m.%Y"))
    field(page, "Thrombozyten").press_sequentially("98000")
    field(page, "Einheit der Thrombozytenzahl").select_option(label="/µL")
    field(page, "Hämoglobin").press_sequentially("10,4")
    page.get_by_role("button", name="Speichern", exact=True).click()
    page.locator(".alert-success").first.wait_for()
    message = page.locator(".alert-success").first.inner_text()
    screenshot(page, "findings-platelets-de")

    finding = ImmuneFinding.objects.get(case=case)
    assert finding.platelets == Decimal("98.000")
    assert (finding.platelets_lab_value, finding.platelets_lab_unit) == (Decimal(98000), "/uL")
    assert finding.haemoglobin == Decimal("10.40")
    assert "Thrombozyten 98 × 10⁹/L" in message and "Hämoglobin 10,4 g/dL" in message
    page.goto(f"/cases/{case.pk}/")
    immune = page.locator("#immune").inner_text()
    assert re.search(r"Thrombozyten\s+98 × 10⁹/L \(Labor: 98000 /µL\)", immune)
    assert re.search(r"Hämoglobin\s+10,4 g/dL", immune)
    assert page.console_errors == []  # type: ignore[attr-defined]
