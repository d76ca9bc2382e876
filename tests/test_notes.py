"""Tumour-board notes: lifecycle, hash, database-level immutability, exports, wording.

Every test runs twice (the `clock` fixture): at today's date and two years ahead, so a date
that a form compares with today cannot be hard-coded here unnoticed."""

import re
import subprocess

import pytest
from django.db import connection, transaction
from django.db.utils import InternalError, ProgrammingError

from checklist import notes, services
from checklist.models import AuditEvent, BoardNoteVersion, BoardOutcome, Category, Membership
from checklist.wording import recommending_words, strip_exempt_markdown
from tests.factories import (
    PASSWORD,
    create_note,
    days_from_today,
    make_signable,
    note_data,
    post_row,
    seed_rows,
    set_metastasis_status,
    sign_note,
)

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def signable(alice_client, case):
    """A case with what signing needs (a tumour type, metastasis status, a prior-therapy
    statement and immune findings stated as not assessed), a liver metastasis and a
    category to raise."""
    make_signable(alice_client, case)
    post_row(
        alice_client,
        case,
        "metastasis",
        {"site": "HEP", "detected_on": "2024-01-02", "timing": "metachronous"},
    )
    radio = Category.objects.get(practice=case.practice, code="radiotherapy")
    alice_client.post(
        f"/cases/{case.pk}/checklist/{radio.pk}/",
        {"status": "raise", "note": "Liver lesion: SBRT?"},
    )
    case.refresh_from_db()
    return case


def test_the_question_for_the_board_is_required(alice_client, case):
    response = alice_client.post(f"/cases/{case.pk}/notes/new/", note_data(question=""))
    assert response.status_code == 200 and b"This field is required" in response.content


def test_signing_is_refused_with_the_list_of_what_is_missing(alice_client, case):
    note = create_note(alice_client, case)
    page = alice_client.get(f"/notes/{note}/").content.decode()
    # In the list of what is missing, not anywhere in the note's body.
    page = page.split('data-testid="missing"')[1].split("</div>")[0]
    assert "a tumour type" in page and "the metastasis status" in page
    assert "no prior tumour-specific therapy" in page and "not assessed" in page
    sign_note(alice_client, note)
    assert BoardNoteVersion.objects.get().state == "draft"


def test_the_lifecycle_draft_ready_signed_amended_outcome(alice_client, signable):
    first_board_date = note_data()["board_date"]
    note = create_note(alice_client, signable)
    alice_client.post(f"/notes/{note}/ready/")
    assert BoardNoteVersion.objects.get().state == "ready"
    sign_note(alice_client, note)
    v1 = BoardNoteVersion.objects.get()
    assert v1.signed_by is not None and v1.snapshot is not None
    assert v1.state == "signed" and v1.signed_by.username == "alice"
    assert v1.snapshot_hash == notes.snapshot_hash(v1.snapshot)
    page = alice_client.get(f"/notes/{note}/").content.decode()
    assert v1.snapshot_hash in page and "verified: the stored snapshot matches its hash" in page
    # Questions raised, and every category with its status.
    assert "Questions raised by Alice" in page and "Liver lesion: SBRT?" in page
    assert page.count("not yet reviewed") == 5

    response = alice_client.post(
        f"/notes/{note}/outcome/",
        {
            "held_on": days_from_today(-9),
            "attendees": "Onkologie, Radiologie, Strahlentherapie",
            "measure_1": "SBRT der Lebermetastase",
            "deviation_1": "N",
            "measure_2": "Fortführung der endokrinen Therapie",
            "deviation_2": "J",
        },
    )
    assert response.status_code == 302
    assert BoardOutcome.objects.get().measures[1] == {
        "text": "Fortführung der endokrinen Therapie",
        "deviation": "J",
    }

    assert alice_client.post(f"/notes/{note}/amend/", {"reason": ""}).status_code == 302
    assert BoardNoteVersion.objects.count() == 1  # a reason is mandatory
    alice_client.post(f"/notes/{note}/amend/", {"reason": "Board date moved."})
    v2 = BoardNoteVersion.objects.get(number=2)
    assert v2.supersedes == v1 and v2.state == "draft"
    alice_client.post(
        f"/notes/{note}/edit/",
        note_data(board_date=days_from_today(11), revision=v2.revision),
    )
    sign_note(alice_client, note)
    v2.refresh_from_db()
    assert v2.state == "signed" and v2.snapshot_hash != v1.snapshot_hash
    v1.refresh_from_db()
    v1_rows = {
        row.label: row.value
        for section in notes.document(v1.snapshot or {}, "en").sections
        for group in section.groups
        for row in group.rows
    }
    assert v1_rows["Preferred board date"] == first_board_date  # untouched
    page = alice_client.get(f"/notes/{note}/").content.decode()
    assert "Board date moved." in page and "Registration › Preferred board date" in page
    pdf_text = _pdf_text(alice_client.get(f"/notes/{note}/v2/pdf/").content)
    assert "amended, version 2, supersedes version 1" in pdf_text.lower()


def test_the_hash_is_the_same_for_the_same_snapshot_and_differs_for_any_change():
    snapshot = {"a": 1, "b": ["x", {"c": "Grüße"}]}
    assert notes.snapshot_hash(snapshot) == notes.snapshot_hash(
        {"b": ["x", {"c": "Grüße"}], "a": 1}
    )
    assert notes.snapshot_hash(snapshot) != notes.snapshot_hash(
        {"a": 1, "b": ["x", {"c": "Grüsse"}]}
    )


def test_later_case_edits_do_not_change_a_signed_note(alice_client, signable):
    note = create_note(alice_client, signable)
    sign_note(alice_client, note)
    before = alice_client.get(f"/notes/{note}/v1/text/").content
    post_row(alice_client, signable, "comorbidity", {"name": "New comorbidity"})
    assert alice_client.get(f"/notes/{note}/v1/text/").content == before
    assert notes.verify(BoardNoteVersion.objects.get())


def test_the_database_refuses_to_change_a_signed_version(alice_client, signable):
    note = create_note(alice_client, signable)
    sign_note(alice_client, note)
    version = BoardNoteVersion.objects.get()
    for sql in (
        "UPDATE checklist_boardnoteversion SET question = 'changed' WHERE id = %s",
        "DELETE FROM checklist_boardnoteversion WHERE id = %s",
    ):
        with (
            pytest.raises((InternalError, ProgrammingError)),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [version.pk])
    version.refresh_from_db()
    assert version.question == note_data()["question"]


def test_a_draft_can_still_be_edited_in_the_database(alice_client, case):
    note = create_note(alice_client, case)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE checklist_boardnoteversion SET question = 'q2' WHERE note_id = %s", [note]
        )
    assert BoardNoteVersion.objects.get().question == "q2"


def test_only_a_physician_signs(adam_client, alice_client, signable, adam):
    note = create_note(alice_client, signable)
    assert adam_client.post(f"/notes/{note}/sign/").status_code == 403
    membership = Membership.objects.get(user=adam)
    with pytest.raises(Exception, match="Only a physician"):
        services.note_sign(
            version=BoardNoteVersion.objects.get(), acting_membership=membership, language="en"
        )
    assert BoardNoteVersion.objects.get().state == "draft"


def test_a_haematological_case_signs_without_tnm_or_metastasis_rows(alice_client, case):
    post_row(alice_client, case, "tumour", {"oncotree": "CLLSLL", "laterality": "not_applicable"})
    post_row(
        alice_client,
        case,
        "staging",
        {"staged_on": "2024-01-01", "kind": "clinical", "system": "binet", "stage_text": "B"},
    )
    set_metastasis_status(alice_client, case, "not_applicable")
    post_row(
        alice_client,
        case,
        "immune",
        {
            "assessed_on": "2024-05-01",
            "igg": "3.1",
            "infections_12m": "3",
            "infections_hospitalised": "3",
        },
    )
    case.refresh_from_db()
    alice_client.post(
        f"/cases/{case.pk}/prior-therapy/",
        {"no_prior_therapy": "on", "expected_version": case.version},
    )
    note = create_note(alice_client, case)
    sign_note(alice_client, note)
    assert BoardNoteVersion.objects.get().state == "signed"


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


def test_the_pdf_has_the_case_footer_and_german_characters(alice_client, signable, tmp_path):
    note = create_note(alice_client, signable)
    sign_note(alice_client, note)
    response = alice_client.get(f"/notes/{note}/v1/pdf/")
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = _pdf_text(response.content)
    version = BoardNoteVersion.objects.get()
    assert "BC-1" in text and "page 1 of" in text
    assert "No automated recommendation was generated." in text
    assert f"SHA-256 {version.snapshot_hash[:12]}" in text
    assert "Catalogue version 1" in text and "note version 1" in text
    assert "Lebensqualität" in text and "Interdisziplinäre" in text
    pdf_file = tmp_path / "note.pdf"
    pdf_file.write_bytes(response.content)
    fonts = subprocess.run(["pdffonts", str(pdf_file)], capture_output=True, check=True)
    rows = fonts.stdout.decode().splitlines()[2:]
    assert rows and all(" yes " in row for row in rows)  # every font embedded
    exported = AuditEvent.objects.filter(
        practice_id=signable.practice_id, op="exported", detail__format="pdf"
    )
    assert exported.count() == 1


DISCLAIMER_SENTENCES = [
    "No automated recommendation was generated.",
    "This note lists every category documented in the practice's catalogue. It is not a "
    "complete list of treatment options. No automated recommendation was generated.",
]


def _without_disclaimers(text: str) -> str:
    flat = re.sub(r"\s+", " ", text)
    for sentence in DISCLAIMER_SENTENCES:
        flat = flat.replace(sentence, " ")
    return flat


def test_the_note_html_text_and_pdf_contain_no_recommending_word(alice_client, signable):
    note = create_note(alice_client, signable, question="Would SBRT be recommended here?")
    sign_note(alice_client, note)
    html = alice_client.get(f"/notes/{note}/").content.decode()
    assert "Would SBRT be recommended here?" in html  # the physician's words, quoted
    assert not recommending_words(html, html=True)
    text = alice_client.get(f"/notes/{note}/v1/text/").content.decode()
    assert "> Would SBRT be recommended here?" in text  # quoted, not censored
    assert not recommending_words(strip_exempt_markdown(text))
    pdf = _without_disclaimers(_pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content))
    pdf = pdf.replace("Would SBRT be recommended here?", "")
    assert not recommending_words(pdf)


def test_the_notes_list_filters_by_state(alice_client, signable):
    draft = create_note(alice_client, signable)
    # A second note with the same registration would ask first (a resubmit, issue 13).
    signed = create_note(alice_client, signable, question="Radiotherapy of the liver lesion?")
    sign_note(alice_client, signed)
    drafts = alice_client.get("/notes/?state=draft").content.decode()
    assert f'href="/notes/{draft}/"' in drafts
    assert f'href="/notes/{signed}/"' not in drafts
    pending = alice_client.get("/notes/?state=outcome_pending").content.decode()
    assert f'href="/notes/{signed}/"' in pending
    assert f'href="/notes/{draft}/"' not in pending


@pytest.mark.parametrize("lines", [1, 20])
def test_the_note_page_queries_are_constant(
    alice_client, signable, django_assert_num_queries, lines
):
    seed_rows(signable, lines)
    note = create_note(alice_client, signable)
    alice_client.get(f"/notes/{note}/")
    with django_assert_num_queries(QUERIES_NOTE_PAGE):
        alice_client.get(f"/notes/{note}/")


# 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
# 4 the note with its case, 5 the newest version, 6 the case's record in one round trip (one
# SELECT per kind of row, tumours to genomic findings, and the record's code lists, with the
# metastasis sites the signing check's facts name: record.fetch_rows), 7 the labels of
# every code list the note names (one query, both languages: the snapshot stores them), 8 the
# checklist with its version, 9 categories, 10 items with who set them, 11 versions of the
# note, 12 the access event, 13 deviation labels, 14 outcomes, 15 the board meetings the note
# is on (issue 17). The signing check reads the record already loaded. (32 while the record's
# 16 kinds of rows and its two code reads were a query each.)
QUERIES_NOTE_PAGE = 16


def test_a_stale_sign_or_edit_is_refused(alice_client, signable):
    note = create_note(alice_client, signable)
    version = BoardNoteVersion.objects.get()
    seen = {"revision": version.revision, "case_version": signable.version, "password": PASSWORD}
    # A colleague edits the draft after this physician opened it.
    alice_client.post(f"/notes/{note}/edit/", note_data(question="Changed?", revision=1))
    response = alice_client.post(f"/notes/{note}/sign/", seen, follow=True)
    assert b"changed in the meantime" in response.content
    assert BoardNoteVersion.objects.get().state == "draft"
    stale_edit = alice_client.post(f"/notes/{note}/edit/", note_data(revision=1))
    assert stale_edit.status_code == 200 and b"changed in the meantime" in stale_edit.content
    # The case record changed since the note was opened.
    version.refresh_from_db()
    post_row(alice_client, signable, "comorbidity", {"name": "Gout"})
    response = alice_client.post(
        f"/notes/{note}/sign/",
        {"revision": version.revision, "case_version": signable.version, "password": PASSWORD},
        follow=True,
    )
    assert b"case record changed since you opened the note" in response.content
    assert BoardNoteVersion.objects.get().state == "draft"
