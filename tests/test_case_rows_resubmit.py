"""Idempotent creates (issue 13): every create form carries a one-time submission token, a
second POST with it saves nothing and shows what the first saved; a create identical to one
the same user saved on the case within ten minutes asks first; an edit refuses a resubmit of
values already applied. Concurrent double POSTs save once.

Self-contained helpers (forms are fetched and posted as the browser does), so the file also
runs against older trees."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.utils import timezone

from checklist import services
from checklist.models import (
    AuditEvent,
    BoardNote,
    BoardNoteVersion,
    BoardOutcome,
    Case,
    CatalogueVersion,
    Category,
    Comorbidity,
    Membership,
)
from tests.factories import verify_session

COMORBIDITY = {"name": "Diabetes mellitus type 2"}


def _form_fields(response) -> dict[str, str]:
    """The hidden fields of the page's form (token, version, revision)."""
    html = response.content.decode()
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def _open(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    fields = _form_fields(response)
    fields.pop("csrfmiddlewaretoken", None)
    return fields


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _login(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    verify_session(client, user)
    return client


def _note_data(**change):
    return {
        "registering_physician": "Dr. Alice",
        "target_board": "Interdisziplinäre Tumorkonferenz",
        "board_type": "postth",
        "board_date": (timezone.localdate() + timedelta(days=4)).isoformat(),
        "question": "Further systemic therapy after progression?",
        **change,
    }


def _new_row_url(case, kind="comorbidity"):
    return f"/cases/{case.pk}/{kind}/new/"


# --- the token ------------------------------------------------------------------------------


def test_every_create_form_carries_a_token_and_a_row_edit_form_does_not(
    alice_client, adam_client, case
):
    for url in ["/cases/new/", _new_row_url(case), f"/cases/{case.pk}/notes/new/"]:
        assert "submission_token" in _open(alice_client, url), url
    adam_client.post("/catalogue/draft/")
    assert "submission_token" in _open(adam_client, "/catalogue/2/categories/new/")
    row = services.case_row_save(
        case=case, row=Comorbidity(name="Gout"), acting_user=None, expected_version=None
    )
    assert "submission_token" not in _open(alice_client, f"/cases/{case.pk}/comorbidity/{row.pk}/")


def test_two_identical_posts_of_a_row_form_save_one_row(alice_client, case):
    form = _open(alice_client, _new_row_url(case))
    first = alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    second = alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    row = Comorbidity.objects.get(case=case)
    assert first.status_code == second.status_code == 302
    # The second shows the row the first saved, and says so.
    assert second["Location"] == f"/cases/{case.pk}/#comorbidity-{row.pk}"
    assert any(m.startswith("Already saved at") for m in _messages(second))
    case.refresh_from_db()
    assert case.version == 2  # one save, one version


def test_two_identical_posts_of_a_note_form_create_one_note(alice_client, case):
    form = _open(alice_client, f"/cases/{case.pk}/notes/new/")
    responses = [
        alice_client.post(f"/cases/{case.pk}/notes/new/", {**_note_data(), **form})
        for _ in range(2)
    ]
    note = BoardNote.objects.get(case=case)
    assert [r["Location"] for r in responses] == [f"/notes/{note.pk}/"] * 2
    assert any(m.startswith("Already saved at") for m in _messages(responses[1]))


def test_two_identical_posts_of_the_case_form_create_one_case(alice_client, practice_a):
    form = _open(alice_client, "/cases/new/")
    data = {**form, "label": "LC-7", "year_of_birth": 1958, "sex": "male"}
    data["situation"] = "first_diagnosis"
    first = alice_client.post("/cases/new/", data)
    second = alice_client.post("/cases/new/", data)
    created = Case.objects.get(label="LC-7")
    assert first["Location"] == second["Location"] == f"/cases/{created.pk}/"


def test_two_identical_posts_of_an_outcome_or_a_category_save_once(
    alice, alice_client, adam_client, case
):
    note = services.note_create(case=case, data=_note_data(), acting_user=alice)
    BoardNoteVersion.objects.filter(pk=note.pk).update(
        state="signed", signed_at=timezone.now(), snapshot_hash="x" * 64
    )
    url = f"/notes/{note.note_id}/outcome/"
    form = _open(alice_client, url)
    outcome = {
        **form,
        "held_on": timezone.localdate().isoformat(),
        "attendees": "Onkologie, Radiologie",
        "measure_1": "Weiter wie geplant.",
    }
    assert [alice_client.post(url, outcome).status_code for _ in range(2)] == [302, 302]
    assert BoardOutcome.objects.filter(note_id=note.note_id).count() == 1

    adam_client.post("/catalogue/draft/")
    form = _open(adam_client, "/catalogue/2/categories/new/")
    category = {
        **form,
        "code": "new_one",
        **{f: "x" for f in ("name_en", "name_de", "group_en", "group_de")},
        **{f: "d" for f in ("description_en", "description_de", "source_section")},
        "source_quote": "Possible combinable therapeutic approaches include:",
    }
    responses = [adam_client.post("/catalogue/2/categories/new/", category) for _ in range(2)]
    assert [r.status_code for r in responses] == [302, 302]
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    assert Category.objects.filter(version=draft, code="new_one").count() == 1


def test_a_form_shown_again_with_an_error_keeps_its_token(alice_client, case):
    form = _open(alice_client, _new_row_url(case))
    response = alice_client.post(_new_row_url(case), {"name": "", **form})
    assert response.status_code == 200
    assert _form_fields(response)["submission_token"] == form["submission_token"]
    alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    assert Comorbidity.objects.filter(case=case).count() == 1


def test_an_old_or_altered_token_is_refused_with_the_input_kept(alice_client, case):
    form = _open(alice_client, _new_row_url(case))
    altered = {**form, "submission_token": form["submission_token"][:-2] + "xx"}
    response = alice_client.post(_new_row_url(case), {**COMORBIDITY, **altered})
    assert response.status_code == 200 and b"more than a day ago" in response.content
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=True):
        response = alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    assert response.status_code in (200, 302)  # the session may have expired too
    assert not Comorbidity.objects.filter(case=case).exists()


def test_another_users_token_is_refused(alice_client, case, practice_a):
    from tests.factories import make_user

    colleague = make_user("cleo", practice_a, Membership.PHYSICIAN)
    form = _open(alice_client, _new_row_url(case))
    response = _login(colleague).post(_new_row_url(case), {**COMORBIDITY, **form})
    assert response.status_code == 200 and b"more than a day ago" in response.content
    assert not Comorbidity.objects.filter(case=case).exists()


def test_the_token_table_has_no_practice_id_no_capture_and_expired_tokens_are_purged(
    alice, alice_client, case
):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'checklist_submissiontoken'"
        )
        columns = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*) FROM pg_trigger"
            " WHERE tgrelid = 'checklist_submissiontoken'::regclass AND NOT tgisinternal"
        )
        triggers = cursor.fetchone()[0]
    assert "practice_id" not in columns and "token" in columns and triggers == 0
    with time_machine.travel(timezone.now() - timedelta(hours=30), tick=True):
        services.case_row_save(
            case=case, row=Comorbidity(name="Old"), acting_user=alice, expected_version=None
        )
    from checklist.models import SubmissionToken

    assert SubmissionToken.objects.count() == 1
    form = _open(alice_client, _new_row_url(case))
    alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    # The claim purged the expired token and kept its own.
    assert list(SubmissionToken.objects.values_list("kind", flat=True)) == ["comorbidity"]
    assert SubmissionToken.objects.get().created_at > timezone.now() - timedelta(minutes=1)
    assert not AuditEvent.objects.filter(table_name="checklist_submissiontoken").exists()


# --- concurrent double POSTs ----------------------------------------------------------------


def _post_together(clients, url, data, monkeypatch):
    """Posts `data` from each client at once; the first save is held open a moment, so the
    others arrive while it has not committed yet."""
    original = services._bump

    def slow_bump(*args, **kwargs):
        original(*args, **kwargs)
        time.sleep(0.4)

    monkeypatch.setattr(services, "_bump", slow_bump)
    original_record = getattr(services, "_record_submission", None)

    def slow_record(*args, **kwargs):
        if original_record is not None:
            original_record(*args, **kwargs)
        time.sleep(0.4)

    monkeypatch.setattr(services, "_record_submission", slow_record, raising=False)
    barrier = threading.Barrier(len(clients))
    responses: list = [None] * len(clients)

    def post(index, client):
        try:
            barrier.wait()
            responses[index] = client.post(url, data)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_post_of_a_row_form_saves_one_row(alice, case, monkeypatch):
    first_client = _login(alice)
    form = _open(first_client, _new_row_url(case))
    clients = [first_client, _login(alice)]
    responses = _post_together(clients, _new_row_url(case), {**COMORBIDITY, **form}, monkeypatch)
    assert Comorbidity.objects.filter(case=case).count() == 1
    # Both answers show the one row: one saved it, the other says it was saved already.
    assert [r.status_code for r in responses] == [302, 302]
    said = sorted(m[:13] for r in responses for m in _messages(r))
    assert said == ["Already saved", "Saved."]


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_post_of_a_note_form_creates_one_note(alice, case, monkeypatch):
    first_client = _login(alice)
    url = f"/cases/{case.pk}/notes/new/"
    form = _open(first_client, url)
    responses = _post_together(
        [first_client, _login(alice)], url, {**_note_data(), **form}, monkeypatch
    )
    assert BoardNote.objects.filter(case=case).count() == 1
    assert [r.status_code for r in responses] == [302, 302]


# --- the same entry again within ten minutes --------------------------------------------------


def test_the_same_comorbidity_again_within_ten_minutes_asks_first(alice_client, case):
    form = _open(alice_client, _new_row_url(case))
    alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    saved_at = timezone.localtime().strftime("%H:%M")
    # Back reloads the form: a fresh token and the current case version.
    again = _open(alice_client, _new_row_url(case))
    response = alice_client.post(_new_row_url(case), {**COMORBIDITY, **again})
    assert response.status_code == 200
    assert again["submission_token"] != form["submission_token"]
    html = response.content.decode()
    assert f"You saved the same comorbidity at {saved_at}. Save again?" in html
    assert 'name="confirm_duplicate"' in html
    assert Comorbidity.objects.filter(case=case).count() == 1
    # Confirmed, it is saved (the form kept its token and version).
    kept = _form_fields(response)
    assert kept["submission_token"] == again["submission_token"]
    confirmed = alice_client.post(
        _new_row_url(case), {**COMORBIDITY, **kept, "confirm_duplicate": "on"}
    )
    assert confirmed.status_code == 302
    assert Comorbidity.objects.filter(case=case).count() == 2


def test_only_the_same_entry_by_the_same_user_within_ten_minutes_asks(
    alice_client, case, practice_a
):
    from tests.factories import make_user

    form = _open(alice_client, _new_row_url(case))
    alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    again = _open(alice_client, _new_row_url(case))
    assert alice_client.post(_new_row_url(case), {**COMORBIDITY, **again}).status_code == 200
    # Another value: saved without asking.
    changed = {**COMORBIDITY, "note": "HbA1c 7.1 %"}
    assert alice_client.post(_new_row_url(case), {**changed, **again}).status_code == 302
    # A colleague's identical entry: saved without asking.
    colleague = _login(make_user("cleo", practice_a, Membership.PHYSICIAN))
    theirs = _open(colleague, _new_row_url(case))
    assert colleague.post(_new_row_url(case), {**COMORBIDITY, **theirs}).status_code == 302
    assert Comorbidity.objects.filter(case=case).count() == 3
    # Eleven minutes later: saved without asking.
    with time_machine.travel(timezone.now() + timedelta(minutes=11), tick=True):
        later = _open(alice_client, _new_row_url(case))
        assert alice_client.post(_new_row_url(case), {**COMORBIDITY, **later}).status_code == 302
    assert Comorbidity.objects.filter(case=case).count() == 4


def test_a_row_changed_since_is_no_duplicate_any_more(alice_client, case):
    form = _open(alice_client, _new_row_url(case))
    alice_client.post(_new_row_url(case), {**COMORBIDITY, **form})
    again = _open(alice_client, _new_row_url(case))
    assert alice_client.post(_new_row_url(case), {**COMORBIDITY, **again}).status_code == 200
    row = Comorbidity.objects.get(case=case)
    edit = _open(alice_client, f"/cases/{case.pk}/comorbidity/{row.pk}/")
    alice_client.post(f"/cases/{case.pk}/comorbidity/{row.pk}/", {"name": "Gout", **edit})
    again = _open(alice_client, _new_row_url(case))
    assert alice_client.post(_new_row_url(case), {**COMORBIDITY, **again}).status_code == 302
    assert Comorbidity.objects.filter(case=case).count() == 2


def test_the_same_note_again_within_ten_minutes_asks_first(alice_client, case):
    url = f"/cases/{case.pk}/notes/new/"
    alice_client.post(url, {**_note_data(), **_open(alice_client, url)})
    again = _open(alice_client, url)
    response = alice_client.post(url, {**_note_data(), **again})
    assert response.status_code == 200 and b"You saved the same board note at" in response.content
    assert BoardNote.objects.filter(case=case).count() == 1
    alice_client.post(url, {**_note_data(), **again, "confirm_duplicate": "on"})
    assert BoardNote.objects.filter(case=case).count() == 2


# --- edits ------------------------------------------------------------------------------------


def test_a_row_edit_posted_again_with_its_old_version_gets_the_stale_page(alice_client, case):
    row = services.case_row_save(
        case=case, row=Comorbidity(name="Gout"), acting_user=None, expected_version=None
    )
    url = f"/cases/{case.pk}/comorbidity/{row.pk}/"
    form = _open(alice_client, url)
    assert alice_client.post(url, {"name": "Gout, since 2019", **form}).status_code == 302
    again = alice_client.post(url, {"name": "Gout, since 2019", **form})
    assert again.status_code == 409
    assert b"The case was changed in the meantime" in again.content
    case.refresh_from_db()
    assert case.version == 3  # created, edited once


def test_a_note_edit_sent_again_after_back_changes_nothing(alice, alice_client, case):
    version = services.note_create(case=case, data=_note_data(), acting_user=alice)
    url = f"/notes/{version.note_id}/edit/"
    form = _open(alice_client, url)
    edited = _note_data(question="Second-line options after progression?")
    assert alice_client.post(url, {**edited, **form}).status_code == 302
    BoardNoteVersion.objects.filter(pk=version.pk).update(state="ready")
    # Back fetches the edit page again: the current revision and a fresh token, the typed text
    # restored by the browser. The revision check passes; the resubmit is still refused.
    again = _open(alice_client, url)
    assert again["revision"] == "2"
    response = alice_client.post(url, {**edited, **again})
    assert response.status_code == 302
    assert any(m.startswith("Already saved at") for m in _messages(response))
    version.refresh_from_db()
    assert (version.revision, version.state) == (2, "ready")


def test_a_note_edit_sent_again_after_a_colleagues_change_asks_first(
    alice, alice_client, case, practice_a
):
    from tests.factories import make_user

    version = services.note_create(case=case, data=_note_data(), acting_user=alice)
    url = f"/notes/{version.note_id}/edit/"
    mine = _note_data(question="Mine?")
    alice_client.post(url, {**mine, **_open(alice_client, url)})
    colleague = _login(make_user("cleo", practice_a, Membership.PHYSICIAN))
    colleague.post(url, {**_note_data(question="Theirs?"), **_open(colleague, url)})
    # Back: the page has the colleague's revision, the browser restores "Mine?".
    again = _open(alice_client, url)
    response = alice_client.post(url, {**mine, **again})
    assert response.status_code == 200
    assert b"and the entry was changed after that. Save them again?" in response.content
    version.refresh_from_db()
    assert (version.question, version.revision) == ("Theirs?", 3)
    alice_client.post(url, {**mine, **_form_fields(response), "confirm_duplicate": "on"})
    version.refresh_from_db()
    assert (version.question, version.revision) == ("Mine?", 4)
