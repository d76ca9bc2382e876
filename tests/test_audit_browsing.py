"""Audit browsing: the trail, the CSV export, reports, chain state (a case's history is in
test_cases.py)."""

import csv
import io
import re

import pytest
from django.core.management import call_command
from django.test import Client

from checklist.models import AuditEvent, AuditVerification, Case, Membership
from tests.factories import (
    STAGING,
    audit_rows,
    logged_in,
    post_row,
    record_stage_change,
    set_metastasis_status,
)


@pytest.fixture
def story(alice_client, case):
    """alice records and then changes the stage of case BC-1, and views it."""
    return record_stage_change(alice_client, case)


def test_who_changed_the_stage_from_what_to_what_and_who_viewed_since(adam_client, story):
    html = adam_client.get(f"/audit/?case={story.label}&table=checklist_stagingrecord").content
    text = html.decode()
    # The user filter lists alice on every page of the trail: look in the event rows.
    [update] = [row for row in audit_rows(text) if 'data-op="UPDATE"' in row]
    assert re.search(r"\balice\b", update, re.IGNORECASE)
    assert "<del>2</del> → <ins>3</ins>" in text  # the T category, old → new
    views = adam_client.get(f"/audit/?case={story.label}&kind=access").content.decode()
    viewed = [row for row in audit_rows(views) if "case viewed" in row]
    assert viewed and all(re.search(r"\balice\b", row, re.IGNORECASE) for row in viewed)


def test_an_outsider_sees_neither_trail_nor_history(bob_client, story):
    assert bob_client.get(f"/cases/{story.pk}/history/").status_code == 404
    assert bob_client.get("/audit/?case=BC-1").status_code == 403  # bob is a physician


def test_a_physician_cannot_browse_the_practice_trail(alice_client, story):
    assert alice_client.get("/audit/").status_code == 403
    assert alice_client.get("/audit/export.csv").status_code == 403


def test_another_practices_events_never_show(adam_client, story, bob, practice_b):
    other = Case.objects.create(practice=practice_b, label="B-secret", **Case.MINIMAL)
    logged_in(bob).get(f"/cases/{other.pk}/")
    # Whole words only: a random CSRF token may contain the letters "bob".
    text = adam_client.get("/audit/").content.decode()
    assert "B-secret" not in text and not re.search(r"\bbob\b", text)
    export = b"".join(adam_client.get("/audit/export.csv").streaming_content).decode()
    assert "B-secret" not in export and not re.search(r"\bbob\b", export)


def test_keyset_pages_go_deep(adam_client, story):
    for i in range(60):
        Case.objects.create(practice=story.practice, label=f"P-{i}", **Case.MINIMAL)
    first = adam_client.get("/audit/").content.decode()
    assert 'rel="next"' in first
    before = first.split("before=")[1].split('"')[0]
    second = adam_client.get(f"/audit/?before={before}").content.decode()
    seqs_first = {int(s) for s in _seqs(first)}
    seqs_second = {int(s) for s in _seqs(second)}
    assert seqs_first and seqs_second and not seqs_first & seqs_second
    assert max(seqs_second) < min(seqs_first)


def _seqs(html: str) -> list[str]:
    return re.findall(r'<td class="text-body-secondary small">(\d+)</td>', html)


def test_the_csv_export_streams_the_filtered_trail_and_is_audited(adam_client, story):
    response = adam_client.get(f"/audit/export.csv?case={story.label}")
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["practice_id", "seq", "ts"]
    assert {r[4] for r in rows[1:]} >= {"checklist_stagingrecord", "checklist_case"}
    assert all(r[7] == str(story.pk) for r in rows[1:])
    export = AuditEvent.objects.get(
        practice_id=story.practice_id, op="exported", table_name="checklist_auditevent"
    )
    assert export.actor_name == "adam" and (export.detail or {})["filters"] == {"case": "BC-1"}


def test_the_reports(adam_client, alice_client, story):
    html = adam_client.get("/audit/reports/").content.decode()
    assert "BC-1" in html  # metastasis status and more are not documented
    Client().post("/login/", {"username": "alice", "password": "nope"})
    html = adam_client.get("/audit/reports/").content.decode()
    assert "login_failure" in html
    activity = html.split('data-testid="report-activity"')[1].split("</section>")[0]
    assert "alice" in activity


def test_the_chain_page_verifies_on_request(adam_client, adam, story):
    assert b"Not verified yet." in adam_client.get("/audit/chain/").content
    adam_client.post("/audit/chain/")
    run = AuditVerification.objects.get()
    assert run.ok and run.events > 5 and run.ran_by == "adam"
    assert b"OK" in adam_client.get("/audit/chain/").content


def test_the_command_records_its_result(story, capsys):
    call_command("audit_verify", allow_no_checkpoint=True)
    assert AuditVerification.objects.filter(chain=story.practice_id, ok=True).exists()


def test_admins_cannot_edit_clinical_content(adam_client, story):
    record = story.staging_records.get()
    response = post_row(adam_client, story, "staging", {**STAGING, "t_category": "4"}, row=record)
    assert response.status_code == 403
    assert Membership.objects.get(user__username="adam").role == "practice_admin"


@pytest.mark.parametrize("n", [10, 200])
def test_audit_pages_need_the_same_queries_for_few_and_many_events(
    adam_client, story, django_assert_num_queries, n
):
    Case.objects.bulk_create(
        [Case(practice=story.practice, label=f"Q-{i}", **Case.MINIMAL) for i in range(n)]
    )
    adam_client.get("/audit/")
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the page of events, 5 the labels of their cases,
    # 6 the practice's users for the filter. (No audit-context query: a read sets none.)
    with django_assert_num_queries(7):
        adam_client.get("/audit/")
    # 1-3 and 2a as above, 4 the case (access helper), 5 its events, 6 case labels.
    with django_assert_num_queries(7):
        adam_client.get(f"/cases/{story.pk}/history/")


def test_code_list_values_are_shown_with_their_labels(adam_client, alice_client, case):
    set_metastasis_status(alice_client, case, "present")
    post_row(
        alice_client,
        case,
        "metastasis",
        {"site": "HEP", "detected_on": "2024-01-02", "timing": "metachronous"},
    )
    html = adam_client.get("/audit/?table=checklist_metastasis").content.decode()
    assert "Liver (HEP)" in html
