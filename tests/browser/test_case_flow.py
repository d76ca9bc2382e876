import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import field, login, screenshot, state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def saved(page, section):
    """Rows are saved in place (htmx): waits until the section came back without its form and
    settled (app.js has moved the focus), instead of waiting for a page load."""
    expect(page.locator(f"#{section} form[data-inline-form]")).to_have_count(0)
    expect(page.locator(f"#{section}[data-focus]")).to_have_count(0)


def save(page):
    page.get_by_role("button", name="Save", exact=True).click()


def test_a_physician_records_a_breast_cancer_case(page, alice, codelists):
    login(page)
    page.get_by_role("link", name="New case").click()
    field(page, "Pseudonymous label").fill("BC-2024-17")
    field(page, "Year of birth").fill("1961")
    field(page, "Sex").select_option("female")
    field(page, "Tumour situation").select_option("metastatic_progression")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/cases/\d+/$"))
    assert state(page, "tumour_type") == "not_recorded"

    # Tumour type by type-ahead, with the keyboard.
    page.get_by_role("link", name="Add primary tumour").click()
    field(page, "Tumour type (OncoTree)").press_sequentially("invasive ductal", delay=20)
    option = page.get_by_role("option", name=re.compile("Breast Invasive Ductal Carcinoma"))
    option.wait_for()
    option.click()
    assert field(page, "Tumour type (OncoTree)").input_value() == (
        "Breast Invasive Ductal Carcinoma (IDC)"
    )
    field(page, "Laterality").select_option("left")
    field(page, "Date of diagnosis").fill("2019-03-01")
    save(page)
    saved(page, "tumours")
    assert state(page, "tumour_type") == "recorded"

    page.get_by_role("link", name="Add staging record").click()
    field(page, "Date").fill("2019-03-20")
    field(page, "Kind").select_option("pathological")
    field(page, "System").select_option("uicc_tnm")
    field(page, "TNM edition").select_option("8")
    field(page, "T prefix").select_option("p")
    field(page, "T").select_option("2")
    field(page, "N prefix").select_option("p")
    field(page, "N").select_option("1a")
    field(page, "M prefix").select_option("c")
    field(page, "M").select_option("0")
    save(page)
    saved(page, "staging")
    assert "pT2 pN1a cM0" in page.get_by_test_id("tnm").inner_text()

    for name, status, extra in [("ER", "result", "positive"), ("HER2", "pending", "")]:
        page.get_by_role("link", name="Add biomarker result").click()
        field(page, "Marker").fill(name)
        field(page, "Kind").select_option("somatic")
        field(page, "Status").select_option(status)
        if extra:
            field(page, "Categorical result").fill(extra)
        save(page)
        saved(page, "biomarkers")
    assert state(page, "biomarkers") == "recorded"

    page.get_by_role("link", name="Set status").click()
    field(page, "metastases present").check()
    save(page)
    saved(page, "metastases")
    page.get_by_role("link", name="Add metastasis").click()
    field(page, "Site").select_option("OSS")
    field(page, "Detected on").fill("2022-05-01")
    field(page, "Timing").select_option("metachronous")
    save(page)
    saved(page, "metastases")
    assert state(page, "metastases") == "recorded"
    assert state(page, "stage") == "recorded"
    # The timeline shows diagnosis, staging and the metastasis.
    assert page.locator("svg.timeline-svg .tl-point").count() == 3
    screenshot(page, "case-record-i")


def test_a_physician_records_therapy_lines_and_findings(page, alice, case):
    login(page)
    page.goto(f"/cases/{case.pk}/")
    for number, types, regimen, start, end, reason in [
        (1, ["Hormone therapy"], "Tamoxifen", "2015-02-01", "2020-01-31", "Regular end"),
        (
            2,
            ["Hormone therapy", "Targeted substances"],
            "Letrozole + Palbociclib",
            "2022-06-01",
            "2023-02-01",
            "Stopped for side effects",
        ),
        (3, ["Chemotherapy"], "Capecitabine", "2023-03-01", "", ""),
    ]:
        page.get_by_role("link", name="Add therapy episode").click()
        field(page, "Line number").fill(str(number))
        for t in types:
            field(page, t).check()
        field(page, "Regimen").fill(regimen)
        position = "first_advanced" if number == 1 else "later_advanced"
        field(page, "Position in the course of therapy").select_option(position)
        field(page, "Start").fill(start)
        if end:
            field(page, "End").fill(end)
            field(page, "End reason").select_option(label=reason)
        else:
            field(page, "Ongoing").check()
        save(page)
        saved(page, "therapy")
    assert page.get_by_test_id("therapy-line").count() == 3

    line_2 = page.get_by_test_id("therapy-line").nth(1)
    line_2.get_by_role("link", name="Add adverse event").click()
    field(page, "Term").fill("ALT increased")
    field(page, "CTCAE version").select_option("5.0")
    field(page, "Grade").select_option("3")
    field(page, "Led to stopping the therapy").check()
    field(page, "Onset").fill("2023-01-20")
    save(page)
    saved(page, "therapy")
    assert "Worst grade: G3" in page.get_by_test_id("line-tolerability").nth(1).inner_text()

    page.get_by_role("link", name="Add findings").click()
    field(page, "Date").fill("2024-05-02")
    field(page, "Systemic steroid, prednisolone equivalent (mg/day)").fill("7.5")
    field(page, "Steroid since").fill("2024-04-01")
    save(page)
    saved(page, "immune")
    assert "7.5 mg/day" in page.get_by_test_id("steroid").inner_text()

    page.get_by_role("link", name="Add performance status").click()
    field(page, "Assessed on").fill("2024-05-02")
    field(page, "ECOG").select_option("1")
    save(page)
    saved(page, "performance")
    page.get_by_role("link", name="Add comorbidity").click()
    field(page, "Comorbidity").fill("Type 2 diabetes")
    save(page)
    saved(page, "situation")

    assert page.locator("svg.timeline-svg .tl-line").count() == 3
    assert state(page, "prior_therapies") == "recorded"
    assert state(page, "immune_status") == "recorded"
    assert state(page, "performance_status") == "recorded"
    screenshot(page, "case-record-ii")
