"""The case record I: case, tumours, staging, biomarkers, metastases (views and services)."""

import pytest
from django.core.exceptions import ValidationError

from checklist import services
from checklist.models import (
    AuditEvent,
    Biomarker,
    Case,
    Metastasis,
    StagingRecord,
    Tumour,
)
from tests.conftest import post_row, set_metastasis_status

TNM = {
    "staged_on": "2019-03-20",
    "kind": "pathological",
    "system": "uicc_tnm",
    "tnm_edition": "8",
    "t_prefix": "p",
    "t_category": "2",
    "n_prefix": "p",
    "n_category": "1a",
    "m_prefix": "c",
    "m_category": "0",
    "uicc_stage": "IIB",
}


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


def test_it_records_a_tumour_picked_from_oncotree(alice_client, case):
    response = post_row(
        alice_client,
        case,
        "tumour",
        {
            "oncotree": "Breast Invasive Ductal Carcinoma (IDC)",
            "laterality": "left",
            "diagnosed_on": "2019-03-01",
            "diagnosis_basis": "histology",
            "grade": "G2",
        },
    )
    assert response.status_code == 302
    tumour = Tumour.objects.get()
    assert (tumour.oncotree_code, tumour.oncotree_release, tumour.oncotree_tissue) == (
        "IDC",
        "oncotree_2025_10_03",
        "Breast",
    )
    assert tumour.practice_id == case.practice_id
    case.refresh_from_db()
    assert case.version == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Breast (BREAST)", b"is a tissue, not a diagnosis"),
        ("NOPE", b"is not an OncoTree tumour type"),
    ],
)
def test_it_refuses_tissues_and_unknown_codes(alice_client, case, value, message):
    response = post_row(alice_client, case, "tumour", {"oncotree": value, "laterality": "left"})
    assert response.status_code == 200
    assert message in response.content
    assert not Tumour.objects.exists()


def test_the_type_ahead_finds_names_and_codes_but_no_tissues(alice_client, case):
    by_name = alice_client.get("/oncotree/search/?oncotree=ductal").content.decode()
    assert "Breast Invasive Ductal Carcinoma" in by_name and "(IDC)" in by_name
    assert "LUAD" in alice_client.get("/oncotree/search/?oncotree=LUAD").content.decode()
    assert (
        'data-fill="Breast (BREAST)"'
        not in alice_client.get("/oncotree/search/?oncotree=Breast").content.decode()
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("diagnosed_on", "2999-01-01", b"This date is in the future."),
        ("diagnosed_on", "1950-01-01", b"This date is before the year of birth."),
    ],
)
def test_it_refuses_impossible_dates(alice_client, case, field, value, message):
    data = {"oncotree": "IDC", "laterality": "left", field: value}
    response = post_row(alice_client, case, "tumour", data)
    assert response.status_code == 200 and message in response.content
    assert not Tumour.objects.exists()


def test_it_records_tnm_with_a_prefix_per_category(alice_client, case):
    assert post_row(alice_client, case, "staging", TNM).status_code == 302
    record = StagingRecord.objects.get()
    assert record.tnm_text == "pT2 pN1a cM0"
    assert "pT2 pN1a cM0" in alice_client.get(f"/cases/{case.pk}/").content.decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"t_category": "pT2"}, b"one in the category"),
        ({"t_category": "9z"}, b"Select a valid choice"),
        ({"uicc_stage": "IIZ"}, b"Select a valid choice"),
        ({"tnm_edition": ""}, b"Give the TNM edition"),
        ({"t_prefix": ""}, b"Give the prefix"),
    ],
)
def test_it_validates_tnm_against_the_obds_lists(alice_client, case, change, message):
    response = post_row(alice_client, case, "staging", {**TNM, **change})
    assert response.status_code == 200
    assert message in response.content
    assert not StagingRecord.objects.exists()


def test_mx_is_saved_with_a_warning(alice_client, case):
    response = post_row(alice_client, case, "staging", {**TNM, "m_category": "X"})
    assert response.status_code == 302
    page = alice_client.get(response["Location"])
    assert b"MX was abolished with TNM 7" in page.content


def test_binet_for_a_leukaemia(alice_client, case):
    data = {"staged_on": "2023-01-10", "kind": "clinical", "system": "binet", "stage_text": "B"}
    assert post_row(alice_client, case, "staging", data).status_code == 302
    refused = post_row(alice_client, case, "staging", {**data, "stage_text": "D"})
    assert b"Use one of: A, B, C" in refused.content


def test_a_missing_biomarker_result_is_never_shown_as_negative(alice_client, case):
    post_row(
        alice_client,
        case,
        "biomarker",
        {"name": "PD-L1", "kind": "tissue", "status": "pending", "specimen": "biopsy"},
    )
    post_row(
        alice_client,
        case,
        "biomarker",
        {
            "name": "PD-L1",
            "kind": "tissue",
            "status": "result",
            "specimen": "resection",
            "scoring": "TPS",
            "value": "60",
            "unit": "%",
        },
    )
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert Biomarker.objects.count() == 2
    assert "no result" in page and "TPS 60 %" in page
    assert "negative" not in page


def test_a_pending_result_has_no_value(alice_client, case):
    response = post_row(
        alice_client,
        case,
        "biomarker",
        {"name": "KRAS", "kind": "tissue", "status": "pending", "value": "1", "unit": "x"},
    )
    assert b"has no value" in response.content


def test_metastasis_rows_follow_the_status(alice_client, case):
    set_metastasis_status(
        alice_client,
        case,
        "none_known",
        metastasis_assessed_on="2024-01-05",
        metastasis_assessment_method="ct",
    )
    response = post_row(
        alice_client,
        case,
        "metastasis",
        {"site": "OSS", "detected_on": "2024-02-01", "timing": "metachronous"},
    )
    assert response.status_code == 200 and b"change it before adding rows" in response.content
    assert not Metastasis.objects.exists()


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
    from tests.conftest import logged_in

    case.refresh_from_db()
    opened = case.version
    other = logged_in(alice)  # a second session
    post_row(
        other,
        case,
        "biomarker",
        {"name": "ER", "kind": "tissue", "status": "result", "categorical_result": "positive"},
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
