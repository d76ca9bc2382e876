"""The case record II: therapy lines, adverse events, performance status, immune findings."""

from decimal import Decimal

import pytest

from checklist.models import (
    AdverseEvent,
    Comorbidity,
    ImmuneFinding,
    PerformanceStatus,
    TherapyLine,
    Tumour,
)
from tests.conftest import post_row

LINE = {
    "number": 1,
    "types": ["HO"],
    "regimen": "Letrozole",
    "setting": "palliative",
    "palliative_line": 1,
    "started_on": "2021-01-15",
    "ended_on": "2022-03-01",
    "end_reason": "P",
}


def _line(client, case, **change):
    return post_row(client, case, "line", {**LINE, **change})


def test_it_records_a_line_with_two_types_and_month_precision(alice_client, case):
    response = _line(
        alice_client, case, types=["HO", "ZS"], start_month_only="on", regimen="Letrozole+Palbo"
    )
    assert response.status_code == 302
    line = TherapyLine.objects.get()
    assert line.types == ["HO", "ZS"]
    assert (line.started_on.isoformat(), line.start_precision) == ("2021-01-01", "month")
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Hormone therapy + Targeted substances" in page and "01/2021" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ended_on": "2020-12-01"}, b"The end is before the start."),
        ({"ongoing": "on"}, b"An ongoing line has no end date."),
        ({"ongoing": "on", "ended_on": ""}, b"An ongoing line has no end reason."),
        ({"started_on": "2999-01-01", "ended_on": ""}, b"This date is in the future."),
        ({"started_on": "1940-01-01"}, b"This date is before the year of birth."),
        ({"types": ["KW"]}, b"Select a valid choice"),
        ({"palliative_line": ""}, b"Give the number of the palliative line."),
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
    assert "Worst CTCAE grade: 3" in page
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


@pytest.mark.parametrize("grade", ["0", "6", "x"])
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
    response = post_row(alice_client, case, "immune", data)
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


def test_the_individual_situation(alice_client, case):
    post_row(alice_client, case, "comorbidity", {"name": "Type 2 diabetes"})
    post_row(alice_client, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    post_row(
        alice_client, case, "organ", {"measured_on": "2024-05-01", "egfr": "55", "lvef": "101"}
    )
    assert Comorbidity.objects.count() == 1
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Type 2 diabetes" in page and "Apixaban" in page and "anticoagulant" in page


def test_the_timeline_coordinates_are_not_localised(alice_client, case):
    _line(alice_client, case)
    post_row(alice_client, case, "performance", {"assessed_on": "2023-05-01", "ecog": 1})
    alice_client.cookies["django_language"] = "de"
    html = alice_client.get(f"/cases/{case.pk}/").content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'class="tl-line"' in svg
    import re

    assert not re.search(r'(x|y|x1|x2|y1|y2|cx|cy|width)="[0-9]+,[0-9]', svg)


def test_immune_status_stated_as_not_assessed_counts_as_documented(alice_client, case):
    from checklist.models import Case

    case.refresh_from_db()
    alice_client.post(
        f"/cases/{case.pk}/immune-not-assessed/", {"value": "on", "expected_version": case.version}
    )
    flags = Case.objects.with_completeness().get(pk=case.pk)
    assert flags.has_immune
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert 'data-group="immune_status" data-state="not_assessed"' in page
