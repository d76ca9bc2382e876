"""Tumour-board meetings (issue 17): boards, meetings and agendas, the coordinator's order,
moves and closing, meeting mode (attendance, decision drafts, recording), the PDFs, the report
lines and retrospective board dates.

Who may do what:
- alice: physician in practice A: registers cases, records decisions, may not coordinate
- adam: practice admin of A: creates boards, coordinates; records no decisions
- cora: board coordinator of A: coordinates and records decisions, registers no cases
- bob: physician in practice B only: the outsider, 404 for everything of A
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from checklist.models import (
    AgendaItem,
    AgendaStatus,
    Attendance,
    AuditEvent,
    Board,
    BoardMeeting,
    BoardOutcome,
    Case,
    Membership,
    OutcomeDraft,
)
from checklist.services import (
    agenda_item_shift,
    attendance_add,
    meeting_set_registration,
    meetings_create_ahead,
    next_meeting_date,
    note_update,
)
from tests.factories import (
    create_note,
    days_from_today,
    logged_in,
    make_board,
    make_signable,
    make_user,
    register_case,
    seed_meeting,
    sign_note,
)


@pytest.fixture
def cora(practice_a):
    return make_user("cora", practice_a, Membership.BOARD_COORDINATOR)


@pytest.fixture
def cora_client(cora):
    return logged_in(cora)


@pytest.fixture
def board(practice_a):
    return make_board(practice_a)


@pytest.fixture
def next_week():
    return timezone.localdate() + timedelta(days=7)


def _case(practice, label, user):
    return Case.objects.create(practice=practice, label=label, created_by=user, **Case.MINIMAL)


@pytest.fixture
def meeting(practice_a, alice, board, next_week, codelists):
    for label in ("C-1", "C-2", "C-3"):
        register_case(_case(practice_a, label, alice), alice, board, next_week)
    return BoardMeeting.objects.get(board=board, date=next_week)


@pytest.fixture
def today_meeting(practice_a, alice, codelists):
    """A meeting held today with two signed notes."""
    return seed_meeting(practice_a, alice, 2, day=timezone.localdate())


def _labels(meeting):
    return list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position", "registered_at", "pk")
        .values_list("case__label", flat=True)
    )


def _pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(content)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


# --- boards ------------------------------------------------------------------------------


def test_it_lets_an_admin_create_a_board(adam_client, practice_a):
    response = adam_client.post(
        "/boards/new/",
        {
            "name": "Thoracic oncology board",
            "weekday": "3",
            "starts_at": "15:30",
            "minutes_per_case": "8",
            "disciplines": ["radiology", "pathology", "palliative_care"],
            "active": "on",
        },
    )
    board = Board.objects.get(practice=practice_a)
    assert response.status_code == 302 and response["Location"] == f"/boards/{board.pk}/"
    assert (board.name, board.weekday, board.minutes_per_case) == (
        "Thoracic oncology board",
        3,
        8,
    )
    assert board.disciplines == ["radiology", "pathology", "palliative_care"]
    page = adam_client.get(f"/boards/{board.pk}/").content.decode()
    assert "Thoracic oncology board" in page and "palliative care" in page
    assert AuditEvent.objects.filter(
        practice_id=practice_a.pk, table_name="checklist_board", op="INSERT"
    ).exists()


def test_it_refuses_a_second_board_of_the_same_name(adam_client, board):
    response = adam_client.post(
        "/boards/new/",
        {"name": board.name, "weekday": "2", "starts_at": "16:00", "minutes_per_case": "10"},
    )
    assert response.status_code == 200
    assert "already" in response.content.decode()
    assert Board.objects.filter(name=board.name).count() == 1


def test_only_an_admin_creates_or_edits_boards(alice_client, cora_client, board):
    for client in (alice_client, cora_client):
        assert client.get("/boards/new/").status_code == 403
        assert client.post(f"/boards/{board.pk}/edit/", {"name": "x"}).status_code == 403
    assert alice_client.get("/boards/").status_code == 200


def test_a_coordinator_plans_the_next_meetings_on_the_usual_weekday(cora_client, board):
    response = cora_client.post(f"/boards/{board.pk}/meetings/")
    assert response.status_code == 302
    dates = list(board.meetings.order_by("date").values_list("date", flat=True))
    assert len(dates) == 8
    assert all(d.weekday() == board.weekday for d in dates)
    assert dates[0] >= timezone.localdate() and dates[0] - timezone.localdate() < timedelta(7)
    # Planning again keeps the meetings there are.
    cora_client.post(f"/boards/{board.pk}/meetings/")
    assert board.meetings.count() == 8


def test_a_meeting_on_demand_and_physicians_plan_none(cora_client, alice_client, board):
    day = days_from_today(3)
    response = cora_client.post(f"/boards/{board.pk}/meetings/", {"date": day})
    meeting = board.meetings.get()
    assert response["Location"] == f"/meetings/{meeting.pk}/"
    assert str(meeting.date) == day
    assert alice_client.post(f"/boards/{board.pk}/meetings/").status_code == 403


# --- registration ------------------------------------------------------------------------


def test_registering_a_note_for_a_board_and_date_puts_the_case_on_the_agenda(
    alice_client, case, board, next_week
):
    note_pk = create_note(alice_client, case, board=board.pk, board_date=next_week.isoformat())
    item = AgendaItem.objects.get(note_id=note_pk)
    assert (item.meeting.board, item.meeting.date) == (board, next_week)
    # The board's name is what the note names; the MII board type stays on the registration.
    version = item.note.versions.get()
    assert (version.target_board, version.board_type) == (board.name, "postth")
    page = alice_client.get(f"/meetings/{item.meeting_id}/").content.decode()
    assert case.label in page and "Further systemic therapy" in page
    assert 'data-testid="unsigned"' in page  # a draft is flagged


def test_the_agenda_shows_the_note_state_from_the_note(alice_client, case, board, next_week):
    make_signable(alice_client, case)
    note_pk = create_note(alice_client, case, board=board.pk, board_date=next_week.isoformat())
    meeting = AgendaItem.objects.get(note_id=note_pk).meeting
    assert "not signed" in alice_client.get(f"/meetings/{meeting.pk}/").content.decode()
    sign_note(alice_client, note_pk)
    page = alice_client.get(f"/meetings/{meeting.pk}/").content.decode()
    assert 'data-testid="unsigned"' not in page and ">signed<" in page


def test_changing_the_date_moves_the_waiting_case_to_that_meeting(
    alice_client, case, board, next_week
):
    note_pk = create_note(alice_client, case, board=board.pk, board_date=next_week.isoformat())
    later = next_week + timedelta(days=7)
    version = AgendaItem.objects.get(note_id=note_pk).note.versions.get()
    response = alice_client.post(
        f"/notes/{note_pk}/edit/",
        {
            **{k: getattr(version, k) or "" for k in ["registering_physician", "question"]},
            "board": board.pk,
            "board_type": "postth",
            "board_date": later.isoformat(),
            "revision": version.revision,
        },
    )
    assert response.status_code == 302
    item = AgendaItem.objects.get(note_id=note_pk)
    assert item.meeting.date == later


def test_a_closed_registration_refuses_new_cases(
    alice_client, cora_client, case, meeting, board, next_week
):
    cora_client.post(f"/meetings/{meeting.pk}/registration/", {"closed": "on"})
    meeting.refresh_from_db()
    assert meeting.registration_closed
    response = alice_client.post(
        f"/cases/{case.pk}/notes/new/",
        {
            "registering_physician": "Dr. Alice",
            "board": board.pk,
            "board_type": "postth",
            "board_date": next_week.isoformat(),
            "question": "q",
        },
    )
    assert response.status_code == 200
    assert "is closed" in response.content.decode()
    assert not AgendaItem.objects.filter(case=case).exists()


# --- retrospective entry -----------------------------------------------------------------


def test_a_past_board_date_needs_the_confirmation(alice_client, case, board):
    two_years_ago = (timezone.localdate() - timedelta(days=730)).isoformat()
    data = {
        "registering_physician": "Dr. Alice",
        "board": board.pk,
        "board_type": "postth",
        "board_date": two_years_ago,
        "question": "Earlier board",
    }
    refused = alice_client.post(f"/cases/{case.pk}/notes/new/", data)
    assert refused.status_code == 200
    assert "after the fact" in refused.content.decode()
    assert not case.board_notes.exists()

    note_pk = create_note(
        alice_client,
        case,
        board=board.pk,
        board_date=two_years_ago,
        board_date_retrospective="on",
    )
    version = case.board_notes.get().versions.get()
    assert version.board_date_retrospective
    page = alice_client.get(f"/notes/{note_pk}/").content.decode()
    assert 'data-testid="note-retrospective"' in page and "entered after the fact" in page
    # The audit keeps that it was entered retrospectively.
    event = AuditEvent.objects.get(
        practice_id=case.practice_id,
        table_name="checklist_boardnoteversion",
        row_id=str(version.pk),
        op="INSERT",
    )
    assert (event.new_values or {})["board_date_retrospective"] is True
    # The past meeting's agenda marks the case.
    item = AgendaItem.objects.get(note_id=note_pk)
    assert (
        'data-testid="retrospective"'
        in alice_client.get(f"/meetings/{item.meeting_id}/").content.decode()
    )


def test_a_future_date_is_never_marked_retrospective(alice_client, case, board):
    create_note(alice_client, case, board=board.pk, board_date_retrospective="on")
    assert not case.board_notes.get().versions.get().board_date_retrospective


# --- the coordinator ---------------------------------------------------------------------


def test_a_coordinator_reorders_the_agenda(cora_client, meeting):
    assert _labels(meeting) == ["C-1", "C-2", "C-3"]
    third = AgendaItem.objects.get(meeting=meeting, case__label="C-3")
    cora_client.post(f"/meetings/{meeting.pk}/shift/", {"item": third.pk, "direction": "up"})
    cora_client.post(f"/meetings/{meeting.pk}/shift/", {"item": third.pk, "direction": "up"})
    assert _labels(meeting) == ["C-3", "C-1", "C-2"]
    page = cora_client.get(f"/meetings/{meeting.pk}/").content.decode()
    assert page.index("C-3") < page.index("C-1") < page.index("C-2")


def test_an_admin_coordinates_too_and_a_physician_does_not(adam_client, alice_client, meeting):
    first = AgendaItem.objects.get(meeting=meeting, case__label="C-1")
    shift = {"item": first.pk, "direction": "down"}
    assert alice_client.post(f"/meetings/{meeting.pk}/shift/", shift).status_code == 403
    assert _labels(meeting) == ["C-1", "C-2", "C-3"]
    assert adam_client.post(f"/meetings/{meeting.pk}/shift/", shift).status_code == 302
    assert _labels(meeting) == ["C-2", "C-1", "C-3"]
    assert alice_client.post(f"/meetings/{meeting.pk}/registration/").status_code == 403


def test_a_move_is_audited_and_the_physician_sees_why(
    cora_client, alice_client, meeting, board, next_week, cora
):
    later = BoardMeeting.objects.create(
        practice=meeting.practice, board=board, date=next_week + timedelta(7), starts_at="16:00"
    )
    item = AgendaItem.objects.get(meeting=meeting, case__label="C-2")
    refused = cora_client.post(
        f"/meetings/{meeting.pk}/items/{item.pk}/move/", {"meeting": later.pk, "reason": ""}
    )
    assert refused.status_code == 200
    response = cora_client.post(
        f"/meetings/{meeting.pk}/items/{item.pk}/move/",
        {"meeting": later.pk, "reason": "Pathology report expected next week"},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.meeting, item.moved_from, item.moved_by) == (later, meeting, cora)
    note_page = alice_client.get(f"/notes/{item.note_id}/").content.decode()
    assert "Pathology report expected next week" in note_page and "Cora" in note_page
    event = AuditEvent.objects.filter(
        practice_id=item.practice_id,
        table_name="checklist_agendaitem",
        row_id=str(item.pk),
        op="UPDATE",
    ).get()
    assert (event.new_values or {})["move_reason"] == "Pathology report expected next week"
    assert event.case_id == item.case_id and event.actor_id == cora.pk
    assert alice_client.get(f"/meetings/{meeting.pk}/items/{item.pk}/move/").status_code == 403


# --- meeting mode ------------------------------------------------------------------------


def _decision(client, item, revision, **extra):
    return client.post(
        f"/meetings/{item.meeting_id}/items/{item.pk}/decision/",
        {
            "measure_1": "Adjuvant radiotherapy of the breast",
            "deviation_1": "",
            "follow_up_on": days_from_today(90),
            "revision": revision,
            **extra,
        },
        HTTP_HX_REQUEST="true",
    )


def test_attendance_is_recorded_once_per_meeting_with_the_quorum_shown(
    alice_client, cora_client, today_meeting
):
    url = f"/meetings/{today_meeting.pk}/attendance/"
    cora_client.post(url, {"name": "Dr. Rad", "discipline": "radiology"})
    page = cora_client.get(f"/meetings/{today_meeting.pk}/run/").content.decode()
    assert "Dr. Rad (radiology)" in page
    assert "Not present: pathology, surgery" in page
    alice_client.post(url, {"name": "Dr. Path", "discipline": "pathology"})
    alice_client.post(url, {"name": "Dr. Cut", "discipline": "surgery"})
    page = cora_client.get(f"/meetings/{today_meeting.pk}/run/").content.decode()
    assert "All expected disciplines are present." in page
    assert Attendance.objects.filter(meeting=today_meeting).count() == 3


def test_an_admin_records_no_attendance_or_decisions(adam_client, today_meeting):
    item = today_meeting.items.first()
    url = f"/meetings/{today_meeting.pk}/attendance/"
    assert adam_client.post(url, {"name": "x", "discipline": "nursing"}).status_code == 403
    assert _decision(adam_client, item, 0).status_code == 403
    assert adam_client.get(f"/meetings/{today_meeting.pk}/run/").status_code == 200


def test_the_decision_draft_autosaves_and_a_stale_save_is_refused(
    alice_client, cora_client, today_meeting
):
    item = today_meeting.items.order_by("position").first()
    first = _decision(cora_client, item, 0)
    assert first.status_code == 200
    text = first.content.decode()
    assert "Draft saved at" in text and 'id="draft-revision-' in text and 'value="1"' in text
    draft = OutcomeDraft.objects.get(item=item)
    assert draft.measures == [{"text": "Adjuvant radiotherapy of the breast", "deviation": ""}]
    assert _decision(cora_client, item, 1, measure_2="Follow-up imaging").status_code == 200
    draft.refresh_from_db()
    assert (draft.revision, len(draft.measures)) == (2, 2)
    # alice's form still says revision 1: refused, shown in place, nothing saved.
    stale = _decision(alice_client, item, 1, measure_1="Something else")
    assert stale.status_code == 200 and "data-stale" in stale.content.decode()
    draft.refresh_from_db()
    assert draft.measures[0]["text"] == "Adjuvant radiotherapy of the breast"
    # Nothing recorded yet: the outcome is immutable, so autosave writes only the draft.
    assert not BoardOutcome.objects.filter(note_id=item.note_id).exists()


def test_recording_the_decision_makes_the_outcome_record(cora_client, cora, today_meeting):
    item = today_meeting.items.order_by("position").first()
    attendance_add(meeting=today_meeting, name="Dr. Rad", discipline="radiology", acting_user=cora)
    _decision(cora_client, item, 0)
    response = _decision(cora_client, item, 1, finalise="1")
    assert response.status_code == 200 and response["HX-Redirect"]
    outcome = BoardOutcome.objects.get(note_id=item.note_id)
    assert outcome.held_on == today_meeting.date
    assert outcome.attendees == "Dr. Rad (radiology)"
    assert outcome.measures[0]["text"] == "Adjuvant radiotherapy of the breast"
    assert str(outcome.follow_up_on) == days_from_today(90)
    assert outcome.agenda_item_id == item.pk
    item.refresh_from_db()
    assert item.status == AgendaStatus.DISCUSSED
    assert not OutcomeDraft.objects.filter(item=item).exists()
    page = cora_client.get(f"/notes/{item.note_id}/").content.decode()
    assert "Adjuvant radiotherapy of the breast" in page
    mode = cora_client.get(f"/meetings/{today_meeting.pk}/run/?item={item.pk}").content.decode()
    assert "Board decision" in mode and 'data-testid="recorded-decision"' in mode


def test_a_decision_needs_attendance_a_signed_note_and_the_meeting_day(
    cora_client, cora, practice_a, alice, board, next_week, today_meeting
):
    item = today_meeting.items.order_by("position").first()
    _decision(cora_client, item, 0)
    refused = _decision(cora_client, item, 1, finalise="1")
    assert "attendance" in refused.content.decode()
    attendance_add(meeting=today_meeting, name="Dr. Rad", discipline="radiology", acting_user=cora)
    unsigned = seed_meeting(practice_a, alice, 1, day=timezone.localdate(), signed=False)
    attendance_add(meeting=unsigned, name="Dr. Rad", discipline="radiology", acting_user=cora)
    draft_item = unsigned.items.get()
    _decision(cora_client, draft_item, 0)
    assert (
        "after the note is signed"
        in _decision(cora_client, draft_item, 1, finalise="1").content.decode()
    )
    ahead = seed_meeting(practice_a, alice, 1, day=next_week)
    attendance_add(meeting=ahead, name="Dr. Rad", discipline="radiology", acting_user=cora)
    future_item = ahead.items.get()
    _decision(cora_client, future_item, 0)
    assert (
        "on or after the meeting"
        in _decision(cora_client, future_item, 1, finalise="1").content.decode()
    )
    assert not BoardOutcome.objects.exists()


def test_deferred_goes_to_the_next_meeting_and_not_discussed_stays(cora_client, today_meeting):
    first, second = today_meeting.items.order_by("position")
    url = f"/meetings/{today_meeting.pk}/items/{first.pk}/status/"
    assert cora_client.post(url, {"status": "deferred"}).status_code == 302
    first.refresh_from_db()
    assert first.status == AgendaStatus.DEFERRED
    following = AgendaItem.objects.get(note_id=first.note_id, deferred_from=first)
    assert following.meeting.date > today_meeting.date
    assert following.meeting.date.weekday() == today_meeting.board.weekday
    cora_client.post(
        f"/meetings/{today_meeting.pk}/items/{second.pk}/status/", {"status": "not_discussed"}
    )
    second.refresh_from_db()
    assert second.status == AgendaStatus.NOT_DISCUSSED


def test_the_report_lines_for_meetings(adam_client, cora, practice_a, alice):
    held = seed_meeting(practice_a, alice, 2, day=timezone.localdate() - timedelta(days=3))
    first, second = held.items.order_by("position")
    AgendaItem.objects.filter(pk=second.pk).update(status=AgendaStatus.NOT_DISCUSSED)
    page = adam_client.get("/audit/reports/").content.decode()

    def section(name):
        start = page.index(f'data-testid="{name}"')
        return page[start : page.index("</section>", start)]

    assert held.board.name in section("report-no-attendance")
    assert second.case.label in section("report-not-discussed")
    assert first.case.label not in section("report-not-discussed")
    assert first.case.label in section("report-decision-missing")
    attendance_add(meeting=held, name="Dr. Rad", discipline="radiology", acting_user=cora)
    page = adam_client.get("/audit/reports/").content.decode()
    assert held.board.name not in section("report-no-attendance")


# --- PDFs --------------------------------------------------------------------------------


def test_the_agenda_pdf_lists_the_cases_and_their_notes(alice_client, today_meeting, tmp_path):
    response = alice_client.get(f"/meetings/{today_meeting.pk}/agenda.pdf")
    assert response["Content-Type"] == "application/pdf"
    text = _pdf_text(response.content, tmp_path)
    labels = list(today_meeting.items.order_by("position").values_list("case__label", flat=True))
    assert all(label in text for label in labels)
    assert "Breast Invasive Ductal Carcinoma" in text and "Agenda" in text
    with_notes = _pdf_text(
        alice_client.get(f"/meetings/{today_meeting.pk}/agenda.pdf?notes=1").content, tmp_path
    )
    assert "Signed note, version 1" in with_notes and "Registration" in with_notes
    exports = AuditEvent.objects.filter(
        practice_id=today_meeting.practice_id, op="exported", table_name="checklist_boardmeeting"
    ).order_by("seq")
    details = [e.detail or {} for e in exports]
    assert [d["page"] for d in details] == ["agenda pdf", "agenda pdf with notes"]
    assert details[-1]["cases"] == labels


def test_the_agenda_pdf_with_notes_gives_every_note_its_own_anchors(
    alice_client, today_meeting, caplog
):
    """Each case's note in the agenda PDF has ids of its own: with the same ids, WeasyPrint
    warns "Anchor defined twice" and the PDF's outline jumps to the first note's sections."""
    signed = today_meeting.items.filter(note__versions__signed_at__isnull=False).distinct()
    assert signed.count() >= 2
    with caplog.at_level("WARNING", logger="weasyprint"):
        response = alice_client.get(f"/meetings/{today_meeting.pk}/agenda.pdf?notes=1")
    assert response.status_code == 200
    assert not [r for r in caplog.records if "defined twice" in r.getMessage()]


def test_the_summary_pdf_shows_attendance_and_decisions(cora_client, cora, today_meeting, tmp_path):
    first, second = today_meeting.items.order_by("position")
    attendance_add(meeting=today_meeting, name="Dr. Rad", discipline="radiology", acting_user=cora)
    _decision(cora_client, first, 0)
    _decision(cora_client, first, 1, finalise="1")
    text = _pdf_text(cora_client.get(f"/meetings/{today_meeting.pk}/summary.pdf").content, tmp_path)
    assert "Dr. Rad (radiology)" in text
    assert "Board decision" in text and "Adjuvant radiotherapy of the breast" in text
    assert "Not present: pathology, surgery" in text
    assert "No decision recorded." in text  # the second case
    german = _pdf_text(
        cora_client.get(f"/meetings/{today_meeting.pk}/summary.pdf?lang=de").content, tmp_path
    )
    assert "Beschluss" in german and "Anwesenheit" in german and "Empfehlung" not in german


# --- access ------------------------------------------------------------------------------


def test_an_outsider_gets_404_for_boards_meetings_and_items(bob_client, today_meeting):
    item = today_meeting.items.first()
    board = today_meeting.board
    for url in [
        f"/boards/{board.pk}/",
        f"/meetings/{today_meeting.pk}/",
        f"/meetings/{today_meeting.pk}/run/",
        f"/meetings/{today_meeting.pk}/agenda.pdf",
        f"/meetings/{today_meeting.pk}/summary.pdf",
    ]:
        assert bob_client.get(url).status_code == 404, url
    assert _decision(bob_client, item, 0).status_code == 404
    assert (
        bob_client.post(
            f"/meetings/{today_meeting.pk}/attendance/", {"name": "x", "discipline": "nursing"}
        ).status_code
        == 404
    )
    assert not OutcomeDraft.objects.exists() and not Attendance.objects.exists()


def test_an_item_of_another_meeting_is_404(cora_client, today_meeting, meeting):
    other = meeting.items.first()
    url = f"/meetings/{today_meeting.pk}/items/{other.pk}/status/"
    assert cora_client.post(url, {"status": "not_discussed"}).status_code == 404


# --- queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 30])
def test_the_meeting_pages_and_agenda_pdf_take_as_many_queries_for_30_cases(
    alice_client, practice_a, alice, django_assert_num_queries, n
):
    meeting = seed_meeting(practice_a, alice, n, day=timezone.localdate())
    meetings_create_ahead(board=meeting.board, acting_user=alice, count=1)
    alice_client.get(f"/meetings/{meeting.pk}/")  # the session's first request
    # 1 session, 2 user, 3 OTP device, 4 memberships with their practices, 5 the meeting with
    # its board, 6 the items with case, note, registering user, draft and moved-from meeting,
    # 7 the cases' tumours, 8 each note's newest version, 9 the notes' signed versions,
    # 10 the board-type labels, 11 the access event
    with django_assert_num_queries(11):
        assert alice_client.get(f"/meetings/{meeting.pk}/").status_code == 200
    # 1-11 as the agenda (the access event names the current case), 12 the items' outcomes
    # (none recorded, so no recorders to read), 13 the attendance, 14 the deviation labels of
    # recorded decisions, 15 the current case's signed snapshot, 16 the deviation choices of
    # the decision form
    with django_assert_num_queries(16):
        assert alice_client.get(f"/meetings/{meeting.pk}/run/").status_code == 200
    # 1-11 as the agenda (the access event of an export); WeasyPrint reads no database
    with django_assert_num_queries(11):
        assert alice_client.get(f"/meetings/{meeting.pk}/agenda.pdf").status_code == 200
    # the same: the signed versions come with their snapshots in query 9
    with django_assert_num_queries(11):
        assert alice_client.get(f"/meetings/{meeting.pk}/agenda.pdf?notes=1").status_code == 200


# --- services ----------------------------------------------------------------------------


def test_the_next_meeting_date_is_the_boards_weekday_after_a_date(board):
    start = timezone.localdate()
    for offset in range(7):
        day = start + timedelta(days=offset)
        following = next_meeting_date(board, day)
        assert following.weekday() == board.weekday
        assert timedelta(days=1) <= following - day <= timedelta(days=7)


def test_a_shift_renumbers_the_agenda_in_the_order_shown(meeting):
    AgendaItem.objects.filter(meeting=meeting).update(position=0)  # registration order only
    last = AgendaItem.objects.get(meeting=meeting, case__label="C-3")
    agenda_item_shift(item=last, up=True)
    assert list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position")
        .values_list("case__label", "position")
    ) == [("C-1", 1), ("C-3", 2), ("C-2", 3)]
    first = AgendaItem.objects.get(meeting=meeting, case__label="C-1")
    agenda_item_shift(item=first, up=True)  # already first: stays
    assert _labels(meeting) == ["C-1", "C-3", "C-2"]


def test_a_registration_cannot_leave_a_closed_meeting(alice, meeting, board, next_week):
    meeting_set_registration(meeting=meeting, closed=True)
    item = AgendaItem.objects.get(meeting=meeting, case__label="C-1")
    version = item.note.versions.get()
    with pytest.raises(ValidationError, match="is closed"):
        note_update(
            version=version,
            data={"board_date": next_week + timedelta(days=7)},
            acting_user=alice,
        )
    item.refresh_from_db()
    assert item.meeting == meeting


def test_a_note_is_never_registered_for_another_practices_board(alice, case, practice_b, next_week):
    foreign = make_board(practice_b, name="B board")
    with pytest.raises(ValidationError):
        register_case(case, alice, foreign, next_week)
    assert not AgendaItem.objects.exists() and not BoardMeeting.objects.exists()


def test_the_note_form_offers_only_the_practices_active_boards(alice_client, case, practice_a):
    make_board(practice_a, name="Retired board", active=False)
    make_board(practice_a, name="Thoracic board")
    page = alice_client.get(f"/cases/{case.pk}/notes/new/").content.decode()
    assert "Thoracic board" in page and "Retired board" not in page
