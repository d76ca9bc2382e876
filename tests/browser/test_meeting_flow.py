"""Issue 17's "Done when", tried as new users would: an admin creates a board, two physicians
register three cases for next week's meeting, the coordinator reorders them and prints the
agenda, in meeting mode the recorder takes attendance and records a decision for each case
(in under a minute per case), the meeting summary PDF shows it all, and a case entered
retrospectively for a board two years ago is marked as such."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from checklist.models import AgendaItem, BoardMeeting, BoardOutcome, Case, Membership
from tests.browser.pages import ARTIFACTS, field, login, screenshot
from tests.factories import logged_in, make_signable, make_user, sign_note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DECISIONS = {
    "MB-1": "Adjuvant radiotherapy of the left breast",
    "MB-2": "Re-biopsy of the liver lesion, then back to the board",
    "MB-3": "Continue endocrine therapy; restaging in three months",
}


def _pdf_text(download, name: str) -> str:
    path = ARTIFACTS / name
    download.save_as(path)
    assert path.read_bytes().startswith(b"%PDF")
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def _as(page, username: str) -> None:
    page.context.clear_cookies()
    login(page, username)


def _register(page, case: Case, board_name: str, day: str, question: str) -> int:
    page.goto(f"/cases/{case.pk}/notes/new/")
    field(page, "Board of the practice").select_option(label=board_name)
    field(page, "Board type").select_option("postth")
    field(page, "Preferred board date").fill(day)
    field(page, "Question for the board").fill(question)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/notes/\d+/$"))
    return int(page.url.rstrip("/").split("/")[-1])


def test_a_board_meeting_from_registration_to_summary(page, practice_a, alice, adam, codelists):
    dave = make_user("dave", practice_a, Membership.PHYSICIAN)
    make_user("cora", practice_a, Membership.BOARD_COORDINATOR)
    clients = {"alice": logged_in(alice), "dave": logged_in(dave)}
    cases = {}
    for label in DECISIONS:
        cases[label] = make_signable(
            clients["alice"], Case.objects.create(practice=practice_a, label=label, **Case.MINIMAL)
        )
    next_week = timezone.localdate() + timedelta(days=7)

    # The admin creates the board; it meets on next week's day of today.
    _as(page, "adam")
    page.get_by_role("link", name="Tumour boards").click()
    page.get_by_role("link", name="New board").click()
    field(page, "Name").fill("Breast board")
    field(page, "Usual weekday").select_option(str(next_week.weekday()))
    field(page, "Usual time").fill("16:00")
    for discipline in ("radiology", "pathology", "surgery"):
        page.get_by_label(discipline, exact=True).check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/boards/\d+/$"))
    expect(page.get_by_role("heading", name="Breast board")).to_be_visible()

    # Two physicians register three cases for next week's meeting (created on demand).
    notes = {}
    for username, labels in (("alice", ["MB-1", "MB-2"]), ("dave", ["MB-3"])):
        _as(page, username)
        for label in labels:
            notes[label] = _register(
                page, cases[label], "Breast board", next_week.isoformat(), f"Next step for {label}?"
            )
            sign_note(clients[username], notes[label])
    meeting = BoardMeeting.objects.get(date=next_week)
    assert meeting.items.count() == 3

    # The coordinator puts the third case first and prints the agenda.
    _as(page, "cora")
    page.get_by_role("link", name="Tumour boards").click()
    page.get_by_test_id("upcoming-meetings").get_by_role("link").first.click()
    page.wait_for_url(f"**/meetings/{meeting.pk}/")
    rows = page.get_by_test_id("agenda-row")
    expect(rows).to_have_count(3)
    for _ in range(2):
        page.get_by_role("button", name="Up MB-3").click()
        page.wait_for_load_state()
    assert [rows.nth(i).get_attribute("data-label") for i in range(3)] == ["MB-3", "MB-1", "MB-2"]
    screenshot(page, "meeting-agenda")
    with page.expect_download() as download:
        page.get_by_role("link", name="Agenda PDF", exact=True).click()
    agenda = _pdf_text(download.value, "agenda.pdf")
    assert agenda.index("MB-3") < agenda.index("MB-1") < agenda.index("MB-2")
    assert "Next step for MB-1?" in agenda and "Breast Invasive Ductal Carcinoma" in agenda
    page.emulate_media(media="print")
    screenshot(page, "meeting-agenda-print")
    page.emulate_media(media="screen")

    # On the day of the meeting, the coordinator records in meeting mode.
    meeting_time = timezone.make_aware(datetime.combine(next_week, meeting.starts_at))
    with time_machine.travel(meeting_time, tick=True):
        _as(page, "cora")
        page.goto(f"/meetings/{meeting.pk}/run/")
        for name, discipline in (
            ("Dr. Rad", "radiology"),
            ("Dr. Path", "pathology"),
            ("Dr. Cut", "surgery"),
        ):
            page.get_by_label("Name", exact=True).fill(name)
            page.get_by_label("Discipline", exact=True).select_option(discipline)
            page.get_by_role("button", name="Add to attendance").click()
            page.wait_for_load_state()
            expect(page.get_by_label("Name", exact=True)).to_be_focused()
        expect(page.get_by_test_id("quorum")).to_contain_text(
            "All expected disciplines are present."
        )
        page.get_by_test_id("mode-agenda").get_by_role("link").first.click()
        for label in ("MB-3", "MB-1", "MB-2"):
            started = time.monotonic()
            expect(page.get_by_test_id("current-case")).to_contain_text(label)
            measure = page.get_by_label("Measure 1 (as documented by the board)")
            expect(measure).to_be_focused()  # keyboard first: typing starts at once
            measure.press_sequentially(DECISIONS[label], delay=5)
            page.get_by_label("Follow-up date").fill((next_week + timedelta(days=90)).isoformat())
            expect(page.get_by_test_id("decision-status")).to_contain_text(
                "Draft saved at", timeout=5_000
            )
            page.get_by_role("button", name="Record the decision").click()
            page.wait_for_load_state()
            expect(page.get_by_test_id("mode-agenda")).to_contain_text(
                f"{label} discussed, decision recorded"
            )
            assert time.monotonic() - started < 60, label
        screenshot(page, "meeting-mode")
        assert BoardOutcome.objects.count() == 3
        with page.expect_download() as download:
            page.get_by_role("link", name="Meeting summary PDF").click()
        summary = _pdf_text(download.value, "meeting-summary.pdf")
    for name in ("Dr. Rad (radiology)", "Dr. Path (pathology)", "Dr. Cut (surgery)"):
        assert name in summary
    assert summary.count("Board decision") >= 3
    for label, decision in DECISIONS.items():
        assert label in summary and decision in re.sub(r"\s+", " ", summary)

    # A case of a board two years ago, entered after the fact: confirmed and marked.
    _as(page, "alice")
    old = make_signable(
        clients["alice"], Case.objects.create(practice=practice_a, label="MB-OLD", **Case.MINIMAL)
    )
    two_years_ago = (timezone.localdate() - timedelta(days=730)).isoformat()
    page.goto(f"/cases/{old.pk}/notes/new/")
    field(page, "Board of the practice").select_option(label="Breast board")
    field(page, "Board type").select_option("postth")
    field(page, "Preferred board date").fill(two_years_ago)
    field(page, "Question for the board").fill("Adjuvant therapy?")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("This board date is in the past.")).to_be_visible()
    page.get_by_label(re.compile("entering its date after the fact")).check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/notes/\d+/$"))
    expect(page.get_by_test_id("note-retrospective")).to_contain_text("entered after the fact")
    item = AgendaItem.objects.get(case=old)
    page.goto(f"/meetings/{item.meeting_id}/")
    expect(page.get_by_test_id("retrospective")).to_be_visible()
    screenshot(page, "meeting-retrospective")
