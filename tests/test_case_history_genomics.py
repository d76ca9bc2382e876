"""Patient history and genomics as structured rows (issue 20): smoking and alcohol, family
history and genomic findings, recorded as a physician would, through the views. Each value
reaches the case page, the checklist's case summary, the timeline and every rendering of the
board note (page, print view, PDF text, Markdown); the validation habits of the record hold;
nothing is interpreted."""

from __future__ import annotations

import html
import re
import subprocess
from typing import Any

import pytest

from checklist.models import (
    AuditEvent,
    Case,
    FamilyHistory,
    GenomicVariant,
    Lifestyle,
)
from tests.factories import (
    create_note,
    days_from_today,
    post_row,
    set_metastasis_status,
    sign_note,
)


def _new_case(client: Any, label: str, **fields: Any) -> Case:
    data = {
        "label": label,
        "year_of_birth": 1958,
        "sex": "female",
        "situation": "first_diagnosis",
        **fields,
    }
    response = client.post("/cases/new/", data)
    assert response.status_code == 302, response.content[-2000:]
    return Case.objects.get(label=label)


def _saved(client: Any, case: Case, kind: str, data: dict[str, Any]) -> Any:
    response = post_row(client, case, kind, data)
    assert response.status_code == 302, _errors(response)
    return response


def _errors(response: Any) -> str:
    text = response.content.decode()
    return (
        " | ".join(re.findall(r'class="invalid-feedback"[^>]*>(.*?)</', text, re.S)) or text[-1500:]
    )


def _signable(client: Any, case: Case) -> None:
    """What signing needs besides the tumour: the metastasis status, the prior-therapy
    statement and immune findings stated as not assessed."""
    set_metastasis_status(client, case, "present")
    for path, field in [("prior-therapy", "no_prior_therapy"), ("immune-not-assessed", "value")]:
        case.refresh_from_db()
        client.post(f"/cases/{case.pk}/{path}/", {field: "on", "expected_version": case.version})


def _text(page: bytes) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page.decode()))).strip()


def _pdf_text(pdf: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return re.sub(r"\s+", " ", result.stdout.decode())


def _renderings(client: Any, case: Case) -> dict[str, str]:
    """The signed note of the case in its four renderings, as text."""
    note = create_note(client, case)
    assert sign_note(client, note).status_code == 302
    base = f"/notes/{note}/"
    return {
        "page": _text(client.get(base).content),
        "print view": _text(client.get(f"{base}v1/print/").content),
        "PDF": _pdf_text(client.get(f"{base}v1/pdf/").content),
        "Markdown": re.sub(r"\s+", " ", client.get(f"{base}v1/text/").content.decode()),
    }


def _missing(renderings: dict[str, str], expected: list[tuple[str, str]]) -> list[str]:
    """The (label, value) pairs a rendering does not show as label followed by value."""
    missing = []
    for where, text in renderings.items():
        for label, value in expected:
            if where == "PDF":  # pdftotext breaks lines where the PDF does
                shown = re.sub(r"\s", "", label + value) in re.sub(r"\s", "", text)
            elif where == "Markdown":  # HTML-escaped, as a Markdown viewer renders it back
                escaped = html.escape(value, quote=False)
                forms = (escaped, f'"{escaped}"', f"> {escaped}")
                shown = any(f"{html.escape(label, quote=False)}: {v}" in text for v in forms)
            else:
                shown = f"{label} {value}" in text
            if not shown:
                missing.append(f"{where}: {label} {value}")
    return missing


# --- a lung adenocarcinoma: smoking history, two variants (one a fusion), TMB, MSI pending ---

LUNG_LIFESTYLE = {
    "recorded_on": "2024-02-01",
    "smoking": "former",
    "pack_years": "40",
    "quit_on": "06/2019",  # known to the month
    "alcohol": "occasional",
    "alcohol_units_per_week": "3,5",  # typed with a decimal comma
    "comment": "Stopped at the first diagnosis.",
}
EGFR = {
    "result_kind": "variant",
    "status": "result",
    "gene": "egfr",  # saved as HGNC spells it
    "transcript": "NM_005228.5",
    "hgvs_c": "c.2573T>G",
    "hgvs_p": "p.(Leu858Arg)",
    "variant_type": "snv",
    "exons": "21",
    "origin": "somatic",
    "vaf": "23,5",
    "specimen": "Primary tumour, core biopsy",
    "assay_method": "ngs",
    "assay": "Oncomine Focus Assay",
    "laboratory": "Institut für Pathologie Nord",
    "reported_on": "2024-02-12",
    "comment": "Report 24-1177, page 2.",
}
FUSION = {
    "result_kind": "variant",
    "status": "result",
    "gene": "EML4",
    "partner_gene": "ALK",
    "variant_type": "fusion",
    "exons": "13/20",
    "origin": "somatic",
    "specimen": "Pleural effusion, cell block",
    "assay_method": "ngs",
    "assay": "FusionPlex Lung (RNA)",
    "laboratory": "Institut für Pathologie Nord",
    "reported_on": "2024-02-20",
}
TMB = {
    "result_kind": "tmb",
    "status": "result",
    "tmb": "12,4",
    "assay_method": "ngs",
    "assay": "TSO500",
    "laboratory": "Institut für Pathologie Nord",
    "reported_on": "2024-02-12",
}
MSI_PENDING = {
    "result_kind": "msi",
    "status": "pending",
    "laboratory": "Institut für Pathologie Nord",
}


def _lung_case(client: Any) -> Case:
    case = _new_case(client, "LUNG-1", sex="male", situation="metastatic_progression")
    _saved(client, case, "tumour", {"oncotree": "LUAD", "laterality": "right"})
    _saved(client, case, "lifestyle", LUNG_LIFESTYLE)
    for finding in (EGFR, FUSION, TMB, MSI_PENDING):
        _saved(client, case, "variant", finding)
    case.refresh_from_db()
    return case


LUNG_NOTE = [
    ("Smoking", "former smoker"),
    ("Pack-years", "40"),
    ("Stopped smoking on", "2019-06"),
    ("Alcohol", "occasional"),
    ("Alcohol units per week", "3.5"),
    ("Physician's comment", "Stopped at the first diagnosis."),
    ("Result", "variant"),
    ("Status", "result"),
    ("Gene", "EGFR"),
    ("Reference sequence", "NM_005228.5"),
    ("Coding DNA change (HGVS c.)", "c.2573T>G"),
    ("Protein change (HGVS p.)", "p.(Leu858Arg)"),
    ("Variant type", "single-nucleotide variant (SNV)"),
    ("Exon(s)", "21"),
    ("Origin", "somatic"),
    ("Variant allele frequency (%)", "23.5"),
    ("Specimen", "Primary tumour, core biopsy"),
    ("Assay method", "NGS"),
    ("Assay or panel", "Oncomine Focus Assay"),
    ("Laboratory", "Institut für Pathologie Nord"),
    ("Report date", "2024-02-12"),
    ("Physician's comment", "Report 24-1177, page 2."),
    ("Gene", "EML4"),
    ("Fusion partner gene", "ALK"),
    ("Variant type", "fusion"),
    ("Exon(s)", "13/20"),
    ("Specimen", "Pleural effusion, cell block"),
    ("Assay or panel", "FusionPlex Lung (RNA)"),
    ("Report date", "2024-02-20"),
    ("Result", "tumour mutational burden (TMB)"),
    ("Tumour mutational burden (mutations/Mb)", "12.4"),
    ("Assay or panel", "TSO500"),
    ("Result", "microsatellite status (MSI)"),
    ("Status", "pending"),
]


def test_a_lung_case_with_smoking_history_and_two_variants_reaches_every_rendering(
    alice_client, codelists
):
    case = _lung_case(alice_client)
    lifestyle = Lifestyle.objects.get(case=case)
    assert str(lifestyle.pack_years) == "40.0" and str(lifestyle.alcohol_units_per_week) == "3.5"
    egfr, fusion = GenomicVariant.objects.filter(case=case, result_kind="variant").order_by("pk")
    assert (egfr.gene, egfr.hgvs_c, egfr.hgvs_p, str(egfr.vaf)) == (
        "EGFR",
        "c.2573T>G",
        "p.(Leu858Arg)",
        "23.50",
    )
    assert (fusion.gene, fusion.partner_gene, fusion.variant_type) == ("EML4", "ALK", "fusion")

    page = _text(alice_client.get(f"/cases/{case.pk}/").content)
    for value in [
        "former smoker, 40 pack-years",
        "stopped smoking on 2019-06",
        "alcohol: occasional, 3.5 units/week",
        "Stopped at the first diagnosis.",
        "variant: EGFR",
        "NM_005228.5",
        "Coding DNA change (HGVS c.) c.2573T>G",
        "Protein change (HGVS p.) p.(Leu858Arg)",
        "single-nucleotide variant (SNV)",
        "Exon(s) 21",
        "Origin somatic",
        "Variant allele frequency 23.5 %",
        "Primary tumour, core biopsy",
        "NGS · Oncomine Focus Assay",
        "Institut für Pathologie Nord",
        "Report date 2024-02-12",
        "Report 24-1177, page 2.",
        "variant: EML4::ALK",
        "Fusion partner gene ALK",
        "Exon(s) 13/20",
        "Pleural effusion, cell block",
        "FusionPlex Lung (RNA)",
        "Tumour mutational burden 12.4 mutations/Mb",
        "microsatellite status (MSI) pending",
    ]:
        assert value in page, value
    # The timeline has the dated rows: the statement on smoking and the reports.
    timeline = page[page.index("Timeline of the recorded facts") :]
    for label in ("Smoking and alcohol", "Genomic findings", "EGFR c.2573T>G p.(Leu858Arg)"):
        assert label in timeline, label
    assert "EML4::ALK" in timeline and "TMB 12.4 mutations/Mb" in timeline

    checklist = _text(alice_client.get(f"/cases/{case.pk}/checklist/").content)
    summary = checklist[checklist.index("History and genomic findings, as recorded") :]
    for fact in (
        "2024-02-01 · former smoker, 40 pack-years, stopped 2019-06 · alcohol: occasional,"
        " 3.5 units/week",
        "EGFR c.2573T>G p.(Leu858Arg) · single-nucleotide variant (SNV) · exon(s) 21 · somatic"
        " · VAF 23.5 % · 2024-02-12",
        "EML4::ALK · fusion · exon(s) 13/20 · somatic · 2024-02-20",
        "TMB 12.4 mutations/Mb · 2024-02-12",
        "MSI · pending",
        "Family history: not recorded",
    ):
        assert fact in summary, fact

    _signable(alice_client, case)
    missing = _missing(_renderings(alice_client, case), LUNG_NOTE)
    assert not missing, "\n".join(missing)


# --- a breast cancer: a first-degree family history with a germline result -----------------

MOTHER = {
    "degree": "first",
    "relation": "mother",
    "oncotree": "Invasive Breast Carcinoma (BRCA)",  # as the type-ahead fills it in
    "age_at_diagnosis": "42",
    "hereditary_syndrome": "Hereditary breast and ovarian cancer suspected",
    "germline_testing": "done",
    "germline_result": "BRCA1 c.5266dup",
    "comment": "Mother treated in another city.",
}
AUNT = {
    "degree": "second",
    "relation": "aunt",
    "side": "maternal",
    "oncotree": "ovarian cancer",  # free text
    "germline_testing": "not_offered",
}
GERMLINE = {
    "result_kind": "variant",
    "status": "result",
    "gene": "BRCA1",
    "hgvs_c": "c.5266dup",
    "hgvs_p": "p.Gln1756ProfsTer74",
    "variant_type": "indel",
    "origin": "germline",
    "vaf": "48",
    "specimen": "Peripheral blood",
    "assay_method": "ngs",
    "assay": "Hereditary cancer panel",
    "laboratory": "Humangenetik Süd",
    "reported_on": "2023",  # known to the year
}

BREAST_NOTE = [
    ("Degree of kinship", "first-degree"),
    ("Relation", "mother"),
    ("Cancer type", "Invasive Breast Carcinoma"),
    ("OncoTree code", "BRCA"),
    ("Age at diagnosis", "42"),
    ("Known hereditary syndrome in the family", "Hereditary breast and ovarian cancer suspected"),
    ("Germline testing of the relative", "done"),
    ("Germline test result", "BRCA1 c.5266dup"),
    ("Physician's comment", "Mother treated in another city."),
    ("Degree of kinship", "second-degree"),
    ("Relation", "aunt"),
    ("Side of the family", "maternal"),
    ("Cancer type", "ovarian cancer"),
    ("Germline testing of the relative", "not offered"),
    ("Gene", "BRCA1"),
    ("Coding DNA change (HGVS c.)", "c.5266dup"),
    ("Protein change (HGVS p.)", "p.Gln1756ProfsTer74"),
    ("Variant type", "insertion / deletion (indel)"),
    ("Origin", "germline"),
    ("Variant allele frequency (%)", "48"),
    ("Specimen", "Peripheral blood"),
    ("Laboratory", "Humangenetik Süd"),
    ("Report date", "2023"),
]


def test_a_breast_case_with_a_first_degree_family_history_and_a_germline_result(
    alice_client, codelists
):
    case = _new_case(alice_client, "MAMMA-7")
    _saved(alice_client, case, "tumour", {"oncotree": "IDC", "laterality": "left"})
    _saved(alice_client, case, "family", MOTHER)
    _saved(alice_client, case, "family", AUNT)
    _saved(alice_client, case, "variant", GERMLINE)
    mother, aunt = FamilyHistory.objects.filter(case=case).order_by("pk")
    assert (mother.oncotree_code, mother.cancer_type) == ("BRCA", "Invasive Breast Carcinoma")
    assert (aunt.oncotree_code, aunt.cancer_type) == ("", "ovarian cancer")

    page = _text(alice_client.get(f"/cases/{case.pk}/").content)
    for value in [
        "mother (first-degree)",
        "Invasive Breast Carcinoma BRCA",
        "Hereditary breast and ovarian cancer suspected",
        "done: BRCA1 c.5266dup",
        "Mother treated in another city.",
        "aunt (second-degree, maternal)",
        "ovarian cancer",
        "not offered",
        "variant: BRCA1",
        "p.Gln1756ProfsTer74",
        "Origin germline",
        "Variant allele frequency 48 %",
        "Humangenetik Süd",
        "Report date 2023 ",  # the year alone, never padded to 2023-01-01
    ]:
        assert value in page, value
    assert "2023-01-01" not in page and "01/01/2023" not in page
    checklist = _text(alice_client.get(f"/cases/{case.pk}/checklist/").content)
    assert (
        "mother (first-degree): Invasive Breast Carcinoma (BRCA) · at age 42 · Hereditary breast"
        " and ovarian cancer suspected · germline testing: done, BRCA1 c.5266dup"
    ) in checklist
    assert "aunt (second-degree): ovarian cancer · germline testing: not offered" in checklist
    assert "BRCA1 c.5266dup p.Gln1756ProfsTer74 · insertion / deletion (indel)" in checklist
    assert "Smoking and alcohol: not recorded" in checklist

    _signable(alice_client, case)
    missing = _missing(_renderings(alice_client, case), BREAST_NOTE)
    assert not missing, "\n".join(missing)


def test_an_empty_history_is_said_as_not_recorded_in_the_note(alice_client, case):
    _signable(alice_client, case)
    _saved(alice_client, case, "tumour", {"oncotree": "IDC", "laterality": "left"})
    text = _renderings(alice_client, case)["Markdown"]
    assert "## Genomic findings" in text and "- Genomic findings: not recorded" in text
    assert "- Smoking and alcohol: not recorded" in text
    assert "- Family history: not recorded" in text


# --- the same validation habits as the rest of the record -----------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("lifestyle", {"smoking": "former", "pack_years": "301"}, "between 0 and 300"),
        ("lifestyle", {"smoking": "current", "pack_years": "-1"}, "between 0 and 300"),
        ("lifestyle", {"smoking": "never", "pack_years": "5"}, "never smoked has no pack-years"),
        ("lifestyle", {"smoking": "current", "quit_on": "2020-01-01"}, "former smoker"),
        ("lifestyle", {"smoking": "none", "alcohol_units_per_week": "4"}, "Select a valid"),
        (
            "lifestyle",
            {"smoking": "never", "alcohol": "none", "alcohol_units_per_week": "4"},
            "occasional or regular",
        ),
        ("variant", {**EGFR, "vaf": "100,5"}, "percentage (0-100)"),
        ("variant", {**EGFR, "hgvs_c": "2573T>G"}, "starts with “c.”"),
        ("variant", {**EGFR, "hgvs_c": "c.2573T>T"}, "c.76="),
        ("variant", {**EGFR, "hgvs_c": "c.2573 T>G"}, "no spaces"),
        ("variant", {**EGFR, "hgvs_c": "c.[76A>C;83G>C]"}, "not HGVS syntax for a coding"),
        ("variant", {**EGFR, "hgvs_p": "L858R"}, "starts with “p.”"),
        ("variant", {**EGFR, "hgvs_p": "p.Leu858R"}, "not both"),
        ("variant", {**EGFR, "hgvs_p": "p.Xyz858"}, "not HGVS syntax for a protein"),
        ("variant", {**EGFR, "hgvs_p": "c.2573T>G"}, "goes into the field above"),
        ("variant", {**EGFR, "transcript": "EGFR-201"}, "NM_005228.5"),
        ("variant", {**EGFR, "status": "pending"}, "has no finding"),
        ("variant", {**EGFR, "gene": ""}, "Give the gene."),
        ("variant", {**EGFR, "partner_gene": "ALK"}, "belongs to a fusion"),
        ("variant", {**EGFR, "tmb": "12"}, "another kind of result"),
        ("variant", {**TMB, "gene": "EGFR"}, "no gene or variant"),
        ("variant", {**TMB, "tmb": ""}, "Give the TMB."),
        ("variant", {**TMB, "tmb": "1200"}, "between 0 and 1000"),
        ("variant", {"result_kind": "msi", "status": "result"}, "microsatellite status"),
        ("variant", {**EGFR, "gene": "EG\x07FR"}, "invisible control character"),
        ("family", {**MOTHER, "relation": "aunt"}, "“aunt” is a second-degree relation"),
        ("family", {**AUNT, "degree": "first"}, "“aunt” is a second-degree relation"),
        ("family", {**MOTHER, "side": "maternal"}, "applies to second-degree relatives"),
        ("family", {**MOTHER, "germline_testing": "offered"}, "testing that was done"),
        ("family", {**MOTHER, "age_at_diagnosis": "130"}, "between 0 and 120"),
        ("family", {**MOTHER, "oncotree": ""}, "This field is required"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(alice_client, case, kind, data, message):
    data = {"recorded_on": "2024-02-01", **data} if kind == "lifestyle" else data
    response = post_row(alice_client, case, kind, data)
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode()), _errors(response)
    assert not GenomicVariant.objects.exists() and not FamilyHistory.objects.exists()
    assert not Lifestyle.objects.exists()


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("lifestyle", {"smoking": "former", "recorded_on": None}, "recorded_on"),
        (
            "lifestyle",
            {"smoking": "former", "recorded_on": "2024-02-01", "quit_on": None},
            "quit_on",
        ),
        ("variant", {**EGFR, "reported_on": None}, "reported_on"),
    ],
)
def test_dates_are_not_in_the_future(alice_client, case, kind, data, field):
    data = {**data, field: days_from_today(3)}
    response = post_row(alice_client, case, kind, data)
    assert response.status_code == 200
    assert "This date is in the future." in response.content.decode()


def test_a_date_of_stopping_after_the_statement_is_refused(alice_client, case):
    data = {"recorded_on": "2024-02-01", "smoking": "former", "quit_on": "2024-03-01"}
    response = post_row(alice_client, case, "lifestyle", data)
    assert "This date is after the date of the statement." in response.content.decode()


def test_a_gene_not_in_the_hgnc_list_is_saved_as_typed_with_a_warning(alice_client, case):
    response = alice_client.post(
        f"/cases/{case.pk}/variant/new/",
        {**EGFR, "gene": "ZQGENE1", "expected_version": case.version},
        follow=True,
    )
    page = html.unescape(response.content.decode())
    assert "“ZQGENE1” is not in the HGNC list of approved gene symbols" in page
    assert GenomicVariant.objects.get().gene == "ZQGENE1"


def test_an_alias_is_saved_as_typed_and_the_approved_symbol_named(alice_client, case):
    data = {**FUSION, "gene": "EML4", "partner_gene": "HER2"}
    response = alice_client.post(
        f"/cases/{case.pk}/variant/new/", {**data, "expected_version": case.version}, follow=True
    )
    page = html.unescape(response.content.decode())
    assert "HGNC lists “HER2” as a previous or alias symbol of ERBB2" in page
    assert GenomicVariant.objects.get().partner_gene == "HER2"
    # An approved symbol passes without a word.
    case.refresh_from_db()
    response = alice_client.post(
        f"/cases/{case.pk}/variant/new/",
        {**EGFR, "expected_version": case.version},
        follow=True,
    )
    assert "HGNC" not in response.content.decode()


def test_every_write_goes_through_the_case_version_lock(alice_client, case):
    """A form opened at an older version of the case saves nothing (the service's check)."""
    stale = case.version
    _saved(alice_client, case, "comorbidity", {"name": "COPD"})
    response = alice_client.post(
        f"/cases/{case.pk}/variant/new/", {**EGFR, "expected_version": stale}
    )
    assert response.status_code == 409
    assert not GenomicVariant.objects.exists()
    case.refresh_from_db()
    before = case.version
    _saved(alice_client, case, "family", MOTHER)
    case.refresh_from_db()
    assert case.version == before + 1


@pytest.mark.real_date_only
def test_the_rows_are_audited_and_named_in_words(alice_client, case):
    _saved(alice_client, case, "variant", EGFR)
    row = GenomicVariant.objects.get()
    event = AuditEvent.objects.get(table_name="checklist_genomicvariant", op="INSERT")
    assert event.row_id == str(row.pk) and (event.new_values or {})["hgvs_c"] == "c.2573T>G"
    history = _text(alice_client.get(f"/cases/{case.pk}/history/").content)
    assert "genomic finding" in history
    assert "coding DNA change (HGVS c.)" in history and "c.2573T>G" in history
    german = _text(
        alice_client.get(f"/cases/{case.pk}/history/", HTTP_ACCEPT_LANGUAGE="de").content
    )
    assert "genomischer Befund" in german


def test_another_practices_physician_gets_404(bob_client, case, alice_client):
    _saved(alice_client, case, "variant", EGFR)
    _saved(alice_client, case, "family", MOTHER)
    row = GenomicVariant.objects.get()
    for url in (
        f"/cases/{case.pk}/variant/new/",
        f"/cases/{case.pk}/variant/{row.pk}/",
        f"/cases/{case.pk}/family/new/",
        f"/cases/{case.pk}/lifestyle/new/",
    ):
        assert bob_client.get(url).status_code == 404, url
    assert bob_client.post(f"/cases/{case.pk}/variant/new/", EGFR).status_code == 404


def test_the_family_form_offers_oncotree_types_for_its_own_input(alice_client, case):
    form = alice_client.get(f"/cases/{case.pk}/family/new/").content.decode()
    assert 'aria-controls="family-oncotree-results"' in form
    assert 'id="family-oncotree-results"' in form
    assert "/oncotree/search/?target=id_oncotree" in form
    results = alice_client.get(
        "/oncotree/search/", {"oncotree": "invasive breast", "target": "id_family_oncotree"}
    ).content.decode()
    assert 'data-fill-target="id_family_oncotree"' in results
    assert 'data-fill="Invasive Breast Carcinoma (BRCA)"' in results
    bad = alice_client.get("/oncotree/search/", {"oncotree": "breast", "target": 'x" onclick="y'})
    assert bad.status_code == 400


def test_the_pages_say_no_interpretation(alice_client, case):
    _saved(alice_client, case, "variant", EGFR)
    page = alice_client.get(f"/cases/{case.pk}/").content.decode().lower()
    for word in ("actionable", "tier ", "level of evidence", "pathogenic", "sensitising"):
        assert word not in page, word
    assert "interprets no variant" in page
