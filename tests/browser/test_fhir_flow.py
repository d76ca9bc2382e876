import re

import pytest
from playwright.sync_api import expect

from checklist.models import TherapyLine, Tumour
from tests.browser.pages import login, screenshot
from tests.factories import JENNY_M_TRANSACTION

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_imports_jenny_m_answering_one_mapping(page, alice, codelists):
    login(page)
    page.get_by_role("link", name="Import from FHIR").click()
    page.get_by_label("FHIR Bundle (JSON file)").set_input_files(str(JENNY_M_TRANSACTION))
    page.get_by_role("button", name="Show the preview").click()
    page.wait_for_url(re.compile(r"/import/fhir/[0-9a-f-]+/$"))
    expect(page.get_by_test_id("fhir-therapy")).to_contain_text("DOXOrubicin")
    expect(page.get_by_test_id("fhir-not-imported")).to_contain_text("Mammography")

    page.get_by_label(re.compile(r"^\s*Pseudonymous label")).fill("JM-2018")
    page.get_by_label(re.compile(r"^\s*Tumour situation")).select_option("recurrence")
    # The one mapping question: the SNOMED code of the primary, with the OncoTree type-ahead.
    question = page.get_by_label(re.compile("OncoTree tumour type for"))
    question.press_sequentially("invasive ductal", delay=20)
    option = page.get_by_role("option", name=re.compile("Breast Invasive Ductal Carcinoma"))
    option.click()
    expect(question).to_have_value("Breast Invasive Ductal Carcinoma (IDC)")
    # The therapy type of each medication code, with the picker the episode form uses.
    for agent, kind in (
        ("DOXOrubicin", "Chemotherapy"),
        ("cyclophosphamide", "Chemotherapy"),
        ("PACLitaxel", "Chemotherapy"),
        ("anastrozole", "Hormone therapy"),
    ):
        page.get_by_label(f"Therapy type of “{agent}”").select_option(label=kind)
    # Paclitaxel joins the doxorubicin/cyclophosphamide episode; the physician types the lines.
    page.get_by_label("Episode of “PACLitaxel”").select_option(
        label="systemic episode 1 (DOXOrubicin, cyclophosphamide)"
    )
    page.get_by_label(re.compile(r"Line number of systemic episode 1 ")).fill("1")
    page.get_by_label(re.compile(r"Line number of systemic episode 3 ")).fill("2")
    screenshot(page, "fhir-preview")
    page.get_by_role("button", name="Confirm and create the case").click()
    page.wait_for_url(re.compile(r"/cases/\d+/$"))
    expect(page.get_by_text("The case was imported.")).to_be_visible()
    tumour = Tumour.objects.get(case__label="JM-2018")
    assert (tumour.oncotree_code, tumour.laterality) == ("IDC", "left")
    lines = TherapyLine.objects.filter(case=tumour.case, kind="systemic").order_by("number")
    assert [(t.number, t.agents, t.types) for t in lines] == [
        (1, ["DOXOrubicin", "cyclophosphamide", "PACLitaxel"], ["CH"]),
        (2, ["anastrozole"], ["HO"]),
    ]
