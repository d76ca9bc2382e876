"""A German physician enters platelets as the laboratory reported them, in /µL, and a
haemoglobin with a decimal comma (issue 15): stored converted, with the lab's value and unit
kept and shown beside the converted value."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from checklist.models import ImmuneFinding
from tests.browser.pages import field, screenshot
from tests.factories import logged_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def german_page(browser, live_server, alice):
    """A page logged in as alice, German interface language and German browser locale."""
    context = browser.new_context(base_url=live_server.url, locale="de-DE")
    session = logged_in(alice).cookies[settings.SESSION_COOKIE_NAME].value
    host = live_server.url.split("//", 1)[1].split(":")[0]
    context.add_cookies(
        [
            {"name": settings.SESSION_COOKIE_NAME, "value": session, "domain": host, "path": "/"},
            {"name": settings.LANGUAGE_COOKIE_NAME, "value": "de", "domain": host, "path": "/"},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


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
