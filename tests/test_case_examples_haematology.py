"""Issue 15's "done when" for a haematological relapse with HBV serology and
hypogammaglobulinaemia: a CLL case recorded through the views as a physician would (flow
cytometry of the bone marrow, HBsAg negative / anti-HBc positive / anti-HBs positive / HBV DNA
< 10 IU/mL, IgG 3.1 g/L, entecavir since a month, an active infection, two dated vaccinations,
platelets entered in /µL with the laboratory's value kept), each value found again on the case
page, the note page, the PDF's text and the Markdown."""

from __future__ import annotations

import html
import re
import subprocess
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from checklist.models import Case, ImmuneFinding, Prophylaxis, Vaccination
from tests.factories import create_note, post_row, set_metastasis_status


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip()


def _squeezed(text: str) -> str:
    # pdftotext breaks lines where the PDF does: compare without any white space.
    return re.sub(r"\s", "", text)


def _pdf_text(pdf: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return result.stdout.decode()


def _ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def test_a_cll_relapse_with_hbv_serology_and_hypogammaglobulinaemia_round_trips(
    alice_client, codelists, practice_a
):
    response = alice_client.post(
        "/cases/new/",
        {"label": "CLL-HBV", "year_of_birth": 1952, "sex": "male", "situation": "recurrence"},
    )
    assert response.status_code == 302
    case = Case.objects.get(label="CLL-HBV")
    month_of_diagnosis = _ago(3000).strftime("%Y-%m")
    assert (
        post_row(
            alice_client,
            case,
            "tumour",
            {
                "oncotree": "CLLSLL",
                "laterality": "not_applicable",
                "diagnosed_on": month_of_diagnosis,
                "diagnosis_basis": "flow_cytometry",
            },
        ).status_code
        == 302
    )
    set_metastasis_status(alice_client, case, "not_applicable")
    assert (
        post_row(
            alice_client,
            case,
            "biomarker",
            {
                "name": "CD5/CD19/CD23",
                "kind": "somatic",
                "specimen_type": "bone_marrow",
                "specimen": "Beckenkammaspirat",
                "sampled_on": _ago(20).isoformat(),
                "method": "flow_cytometry",
                "status": "result",
                "value": "78",
                "unit": "% clonal B cells",
            },
        ).status_code
        == 302
    )
    infection_on = _ago(12)
    finding = {
        "assessed_on": _ago(7).isoformat(),
        "leukocytes": "48,2",
        "neutrophils": "1,9",
        "lymphocytes": "44,5",
        "platelets": "98000",
        "platelets_unit": "/uL",
        "haemoglobin": "10,4",
        "igg": "3,1",
        "hbsag": "negative",
        "anti_hbc": "positive",
        "anti_hbs": "positive",
        "hbv_dna_qualifier": "<",
        "hbv_dna": "10",
        "active_infection": "yes",
        "active_infection_type": "Pneumonie, ambulant erworben",
        "active_infection_on": infection_on.isoformat(),
        "comment": "Hypogammaglobulinämie; IVIG erwogen.",
    }
    assert post_row(alice_client, case, "immune", finding).status_code == 302
    entecavir_month = (_ago(90).replace(day=1)).strftime("%m/%Y")  # typed as 02/2021
    assert (
        post_row(
            alice_client,
            case,
            "prophylaxis",
            {"agent": "Entecavir 0,5 mg", "kind": "antiviral", "since": entecavir_month},
        ).status_code
        == 302
    )
    influenza_on, pcv_month = _ago(60), _ago(400).strftime("%Y-%m")
    for vaccine, given_on in [
        ("Influenza", influenza_on.isoformat()),
        ("Pneumokokken (PCV20)", pcv_month),
    ]:
        data = {"vaccine": vaccine, "given_on": given_on}
        assert post_row(alice_client, case, "vaccination", data).status_code == 302

    # Stored as entered: converted, with the laboratory's value and unit kept.
    row = ImmuneFinding.objects.get(case=case)
    assert row.platelets == Decimal("98.000")
    assert (row.platelets_lab_value, row.platelets_lab_unit) == (Decimal(98000), "/uL")
    assert row.igg == Decimal("3.10")
    assert Prophylaxis.objects.get(case=case).since_precision == "month"
    assert sorted(Vaccination.objects.filter(case=case).values_list("given_on_precision")) == [
        ("day",),
        ("month",),
    ]

    entecavir_iso = f"{entecavir_month[3:]}-{entecavir_month[:2]}"
    case_page = _flat(alice_client.get(f"/cases/{case.pk}/").content.decode())
    for text in [
        "flow cytometry",
        "bone marrow: Beckenkammaspirat",
        "78 % clonal B cells",
        "98 × 10⁹/L (lab: 98000 /µL)",
        "10.4 g/dL",
        "IgG 3.1 g/L",
        "HBsAg / anti-HBc / anti-HBs negative / positive / positive",
        "HBV DNA < 10 IU/mL",
        "Active infection yes: Pneumonie, ambulant erworben",
        f"Entecavir 0,5 mg antiviral {entecavir_iso} still given",
        f"Influenza {influenza_on.isoformat()}",
        f"Pneumokokken (PCV20) {pcv_month}",
        "Hypogammaglobulinämie; IVIG erwogen.",
    ]:
        assert text in case_page, text

    note = create_note(alice_client, case)
    renderings = {
        "note page": _flat(alice_client.get(f"/notes/{note}/").content.decode()),
        "Markdown": _flat(alice_client.get(f"/notes/{note}/v1/text/").content.decode()),
        "PDF": _flat(_pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content)),
    }
    expected = [
        ("Basis of diagnosis", "flow cytometry"),
        ("Specimen type", "bone marrow"),
        ("Method", "flow cytometry"),
        ("Platelets (10⁹/L)", "98 (lab: 98000 /µL)"),
        ("Haemoglobin (g/dL)", "10.4"),
        ("IgG (g/L)", "3.1"),
        ("HBsAg", "negative"),
        ("Anti-HBc", "positive"),
        ("Anti-HBs", "positive"),
        ("HBV DNA below or above", "below"),
        ("HBV DNA (IU/mL)", "10"),
        ("Active infection", "yes"),
        ("Type of infection", "Pneumonie, ambulant erworben"),
        ("Infection since", infection_on.isoformat()),
        ("Agent", "Entecavir 0,5 mg"),
        ("Since", entecavir_iso),
        ("Vaccine", "Influenza"),
        ("Date", influenza_on.isoformat()),
        ("Vaccine", "Pneumokokken (PCV20)"),
        ("Date", pcv_month),
    ]
    missing = []
    for where, text in renderings.items():
        for label, value in expected:
            if where == "Markdown":
                found = any(f"{label}: {v}" in text for v in (value, f'"{value}"'))
            elif where == "PDF":
                found = _squeezed(label + value) in _squeezed(text)
            else:
                found = f"{label} {value}" in text
            if not found:
                missing.append(f"{where}: {label} {value}")
    assert not missing, "\n".join(missing)
