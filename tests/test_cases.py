"""Cases: create, list and page; the case-level statements (metastasis status, immune status
not assessed); stale versions; the timeline; the case's history; the queries of the case list
and the case page."""

import re

import pytest
from django.core.exceptions import ValidationError

from checklist import services
from checklist.models import (
    AuditEvent,
    Case,
    Code,
    Metastasis,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from checklist.record import LABEL_SYSTEMS, CaseRecord
from tests.factories import (
    LINE,
    audit_rows,
    logged_in,
    post_row,
    record_stage_change,
    seed_cases,
    seed_rows,
)


@pytest.fixture
def story(alice_client, case):
    """alice records and then changes the stage of case BC-1, and views it."""
    return record_stage_change(alice_client, case)


# --- create, list, page -------------------------------------------------------------------


def test_it_creates_a_case_and_shows_it(alice_client, practice_a, codelists):
    response = alice_client.post(
        "/cases/new/",
        {"label": "LU-7", "year_of_birth": 1958, "sex": "male", "situation": "first_diagnosis"},
    )
    case = Case.objects.get(label="LU-7")
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.pk}/"
    page = alice_client.get(f"/cases/{case.pk}/")
    assert b"LU-7" in page.content
    # Nothing recorded yet: every factor group says so.
    assert page.content.count(b'data-state="not_recorded"') == 7
    viewed = AuditEvent.objects.filter(
        practice_id=case.practice_id, op="case_viewed", row_id=str(case.pk)
    ).get()
    assert viewed.detail == {"label": "LU-7"} and viewed.actor_name == "alice"


def test_it_refuses_a_duplicate_label_and_keeps_the_input(alice_client, case):
    response = alice_client.post(
        "/cases/new/",
        {"label": "BC-1", "year_of_birth": 1970, "sex": "female", "situation": "recurrence"},
    )
    assert response.status_code == 200
    assert b"already used in the practice" in response.content
    assert b'value="1970"' in response.content
    assert Case.objects.count() == 1


def test_the_same_label_is_fine_in_another_practice(bob_client, case):
    response = bob_client.post(
        "/cases/new/",
        {"label": "BC-1", "year_of_birth": 1970, "sex": "female", "situation": "recurrence"},
    )
    assert response.status_code == 302


def test_an_admin_reads_but_does_not_edit(adam_client, case):
    assert adam_client.get(f"/cases/{case.pk}/").status_code == 200
    assert b"Add primary tumour" not in adam_client.get(f"/cases/{case.pk}/").content
    assert adam_client.get(f"/cases/{case.pk}/edit/").status_code == 403
    response = post_row(adam_client, case, "tumour", {"oncotree": "IDC", "laterality": "left"})
    assert response.status_code == 403
    assert not Tumour.objects.exists()


# --- case-level statements ----------------------------------------------------------------


def test_none_known_needs_a_date_and_a_method(alice_client, case):
    response = alice_client.post(
        f"/cases/{case.pk}/metastasis-status/",
        {"metastasis_status": "none_known", "expected_version": case.version},
    )
    assert b"needs the date" in response.content and b"needs the staging method" in response.content


def test_the_status_cannot_say_none_while_rows_exist(alice, case):
    services.case_update(
        case=case, data={"metastasis_status": "present"}, acting_user=alice, expected_version=None
    )
    services.case_row_save(
        case=case,
        row=Metastasis(site="HEP", detected_on="2024-01-01", timing="metachronous"),
        acting_user=alice,
        expected_version=None,
    )
    with pytest.raises(ValidationError):
        services.case_update(
            case=case,
            data={"metastasis_status": "none_known"},
            acting_user=alice,
            expected_version=None,
        )


def test_immune_status_stated_as_not_assessed_counts_as_documented(alice_client, case):
    case.refresh_from_db()
    alice_client.post(
        f"/cases/{case.pk}/immune-not-assessed/", {"value": "on", "expected_version": case.version}
    )
    flags = Case.objects.with_completeness().get(pk=case.pk)
    assert flags.has_immune
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert 'data-group="immune_status" data-state="not_assessed"' in page


# --- stale versions -----------------------------------------------------------------------


def test_a_metastasis_cannot_slip_in_while_another_session_says_none_known(alice, case):
    """Two sessions: A opened the metastasis form at version v; B then sets "none known".
    A's save is refused by the version check, not silently accepted."""
    case.refresh_from_db()
    opened_at = case.version
    services.case_update(
        case=case,
        data={"metastasis_status": "present"},
        acting_user=alice,
        expected_version=opened_at,
    )
    stale = case.version
    case.refresh_from_db()
    services.case_update(
        case=case,
        data={
            "metastasis_status": "none_known",
            "metastasis_assessed_on": "2024-01-01",
            "metastasis_assessment_method": "ct",
        },
        acting_user=alice,
        expected_version=case.version,
    )
    with pytest.raises(services.StaleVersion):
        services.case_row_save(
            case=case,
            row=Metastasis(site="HEP", detected_on="2024-01-01", timing="metachronous"),
            acting_user=alice,
            expected_version=stale + 1,
        )
    assert not Metastasis.objects.exists()


def test_a_stale_form_shows_who_changed_what_and_keeps_the_input(alice_client, alice, case):
    case.refresh_from_db()
    opened = case.version
    other = logged_in(alice)  # a second session
    post_row(
        other,
        case,
        "biomarker",
        {"name": "ER", "kind": "somatic", "status": "result", "categorical_result": "positive"},
    )
    response = alice_client.post(
        f"/cases/{case.pk}/tumour/new/",
        {"oncotree": "IDC", "laterality": "left", "histology": "NST", "expected_version": opened},
    )
    assert response.status_code == 409
    text = response.content.decode()
    assert "The case was changed in the meantime" in text
    assert "biomarker" in text and "alice" in text
    assert 'value="NST"' in text  # the physician's input is kept for re-applying
    assert not Tumour.objects.exists()
    case.refresh_from_db()
    assert f'name="expected_version" value="{case.version}"' in text


# --- timeline and history ----------------------------------------------------------------


def test_the_timeline_coordinates_are_not_localised(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    post_row(alice_client, case, "performance", {"assessed_on": "2023-05-01", "ecog": 1})
    alice_client.cookies["django_language"] = "de"
    html = alice_client.get(f"/cases/{case.pk}/").content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'class="tl-line"' in svg
    assert not re.search(r'(x|y|x1|x2|y1|y2|cx|cy|width)="[0-9]+,[0-9]', svg)


def test_the_case_history_tells_the_story_to_the_practices_physicians(alice_client, story):
    # With the views, which the history leaves out unless asked (tests/test_audit_readable.py).
    html = alice_client.get(f"/cases/{story.pk}/history/?views=1").content.decode()
    # Every history lists the case's own creation: look for the staging record's rows.
    staging = [row for row in audit_rows(html) if "staging record" in row]
    assert any("created" in row for row in staging) and any("changed" in row for row in staging)
    assert "case viewed" in html
    assert html.index('data-op="case_viewed"') < html.index('data-op="UPDATE"')  # newest first


# --- queries: constant in data size -------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1000])
def test_the_case_list_needs_the_same_queries_for_10_and_1000_cases(
    alice_client, practice_a, django_assert_num_queries, n
):
    seed_cases(practice_a, n)
    alice_client.get("/cases/")  # the first request stores the active practice in the session
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships
    # (practice middleware), 4 count, 5 page of cases with
    # completeness flags, 6 prefetch tumours, 7 tumour codes for the filter.
    with django_assert_num_queries(8):
        response = alice_client.get("/cases/?sort=label")
    assert response.status_code == 200


RECORD_ROWS = [
    "tumours",
    "staging_records",
    "biomarkers",
    "metastases",
    "therapy_lines",
    "adverse_events",
    "performance",
    "immune_findings",
    "prophylaxes",
    "vaccinations",
    "lifestyle",
    "family_history",
    "genomic_variants",
]


def _fields(row):
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}


def test_the_record_read_in_one_round_trip_holds_what_the_ordinary_querysets_hold(
    case, django_assert_num_queries
):
    seed_rows(case, 3)
    StagingRecord.objects.filter(case=case).update(tumour=Tumour.objects.filter(case=case)[0])
    with django_assert_num_queries(1):  # every kind of row and the code lists together
        record = CaseRecord.load(case)
    for name in RECORD_ROWS:
        manager = getattr(case, name)
        fetched = [_fields(row) for row in manager.all()]  # the record's, no query
        assert fetched, name
        assert sorted(fetched, key=lambda f: f["id"]) == sorted(
            (_fields(row) for row in manager.model.objects.filter(case=case)),
            key=lambda f: f["id"],
        ), name
    with django_assert_num_queries(0):  # select_related and the case itself come along
        tumours = {s.tumour.oncotree_code for s in record.staging if s.tumour_id}
        categories = [line.category for line in record.lines]
        assert all(row.case is case for row in record.tumours + record.events)
        sites, labels = record.site_labels("de"), record.code_labels("de")
    assert tumours == {"IDC"}
    assert categories == [line.category for line in TherapyLine.objects.filter(case=case)]
    assert sites == {
        c.code: c.label("de") for c in Code.objects.filter(system="obds:fm_lokalisation")
    }
    assert sites and all(labels[system] for system in LABEL_SYSTEMS)
    assert labels["mii:therapie-typ"] == {
        c.code: c.label("de") for c in Code.objects.filter(system="mii:therapie-typ")
    }


@pytest.mark.parametrize("n", [1, 50])
def test_the_case_page_needs_the_same_queries_for_1_and_50_rows(
    alice_client, case, django_assert_num_queries, n
):
    seed_rows(case, n)
    alice_client.get("/cases/")  # the first request stores the active practice in the session
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the case (access helper; the record does not fetch it again), 5 the record in one
    # round trip (record.fetch_rows: one SELECT per kind of row, 16 kinds, and the code
    # lists its labels come from, sent as one multi-statement query), 6 the access event.
    with django_assert_num_queries(7):
        response = alice_client.get(f"/cases/{case.pk}/")
    assert response.status_code == 200
    # Again, the body served from this process's cache (checklist/fragments.py): the same
    # reads, the record's rows still read to make its key.
    with django_assert_num_queries(7):
        again = alice_client.get(f"/cases/{case.pk}/")
    assert again.content.count(b'id="tumour-') == response.content.count(b'id="tumour-') > 0
