import re

import pytest
from playwright.sync_api import expect

from checklist.models import Tumour
from tests.browser.pages import login, screenshot
from tests.factories import JENNY_M_TRANSACTION

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_imports_jenny_m_answering_one_mapping(page, alice, codelists):
    login(page)
    page.get_by_role("link", name="Import from FHIR").click()
    page.get_by_label("FHIR Bundle (JSON file)").set_input_files(str(JENNY_M_TRANSACTION))
    page.get_by_role("button", name="Show the preview").click()
    page.wait_for_url(re.compile(r"/import/fhir/[0-9a-f-]+/$"))
    expect(page.get_by_test_id("fhir-not-imported")).to_contain_text("DOXOrubicin")

    page.get_by_label(re.compile(r"^\s*Pseudonymous label")).fill("JM-2018")
    page.get_by_label(re.compile(r"^\s*Tumour situation")).select_option("recurrence")
    # The one mapping question: the SNOMED code of the primary, with the OncoTree type-ahead.
    question = page.get_by_label(re.compile("OncoTree tumour type for"))
    question.press_sequentially("invasive ductal", delay=20)
    option = page.get_by_role("option", name=re.compile("Breast Invasive Ductal Carcinoma"))
    option.click()
    expect(question).to_have_value("Breast Invasive Ductal Carcinoma (IDC)")
    screenshot(page, "fhir-preview")
    page.get_by_role("button", name="Confirm and create the case").click()
    page.wait_for_url(re.compile(r"/cases/\d+/$"))
    expect(page.get_by_text("The case was imported.")).to_be_visible()
    tumour = Tumour.objects.get(case__label="JM-2018")
    assert (tumour.oncotree_code, tumour.laterality) == ("IDC", "left")
