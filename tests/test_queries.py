"""Query counts are constant in data size (case list, case page)."""

from datetime import date, timedelta

import pytest

from checklist.models import (
    AdverseEvent,
    Biomarker,
    Case,
    ImmuneFinding,
    Metastasis,
    PerformanceStatus,
    StagingRecord,
    TherapyLine,
    Tumour,
)


def seed_cases(practice, n: int) -> None:
    cases = Case.objects.bulk_create(
        [Case(practice=practice, label=f"S-{i:05d}", **Case.MINIMAL) for i in range(n)]
    )
    Tumour.objects.bulk_create(
        [
            Tumour(
                case=c,
                practice=practice,
                oncotree_code="IDC",
                oncotree_name="IDC",
                oncotree_release="x",
                laterality="left",
            )
            for c in cases
        ]
    )


def seed_rows(case: Case, n: int) -> None:
    p = case.practice_id
    day = date(2020, 1, 1)
    Tumour.objects.bulk_create(
        [
            Tumour(
                case=case,
                practice_id=p,
                oncotree_code="IDC",
                oncotree_name="IDC",
                oncotree_release="x",
                laterality="left",
                diagnosed_on=day,
            )
            for _ in range(n)
        ]
    )
    StagingRecord.objects.bulk_create(
        [
            StagingRecord(
                case=case,
                practice_id=p,
                staged_on=day + timedelta(days=i),
                kind="clinical",
                system="uicc_tnm",
                tnm_edition="8",
                t_prefix="c",
                t_category="2",
            )
            for i in range(n)
        ]
    )
    Biomarker.objects.bulk_create(
        [
            Biomarker(case=case, practice_id=p, name=f"M{i}", kind="tissue", status="pending")
            for i in range(n)
        ]
    )
    Metastasis.objects.bulk_create(
        [
            Metastasis(case=case, practice_id=p, site="OSS", detected_on=day, timing="synchronous")
            for _ in range(n)
        ]
    )
    lines = TherapyLine.objects.bulk_create(
        [
            TherapyLine(
                case=case,
                practice_id=p,
                number=i + 1,
                types=["CH"],
                setting="adjuvant",
                started_on=day,
            )
            for i in range(n)
        ]
    )
    AdverseEvent.objects.bulk_create(
        [
            AdverseEvent(
                case=case,
                practice_id=p,
                line=line,
                term="nausea",
                ctcae_version="5.0",
                grade=2,
                onset_on=day,
            )
            for line in lines
            for _ in range(5)
        ]
    )
    PerformanceStatus.objects.bulk_create(
        [PerformanceStatus(case=case, practice_id=p, assessed_on=day, ecog=1) for _ in range(n)]
    )
    ImmuneFinding.objects.bulk_create(
        [
            ImmuneFinding(case=case, practice_id=p, assessed_on=day + timedelta(days=i))
            for i in range(min(n, 30))
        ]
    )


@pytest.mark.parametrize("n", [10, 1000])
def test_the_case_list_needs_the_same_queries_for_10_and_1000_cases(
    alice_client, practice_a, django_assert_num_queries, n
):
    seed_cases(practice_a, n)
    alice_client.get("/cases/")  # the first request stores the active practice in the session
    # 1 session, 2 user, 3 memberships (practice middleware), 4 count, 5 page of cases with
    # completeness flags, 6 prefetch tumours, 7 tumour codes for the filter.
    with django_assert_num_queries(7):
        response = alice_client.get("/cases/?sort=label")
    assert response.status_code == 200


@pytest.mark.parametrize("n", [1, 50])
def test_the_case_page_needs_the_same_queries_for_1_and_50_rows(
    alice_client, case, django_assert_num_queries, n
):
    seed_rows(case, n)
    alice_client.get("/cases/")  # the first request stores the active practice in the session
    # 1 session, 2 user, 3 memberships, 4 the case (access helper; the record does not fetch
    # it again), 5 tumours, 6 staging records with their tumour, 7 biomarkers, 8 metastases,
    # 9 lines with linked category, 10 their adverse events, 11 performance status,
    # 12 immune findings, 13 immune-related events, 14 comorbidities, 15 organ function,
    # 16 medication, 17 the access event, 18 metastasis site labels, 19 code labels.
    with django_assert_num_queries(19):
        response = alice_client.get(f"/cases/{case.pk}/")
    assert response.status_code == 200
