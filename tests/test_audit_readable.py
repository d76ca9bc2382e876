"""Readable audit (issue 14): the trail and the case history say who changed what in words.

People by their display name ("Dr. Alice Adler", with the user name the event stored beside
it), choices by their labels, every time in local time, and a signed note's frozen snapshot
collapsed behind a toggle, never dumped as program text. The case history leaves the "case
viewed" events out unless asked for.

- alice: physician in practice A, here "Dr. Alice Adler" (the actor)
- adam: practice admin of practice A (reads the trail)
"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.utils import formats, timezone, translation

from checklist import audit
from checklist.models import AuditEvent, BoardNoteVersion, Category, Membership
from checklist.services import account_set_title
from tests.factories import PASSWORD, create_note, make_signable, record_stage_change

QUESTION = "Further systemic therapy after progression under line 2?"
# A user field shown as a bare id: "signed by: 7" or "signed by: — → 7".
RAW_USER_ID = re.compile(
    r"<strong>(signed by|set by|created by|changed by|user)</strong>: "
    r"(<del>[^<]*</del> → <ins>)?#?\d+\b"
)
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def local(moment) -> str:
    return formats.date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def sign(client, note_pk: int) -> BoardNoteVersion:
    """Signs as the confirmation page does: revision, case version and the password again."""
    version = BoardNoteVersion.objects.filter(note_id=note_pk).order_by("-number")[0]
    client.post(
        f"/notes/{note_pk}/sign/",
        {
            "revision": version.revision,
            "case_version": version.note.case.version,
            "password": PASSWORD,
        },
    )
    version.refresh_from_db()
    assert version.state == "signed"
    return version


@pytest.fixture
def dr_alice(alice):
    alice.last_name = "Adler"
    alice.save()
    account_set_title(user=alice, title="Dr.")
    return alice


@pytest.fixture
def recorded(alice_client, dr_alice, case):
    """Dr. Alice Adler changes the stage of case BC-1, signs a board note, and marks the first
    category of the checklist to raise at the board."""
    record_stage_change(alice_client, case)
    make_signable(alice_client, case)
    version = sign(alice_client, create_note(alice_client, case))
    category = Category.objects.filter(practice=case.practice, active=True).order_by("position")[0]
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{category.pk}/", {"status": "raise", "note": "Ask RT."}
    )
    assert response.status_code in (200, 302)
    return case, version, category


def _snapshot(html: str) -> str:
    """The page's collapsed snapshot (a closed <details>: no "open" attribute)."""
    start = html.index('<details class="audit-snapshot" data-testid="snapshot"><summary>')
    return html[start : html.index("</details>", start)]


def _assert_readable(html: str, version: BoardNoteVersion, category: Category) -> None:
    # who: today's display name, beside the user name stored in the event
    assert "Dr. Alice Adler <span" in html and "(alice)" in html
    # signed by: a name, not a user id
    assert "<strong>signed by</strong>: <del>—</del> → <ins>Dr. Alice Adler</ins>" in html
    assert not RAW_USER_ID.search(html), RAW_USER_ID.search(html)
    # choices by their labels: the checklist status, the staging system
    assert "<strong>status</strong>: <del>not yet reviewed</del> → <ins>raise at board</ins>" in (
        html
    )
    assert "<strong>set by</strong>: <del>—</del> → <ins>Dr. Alice Adler</ins>" in html
    assert "uicc_tnm" not in html and "UICC TNM" in html
    # the checklist item is named by its category
    assert f"checklist item: {category.name_en}" in html
    # local times, in the details as in the "when" column; never ISO text
    assert f"<strong>signed at</strong>: <del>—</del> → <ins>{local(version.signed_at)}</ins>" in (
        html
    )
    newest = AuditEvent.objects.filter(practice_id=version.practice_id).order_by("-seq")[0]
    assert local(newest.ts) in html
    shown = re.sub(r'datetime="[^"]*"', "", html)  # the machine-readable attribute aside
    assert not ISO_TIME.search(shown), ISO_TIME.search(shown)
    # the frozen snapshot: collapsed behind a toggle, readable, never program text
    snapshot = _snapshot(html)
    assert "<summary>show snapshot</summary>" in snapshot
    assert QUESTION in snapshot and "<dl" in snapshot and "Dr. Alice Adler" in snapshot
    events = html[html.index('data-testid="audit-events"') :]
    assert "{&#x27;" not in events and "{&quot;" not in events and '{"' not in events
    assert "stagingrecord.kind" not in html  # no key of the stored structure


def test_the_trail_says_who_changed_what_in_words(adam_client, recorded):
    case, version, category = recorded
    html = adam_client.get(f"/audit/?case={case.label}&kind=change").content.decode()
    _assert_readable(html, version, category)


def test_the_case_history_says_who_changed_what_in_words(alice_client, recorded):
    case, version, category = recorded
    html = alice_client.get(f"/cases/{case.pk}/history/").content.decode()
    _assert_readable(html, version, category)


def test_the_trail_reads_in_german_too(adam_client, recorded):
    case, version, _category = recorded
    adam_client.cookies["django_language"] = "de"
    html = adam_client.get(f"/audit/?case={case.label}&kind=change").content.decode()
    assert "<strong>signiert von</strong>: <del>—</del> → <ins>Dr. Alice Adler</ins>" in html
    assert "<ins>in der Tumorkonferenz ansprechen</ins>" in html
    with translation.override("de"):
        german_time = local(version.signed_at)
    assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}", german_time)
    assert german_time in html
    assert "<summary>Momentaufnahme anzeigen</summary>" in html


def test_an_access_events_detail_is_words(adam_client, recorded):
    case, _version, _category = recorded
    adam_client.get(f"/audit/export.csv?case={case.label}")
    html = adam_client.get("/audit/?kind=access").content.decode()
    assert "filters: case: BC-1" in html
    assert "{&#x27;case&#x27;" not in html


def test_the_case_history_leaves_views_out_unless_asked(alice_client, dr_alice, case):
    """Sixty views after a stage change: the change is still on the first page; with the
    toggle the views come first, and the pages further back keep showing them."""
    record_stage_change(alice_client, case)
    for _ in range(60):
        audit.record_access(
            None, audit.CASE_VIEWED, practice_id=case.practice_id, case_id=case.pk, user=dr_alice
        )
    html = alice_client.get(f"/cases/{case.pk}/history/").content.decode()
    assert 'data-op="case_viewed"' not in html
    assert 'data-op="UPDATE"' in html and "Dr. Alice Adler" in html
    assert f'href="/cases/{case.pk}/history/?views=1"' in html

    with_views = alice_client.get(f"/cases/{case.pk}/history/?views=1").content.decode()
    assert with_views.count('data-op="case_viewed"') == 50  # a whole page of views
    assert 'data-op="UPDATE"' not in with_views
    assert f'href="/cases/{case.pk}/history/"' in with_views  # the way back
    older = re.search(r'href="\?([^"]+)" rel="next"', with_views)
    assert older and "views=1" in older.group(1)
    query = html_lib.unescape(older.group(1))
    second = alice_client.get(f"/cases/{case.pk}/history/?{query}").content.decode()
    assert 'data-op="case_viewed"' in second and 'data-op="UPDATE"' in second
    assert "Newest" in second and 'href="?views=1"' in second


def test_a_title_change_is_audited_and_shown_in_words(alice_client, adam_client, alice, case):
    membership = Membership.objects.get(user=alice)
    alice_client.post("/account/", {"title": "Dr."})
    adam_client.post(
        f"/accounts/{membership.pk}/", {"title": "Prof. Dr.", "role": "physician", "active": "on"}
    )
    events = AuditEvent.objects.filter(
        practice_id=case.practice_id, table_name="checklist_accountprofile"
    ).order_by("seq")
    assert [(e.op, e.actor_name) for e in events] == [("INSERT", "alice"), ("UPDATE", "adam")]
    assert events[1].old_values == {"title": "Dr."} and events[1].new_values == {
        "title": "Prof. Dr."
    }
    html = adam_client.get("/audit/?table=checklist_accountprofile").content.decode()
    assert "<strong>title</strong>: <del>Dr.</del> → <ins>Prof. Dr.</ins>" in html
    # the account by its person's name today (alice has no last name: "Prof. Dr. Alice")
    assert "<strong>user</strong>: Prof. Dr. Alice</li>" in html
    assert "account profile: Prof. Dr. Alice" in html


def test_the_trail_needs_one_query_for_every_name_on_the_page(
    adam_client, recorded, django_assert_num_queries
):
    case, _version, _category = recorded
    adam_client.get("/audit/")
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the page of events, 5 the code-list labels (a note
    # version's board type), 6 every name on the page: people, cases, categories, versions
    # (one UNION ALL), 7 the practice's users for the filter.
    with django_assert_num_queries(8):
        trail = adam_client.get("/audit/").content.decode()
    # 1-3 and 2a, 4 the case (access helper), 5 its events, 6 code lists, 7 every name.
    with django_assert_num_queries(8):
        history = adam_client.get(f"/cases/{case.pk}/history/").content.decode()
    for page in (trail, history):
        assert "Dr. Alice Adler" in page and "checklist item: " in page
