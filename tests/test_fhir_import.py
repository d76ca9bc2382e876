"""FHIR import: upload, preview, confirm; the learned code map.

alice (physician, A) imports; adam (admin, A) manages the code map and may not import;
carol (physician in A and B) may not see alice's preview; bob (B) gets 404 for everything of A.
"""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from checklist import audit, fhir_import
from checklist.models import (
    AuditEvent,
    Biomarker,
    Case,
    CodeMapping,
    Comorbidity,
    FhirImportPreview,
    GenomicVariant,
    ImmuneFinding,
    Metastasis,
    PerformanceStatus,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from tests.factories import (
    JENNY_M_COLLECTION,
    JENNY_M_TRANSACTION,
    MCODE_EXAMPLES,
    fhir_bundle,
    fhir_ecog,
    fhir_patient,
    fhir_primary,
    logged_in,
    make_note,
)

pytestmark = pytest.mark.usefixtures("codelists")

IMPORT_URL = "/import/fhir/"


def upload(client, raw: bytes, name: str = "bundle.json"):
    return client.post(IMPORT_URL, {"bundle_file": SimpleUploadedFile(name, raw)})


def paste(client, data):
    return client.post(IMPORT_URL, {"bundle_text": json.dumps(data)})


def preview_of(response) -> FhirImportPreview:
    assert response.status_code == 302, response.content.decode()[:2000]
    return FhirImportPreview.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[1])


def question_fields(response) -> list[str]:
    return [name for name in response.context["form"].fields if name.startswith("oq_")]


def header(label: str = "BC-FHIR-1") -> dict[str, str]:
    return {"label": label, "year_of_birth": "1965", "sex": "female", "situation": "recurrence"}


# The therapy answers of the Jenny M transaction bundle: the four RxNorm codes' therapy types,
# paclitaxel moved into the doxorubicin/cyclophosphamide episode (AC-T, one line), each
# resource's episode as proposed otherwise, and the line numbers typed.
JENNY_THERAPY = {
    "oq_0140dda0a81e": "CH",
    "oq_d1d328ed8bb6": "CH",
    "oq_5c67f0c11713": "CH",
    "oq_ca50856d2561": "HO",
    "episode_i3": "e4",
    "episode_i8": "e1",
    "episode_i9": "e5",
    "episode_i18": "e2",
    "episode_i23": "e1",
    "episode_i42": "e1",
    "line_e1": "1",
    "line_e5": "2",
}
# The same for the collection bundle (learned types: no question; the episodes as proposed).
JENNY_COLLECTION_THERAPY = {
    "episode_i3": "e1",
    "episode_i4": "e1",
    "episode_i5": "e3",
    "episode_i6": "e5",
    "episode_i10": "e2",
    "episode_i12": "e4",
    "line_e1": "1",
    "line_e3": "2",
    "line_e5": "3",
}


def jenny_preview(client) -> FhirImportPreview:
    return preview_of(upload(client, JENNY_M_TRANSACTION.read_bytes()))


# --- Jenny M end to end ---------------------------------------------------------------------


def test_it_imports_jenny_m_after_one_mapping_question(alice_client, alice, practice_a):
    preview = jenny_preview(alice_client)
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    assert page.status_code == 200
    text = page.content.decode()
    # Questions: the SNOMED code of the primary and the therapy type of each RxNorm code;
    # the staging and ECOG are mapped directly.
    assert question_fields(page) == [
        "oq_de1ee726b495",
        "oq_0140dda0a81e",
        "oq_ca50856d2561",
        "oq_5c67f0c11713",
        "oq_d1d328ed8bb6",
    ]
    assert "353431000119107" in text
    assert "cT3" in text and "stage IIB" in text and "ECOG 0" in text
    # Each mapped value with its source; nothing silently dropped.
    assert "DOXOrubicin" in text and "Estrogen receptor" in text
    assert "MedicationRequest/cancer-related-medication-request-doxorubicin-[…]-m" in text
    assert "Observation/tumor-marker-test-er-[…]-m" in text
    assert "a procedure that no profile or category marks as surgery or radiotherapy" in text
    assert "not imported in this version" not in text
    assert "Jenny" not in text and "MRN1234" not in text

    response = alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {
            **header(),
            "oq_de1ee726b495": "Breast Invasive Ductal Carcinoma (IDC)",
            "laterality_t26": "left",
            **JENNY_THERAPY,
        },
    )
    case = Case.objects.get(label="BC-FHIR-1")
    assert response.status_code == 302 and response.url == f"/cases/{case.pk}/"
    assert (case.year_of_birth, case.sex, case.practice_id) == (1965, "female", practice_a.pk)
    tumour = Tumour.objects.get(case=case)
    assert (tumour.oncotree_code, tumour.laterality) == ("IDC", "left")
    assert (tumour.diagnosed_on, tumour.diagnosed_on_precision) == (date(2018, 3, 16), "day")
    assert tumour.histology.startswith("Adenocarcinoma")
    clinical, pathological = StagingRecord.objects.filter(case=case).order_by("staged_on")
    assert clinical.tnm_text == "cT3 cN0 cM0" and clinical.uicc_stage == "IIB"
    assert (clinical.kind, clinical.tnm_edition, clinical.tumour) == ("clinical", "8", tumour)
    # "pM Not Applicable" is no oBDS category: left out (and listed in the preview).
    assert pathological.tnm_text == "pT3 pN0" and pathological.kind == "pathological"
    assert PerformanceStatus.objects.get(case=case).ecog == 0
    # Therapies: AC-T as line 1 (paclitaxel moved into it), the surgery, the radiotherapy
    # course with its doses, anastrozole as line 2 (an active order: ongoing).
    lines = list(TherapyLine.objects.filter(case=case).order_by("started_on", "kind"))
    assert [(t.kind, t.number) for t in lines] == [
        ("surgery", None),
        ("systemic", 1),
        ("radiotherapy", None),
        ("systemic", 2),
    ]
    surgery, act, radiotherapy, anastrozole = lines
    assert act.agents == ["DOXOrubicin", "cyclophosphamide", "PACLitaxel"]
    assert (act.types, act.intent, act.started_on, act.ongoing) == (
        ["CH"],
        "K",
        date(2018, 4, 1),
        True,
    )
    assert (surgery.types, surgery.regimen) == (["OP"], "Excision of part of breast (procedure)")
    assert radiotherapy.types == ["ST"] and "60 Gy in 30 fractions" in radiotherapy.regimen
    assert (radiotherapy.started_on, radiotherapy.ended_on) == (
        date(2018, 8, 15),
        date(2018, 10, 25),
    )
    assert (anastrozole.types, anastrozole.agents) == (["HO"], ["anastrozole"])
    # Tumour markers and the genomic variant.
    markers = {b.name: b for b in Biomarker.objects.filter(case=case)}
    assert (markers["ER"].categorical_result, markers["ER"].method) == ("Positive", "ihc")
    assert markers["HER2"].categorical_result == "Negative"
    assert markers["ER"].sampled_on == date(2018, 3, 10) and markers["ER"].status == "result"
    oncotype = markers["Oncotype DX Breast Recurrence Score Assay"]
    assert (oncotype.value, oncotype.unit) == (47, "Recurrence score")
    variant = GenomicVariant.objects.get(case=case)
    assert (variant.gene, variant.transcript, variant.hgvs_c, variant.hgvs_p) == (
        "PALB2",
        "NM_024675.3",
        "c.3549C>A",
        "p.Tyr1183Ter",
    )
    assert variant.origin == "somatic" and "NC_000016.10:g.23603471G>T" in variant.comment
    # The neutrophil count (3000 × 10³/µL) is not plausible: listed, not stored.
    assert not ImmuneFinding.objects.filter(case=case).exists()
    assert "not plausible for neutrophils" in text
    mapping = CodeMapping.objects.get(practice=practice_a, target_system="oncotree")
    assert (mapping.source_code, mapping.target_code, mapping.mapped_by) == (
        "353431000119107",
        "IDC",
        alice,
    )
    assert not FhirImportPreview.objects.exists()  # the preview is gone with the confirmation
    event = AuditEvent.objects.get(practice_id=practice_a.pk, op="fhir_imported")
    assert event.case_id == case.pk
    assert event.detail == {
        "sha256": fhir_import.sha256(JENNY_M_TRANSACTION.read_bytes()),
        "entries": 49,
    }

    # The case works like a hand-entered one: case page, checklist, board note.
    assert alice_client.get(f"/cases/{case.pk}/").status_code == 200
    assert alice_client.get(f"/cases/{case.pk}/checklist/").status_code == 200
    note = make_note(case, alice)
    assert alice_client.get(f"/notes/{note.note_id}/").status_code == 200


def test_a_second_import_of_a_similar_bundle_asks_no_mapping_question(alice_client):
    preview = jenny_preview(alice_client)
    alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "oq_de1ee726b495": "IDC", "laterality_t26": "left", **JENNY_THERAPY},
    )
    second = preview_of(upload(alice_client, JENNY_M_COLLECTION.read_bytes()))
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": second.pk}))
    assert question_fields(page) == []
    response = alice_client.post(
        reverse("fhir_preview", kwargs={"pk": second.pk}),
        {**header("BC-FHIR-2"), "laterality_t2": "left", **JENNY_COLLECTION_THERAPY},
    )
    assert response.status_code == 302
    assert Tumour.objects.get(case__label="BC-FHIR-2").oncotree_code == "IDC"


def test_nothing_is_written_before_the_confirmation(alice_client, practice_a):
    events = AuditEvent.objects.filter(practice_id=practice_a.pk, kind="change").count()
    preview = jenny_preview(alice_client)
    alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    # A confirmation that does not validate (no label, no answer) writes nothing either.
    refused = alice_client.post(reverse("fhir_preview", kwargs={"pk": preview.pk}), {})
    assert refused.status_code == 400
    assert not Case.objects.exists() and not Tumour.objects.exists()
    assert not CodeMapping.objects.exists()
    assert AuditEvent.objects.filter(practice_id=practice_a.pk, kind="change").count() == events
    # The stored preview holds no name and no identifier of the patient.
    stored = json.dumps(FhirImportPreview.objects.get().data)
    assert "jenny" not in stored.lower() and "MRN1234" not in stored
    assert "cancer-patient-jenny-m" not in stored


def test_the_confirmation_is_applied_once(alice_client):
    preview = jenny_preview(alice_client)
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    answers = {**header(), "oq_de1ee726b495": "IDC", "laterality_t26": "left", **JENNY_THERAPY}
    assert alice_client.post(url, answers).status_code == 302
    assert alice_client.post(url, answers).status_code == 404
    assert Case.objects.count() == 1


def test_the_label_must_be_free(alice_client, practice_a):
    Case.objects.create(practice=practice_a, label="BC-FHIR-1", **Case.MINIMAL)
    preview = jenny_preview(alice_client)
    response = alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "oq_de1ee726b495": "IDC", "laterality_t26": "left", **JENNY_THERAPY},
    )
    assert response.status_code == 400
    assert "already used" in response.content.decode()
    assert Case.objects.count() == 1 and not CodeMapping.objects.exists()


# --- who may --------------------------------------------------------------------------------


def test_another_user_or_practice_gets_404_for_a_preview(alice_client, carol, bob_client):
    preview = jenny_preview(alice_client)
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    assert logged_in(carol).get(url).status_code == 404  # same practice, not the uploader
    assert bob_client.get(url).status_code == 404
    assert bob_client.post(url, header()).status_code == 404
    assert not Case.objects.exists()


def test_an_expired_preview_is_gone(alice_client):
    preview = jenny_preview(alice_client)
    FhirImportPreview.objects.filter(pk=preview.pk).update(expires_at=preview.created_at)
    assert alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk})).status_code == 404


def test_admins_do_not_import(adam_client):
    assert adam_client.get(IMPORT_URL).status_code == 403
    response = upload(adam_client, JENNY_M_TRANSACTION.read_bytes())
    assert response.status_code == 403
    assert not FhirImportPreview.objects.exists()


# --- mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onset", "stored", "precision"),
    [("2019", date(2019, 1, 1), "year"), ("2019-03", date(2019, 3, 1), "month")],
)
def test_a_partial_date_keeps_its_precision(alice_client, onset, stored, precision):
    bundle = fhir_bundle(
        fhir_patient(),
        fhir_primary(coding={"system": "http://oncotree.mskcc.org", "code": "LUAD"}, onset=onset),
    )
    preview = preview_of(paste(alice_client, bundle))
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    assert question_fields(page) == []  # OncoTree codes map directly
    alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "laterality_t2": "right"},
    )
    tumour = Tumour.objects.get()
    assert (tumour.oncotree_code, tumour.diagnosed_on) == ("LUAD", stored)
    assert tumour.diagnosed_on_precision == precision


def test_a_secondary_cancer_condition_becomes_a_metastasis_with_the_site_asked(alice_client):
    brain = json.loads(
        (
            MCODE_EXAMPLES / "example" / "Condition-secondary-cancer-condition-brain-mets.json"
        ).read_text()
    )
    brain["subject"] = {"reference": "urn:uuid:p1"}
    icd10 = {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C34.1", "display": "Lung"}
    bundle = fhir_bundle(fhir_patient(), fhir_primary(coding=icd10), brain)
    preview = preview_of(paste(alice_client, bundle))
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    page = alice_client.get(url)
    assert len(question_fields(page)) == 2  # the ICD-10 code's OncoTree type, the site
    site_field = next(
        n
        for n, f in page.context["form"].fields.items()
        if n.startswith("oq_") and "site" in str(f.label).lower()
    )
    oncotree_field = next(n for n in question_fields(page) if n != site_field)
    response = alice_client.post(
        url,
        {
            **header(),
            oncotree_field: "LUAD",
            site_field: "BRA",
            "laterality_t2": "right",
            "timing_m3": "metachronous",
        },
    )
    assert response.status_code == 302
    case = Case.objects.get()
    assert case.metastasis_status == "present"
    metastasis = Metastasis.objects.get(case=case)
    assert (metastasis.site, metastasis.detected_on) == ("BRA", date(2019, 5, 1))
    assert Tumour.objects.get(case=case).icd10_text == "C34.1 Lung"
    assert set(CodeMapping.objects.values_list("target_system", "target_code")) == {
        ("oncotree", "LUAD"),
        ("obds:fm_lokalisation", "BRA"),
    }


def test_other_conditions_become_comorbidities(alice_client):
    hypertension = json.loads(
        (
            MCODE_EXAMPLES / "example" / "Condition-us-core-condition-hypertension-jenny-m.json"
        ).read_text()
    )
    hypertension["subject"] = {"reference": "urn:uuid:p1"}
    bundle = fhir_bundle(fhir_patient(), fhir_primary(), hypertension)
    preview = preview_of(paste(alice_client, bundle))
    assert [c["name"] for c in preview.data["comorbidities"]] == [
        "Benign hypertensive heart disease without congestive heart failure (disorder)"
    ]


# --- bad input ------------------------------------------------------------------------------


def _bad(kind: str) -> bytes:
    good = fhir_bundle(fhir_patient(), fhir_primary())
    if kind == "not json":
        return b"{not json"
    if kind == "wrong type":
        return json.dumps(fhir_patient()).encode()
    if kind == "no cancer":
        return json.dumps(fhir_bundle(fhir_patient(), fhir_ecog("o1", 1))).encode()
    if kind == "dangling":
        return json.dumps(fhir_bundle(fhir_patient(), fhir_primary(patient="p9"))).encode()
    if kind == "invalid date":
        return json.dumps(fhir_bundle(fhir_patient(), fhir_primary(onset="2019-02-30"))).encode()
    if kind == "not fhir":
        bundle = copy.deepcopy(good)
        bundle["entry"][1]["resource"]["clinicalStatus"] = "active"
        return json.dumps(bundle).encode()
    if kind == "huge string":
        bundle = copy.deepcopy(good)
        bundle["entry"][1]["resource"]["code"]["text"] = "x" * 200_000
        return json.dumps(bundle).encode()
    if kind == "deep":
        return (
            b'{"resourceType": "Bundle", "type": "collection", "x": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}"
        )
    if kind == "control character":
        bundle = copy.deepcopy(good)
        bundle["entry"][1]["resource"]["code"]["coding"][0]["system"] = "http://x\u0000y"
        return json.dumps(bundle).encode()
    if kind == "two patients":
        return json.dumps(fhir_bundle(fhir_patient(), fhir_patient("p2"), fhir_primary())).encode()
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not json", "This is not JSON"),
        ("wrong type", "found resourceType “Patient”"),
        ("no cancer", "no primary cancer condition"),
        ("dangling", "Condition (entry 2), field subject"),
        ("invalid date", "Condition (entry 2), field onsetDateTime"),
        ("not fhir", "Condition (entry 2), field clinicalStatus"),
        ("huge string", "Condition.code.text holds a text of 200000 characters"),
        ("deep", "nested more than 64 levels"),
        ("two patients", "holds 2 patients"),
        ("control character", "Condition.code.coding.system holds a control character (U+0000)"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_resource_and_field(alice_client, kind, message):
    response = upload(alice_client, _bad(kind))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FhirImportPreview.objects.exists() and not Case.objects.exists()


def test_size_and_entry_count_are_checked_before_parsing(alice_client, settings, monkeypatch):
    class NoParser:
        @staticmethod
        def loads(*args, **kwargs):
            raise AssertionError("parsed")

    monkeypatch.setattr(fhir_import, "json", NoParser)
    settings.FHIR_IMPORT_MAX_BYTES = 1000
    response = upload(alice_client, b"x" * 1001)
    assert response.status_code == 400
    assert "larger than" in response.content.decode()


def test_the_entry_count_is_checked_before_fhir_validation(alice_client, settings, monkeypatch):
    monkeypatch.setattr(fhir_import, "_validate_r4", lambda data: pytest.fail("validated"))
    settings.FHIR_IMPORT_MAX_ENTRIES = 3
    bundle = fhir_bundle(fhir_patient(), fhir_primary(), fhir_ecog("o1", 1), fhir_ecog("o2", 2))
    response = paste(alice_client, bundle)
    assert response.status_code == 400
    assert "has 4 entries; at most 3" in response.content.decode()


# --- the confirmation's queries ----------------------------------------------------------


@pytest.mark.parametrize("n", [1, 6])
def test_the_confirmation_needs_the_same_queries_for_1_and_6_rows_of_a_kind(
    alice_client, django_assert_num_queries, n
):
    observations = [fhir_ecog(f"o{i}", i % 5, f"2019-04-{i + 1:02d}") for i in range(n)]
    comorbid = [
        {
            "resourceType": "Condition",
            "id": f"k{i}",
            "code": {"text": f"condition {i}"},
            "subject": {"reference": "urn:uuid:p1"},
        }
        for i in range(n)
    ]
    oncotree = {"system": "http://oncotree.mskcc.org", "code": "LUAD"}
    bundle = fhir_bundle(fhir_patient(), fhir_primary(coding=oncotree), *observations, *comorbid)
    preview = preview_of(paste(alice_client, bundle))
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    # 1 session, 2 user, 3 second-factor device, 4 memberships, 5 the preview, 6 the codes
    # the preview names (direct OncoTree codes, sites, TNM lists), 7 the OncoTree answers
    # (form clean), 8 savepoint, 9 audit context, 10 the preview locked, 11 label check,
    # 12 case, 13 tumours, 14 performance statuses, 15 comorbidities, 16 the preview deleted,
    # 17 the access event, 18 release. (No code question: the learned map is not read.)
    with django_assert_num_queries(18):
        response = alice_client.post(url, {**header(), "laterality_t2": "right"})
    assert response.status_code == 302
    assert PerformanceStatus.objects.count() == n and Comorbidity.objects.count() == n


# --- the learned code map ---------------------------------------------------------------


def test_admins_edit_and_delete_the_learned_code_map(alice_client, adam_client, practice_a):
    preview = jenny_preview(alice_client)
    alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "oq_de1ee726b495": "IDC", "laterality_t26": "left", **JENNY_THERAPY},
    )
    mapping = CodeMapping.objects.get(target_system="oncotree")
    page = adam_client.get("/code-map/")
    assert page.status_code == 200 and "353431000119107" in page.content.decode()
    assert "Alice" in page.content.decode()  # who mapped it
    assert alice_client.get("/code-map/").status_code == 403  # physicians do not administer it
    response = adam_client.post(f"/code-map/{mapping.pk}/", {"target_code": "ILC"})
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert mapping.target_code == "ILC"
    changes = AuditEvent.objects.filter(
        practice_id=practice_a.pk, table_name="checklist_codemapping"
    )
    assert set(changes.values_list("op", flat=True)) >= {"INSERT", "UPDATE"}
    assert adam_client.post(f"/code-map/{mapping.pk}/delete/").status_code == 302
    assert not CodeMapping.objects.filter(pk=mapping.pk).exists()
    assert changes.filter(op="DELETE").exists()
    # Deleted: the next import asks again.
    second = jenny_preview(alice_client)
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": second.pk}))
    assert question_fields(page) == ["oq_de1ee726b495"]


def test_the_preview_reads_in_german(alice_client):
    preview = jenny_preview(alice_client)
    alice_client.cookies["django_language"] = "de"
    page = alice_client.get(
        reverse("fhir_preview", kwargs={"pk": preview.pk}), HTTP_ACCEPT_LANGUAGE="de"
    )
    assert "Nicht importiert" in page.content.decode()


def test_the_import_event_is_an_access_event(alice_client, adam_client, practice_a):
    preview = jenny_preview(alice_client)
    alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "oq_de1ee726b495": "IDC", "laterality_t26": "left", **JENNY_THERAPY},
    )
    event = AuditEvent.objects.get(op="fhir_imported")
    assert event.kind == "access" and event.actor_name == "alice"
    assert event.table_name == "checklist_case" and event.op == audit.FHIR_IMPORTED
    trail = adam_client.get("/audit/?kind=access").content.decode()
    assert "case imported from a FHIR bundle" in trail and "SHA-256 of the bundle" in trail


def test_each_question_has_its_own_type_ahead(alice_client):
    response = alice_client.get(
        "/oncotree/search/",
        {
            "target": "id_oq_0123456789ab",
            "source": "oq_0123456789ab",
            "oq_0123456789ab": "invasive ductal",
        },
    )
    text = response.content.decode()
    assert 'data-fill-target="id_oq_0123456789ab"' in text and "(IDC)" in text
    # The tumour form's own type-ahead is unchanged.
    plain = alice_client.get("/oncotree/search/", {"oncotree": "invasive ductal"})
    assert 'data-fill-target="id_oncotree"' in plain.content.decode()
    assert alice_client.get("/oncotree/search/", {"target": "../x"}).status_code == 400


@pytest.mark.parametrize(
    ("example", "oncotree"),
    [
        ("Condition-primary-cancer-condition-breast.json", "IDC"),
        ("Condition-primary-cancer-condition-cll.json", "CLLSLL"),
        ("Condition-primary-cancer-condition-nsclc.json", "LUAD"),
        ("Condition-primary-cancer-condition-jenny-m.json", "IDC"),
    ],
)
def test_the_built_primary_cancer_condition_examples_import(alice_client, example, oncotree):
    """The examples are single Conditions: each goes into a collection with a patient (its
    subject reference pointed at that patient), then through preview and confirmation."""
    condition = json.loads((MCODE_EXAMPLES / "example" / example).read_text())
    condition["subject"] = {"reference": "urn:uuid:p1"}
    preview = preview_of(paste(alice_client, fhir_bundle(fhir_patient(), condition)))
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    page = alice_client.get(url)
    assert page.status_code == 200
    answers = {**header(), "laterality_t2": "unknown"}
    for name in question_fields(page):
        answers[name] = oncotree
    assert alice_client.post(url, answers).status_code == 302
    assert Tumour.objects.get().oncotree_code == oncotree


def test_fhir_dates_keep_their_precision():
    assert fhir_import.fhir_date("2019", "x") == ("2019-01-01", "year")
    assert fhir_import.fhir_date("2019-03", "x") == ("2019-03-01", "month")
    assert fhir_import.fhir_date("2019-03-14T10:00:00+01:00", "x") == ("2019-03-14", "day")
    with pytest.raises(fhir_import.BundleError):
        fhir_import.fhir_date("2019-02-30", "x")


def test_imported_dates_obey_the_rules_of_hand_entry(alice_client):
    future = str(timezone.localdate().year + 1)
    oncotree = {"system": "http://oncotree.mskcc.org", "code": "LUAD"}
    bundle = fhir_bundle(
        fhir_patient(), fhir_primary(coding=oncotree, onset=future), fhir_ecog("o1", 1, "1950")
    )
    preview = preview_of(paste(alice_client, bundle))
    response = alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "laterality_t2": "right"},
    )
    assert response.status_code == 400
    text = response.content.decode()
    # Shown at their precision, never padded to a day.
    assert f"Condition/c1: the date {future} is in the future." in text
    assert "Observation/o1: the date 1950 is before the year of birth." in text
    assert not Case.objects.exists()


def test_a_learned_answer_that_is_no_tumour_type_is_refused(alice_client, alice, practice_a):
    CodeMapping.objects.create(
        practice=practice_a,
        source_system="http://snomed.info/sct",
        source_code="353431000119107",
        source_version="http://snomed.info/sct/900000000000207008",
        target_system="oncotree",
        target_code="BREAST",  # a tissue: not a diagnosis
        mapped_by=alice,
        mapped_at=timezone.now(),
    )
    preview = jenny_preview(alice_client)
    response = alice_client.post(
        reverse("fhir_preview", kwargs={"pk": preview.pk}),
        {**header(), "laterality_t26": "left", **JENNY_THERAPY},
    )
    assert response.status_code == 400
    assert "Change it on the code map page" in response.content.decode()
    assert not Case.objects.exists()
