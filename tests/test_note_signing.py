"""Signing a board note deliberately: a confirmation step with the summary of what is signed,
the physician's password again, a refused password audited, and a repeated signature (double
click, back button, two requests at once) answered without a second one.

alice (physician of practice A) signs; adam (its admin) may not; bob (practice B) sees nothing.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from checklist import audit
from checklist.models import AuditEvent, BoardNoteVersion, Category
from tests.factories import PASSWORD, create_note, logged_in, make_signable


@pytest.fixture
def signable(alice_client, case):
    """A case that signs (see factories.make_signable), one category marked to raise."""
    make_signable(alice_client, case)
    radio = Category.objects.get(practice=case.practice, code="radiotherapy")
    alice_client.post(
        f"/cases/{case.pk}/checklist/{radio.pk}/",
        {"status": "raise", "note": "Liver lesion: SBRT?", "revision": 0},
    )
    case.refresh_from_db()
    return case


def _form(note_pk: int, password: str = PASSWORD) -> dict[str, object]:
    """What the confirmation form posts: the password, the note's revision and the case
    version the summary was shown with."""
    version = BoardNoteVersion.objects.filter(note_id=note_pk).order_by("-number").first()
    assert version is not None
    return {
        "password": password,
        "revision": version.revision,
        "case_version": version.note.case.version,
    }


def test_it_shows_what_is_signed_and_asks_for_the_password(alice_client, signable):
    note = create_note(alice_client, signable)
    page = alice_client.get(f"/notes/{note}/")
    assert f'href="/notes/{note}/sign/"' in page.content.decode()  # a link, not a signing form
    response = alice_client.get(f"/notes/{note}/sign/")
    assert response.status_code == 200
    text = response.content.decode()
    # The sections present, the categories by status, what is still not reviewed.
    for section in ("Registration", "Tumour, stage and metastases", "Prior therapies"):
        assert section in text
    statuses = text[text.index('data-testid="sign-statuses"') :]
    assert "raise at board" in statuses and "not yet reviewed" in statuses
    not_reviewed = text[text.index('data-testid="sign-not-reviewed"') :]
    assert "categories are still “not yet reviewed”" in not_reviewed
    assert "Chemotherapy" in not_reviewed and "Radiotherapy" not in not_reviewed
    assert 'type="password"' in text and 'autocomplete="current-password"' in text
    assert BoardNoteVersion.objects.get().state == "draft"  # looking signs nothing


def test_a_wrong_password_signs_nothing_and_is_audited(alice_client, signable):
    note = create_note(alice_client, signable)
    response = alice_client.post(f"/notes/{note}/sign/", _form(note, "not-the-password"))
    assert response.status_code == 200
    assert "The password is not correct. Nothing was signed." in response.content.decode()
    version = BoardNoteVersion.objects.get()
    assert version.state == "draft" and not version.snapshot_hash
    refused = AuditEvent.objects.get(practice_id=signable.practice_id, op=audit.SIGN_REFUSED)
    assert refused.case_id == signable.pk and refused.row_id == str(version.pk)
    assert refused.actor_name == "alice" and refused.kind == "access"
    assert "not-the-password" not in str(refused.detail)


def test_the_right_password_signs(alice_client, signable):
    note = create_note(alice_client, signable)
    response = alice_client.post(f"/notes/{note}/sign/", _form(note), follow=True)
    assert "The note is signed." in response.content.decode()
    version = BoardNoteVersion.objects.get()
    assert version.state == "signed" and version.signed_by is not None
    assert version.signed_by.username == "alice"
    assert not AuditEvent.objects.filter(op=audit.SIGN_REFUSED).exists()


def test_a_missing_password_signs_nothing(alice_client, signable):
    note = create_note(alice_client, signable)
    form = _form(note)
    del form["password"]
    assert alice_client.post(f"/notes/{note}/sign/", form).status_code == 200
    assert BoardNoteVersion.objects.get().state == "draft"


def test_signing_the_same_revision_twice_signs_once(alice_client, signable):
    """A double click or the back button: the second POST finds the revision signed and
    answers as the first did."""
    note = create_note(alice_client, signable)
    form = _form(note)
    alice_client.post(f"/notes/{note}/sign/", form)
    first = BoardNoteVersion.objects.get()
    again = alice_client.post(f"/notes/{note}/sign/", form, follow=True)
    assert "The note is signed." in again.content.decode()
    assert "signed already" not in again.content.decode()
    assert BoardNoteVersion.objects.count() == 1
    second = BoardNoteVersion.objects.get()
    assert (second.signed_at, second.snapshot_hash) == (first.signed_at, first.snapshot_hash)
    signing_updates = AuditEvent.objects.filter(
        table_name="checklist_boardnoteversion", op="UPDATE", row_id=str(first.pk)
    )
    assert signing_updates.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_signing_at_once_sign_once(alice, signable):
    note = create_note(logged_in(alice), signable)
    form = _form(note)
    start = threading.Barrier(2)
    pages: list[str] = []

    def sign() -> None:
        client = logged_in(alice)
        start.wait()
        try:
            response = client.post(f"/notes/{note}/sign/", form, follow=True)
            pages.append(response.content.decode())
        finally:
            connection.close()

    threads = [threading.Thread(target=sign) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Both answer as a signature does; neither says "signed already".
    assert len(pages) == 2 and all("The note is signed." in page for page in pages)
    assert not any("signed already" in page for page in pages)
    version = BoardNoteVersion.objects.get()
    assert version.state == "signed"
    signing_updates = AuditEvent.objects.filter(
        table_name="checklist_boardnoteversion", op="UPDATE", row_id=str(version.pk)
    )
    assert signing_updates.count() == 1


def test_a_signed_note_offers_no_signing_step(alice_client, signable):
    note = create_note(alice_client, signable)
    alice_client.post(f"/notes/{note}/sign/", _form(note))
    response = alice_client.get(f"/notes/{note}/sign/", follow=True)
    assert response.redirect_chain[-1][0] == f"/notes/{note}/"
    assert "This version is signed already." in response.content.decode()


def test_signing_is_refused_while_something_is_missing(alice_client, case):
    note = create_note(alice_client, case)
    page = alice_client.get(f"/notes/{note}/sign/").content.decode()
    assert "Needed before signing" in page and 'type="password"' not in page
    response = alice_client.post(f"/notes/{note}/sign/", _form(note), follow=True)
    assert "Missing:" in response.content.decode()
    assert BoardNoteVersion.objects.get().state == "draft"


def test_an_admin_does_not_sign_and_an_outsider_gets_404(adam_client, bob_client, signable, alice):
    note = create_note(logged_in(alice), signable)
    assert adam_client.get(f"/notes/{note}/sign/").status_code == 403
    assert adam_client.post(f"/notes/{note}/sign/", _form(note)).status_code == 403
    assert bob_client.get(f"/notes/{note}/sign/").status_code == 404
    assert bob_client.post(f"/notes/{note}/sign/", _form(note)).status_code == 404
    assert BoardNoteVersion.objects.get().state == "draft"
