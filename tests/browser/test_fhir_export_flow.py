"""A physician downloads a case as a FHIR bundle from the case page and imports that file
again: our own codes ask no mapping question, and the new case holds the same facts."""

import json
import re
from datetime import date

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from checklist.models import AuditEvent, Case, Comorbidity, Tumour
from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_case_exported_from_its_page_imports_again_without_questions(page, case, tmp_path):
    diagnosed = date(timezone.localdate().year - 2, 3, 1)  # known to the month
    Tumour.objects.create(
        practice=case.practice,
        case=case,
        oncotree_code="IDC",
        oncotree_name="Breast Invasive Ductal Carcinoma",
        oncotree_release="oncotree_2021_11_02",
        laterality="left",
        diagnosed_on=diagnosed,
        diagnosed_on_precision="month",
    )
    Comorbidity.objects.create(practice=case.practice, case=case, name="Asthma")
    login(page)
    cases_url = page.url
    page.goto(f"{cases_url}{case.pk}/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="FHIR export").click()
    download = download_info.value
    assert download.suggested_filename == "case-bc-1-fhir.json"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    bundle = json.loads(path.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert AuditEvent.objects.filter(case_id=case.pk, op="exported").exists()

    page.goto(cases_url)
    page.get_by_role("link", name="Import from FHIR").click()
    page.get_by_label("FHIR Bundle (JSON file)").set_input_files(str(path))
    page.get_by_role("button", name="Show the preview").click()
    page.wait_for_url(re.compile(r"/import/fhir/[0-9a-f-]+/$"))
    expect(page.get_by_test_id("fhir-questions")).to_have_count(0)
    expect(page.get_by_test_id("fhir-tumour")).to_contain_text("IDC")
    page.get_by_label(re.compile(r"^\s*Pseudonymous label")).fill("BC-1 again")
    page.get_by_role("button", name="Confirm and create the case").click()
    page.wait_for_url(re.compile(r"/cases/\d+/$"))
    expect(page.get_by_text("The case was imported.")).to_be_visible()

    again = Case.objects.get(label="BC-1 again")
    assert (again.year_of_birth, again.sex, again.situation) == (1965, "female", "first_diagnosis")
    tumour = again.tumours.get()
    assert (tumour.oncotree_code, tumour.laterality) == ("IDC", "left")
    assert (tumour.diagnosed_on, tumour.diagnosed_on_precision) == (diagnosed, "month")
    assert list(again.comorbidities.values_list("name", flat=True)) == ["Asthma"]
