import csv
import io

import pytest
from playwright.sync_api import expect

from tests.browser.pages import ARTIFACTS, field, login, screenshot
from tests.factories import STAGING, post_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_finds_who_changed_the_stage_and_exports_the_slice(page, alice_client, adam, case):
    post_row(alice_client, case, "staging", STAGING)
    post_row(
        alice_client,
        case,
        "staging",
        {**STAGING, "t_category": "3"},
        row=case.staging_records.get(),
    )
    alice_client.get(f"/cases/{case.pk}/")
    alice_client.get(f"/cases/{case.pk}/checklist/")

    login(page, "adam")
    page.get_by_role("link", name="Audit").click()
    field(page, "Case (label)").fill(case.label)
    field(page, "Record type").select_option(label="staging record")
    page.get_by_role("button", name="Apply").click()
    # Wait for the filtered page to load: a count read on a half-loaded page was 0 in CI.
    page.wait_for_url("**table=checklist_stagingrecord**")
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    update = rows.filter(has_text="changed")
    expect(update).to_have_count(1)
    assert "alice" in update.inner_text() and "2 → 3" in update.inner_text()
    screenshot(page, "audit-trail")

    field(page, "Record type").select_option("")
    field(page, "Kind").select_option("access")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**kind=access**")
    expect(rows.filter(has_text="case viewed")).to_have_count(2)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export these events as CSV").click()
    target = ARTIFACTS / "audit.csv"
    download_info.value.save_as(target)
    exported = list(csv.DictReader(io.StringIO(target.read_text())))
    assert exported and all(row["case_id"] == str(case.pk) for row in exported)
    assert {row["op"] for row in exported} == {"case_viewed"}
