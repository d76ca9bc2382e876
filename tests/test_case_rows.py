"""Rows of the case record, through their forms: tumours (with the OncoTree type-ahead),
staging, biomarkers, metastases, therapy lines and their adverse events, performance status,
immune-relevant findings (with unit conversion), the individual situation.

Every test runs twice (the `clock` fixture): at today's date and two years ahead, so a date
that a form compares with today cannot be hard-coded here unnoticed."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checklist.forms import to_billion_per_litre
from checklist.models import (
    AdverseEvent,
    Biomarker,
    Category,
    Comorbidity,
    ImmuneFinding,
    Metastasis,
    PerformanceStatus,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from tests.factories import LINE, days_from_today, post_row, set_metastasis_status

pytestmark = pytest.mark.usefixtures("clock")

# A parameter value that stands for tomorrow: parameters are built at collection, before the
# clock moves, so the date itself is built when the test runs.
TOMORROW = "tomorrow"


def _resolved(data):
    return {
        name: days_from_today(1) if value == TOMORROW else value for name, value in data.items()
    }


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


def _line(client, case, **change):
    return post_row(client, case, "line", _resolved({**LINE, **change}))


# --- tumours ------------------------------------------------------------------------------


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
        ("diagnosed_on", TOMORROW, b"This date is in the future."),
        ("diagnosed_on", "1950-01-01", b"This date is before the year of birth."),
    ],
)
def test_it_refuses_impossible_dates(alice_client, case, field, value, message):
    data = _resolved({"oncotree": "IDC", "laterality": "left", field: value})
    response = post_row(alice_client, case, "tumour", data)
    assert response.status_code == 200 and message in response.content
    assert not Tumour.objects.exists()


# --- staging ------------------------------------------------------------------------------


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


# --- biomarkers and metastases ------------------------------------------------------------


def test_a_missing_biomarker_result_is_never_shown_as_negative(alice_client, case):
    post_row(
        alice_client,
        case,
        "biomarker",
        {"name": "PD-L1", "kind": "somatic", "status": "pending", "specimen": "biopsy"},
    )
    post_row(
        alice_client,
        case,
        "biomarker",
        {
            "name": "PD-L1",
            "kind": "somatic",
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
        {"name": "KRAS", "kind": "somatic", "status": "pending", "value": "1", "unit": "x"},
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


# --- therapy lines and adverse events -----------------------------------------------------


def test_it_records_a_line_with_two_types_and_month_precision(alice_client, case):
    response = _line(
        alice_client, case, types=["HO", "ZS"], started_on="2021-01", regimen="Letrozole+Palbo"
    )
    assert response.status_code == 302
    line = TherapyLine.objects.get()
    assert line.types == ["HO", "ZS"]
    assert (line.started_on.isoformat(), line.started_on_precision) == ("2021-01-01", "month")
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Hormone therapy + Targeted substances" in page and "2021-01 –" in page
    assert "2021-01-01" not in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ended_on": "2020-12-01"}, b"The end is before the start."),
        ({"ongoing": "on", "ended_on": ""}, b"An ongoing episode has no end reason."),
        ({"started_on": TOMORROW, "ended_on": ""}, b"This date is in the future."),
        ({"started_on": "1940-01-01"}, b"This date is before the year of birth."),
        ({"types": ["KW"]}, b"Select a valid choice"),
        ({"number": ""}, b"A systemic line needs its line number."),
        ({"types": []}, b"Give the therapy types of the systemic line."),
        ({"kind": "radiotherapy"}, b"Only systemic lines carry a line number"),
        ({"mrd_sensitivity": "-4"}, b"Sensitivity and specimen belong to an MRD result."),
    ],
)
def test_it_refuses_impossible_lines(alice_client, case, change, message):
    response = _line(alice_client, case, **change)
    assert response.status_code == 200
    assert message in response.content
    assert not TherapyLine.objects.exists()


def test_recist_is_not_offered_for_a_haematological_case(alice_client, case):
    post_row(alice_client, case, "tumour", {"oncotree": "CLLSLL", "laterality": "not_applicable"})
    assert Tumour.objects.get().is_haematological
    form = alice_client.get(f"/cases/{case.pk}/line/new/").content.decode()
    assert "iwCLL" in form and "RECIST 1.1" not in form
    response = _line(alice_client, case, response_criteria="recist_1_1")
    assert response.status_code == 200 and not TherapyLine.objects.exists()


def test_no_prior_therapy_and_lines_exclude_each_other(alice_client, case):
    case.refresh_from_db()
    alice_client.post(
        f"/cases/{case.pk}/prior-therapy/",
        {"no_prior_therapy": "on", "expected_version": case.version},
    )
    case.refresh_from_db()
    assert case.no_prior_therapy
    response = _line(alice_client, case)
    assert response.status_code == 200
    assert b"no prior tumour-specific therapy" in response.content
    assert not TherapyLine.objects.exists()


def test_a_relinked_line_keeps_its_older_category(alice_client, adam_client, case):
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy", version__number=1)
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["CH"],
            "position": "A",
            "started_on": "2020-01-01",
            "ended_on": "2020-06-01",
            "category": chemo.pk,
        },
    )
    adam_client.post("/catalogue/draft/")
    adam_client.post("/catalogue/2/publish/", {"change_note": "v2"})
    line = TherapyLine.objects.get()
    form = alice_client.get(f"/cases/{case.pk}/line/{line.pk}/").content.decode()
    assert f'value="{chemo.pk}" selected' in form


def test_the_worst_grade_is_derived_from_the_events(alice_client, case):
    _line(alice_client, case, end_reason="A")
    line = TherapyLine.objects.get()
    for grade in (1, 3, 2):
        post_row(
            alice_client,
            case,
            "event",
            {
                "line": line.pk,
                "term": f"ALT increased {grade}",
                "ctcae_version": "5.0",
                "grade": grade,
                "led_to_stop": "on" if grade == 3 else "",
            },
        )
    assert AdverseEvent.objects.count() == 3
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Worst grade: G3" in page
    assert "Stopped for side effects" in page


def test_grade_5_needs_the_case_to_say_the_patient_died(alice_client, case):
    _line(alice_client, case)
    line = TherapyLine.objects.get()
    event = {"line": line.pk, "term": "sepsis", "ctcae_version": "5.0", "grade": 5}
    response = post_row(alice_client, case, "event", event)
    assert b"Grade 5 means death" in response.content
    assert not AdverseEvent.objects.exists()
    case.deceased_on = "2023-01-01"
    case.save()
    assert post_row(alice_client, case, "event", event).status_code == 302


@pytest.mark.parametrize("grade", ["0", "6", "x", "K"])
def test_grades_outside_1_to_5_are_refused(alice_client, case, grade):
    _line(alice_client, case)
    line = TherapyLine.objects.get()
    response = post_row(
        alice_client,
        case,
        "event",
        {"line": line.pk, "term": "rash", "ctcae_version": "5.0", "grade": grade},
    )
    assert response.status_code == 200 and not AdverseEvent.objects.exists()


# --- performance status and immune-relevant findings --------------------------------------


def test_performance_status_needs_one_scale(alice_client, case):
    response = post_row(alice_client, case, "performance", {"assessed_on": "2024-01-01"})
    assert b"Give ECOG, Karnofsky or both." in response.content
    data = {"assessed_on": "2024-01-01", "ecog": 1, "karnofsky": 80}
    assert post_row(alice_client, case, "performance", data).status_code == 302
    assert PerformanceStatus.objects.get().karnofsky == 80


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lymphocytes": "501"}, b"Lymphocytes above 500"),
        ({"neutrophils": "101"}, b"Neutrophils above 100"),
        ({"cd4": "5001"}, b"CD4 above 5000"),
        ({"igg": "51"}, b"IgG above 50 g/L"),
        ({"steroid_mg_per_day": "2001"}, b"above 2000 mg/day"),
        ({"lymphocytes": "30", "lymphocytes_unit": "%"}, b"needs the leukocyte count"),
        ({"igg": "3", "igg_not_tested": "on"}, b"exclude each other"),
    ],
)
def test_implausible_findings_are_refused(alice_client, case, data, message):
    response = post_row(alice_client, case, "immune", {"assessed_on": "2024-05-01", **data})
    assert response.status_code == 200 and message in response.content
    assert not ImmuneFinding.objects.exists()


def test_a_leukaemic_lymphocyte_count_is_accepted(alice_client, case):
    data = {"assessed_on": "2024-05-01", "lymphocytes": "88", "leukocytes": "95"}
    assert post_row(alice_client, case, "immune", data).status_code == 302
    assert ImmuneFinding.objects.get().lymphocytes == Decimal("88.000")


def test_counts_are_converted_on_entry(alice_client, case):
    data = {
        "assessed_on": "2024-05-01",
        "leukocytes": "6",
        "neutrophils": "3200",
        "neutrophils_unit": "/uL",
        "lymphocytes": "20",
        "lymphocytes_unit": "%",
    }
    assert post_row(alice_client, case, "immune", data).status_code == 302
    finding = ImmuneFinding.objects.get()
    assert finding.neutrophils == Decimal("3.200")
    assert finding.lymphocytes == Decimal("1.200")


def test_a_percentage_typed_as_a_count_gets_a_warning(alice_client, case):
    data = {"assessed_on": "2024-05-01", "leukocytes": "6", "lymphocytes": "25"}
    # 25 × 10⁹/L is above the leukocytes of the same date: confirmed first (issue 15).
    response = post_row(alice_client, case, "immune", data)
    assert response.status_code == 200
    assert "more than the leukocyte count of the same date" in response.content.decode()
    response = post_row(alice_client, case, "immune", {**data, "confirm_values": "on"})
    assert response.status_code == 302
    assert b"looks like a percentage" in alice_client.get(response["Location"]).content


def test_not_tested_differs_from_missing(alice_client, case):
    data = {
        "assessed_on": "2024-05-01",
        "cd4_not_tested": "on",
        "steroid_mg_per_day": "7.5",
        "steroid_since": "2024-04-01",
        "comment": "Rechallenge discussed with patient.",
    }
    post_row(alice_client, case, "immune", data)
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "not tested" in page  # CD4
    assert "7.5 mg/day prednisolone equivalent" in page
    assert "<blockquote" in page and "Rechallenge discussed with patient." in page


counts = st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False)


@given(value=counts)
def test_per_microlitre_round_trips(value):
    per_ul = value * 1000
    assert to_billion_per_litre(per_ul, "/uL", None) == value


@given(value=counts)
def test_gpt_per_litre_is_10_9_per_litre(value):
    assert to_billion_per_litre(value, "Gpt/L", None) == to_billion_per_litre(value, "1e9/L", None)


@given(percent=st.decimals(min_value=0, max_value=100, places=1), leukocytes=counts)
def test_a_percentage_is_a_share_of_the_leukocytes(percent, leukocytes):
    converted = to_billion_per_litre(percent, "%", leukocytes)
    assert converted <= leukocytes
    assert converted == percent * leukocytes / Decimal(100)


@given(unit=st.text(max_size=5).filter(lambda u: u not in ("1e9/L", "Gpt/L", "/uL", "%")))
def test_an_unknown_unit_is_refused(unit):
    with pytest.raises(ValueError):
        to_billion_per_litre(Decimal(1), unit, None)


# --- the individual situation -------------------------------------------------------------


def test_the_individual_situation(alice_client, case):
    post_row(alice_client, case, "comorbidity", {"name": "Type 2 diabetes"})
    post_row(alice_client, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    post_row(
        alice_client, case, "organ", {"measured_on": "2024-05-01", "egfr": "55", "lvef": "101"}
    )
    assert Comorbidity.objects.count() == 1
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Type 2 diabetes" in page and "Apixaban" in page and "anticoagulant" in page
