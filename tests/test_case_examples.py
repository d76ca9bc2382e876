"""The three worked cases of the case-record issues' "done when" (breast cancer with bone and
liver metastases, lung adenocarcinoma with immune-related pneumonitis, CLL with low IgG),
recorded as a physician would, through the views."""

from checklist.models import AdverseEvent, Case, ImmuneFinding, StagingRecord, TherapyLine
from tests.factories import post_row, set_metastasis_status


def _new_case(client, label, **fields):
    data = {
        "label": label,
        "year_of_birth": 1960,
        "sex": "female",
        "situation": "first_diagnosis",
        **fields,
    }
    response = client.post("/cases/new/", data)
    assert response.status_code == 302, response.content[-2000:]
    return Case.objects.get(label=label)


def _page(client, case):
    return client.get(f"/cases/{case.pk}/").content.decode()


def test_breast_cancer_pt2_pn1a_cm0_with_metachronous_bone_and_liver_metastases(
    alice_client, codelists, practice_a
):
    case = _new_case(alice_client, "MAMMA-1", situation="metastatic_progression")
    assert (
        post_row(
            alice_client,
            case,
            "tumour",
            {
                "oncotree": "IDC",
                "laterality": "left",
                "diagnosed_on": "2016-04-01",
                "diagnosis_basis": "histology",
                "grade": "G2",
            },
        ).status_code
        == 302
    )
    assert (
        post_row(
            alice_client,
            case,
            "staging",
            {
                "staged_on": "2016-04-20",
                "kind": "pathological",
                "system": "uicc_tnm",
                "tnm_edition": "8",
                "t_prefix": "p",
                "t_category": "2",
                "n_prefix": "p",
                "n_category": "1a",
                "m_prefix": "c",
                "m_category": "0",
            },
        ).status_code
        == 302
    )
    set_metastasis_status(alice_client, case, "present")
    for site in ("OSS", "HEP"):
        assert (
            post_row(
                alice_client,
                case,
                "metastasis",
                {
                    "site": site,
                    "detected_on": "2022-05-01",
                    "timing": "metachronous",
                    "established_by": "ct",
                },
            ).status_code
            == 302
        )
    page = _page(alice_client, case)
    assert "pT2 pN1a cM0" in page and "Bone" in page and "Liver" in page
    assert page.count("metachronous") == 2

    # Case record II: two endocrine-based lines, the second stopped for grade 3 ALT increase.
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["HO"],
            "regimen": "Tamoxifen",
            "position": "A",
            "started_on": "2016-06-01",
            "ended_on": "2021-06-01",
            "end_reason": "E",
        },
    )
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 2,
            "types": ["HO", "ZS"],
            "regimen": "Letrozole + Ribociclib",
            "position": "first_advanced",
            "started_on": "2022-06-01",
            "ended_on": "2023-01-15",
            "end_reason": "A",
        },
    )
    line_2 = TherapyLine.objects.get(case=case, number=2)
    post_row(
        alice_client,
        case,
        "event",
        {
            "line": line_2.pk,
            "term": "ALT increased",
            "ctcae_version": "5.0",
            "grade": 3,
            "led_to_stop": "on",
            "attributed_agent": "Ribociclib",
        },
    )
    page = _page(alice_client, case)
    assert "Hormone therapy + Targeted substances" in page
    assert "Stopped for side effects" in page and "Worst grade: G3" in page
    assert "Line 2 · first line for advanced disease" in page and "Line 1 · adjuvant" in page


def test_lung_adenocarcinoma_tnm_9_and_immune_related_pneumonitis(
    alice_client, codelists, practice_a
):
    case = _new_case(alice_client, "LUNG-1", sex="male")
    post_row(alice_client, case, "tumour", {"oncotree": "LUAD", "laterality": "right"})
    assert (
        post_row(
            alice_client,
            case,
            "staging",
            {
                "staged_on": "2024-02-01",
                "kind": "clinical",
                "system": "uicc_tnm",
                "tnm_edition": "9",
                "t_prefix": "c",
                "t_category": "2a",
                "n_prefix": "c",
                "n_category": "2",
                "m_prefix": "c",
                "m_category": "0",
                "uicc_stage": "IIIA",
            },
        ).status_code
        == 302
    )
    assert StagingRecord.objects.get(case=case).tnm_edition == "9"
    set_metastasis_status(
        alice_client,
        case,
        "none_known",
        metastasis_assessed_on="2024-02-01",
        metastasis_assessment_method="pet_ct",
    )
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["IM"],
            "regimen": "Pembrolizumab",
            "position": "first_advanced",
            "started_on": "2024-03-01",
            "ended_on": "2024-07-01",
            "end_reason": "A",
            "response_criteria": "irecist",
            "response": "PR",
        },
    )
    line = TherapyLine.objects.get(case=case)
    assert line.category is None  # a checkpoint inhibitor is not linked to any category
    post_row(
        alice_client,
        case,
        "event",
        {
            "line": line.pk,
            "term": "Pneumonitis",
            "ctcae_version": "5.0",
            "grade": 3,
            "led_to_stop": "on",
            "immune_related": "on",
            "steroids": "yes",
            "steroid_dose": "prednisolone",
        },
    )
    post_row(
        alice_client,
        case,
        "immune",
        {"assessed_on": "2024-08-01", "steroid_mg_per_day": "7.5", "steroid_since": "2024-07-05"},
    )
    page = _page(alice_client, case)
    assert "no metastases known" in page and "PET-CT" in page
    assert "7.5 mg/day prednisolone equivalent" in page and "Pneumonitis" in page
    # Entered once: the therapy section lists it under its line, the immune section as an
    # immune-related event.
    assert AdverseEvent.objects.get(case=case).grade == "3"
    assert page.count('id="event-') == 1 and page.count('id="irae-') == 1


def test_cll_binet_b_with_low_igg_and_three_pneumonias(alice_client, codelists, practice_a):
    case = _new_case(alice_client, "CLL-1", year_of_birth=1948, situation="under_therapy")
    post_row(alice_client, case, "tumour", {"oncotree": "CLLSLL", "laterality": "not_applicable"})
    post_row(
        alice_client,
        case,
        "staging",
        {"staged_on": "2023-09-01", "kind": "clinical", "system": "binet", "stage_text": "B"},
    )
    set_metastasis_status(alice_client, case, "not_applicable")
    assert (
        post_row(
            alice_client,
            case,
            "immune",
            {
                "assessed_on": "2024-06-01",
                "leukocytes": "95",
                "lymphocytes": "88",
                "igg": "3.1",
                "infections_12m": "3",
                "infections_hospitalised": "3",
                "comment": "Three pneumonias in a year.",
            },
        ).status_code
        == 302
    )
    finding = ImmuneFinding.objects.get(case=case)
    assert str(finding.igg) == "3.10" and finding.infections_12m == 3
    page = _page(alice_client, case)
    assert "not applicable (systemic haematological disease)" in page
    assert 'data-state="not_applicable"' in page
    assert "88 × 10⁹/L" in page
