"""Issue 15, through the views: immune-relevant findings (platelets and haemoglobin converted
on entry with the laboratory's value and unit kept, HBV and HCV serology, HBV DNA, active
infection, the confirm when a count exceeds the leukocytes), prophylaxis and vaccination rows,
biomarker kind and specimen type, metastasis details, TNM option lists and project codes.

alice (physician of practice A) records; bob (practice B) must get 404 for A's rows."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from checklist import forms
from checklist.models import (
    Biomarker,
    Case,
    Code,
    ImmuneFinding,
    Metastasis,
    Prophylaxis,
    StagingRecord,
    Tumour,
    Vaccination,
)
from checklist.record import CaseRecord
from tests.factories import logged_in, post_row, set_metastasis_status


def _day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


def _page(client, case) -> str:
    return client.get(f"/cases/{case.pk}/").content.decode()


# --- converted counts with the lab's value and unit ---------------------------------------


def test_it_converts_platelets_in_per_microlitre_and_keeps_the_lab_value(alice_client, case):
    data = {"assessed_on": _day(3), "platelets": "150000", "platelets_unit": "/uL"}
    response = post_row(alice_client, case, "immune", data)
    assert response.status_code == 302
    finding = ImmuneFinding.objects.get()
    assert finding.platelets == Decimal("150.000")
    assert (finding.platelets_lab_value, finding.platelets_lab_unit) == (Decimal(150000), "/uL")
    page = _page(alice_client, case)
    assert "150 × 10⁹/L (lab: 150000 /µL)" in page


def test_it_converts_haemoglobin_from_g_per_litre_and_mmol_per_litre(alice_client, case):
    post_row(
        alice_client,
        case,
        "immune",
        {"assessed_on": _day(5), "haemoglobin": "98", "haemoglobin_unit": "g/L"},
    )
    post_row(
        alice_client,
        case,
        "immune",
        {"assessed_on": _day(4), "haemoglobin": "6,2", "haemoglobin_unit": "mmol/L"},
    )
    first, second = ImmuneFinding.objects.order_by("assessed_on")
    assert first.haemoglobin == Decimal("9.80")
    assert (first.haemoglobin_lab_value, first.haemoglobin_lab_unit) == (Decimal(98), "g/L")
    assert second.haemoglobin == Decimal("9.99")  # 6.2 mmol/L × 1.6114
    assert second.haemoglobin_lab_unit == "mmol/L"
    page = _page(alice_client, case)
    assert "9.8 g/dL (lab: 98 g/L)" in page and "9.99 g/dL (lab: 6.2 mmol/L)" in page


def test_a_value_in_the_stored_unit_shows_no_lab_note(alice_client, case):
    post_row(alice_client, case, "immune", {"assessed_on": _day(3), "platelets": "210"})
    finding = ImmuneFinding.objects.get()
    assert (finding.platelets_lab_value, finding.platelets_lab_unit) == (Decimal(210), "1e9/L")
    assert "210 × 10⁹/L</dd>" in _page(alice_client, case)


def test_an_edit_shows_the_value_the_lab_reported_and_saves_it_again(alice_client, case):
    data = {"assessed_on": _day(3), "platelets": "150000", "platelets_unit": "/uL"}
    post_row(alice_client, case, "immune", data)
    finding = ImmuneFinding.objects.get()
    form = alice_client.get(f"/cases/{case.pk}/immune/{finding.pk}/").content.decode()
    assert 'name="platelets" value="150000"' in form
    assert '<option value="/uL" selected>' in form
    assert post_row(alice_client, case, "immune", data, row=finding).status_code == 302
    finding.refresh_from_db()
    assert finding.platelets == Decimal("150.000")  # not divided by 1000 twice


def test_implausible_platelets_and_haemoglobin_are_refused(alice_client, case):
    response = post_row(
        alice_client,
        case,
        "immune",
        {"assessed_on": _day(3), "platelets": "150000", "haemoglobin": "98"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Platelets above 5000 × 10⁹/L are not plausible." in page
    assert "Haemoglobin above 30 g/dL is not plausible." in page
    assert not ImmuneFinding.objects.exists()


# --- a count above the leukocytes: confirmed first -----------------------------------------


def test_a_neutrophil_count_above_the_leukocytes_of_the_row_asks_to_confirm(alice_client, case):
    data = {"assessed_on": _day(3), "leukocytes": "3,1", "neutrophils": "4,5"}
    response = post_row(alice_client, case, "immune", data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "4.5 × 10⁹/L is more than the leukocyte count of the same date (3.1 × 10⁹/L)." in page
    assert 'name="confirm_values"' in page
    assert not ImmuneFinding.objects.exists()
    response = post_row(alice_client, case, "immune", {**data, "confirm_values": "on"})
    assert response.status_code == 302
    assert ImmuneFinding.objects.get().neutrophils == Decimal("4.5")


def test_a_lymphocyte_count_is_compared_with_the_leukocytes_of_another_row_of_the_same_day(
    alice_client, case
):
    assert (
        post_row(alice_client, case, "immune", {"assessed_on": _day(3), "leukocytes": "2"})
    ).status_code == 302
    same_day = post_row(alice_client, case, "immune", {"assessed_on": _day(3), "lymphocytes": "3"})
    assert same_day.status_code == 200
    assert "more than the leukocyte count of the same date (2 × 10⁹/L)" in (
        same_day.content.decode()
    )
    other_day = post_row(alice_client, case, "immune", {"assessed_on": _day(4), "lymphocytes": "3"})
    assert other_day.status_code == 302


def test_counts_below_the_leukocytes_save_without_a_question(alice_client, case):
    data = {"assessed_on": _day(3), "leukocytes": "6", "neutrophils": "4", "lymphocytes": "1"}
    assert post_row(alice_client, case, "immune", data).status_code == 302


# --- serology, infection ----------------------------------------------------------------


def test_hbv_serology_hbv_dna_hcv_and_an_active_infection_are_shown(alice_client, case):
    data = {
        "assessed_on": _day(3),
        "hbsag": "negative",
        "anti_hbc": "positive",
        "anti_hbs": "positive",
        "hbv_dna_qualifier": "<",
        "hbv_dna": "10",
        "hcv": "negative",
        "active_infection": "yes",
        "active_infection_type": "Pneumonie",
        "active_infection_on": _day(10),
    }
    assert post_row(alice_client, case, "immune", data).status_code == 302
    page = _page(alice_client, case)
    assert "negative / positive / positive" in page
    assert "&lt; 10 IU/mL" in page
    assert "yes: <span data-physician-text>Pneumonie</span>" in page


def test_an_infection_type_needs_active_infection_yes(alice_client, case):
    data = {"assessed_on": _day(3), "active_infection": "no", "active_infection_type": "Zoster"}
    response = post_row(alice_client, case, "immune", data)
    assert response.status_code == 200
    assert "go with “active infection: yes”" in response.content.decode()


def test_an_hbv_dna_bound_needs_its_value(alice_client, case):
    response = post_row(
        alice_client, case, "immune", {"assessed_on": _day(3), "hbv_dna_qualifier": "<"}
    )
    assert response.status_code == 200
    assert "Give the limit the HBV DNA is below or above." in response.content.decode()


# --- prophylaxis and vaccination rows -------------------------------------------------------


def test_a_prophylaxis_since_a_month_is_shown_as_that_month(alice_client, case):
    month = (timezone.localdate().replace(day=1) - timedelta(days=40)).replace(day=1)
    data = {"agent": "Entecavir", "kind": "antiviral", "since": month.strftime("%Y-%m")}
    assert post_row(alice_client, case, "prophylaxis", data).status_code == 302
    row = Prophylaxis.objects.get()
    assert (row.since, row.since_precision) == (month, "month")
    page = _page(alice_client, case)
    assert "Entecavir" in page and "still given" in page
    # "2026-09" in English: the month, never padded to a first day.
    assert f"<td>{month.strftime('%Y-%m')}</td>" in page and month.isoformat() not in page


def test_a_prophylaxis_cannot_end_before_it_started(alice_client, case):
    data = {"agent": "Cotrimoxazol", "kind": "antibacterial", "since": _day(10), "until": _day(20)}
    response = post_row(alice_client, case, "prophylaxis", data)
    assert response.status_code == 200
    assert "The end is before the start." in response.content.decode()


def test_a_vaccination_needs_its_vaccine_and_date(alice_client, case):
    response = post_row(alice_client, case, "vaccination", {"note": "Booster"})
    assert response.status_code == 200
    assert not Vaccination.objects.exists()
    year = str(timezone.localdate().year - 1)
    data = {"vaccine": "Pneumokokken (PCV20)", "given_on": year}
    assert post_row(alice_client, case, "vaccination", data).status_code == 302
    assert Vaccination.objects.get().given_on_precision == "year"
    assert "Pneumokokken (PCV20)" in _page(alice_client, case)


def test_a_vaccination_alone_counts_as_a_recorded_immune_finding(alice_client, case):
    post_row(alice_client, case, "vaccination", {"vaccine": "Influenza", "given_on": _day(30)})
    case.refresh_from_db()
    record = CaseRecord.load(case)
    assert record.facts.immune_findings == 1
    assert Case.objects.with_completeness().get(pk=case.pk).has_immune
    page = _page(alice_client, case)
    assert 'data-group="immune_status" data-state="recorded"' in page


@pytest.mark.parametrize("kind", ["prophylaxis", "vaccination"])
def test_an_outsider_gets_404_for_the_new_rows(bob, case, kind):
    row: Prophylaxis | Vaccination
    if kind == "prophylaxis":
        row = Prophylaxis.objects.create(
            practice=case.practice, case=case, agent="x", kind="antiviral", since=_day(3)
        )
    else:
        row = Vaccination.objects.create(practice=case.practice, case=case, vaccine="x")
    client = logged_in(bob)
    assert client.get(f"/cases/{case.pk}/{kind}/new/").status_code == 404
    assert client.get(f"/cases/{case.pk}/{kind}/{row.pk}/").status_code == 404
    assert client.post(f"/cases/{case.pk}/{kind}/{row.pk}/delete/").status_code == 404


# --- biomarkers and diagnosis --------------------------------------------------------------


def test_a_bone_marrow_flow_cytometry_biomarker_is_recorded(alice_client, case):
    data = {
        "name": "CD5/CD19/CD23",
        "kind": "somatic",
        "specimen_type": "bone_marrow",
        "specimen": "Beckenkamm",
        "method": "flow_cytometry",
        "status": "result",
        "categorical_result": "CLL-Phänotyp",
    }
    assert post_row(alice_client, case, "biomarker", data).status_code == 302
    marker = Biomarker.objects.get()
    assert (marker.specimen_type, marker.method) == ("bone_marrow", "flow_cytometry")
    page = _page(alice_client, case)
    assert "bone marrow: Beckenkamm" in page and "flow cytometry" in page


def test_flow_cytometry_is_a_basis_of_diagnosis(alice_client, case):
    data = {
        "oncotree": "CLLSLL",
        "laterality": "not_applicable",
        "diagnosis_basis": "flow_cytometry",
    }
    assert post_row(alice_client, case, "tumour", data).status_code == 302
    assert Tumour.objects.get().diagnosis_basis == "flow_cytometry"
    assert "flow cytometry" in _page(alice_client, case)


# --- metastases ----------------------------------------------------------------------------


def test_a_metastasis_records_side_level_size_and_detection_method(alice_client, case):
    set_metastasis_status(alice_client, case, "present")
    data = {
        "site": "OSS",
        "side": "midline",
        "level": "T8",
        "largest_size_mm": "23,5",
        "lesions": "1",
        "detected_on": _day(20),
        "timing": "metachronous",
        "established_by": "mri",
    }
    assert post_row(alice_client, case, "metastasis", data).status_code == 302
    row = Metastasis.objects.get()
    assert (row.side, row.level, row.largest_size_mm, row.established_by) == (
        "midline",
        "T8",
        Decimal("23.5"),
        "mri",
    )
    page = _page(alice_client, case)
    assert "midline, <span data-physician-text>T8</span>" in page
    assert "23.5 mm" in page and "MRI" in page


def test_imaging_without_a_method_is_not_offered_for_a_new_metastasis(alice_client, case):
    set_metastasis_status(alice_client, case, "present")
    form = alice_client.get(f"/cases/{case.pk}/metastasis/new/").content.decode()
    assert "imaging_unspecified" not in form and 'value="pet_ct"' in form
    data = {
        "site": "HEP",
        "detected_on": _day(20),
        "timing": "synchronous",
        "established_by": "imaging_unspecified",
    }
    response = post_row(alice_client, case, "metastasis", data)
    assert response.status_code == 200
    assert not Metastasis.objects.exists()


def test_an_old_row_keeps_imaging_method_not_recorded_visibly_when_edited(alice_client, case):
    row = Metastasis.objects.create(
        practice=case.practice,
        case=case,
        site="HEP",
        detected_on=_day(20),
        timing="synchronous",
        established_by="imaging_unspecified",
    )
    assert "imaging, method not recorded" in _page(alice_client, case)
    form = alice_client.get(f"/cases/{case.pk}/metastasis/{row.pk}/").content.decode()
    assert '<option value="imaging_unspecified" selected>' in form


# --- TNM ---------------------------------------------------------------------------------


def _options(page: str, name: str) -> list[str]:
    select = page[page.index(f'name="{name}"') :]
    select = select[: select.index("</select>")]
    return [part.split('"')[0] for part in select.split('<option value="')[1:]]


def test_the_tnm_lists_are_in_clinical_order(alice_client, case):
    page = alice_client.get(f"/cases/{case.pk}/staging/new/").content.decode()
    t = _options(page, "t_category")
    assert t[:4] == ["", "X", "0", "is"]
    expected = ["X", "0", "is", "1", "1mi", "1a", "1b", "1c", "2", "2a", "3", "4"]
    assert [c for c in t if c in expected] == expected
    n = _options(page, "n_category")
    assert [c for c in n if c in ("X", "0", "1", "1mi", "1a", "2", "3")] == [
        "X",
        "0",
        "1",
        "1mi",
        "1a",
        "2",
        "3",
    ]
    m = _options(page, "m_category")
    assert m == ["", "X", "0", "1", "1a", "1b", "1c", "1c1", "1c2", "1d"]


def test_the_tnm9_lung_m_codes_are_project_codes_never_obds_or_mii():
    codes = json.loads((Path(settings.BASE_DIR) / "fixtures/codelists.json").read_text())
    project = {c["code"] for c in codes if c["system"] == "project:tnm_m"}
    assert project == {"1c1", "1c2"}
    assert all(c["extra"].get("project_code") for c in codes if c["system"] == "project:tnm_m")
    shipped = {
        c["code"]
        for c in codes
        if c["system"].startswith(("obds:", "mii:")) and c["system"].endswith("tnm_m")
    }
    assert not project & shipped


def test_a_project_m_code_is_marked_and_needs_tnm_9(alice_client, case):
    page = alice_client.get(f"/cases/{case.pk}/staging/new/").content.decode()
    assert "M1c1 (project code, TNM 9 lung)" in page
    data = {
        "staged_on": _day(10),
        "kind": "clinical",
        "system": "uicc_tnm",
        "tnm_edition": "8",
        "t_prefix": "c",
        "t_category": "2a",
        "m_prefix": "c",
        "m_category": "1c2",
    }
    response = post_row(alice_client, case, "staging", data)
    assert response.status_code == 200
    assert "M1c2 is a subcategory of TNM 9 (lung): give TNM edition 9." in (
        response.content.decode()
    )
    assert post_row(alice_client, case, "staging", {**data, "tnm_edition": "9"}).status_code == 302
    assert StagingRecord.objects.get().m_category == "1c2"
    page = _page(alice_client, case)
    assert "cT2a cM1c2" in page
    assert "M1c2: a project code (TNM 9, lung), not an oBDS or MII code" in page


@pytest.mark.parametrize(
    ("language", "l0", "r1"),
    [
        ("en", "L0: No lymphatic invasion", "R1: microscopic residual tumour"),
        ("de", "L0: Keine Lymphgefäßinvasion", "R1: mikroskopischer Residualtumor"),
    ],
)
def test_l_v_pn_and_r_are_labelled_in_the_interface_language(alice_client, case, language, l0, r1):
    page = alice_client.get(
        f"/cases/{case.pk}/staging/new/", HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    assert l0 in page and r1 in page


def test_codes_load_in_clinical_order(codelists):
    t = list(Code.objects.of("obds:tnm_t").values_list("code", flat=True))
    assert t.index("is") < t.index("1") < t.index("1mi") < t.index("1a") < t.index("2")


def test_haemoglobin_conversion_factor_is_the_monomer_one():
    assert forms.to_gram_per_decilitre(Decimal(10), "mmol/L") == Decimal("16.1140")
    assert forms.to_gram_per_decilitre(Decimal(100), "g/L") == Decimal(10)


def test_prophylaxis_vaccination_and_infection_dates_are_on_the_timeline(alice_client, case):
    month = (timezone.localdate().replace(day=1) - timedelta(days=40)).replace(day=1)
    post_row(
        alice_client,
        case,
        "prophylaxis",
        {"agent": "Entecavir", "kind": "antiviral", "since": month.strftime("%Y-%m")},
    )
    post_row(alice_client, case, "vaccination", {"vaccine": "Influenza", "given_on": _day(30)})
    post_row(
        alice_client,
        case,
        "immune",
        {
            "assessed_on": _day(3),
            "active_infection": "yes",
            "active_infection_type": "Zoster",
            "active_infection_on": _day(9),
        },
    )
    page = _page(alice_client, case)
    assert f"<title>{month.strftime('%Y-%m')}: Entecavir</title>" in page  # at its precision
    assert f"<title>{_day(30)}: Influenza</title>" in page
    assert f"<title>{_day(9)}: Zoster</title>" in page
