import re
import subprocess

import pytest

from checklist.models import BoardNoteVersion
from tests.browser.pages import ARTIFACTS, field, login, screenshot
from tests.factories import PASSWORD, days_from_today, make_signable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signable(alice_client, case):
    return make_signable(alice_client, case)


def test_a_physician_prepares_signs_and_downloads_a_note(page, alice, signable):
    login(page)
    page.goto(f"/cases/{signable.pk}/")
    page.get_by_role("link", name="Prepare a board note").click()
    field(page, "Tumour board").fill("Interdisziplinäre Tumorkonferenz")
    field(page, "Board type").select_option("postth")
    field(page, "Preferred board date").fill(days_from_today(4))
    field(page, "Question for the board").fill("Further systemic therapy after progression?")
    field(page, "Patient's goals and wishes").fill("Möchte weiter arbeiten.")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/notes/\d+/$"))
    assert page.get_by_test_id("note-state").inner_text() == "draft"
    page.get_by_role("link", name="Sign", exact=True).click()
    page.get_by_label("Your password").fill(PASSWORD)  # the confirmation step
    page.get_by_role("button", name="Sign now").click()
    page.wait_for_url(re.compile(r"/notes/\d+/$"))
    assert page.get_by_test_id("note-state").inner_text() == "signed"
    version = BoardNoteVersion.objects.get()
    assert version.snapshot_hash in page.get_by_test_id("note-hash").inner_text()
    screenshot(page, "note-signed")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    pdf = ARTIFACTS / "note.pdf"
    download_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout
    assert signable.label.encode() in text and b"No automated recommendation was generated." in text

    page.get_by_role("link", name="Print view").click()
    page.wait_for_url("**/print/")
    page.emulate_media(media="print")
    screenshot(page, "note-print")
