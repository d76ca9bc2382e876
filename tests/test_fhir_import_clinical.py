"""FHIR import, second part: therapies grouped into episodes, adverse events with grade,
tumour markers, genomic variants and laboratory findings; our own code systems; references
by contained id, urn:uuid and identifier; bad input of each kind.

Dates are built from `timezone.localdate()` where a form compares them with today.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from checklist import fhir_import
from checklist.fhir_codes import own_extension, own_system
from checklist.models import (
    AdverseEvent,
    Biomarker,
    Case,
    CodeMapping,
    FhirImportPreview,
    GenomicVariant,
    ImmuneFinding,
    TherapyLine,
)
from tests.factories import MCODE_EXAMPLES, fhir_bundle, fhir_patient, fhir_primary

pytestmark = pytest.mark.usefixtures("codelists")

IMPORT_URL = "/import/fhir/"
ONCOTREE = {"system": "http://oncotree.mskcc.org", "code": "LUAD"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SUBJECT = {"reference": "urn:uuid:p1"}
STU4_JSON = MCODE_EXAMPLES / "stu4_json"


def header(label: str = "LU-FHIR-1") -> dict[str, str]:
    return {"label": label, "year_of_birth": "1961", "sex": "female", "situation": "recurrence"}


def preview_of(client, *resources: dict[str, Any]) -> FhirImportPreview:
    bundle = fhir_bundle(fhir_patient(), fhir_primary(coding=ONCOTREE), *resources)
    response = client.post(IMPORT_URL, {"bundle_text": json.dumps(bundle)})
    assert response.status_code == 302, response.context["form"].errors
    return FhirImportPreview.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[1])


def defaults(preview: FhirImportPreview) -> dict[str, str]:
    """The form as the preview proposes it: each resource in its episode, each grade as read,
    laterality as read (the physician then types what the proposal leaves open)."""
    data = preview.data
    values = {f"laterality_{t['key']}": t["laterality"] for t in data["tumours"]}
    values |= {f"episode_{i['key']}": i["episode"] for i in data["therapy_items"]}
    values |= {f"grade_{e['key']}": e["grade"] for e in data["adverse_events"]}
    values |= {
        f"position_{e['key']}": e["position"] for e in data["episodes"] if e["kind"] == "systemic"
    }
    return values


def confirm(client, preview: FhirImportPreview, **answers: str):
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    return client.post(url, {**header(), **defaults(preview), **answers})


def question_key(preview: FhirImportPreview, code: str) -> str:
    found = [q["key"] for q in fhir_import.questions(preview.data) if q["code"] == code]
    assert len(found) == 1, fhir_import.questions(preview.data)
    return f"oq_{found[0]}"


def medication(
    kind: str, rid: str, code: str, name: str, when: str, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": kind,
        "id": rid,
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": name}]
        },
        "subject": SUBJECT,
    }
    if kind == "MedicationRequest":
        resource |= {"intent": "order", "authoredOn": when}
    else:
        resource["effectiveDateTime"] = when
    return resource | extra


def period(resource: dict[str, Any], start: str, end: str) -> dict[str, Any]:
    resource.pop("effectiveDateTime", None)
    return resource | {"effectivePeriod": {"start": start, "end": end}}


def lab(rid: str, code: str, value: Any, unit: str, when: str = "2019-05-02", **extra: Any):
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": unit},
    }
    return resource | extra


def items_of(preview: FhirImportPreview) -> dict[str, dict[str, Any]]:
    return {i["source"]: i for i in preview.data["therapy_items"]}


def episode_of(preview: FhirImportPreview, source: str) -> dict[str, Any]:
    key = items_of(preview)[source]["episode"]
    return next(e for e in preview.data["episodes"] if e["key"] == key)


# --- therapies ------------------------------------------------------------------------------


def test_medications_given_become_one_episode_per_shared_reference(alice_client):
    plan = {"reference": "CarePlan/folfox-plan"}  # not in the bundle: a shared reference still
    preview = preview_of(
        alice_client,
        medication("MedicationAdministration", "ma1", "32592", "oxaliplatin", "2019-05-02")
        | {"partOf": [plan]},
        medication("MedicationAdministration", "ma2", "4492", "fluorouracil", "2019-05-20")
        | {"partOf": [plan]},
        medication("MedicationStatement", "ms1", "1546356", "dabrafenib", "2020-01-10")
        | {"status": "active"},
    )
    folfox = episode_of(preview, "MedicationAdministration/ma1")
    assert folfox == episode_of(preview, "MedicationAdministration/ma2")
    assert folfox["grouped_by"] == ["shared reference CarePlan/folfox-plan"]
    alone = episode_of(preview, "MedicationStatement/ms1")
    assert alone["grouped_by"] == ["one resource"] and alone["key"] != folfox["key"]
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk})).content.decode()
    assert "grouped by" in page and "shared reference CarePlan/folfox-plan" in page

    response = confirm(
        alice_client,
        preview,
        **{
            question_key(preview, "32592"): "CH",
            question_key(preview, "4492"): "CH",
            question_key(preview, "1546356"): "ZS",
            f"line_{folfox['key']}": "1",
            f"line_{alone['key']}": "2",
            f"position_{folfox['key']}": "first_advanced",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    first, second = TherapyLine.objects.order_by("number")
    assert (first.number, first.agents, first.types, first.position) == (
        1,
        ["oxaliplatin", "fluorouracil"],
        ["CH"],
        "first_advanced",
    )
    assert (first.started_on, first.ended_on, first.ongoing) == (
        date(2019, 5, 2),
        None,
        False,
    )
    assert (second.number, second.agents, second.ongoing) == (2, ["dabrafenib"], True)
    # The answers are remembered: the next import asks no therapy type for these codes.
    assert set(
        CodeMapping.objects.filter(target_system="mii:therapie-typ").values_list(
            "source_code", "target_code"
        )
    ) == {("32592", "CH"), ("4492", "CH"), ("1546356", "ZS")}
    again = preview_of(
        alice_client, medication("MedicationStatement", "x", "4492", "5-FU", "2021-01-01")
    )
    learned = fhir_import.resolve(again.data, practice_id=first.practice_id)
    assert [(q["code"], q["answer"], q["learned"]) for q in fhir_import.questions(learned)] == [
        ("4492", "CH", True)
    ]


def test_overlapping_periods_are_one_episode_and_the_physician_can_regroup(alice_client):
    preview = preview_of(
        alice_client,
        period(
            medication("MedicationStatement", "carbo", "40048", "carboplatin", ""),
            "2019-06-01",
            "2019-09-01",
        ),
        period(
            medication("MedicationStatement", "pem", "68446", "pemetrexed", ""),
            "2019-08",
            "2020-02",
        ),
    )
    joined = episode_of(preview, "MedicationStatement/carbo")
    assert joined == episode_of(preview, "MedicationStatement/pem")
    assert joined["grouped_by"] == ["overlapping period"]
    pem = items_of(preview)["MedicationStatement/pem"]
    assert (pem["start"], pem["start_precision"], pem["end_precision"]) == (
        "2019-08-01",
        "month",
        "month",
    )
    types = {question_key(preview, "40048"): "CH", question_key(preview, "68446"): "CH"}
    # Without its line number the systemic episode is refused; nothing is written.
    refused = confirm(alice_client, preview, **types)
    assert refused.status_code == 400
    assert "A systemic line needs its line number." in refused.content.decode()
    assert not Case.objects.exists()
    # The physician splits pemetrexed off as its own (maintenance) line.
    response = confirm(
        alice_client,
        preview,
        **types,
        **{
            f"line_{joined['key']}": "1",
            f"episode_{pem['key']}": "own",
            f"ownline_{pem['key']}": "2",
        },
    )
    assert response.status_code == 302
    lines = TherapyLine.objects.order_by("number")
    assert [(t.number, t.agents) for t in lines] == [(1, ["carboplatin"]), (2, ["pemetrexed"])]
    assert (lines[1].started_on, lines[1].started_on_precision) == (date(2019, 8, 1), "month")
    assert (lines[1].ended_on, lines[1].ended_on_precision) == (date(2020, 2, 1), "month")


def test_plans_proposals_care_plans_and_service_requests_are_never_therapy(alice_client):
    preview = preview_of(
        alice_client,
        medication("MedicationRequest", "plan", "3639", "doxorubicin", "2019-05-01")
        | {"intent": "plan", "status": "active"},
        medication("MedicationRequest", "prop", "3002", "cyclophosphamide", "2019-05-01")
        | {"intent": "proposal", "status": "active"},
        medication("MedicationAdministration", "nd", "3002", "cyclophosphamide", "2019-05-01")
        | {"status": "not-done"},
        {
            "resourceType": "CarePlan",
            "id": "cp",
            "status": "active",
            "intent": "plan",
            "subject": SUBJECT,
        },
        {
            "resourceType": "ServiceRequest",
            "id": "sr",
            "status": "active",
            "intent": "order",
            "subject": SUBJECT,
            "code": {"text": "Radiotherapy of the brain"},
        },
    )
    assert preview.data["therapy_items"] == [] and preview.data["episodes"] == []
    skipped = {row["source"]: row for row in preview.data["not_imported"]}
    assert "a plan or proposal (intent “plan”)" in skipped["MedicationRequest/plan"]["reason"]
    assert skipped["MedicationRequest/plan"]["text"] == "doxorubicin · 2019-05-01"
    assert "intent “proposal”" in skipped["MedicationRequest/prop"]["reason"]
    assert "status “not-done”" in skipped["MedicationAdministration/nd"]["reason"]
    assert "not a therapy given" in skipped["CarePlan/cp"]["reason"]
    assert skipped["ServiceRequest/sr"]["text"] == "Radiotherapy of the brain"
    assert confirm(alice_client, preview).status_code == 302
    assert not TherapyLine.objects.exists()


def test_procedures_become_surgery_and_radiotherapy_episodes_with_end_reason(alice_client):
    surgery = {
        "resourceType": "Procedure",
        "id": "lobectomy",
        "status": "completed",
        "category": {"coding": [{"system": "http://snomed.info/sct", "code": "387713003"}]},
        "code": {"text": "Lobectomy of lung"},
        "subject": SUBJECT,
        "performedDateTime": "2019-04-10",
    }
    radiotherapy = {
        "resourceType": "Procedure",
        "id": "rt",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-radiotherapy-course-summary"
            ]
        },
        "status": "stopped",
        "statusReason": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "407563006",
                    "display": "Treatment not tolerated (situation)",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1217123003"}]},
        "subject": SUBJECT,
        "performedPeriod": {"start": "2019-06-01", "end": "2019-06-20"},
    }
    biopsy = {
        "resourceType": "Procedure",
        "id": "biopsy",
        "status": "completed",
        "code": {"text": "Bronchoscopic biopsy"},
        "subject": SUBJECT,
        "performedDateTime": "2019-03-01",
    }
    preview = preview_of(alice_client, surgery, radiotherapy, biopsy)
    response = confirm(alice_client, preview)
    assert response.status_code == 302, response.content.decode()[:3000]
    op, rt = TherapyLine.objects.order_by("started_on")
    assert (op.kind, op.number, op.types, op.regimen) == (
        "surgery",
        None,
        ["OP"],
        "Lobectomy of lung",
    )
    assert (rt.kind, rt.types, rt.end_reason, rt.ended_on) == (
        "radiotherapy",
        ["ST"],
        "A",
        date(2019, 6, 20),
    )
    skipped = {row["source"]: row for row in preview.data["not_imported"]}
    assert (
        "no profile or category marks as surgery or radiotherapy"
        in (skipped["Procedure/biopsy"]["reason"])
    )


def test_our_own_code_systems_map_without_a_question(alice_client):
    def own(name: str, code: str) -> dict[str, Any]:
        return {"coding": [{"system": own_system(name), "code": code}]}

    statement = medication("MedicationStatement", "ms", "12345", "an agent", "2019-05-02") | {
        "category": own("therapyline.types", "IM"),
        "status": "stopped",
        "statusReason": [own("therapyline.end_reason", "P")],
        "extension": [
            {"url": "urn:oncoboard:intent", "valueCodeableConcept": own("therapyline.intent", "P")},
            {
                "url": "urn:oncoboard:position",
                "valueCodeableConcept": own("therapyline.position", "first_advanced"),
            },
        ],
    }
    bad = medication("MedicationStatement", "bad", "555", "another agent", "2019-09-02") | {
        "category": own("therapyline.types", "XX")  # not a therapy type: asked
    }
    procedure = {
        "resourceType": "Procedure",
        "id": "pr",
        "status": "completed",
        "category": own("therapyline.kind", "intervention"),
        "code": {"text": "Radiofrequency ablation"},
        "subject": SUBJECT,
        "performedDateTime": "2019-07-01",
    }
    preview = preview_of(alice_client, statement, bad, procedure)
    resolved = fhir_import.resolve(preview.data, practice_id=0)
    assert [q["code"] for q in fhir_import.questions(resolved)] == ["555"]
    episode = episode_of(preview, "MedicationStatement/ms")
    response = confirm(
        alice_client,
        preview,
        **{
            question_key(preview, "555"): "CH",
            f"line_{episode['key']}": "1",
            f"line_{episode_of(preview, 'MedicationStatement/bad')['key']}": "2",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    first = TherapyLine.objects.get(number=1)
    assert (first.types, first.intent, first.end_reason, first.position) == (
        ["IM"],
        "P",
        "P",
        "first_advanced",
    )
    assert TherapyLine.objects.get(number=2).types == ["CH"]
    assert TherapyLine.objects.get(kind="intervention").types == []


def test_our_own_line_number_is_proposed_and_the_physician_may_change_it(alice_client):
    """Our export's line number fills the preview's field; a bundle without it leaves the field
    empty (never guessed, e.g. from the order of the lines); the number confirmed is the one
    in the form."""
    own_type = {"coding": [{"system": own_system("therapyline.types"), "code": "CH"}]}
    numbered = medication("MedicationStatement", "a", "1", "agent a", "2019-02-01") | {
        "category": own_type,
        "extension": [{"url": own_extension("therapyline.number"), "valueInteger": 3}],
    }
    plain = medication("MedicationStatement", "b", "2", "agent b", "2020-02-01") | {
        "category": own_type
    }
    preview = preview_of(alice_client, numbered, plain)
    first = episode_of(preview, "MedicationStatement/a")["key"]
    second = episode_of(preview, "MedicationStatement/b")["key"]
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    form = page.context["form"]
    assert (form[f"line_{first}"].value(), form[f"line_{second}"].value()) == (3, None)
    assert 'value="3"' in str(form[f"line_{first}"])
    response = confirm(alice_client, preview, **{f"line_{first}": "4", f"line_{second}": "5"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sorted(TherapyLine.objects.values_list("agents", "number")) == [
        (["agent a"], 4),
        (["agent b"], 5),
    ]


def test_contained_identifier_and_urn_uuid_references_are_followed(alice_client):
    request = medication("MedicationRequest", "rq", "0", "x", "2019-05-02") | {
        "identifier": [{"system": "urn:orders", "value": "ORD-1"}],
        "status": "completed",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"coding": [{"system": RXNORM, "code": "1597582", "display": "nivolumab"}]},
            }
        ],
        "medicationReference": {"reference": "#med"},
    }
    del request["medicationCodeableConcept"]
    administration = medication(
        "MedicationAdministration", "ad", "1597582", "nivolumab", "2019-07-30"
    ) | {"request": {"identifier": {"system": "urn:orders", "value": "ORD-1"}}}
    preview = preview_of(alice_client, request, administration)
    items = items_of(preview)
    assert items["MedicationRequest/rq"]["text"] == "nivolumab"
    episode = episode_of(preview, "MedicationRequest/rq")
    assert episode == episode_of(preview, "MedicationAdministration/ad")
    assert episode["grouped_by"] == ["shared reference MedicationRequest/rq"]
    # The identifier served the lookup only; it is not kept.
    assert "ORD-1" not in json.dumps(preview.data)


def test_dangling_references_and_cycles_give_a_message_not_a_500(alice_client):
    dangling = medication("MedicationAdministration", "ma", "0", "x", "2019-05-02") | {
        "medicationReference": {"reference": "Medication/nowhere"}
    }
    del dangling["medicationCodeableConcept"]
    first = medication("MedicationAdministration", "a", "3639", "doxorubicin", "2019-05-02")
    second = medication("MedicationAdministration", "b", "3002", "cyclophosphamide", "2019-06-02")
    first["partOf"] = [{"reference": "MedicationAdministration/b"}]
    second["partOf"] = [{"reference": "MedicationAdministration/a"}]
    preview = preview_of(alice_client, dangling, first, second)
    skipped = {row["source"]: row for row in preview.data["not_imported"]}
    assert skipped["MedicationAdministration/ma"]["reason"].startswith(
        "MedicationAdministration/ma (entry 3), field medicationReference: the reference points"
        " to no resource in the bundle"
    )
    # The cycle is a shared reference like any other: one episode, no loop.
    assert episode_of(preview, "MedicationAdministration/a") == episode_of(
        preview, "MedicationAdministration/b"
    )
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    assert page.status_code == 200


# --- adverse events -------------------------------------------------------------------------


def adverse_event(aid: str, grade: str | None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": aid,
        "actuality": "actual",
        "subject": SUBJECT,
        "event": {"text": "Diarrhoea"},
        "date": "2019-05-20",
    }
    if grade:
        event["extension"] = [
            {
                "url": "http://hl7.org/fhir/us/ctcae/StructureDefinition/ctcae-grade",
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
                            "code": grade,
                            "version": "5.0",
                            "display": "Grade",
                        }
                    ]
                },
            }
        ]
    return event | extra


def test_an_adverse_event_keeps_its_grade_term_and_causative_episode(alice_client):
    given = medication("MedicationAdministration", "ipi", "1094833", "ipilimumab", "2019-05-02")
    event = adverse_event(
        "ae1",
        "C41340",  # grade 3
        suspectEntity=[{"instance": {"reference": "MedicationAdministration/ipi"}}],
    )
    coded = adverse_event("ae2", None) | {
        "event": {"coding": [{"system": "http://terminology.hl7.org/meddra", "code": "10012735"}]}
    }
    preview = preview_of(alice_client, given, event, coded)
    episode = episode_of(preview, "MedicationAdministration/ipi")
    term = question_key(preview, "10012735")
    response = confirm(
        alice_client,
        preview,
        **{
            question_key(preview, "1094833"): "IM",
            f"line_{episode['key']}": "1",
            term: "Colitis",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    diarrhoea = AdverseEvent.objects.get(term="Diarrhoea")
    assert (diarrhoea.grade, diarrhoea.ctcae_version, diarrhoea.onset_on) == (
        "3",
        "5.0",
        date(2019, 5, 20),
    )
    assert (
        diarrhoea.line == TherapyLine.objects.get() and diarrhoea.attributed_agent == "ipilimumab"
    )
    colitis = AdverseEvent.objects.get(term="Colitis")
    assert (colitis.grade, colitis.line) == ("U", None)
    assert CodeMapping.objects.get(target_system="adverseevent.term").target_code == "Colitis"


def test_a_grade_observation_about_an_adverse_event_gives_its_grade(alice_client):
    grade = {
        "resourceType": "Observation",
        "id": "g",
        "status": "final",
        "code": {"text": "CTCAE grade"},
        "subject": SUBJECT,
        "focus": [{"reference": "AdverseEvent/ae"}],
        "valueInteger": 2,
    }
    preview = preview_of(alice_client, adverse_event("ae", None), grade)
    assert [(e["grade"], e["source"]) for e in preview.data["adverse_events"]] == [
        ("2", "AdverseEvent/ae")
    ]
    assert all(row["source"] != "Observation/g" for row in preview.data["not_imported"])


def test_grade_5_without_a_date_of_death_is_asked_never_saved(alice_client):
    preview = preview_of(alice_client, adverse_event("ae", "C48275"))
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    assert "no date of death" in page.content.decode()
    assert page.context["form"].initial["grade_a3"] == ""  # not proposed
    refused = confirm(alice_client, preview)  # grade 5 as read
    assert refused.status_code == 400
    assert "Grade 5 means death, and the bundle gives no date of death" in (
        refused.content.decode()
    )
    assert not Case.objects.exists() and not AdverseEvent.objects.exists()
    assert confirm(alice_client, preview, grade_a3="4").status_code == 302
    assert AdverseEvent.objects.get().grade == "4"


def test_grade_5_with_the_date_of_death_is_imported(alice_client):
    died = fhir_patient() | {"deceasedDateTime": "2020-02-03"}
    bundle = fhir_bundle(died, fhir_primary(coding=ONCOTREE), adverse_event("ae", "C48275"))
    response = alice_client.post(IMPORT_URL, {"bundle_text": json.dumps(bundle)})
    preview = FhirImportPreview.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[1])
    assert confirm(alice_client, preview).status_code == 302
    assert AdverseEvent.objects.get().grade == "5"
    assert Case.objects.get().deceased_on == date(2020, 2, 3)


# --- tumour markers, genomic variants, laboratory findings ----------------------------------


def test_tumour_markers_and_genomic_variants_become_biomarkers_and_variants(alice_client):
    cea = lab("cea", "2039-6", 12.5, "ng/mL") | {
        "meta": {
            "profile": ["http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-marker-test"]
        }
    }
    variant = {
        "resourceType": "Observation",
        "id": "v",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "69548-6"}]},
        "subject": SUBJECT,
        "effectiveDateTime": "2019-04-01",
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://www.genenames.org",
                            "code": "HGNC:3236",
                            "display": "EGFR",
                        }
                    ]
                },
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "48004-6"}]},
                "valueCodeableConcept": {"text": "c.2573T>G"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "48005-3"}]},
                "valueCodeableConcept": {"text": "p.Leu858Arg and more"},  # not HGVS: quoted
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "81258-6"}]},
                "valueQuantity": {"value": 0.31, "code": "1"},
            },
        ],
    }
    preview = preview_of(alice_client, cea, variant)
    assert confirm(alice_client, preview).status_code == 302
    marker = Biomarker.objects.get()
    assert (marker.name, marker.kind, marker.value, marker.unit) == (
        "CEA",
        "circulating",
        Decimal("12.5"),
        "ng/mL",
    )
    found = GenomicVariant.objects.get()
    assert (found.gene, found.hgvs_c, found.hgvs_p, found.vaf) == (
        "EGFR",
        "c.2573T>G",
        "",
        Decimal("31.00"),
    )
    assert "“p.Leu858Arg and more” (not read as HGVS p.)" in found.comment


def test_laboratory_values_are_converted_and_unknown_units_refused(alice_client):
    preview = preview_of(
        alice_client,
        lab("leu", "6690-2", 4200, "/uL"),
        lab("neu", "751-8", 2.5, "10*9/L"),
        lab("igg", "2465-3", 650, "mg/dL"),
        lab("lym", "731-0", 1.1, "10*9/mL"),  # unknown unit
        lab("dna", "29615-2", 20, "[IU]/mL")
        | {"valueQuantity": {"value": 20, "comparator": "<", "code": "[IU]/mL"}},
        {
            "resourceType": "Observation",
            "id": "hbs",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "5196-1"}]},
            "subject": SUBJECT,
            "effectiveDateTime": "2019-05-02",
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6577-6"}]},
        },
    )
    skipped = {row["source"]: row for row in preview.data["not_imported"]}
    assert skipped["Observation/lym"]["reason"] == (
        "Observation/lym, field valueQuantity.code: the unit “10*9/mL” is not known for"
        " lymphocytes (10⁹/L); not imported"
    )
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk})).content.decode()
    assert "Observation/leu" in page and "not known for" in page
    assert confirm(alice_client, preview).status_code == 302
    finding = ImmuneFinding.objects.get()
    assert (finding.leukocytes, finding.leukocytes_lab_value, finding.leukocytes_lab_unit) == (
        Decimal("4.200"),
        Decimal("4200"),
        "/uL",
    )
    assert (finding.neutrophils, finding.igg, finding.hbsag) == (
        Decimal("2.500"),
        Decimal("6.50"),
        "negative",
    )
    assert (finding.hbv_dna_qualifier, finding.hbv_dna, finding.lymphocytes) == (
        "<",
        Decimal("20.0"),
        None,
    )
    assert finding.assessed_on == date(2019, 5, 2)


def test_cd4_and_hcv_by_loinc_are_findings_and_a_negative_cd4_is_refused(alice_client):
    """Another producer's CD4 count (cells/µL) and HCV antibody, by LOINC; a negative CD4
    count is listed with its resource and field, never stored (the column holds none)."""
    preview = preview_of(
        alice_client,
        lab("cd4", "24467-3", 412.4, "/uL"),
        lab("neg", "24467-3", -5, "/uL", "2019-06-01"),
        {
            "resourceType": "Observation",
            "id": "hcv",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "16128-1"}]},
            "subject": SUBJECT,
            "effectiveDateTime": "2019-05-02",
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6576-8"}]},
        },
    )
    skipped = {row["source"]: row["reason"] for row in preview.data["not_imported"]}
    assert "not plausible for CD4" in skipped["Observation/neg"]
    assert confirm(alice_client, preview).status_code == 302
    finding = ImmuneFinding.objects.get()
    assert (finding.cd4, finding.hcv, finding.assessed_on) == (412, "positive", date(2019, 5, 2))


# --- the hand-translated STU4 examples ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Bundle-stu4-jenny-m-therapy.json",
        "Bundle-stu4-john-anyperson-genomics.json",
    ],
)
def test_the_hand_translated_stu4_examples_import(alice_client, name):
    raw = (STU4_JSON / name).read_bytes()
    response = alice_client.post(IMPORT_URL, {"bundle_file": _upload(name, raw)})
    assert response.status_code == 302, response.content.decode()[:3000]
    preview = FhirImportPreview.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[1])
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    assert page.status_code == 200
    answers = {}
    for field in page.context["form"].fields:
        if field.startswith("oq_"):
            question = next(q for q in page.context["questions"] if f"oq_{q['key']}" == field)
            oncotree = "IDC" if "therapy" in name else "LUAD"
            answers[field] = oncotree if question["target"] == "oncotree" else "CH"
        elif field.startswith("line_"):
            answers[field] = str(len(answers) + 1)
    response = confirm(alice_client, preview, **answers)
    assert response.status_code == 302, response.content.decode()[:3000]
    case = Case.objects.get()
    if "therapy" in name:
        kinds = sorted(TherapyLine.objects.filter(case=case).values_list("kind", flat=True))
        assert kinds == ["radiotherapy", "surgery", "systemic", "systemic", "systemic"]
        assert ImmuneFinding.objects.get(case=case).haemoglobin == Decimal("13.50")
    else:
        genes = sorted(GenomicVariant.objects.filter(case=case).values_list("gene", flat=True))
        assert genes == ["BRCA1", "STK11"]
        stk11 = GenomicVariant.objects.get(gene="STK11")
        assert (stk11.transcript, stk11.hgvs_c, stk11.hgvs_p, stk11.origin) == (
            "NM_000455.5",
            "c.725G>A",
            "p.Gly242Glu",
            "somatic",
        )
        stopped = TherapyLine.objects.get(
            case=case, agents__contains=["cisplatin 1 MG/ML Injectable Solution"]
        )
        assert stopped.end_reason == "A"


def _upload(name: str, raw: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, raw)


# --- the confirmation's queries ----------------------------------------------------------


@pytest.mark.parametrize("n", [1, 6])
def test_the_confirmation_needs_the_same_queries_for_1_and_6_rows_of_each_new_kind(
    alice_client, django_assert_num_queries, n
):
    own_type = {"coding": [{"system": own_system("therapyline.types"), "code": "CH"}]}
    resources: list[dict[str, Any]] = []
    for i in range(n):
        day = f"2019-{i + 1:02d}-03"
        resources += [
            medication("MedicationStatement", f"m{i}", f"10{i}", f"agent {i}", day)
            | {"category": own_type},
            {
                "resourceType": "Procedure",
                "id": f"proc{i}",
                "status": "completed",
                "category": {"coding": [{"system": "http://snomed.info/sct", "code": "387713003"}]},
                "code": {"text": f"resection {i}"},
                "subject": SUBJECT,
                "performedDateTime": day,
            },
            adverse_event(f"a{i}", "C41339")
            | {"suspectEntity": [{"instance": {"reference": f"MedicationStatement/m{i}"}}]},
            lab(f"cea{i}", "2039-6", 3 + i, "ng/mL", day),
            lab(f"leu{i}", "6690-2", 4000 + i, "/uL", day),
            {
                "resourceType": "Observation",
                "id": f"v{i}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "69548-6"}]},
                "subject": SUBJECT,
                "effectiveDateTime": day,
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                        "valueCodeableConcept": {"text": "KRAS"},
                    }
                ],
            },
        ]
    preview = preview_of(alice_client, *resources)
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    lines = {
        f"line_{e['key']}": str(number)
        for number, e in enumerate(preview.data["episodes"], start=1)
        if e["kind"] == "systemic"
    }
    answers = {**header(), **defaults(preview), **lines}
    # 1 session, 2 user, 3 second-factor device, 4 memberships, 5 the preview, 6 the codes
    # the preview names (direct OncoTree codes, sites, TNM lists, therapy lists), 7 the
    # OncoTree answers (form clean), 8 savepoint, 9 audit context, 10 the preview locked,
    # 11 label check, 12 case, 13 tumours, 14 therapy episodes, 15 adverse events,
    # 16 biomarkers, 17 genomic variants, 18 laboratory findings, 19 the preview deleted,
    # 20 the access event, 21 release. (No code question: the learned map is not read.)
    with django_assert_num_queries(21):
        response = alice_client.post(url, answers)
    assert response.status_code == 302, response.context["form"].errors
    assert TherapyLine.objects.count() == 2 * n and AdverseEvent.objects.count() == n
    assert AdverseEvent.objects.filter(line__kind="systemic").count() == n
    assert Biomarker.objects.count() == n and GenomicVariant.objects.count() == n
    assert ImmuneFinding.objects.count() == n


def test_our_own_codes_of_the_case_tumour_metastasis_staging_and_ecog_map_directly(
    alice_client,
):
    def own(name: str, code: str) -> dict[str, Any]:
        return {"coding": [{"system": own_system(name), "code": code}]}

    primary = fhir_primary(coding=ONCOTREE) | {
        "bodySite": [
            {
                "extension": [
                    {
                        "url": "urn:oncoboard:laterality",
                        "valueCodeableConcept": own("tumour.laterality", "right"),
                    }
                ],
                "text": "lung",
            }
        ]
    }
    metastasis = {
        "resourceType": "Condition",
        "id": "met",
        "code": {"text": "a metastasis"},
        "bodySite": [
            {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "12738006"},
                    {"system": own_system("metastasis.site"), "code": "BRA"},
                ]
            }
        ],
        "extension": [
            {
                "url": "urn:oncoboard:timing",
                "valueCodeableConcept": own("metastasis.timing", "metachronous"),
            }
        ],
        "subject": SUBJECT,
        "onsetDateTime": "2020-01-05",
    }
    t_category = {
        "resourceType": "Observation",
        "id": "t",
        "status": "final",
        "code": own("stagingrecord.t_category", "T"),
        "subject": SUBJECT,
        "effectiveDateTime": "2019-03-20",
        "valueCodeableConcept": own("stagingrecord.t_category", "1a"),
        "extension": [
            {
                "url": "urn:oncoboard:kind",
                "valueCodeableConcept": own("stagingrecord.kind", "pathological"),
            }
        ],
    }
    ecog = {
        "resourceType": "Observation",
        "id": "e",
        "status": "final",
        "code": own("performancestatus.ecog", "ECOG"),
        "subject": SUBJECT,
        "effectiveDateTime": "2019-03-21",
        "valueInteger": 2,
    }
    patient = fhir_patient() | {
        "extension": [
            {
                "url": "urn:oncoboard:situation",
                "valueCodeableConcept": own("case.situation", "metastatic_progression"),
            }
        ]
    }
    bundle = fhir_bundle(patient, primary, metastasis, t_category, ecog)
    response = alice_client.post(IMPORT_URL, {"bundle_text": json.dumps(bundle)})
    preview = FhirImportPreview.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[1])
    page = alice_client.get(reverse("fhir_preview", kwargs={"pk": preview.pk}))
    form = page.context["form"]
    assert [name for name in form.fields if name.startswith("oq_")] == []
    assert (
        form.initial["situation"] == "metastatic_progression"
        and form.initial["timing_m3"] == "metachronous"
    )
    assert preview.data["tumours"][0]["laterality"] == "right"
    url = reverse("fhir_preview", kwargs={"pk": preview.pk})
    answers = {
        **header(),
        **defaults(preview),
        "timing_m3": "metachronous",
        "situation": "metastatic_progression",
    }
    assert alice_client.post(url, answers).status_code == 302
    case = Case.objects.get()
    assert case.situation == "metastatic_progression"
    assert case.tumours.get().laterality == "right"
    assert case.metastases.get().site == "BRA"
    staging = case.staging_records.get()
    assert (staging.kind, staging.t_prefix, staging.t_category) == ("pathological", "p", "1a")
    assert case.performance.get().ecog == 2


def test_admins_edit_a_learned_adverse_event_term_as_text(alice_client, adam_client):
    coded = adverse_event("ae", None) | {
        "event": {"coding": [{"system": "http://terminology.hl7.org/meddra", "code": "10012735"}]}
    }
    preview = preview_of(alice_client, coded)
    answer = {question_key(preview, "10012735"): "Colitis"}
    assert confirm(alice_client, preview, **answer).status_code == 302
    mapping = CodeMapping.objects.get(target_system="adverseevent.term")
    page = adam_client.get(f"/code-map/{mapping.pk}/")
    assert page.status_code == 200 and 'value="Colitis"' in page.content.decode()
    edited = adam_client.post(f"/code-map/{mapping.pk}/", {"target_code": "Enterocolitis"})
    assert edited.status_code == 302
    mapping.refresh_from_db()
    assert mapping.target_code == "Enterocolitis"


def test_unresolved_identifier_references_group_without_showing_the_identifier(alice_client):
    order = {"identifier": {"system": "urn:orders", "value": "ORD-77"}}
    other = {"identifier": {"system": "urn:orders", "value": "ORD-78"}}
    preview = preview_of(
        alice_client,
        medication("MedicationAdministration", "a", "3639", "doxorubicin", "2019-05-02")
        | {"request": order},
        medication("MedicationAdministration", "b", "3639", "doxorubicin", "2019-06-02")
        | {"request": order},
        medication("MedicationAdministration", "c", "3639", "doxorubicin", "2019-07-02")
        | {"request": other},
    )
    shared = episode_of(preview, "MedicationAdministration/a")
    assert shared == episode_of(preview, "MedicationAdministration/b")
    assert shared != episode_of(preview, "MedicationAdministration/c")
    assert shared["grouped_by"] == [
        "shared reference (a reference by identifier, not in the bundle)"
    ]
    assert "ORD-7" not in json.dumps(preview.data)


def test_an_observation_part_of_a_therapy_gives_its_episode_response(alice_client, adam_client):
    given = medication("MedicationAdministration", "pem", "68446", "pemetrexed", "2019-05-02")
    status = {
        "resourceType": "Observation",
        "id": "ds",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
        "subject": SUBJECT,
        "partOf": [{"reference": "MedicationAdministration/pem"}],
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "268910001",
                    "display": "Patient's condition improved (finding)",
                }
            ]
        },
    }
    preview = preview_of(alice_client, given, status)
    assert [(r["source"], r["items"]) for r in preview.data["responses"]] == [
        ("Observation/ds", ["i3"])
    ]
    episode = episode_of(preview, "MedicationAdministration/pem")
    answers = {
        question_key(preview, "68446"): "CH",
        question_key(preview, "268910001"): "PR",
        f"line_{episode['key']}": "1",
    }
    assert confirm(alice_client, preview, **answers).status_code == 302
    assert TherapyLine.objects.get().response == "PR"
    learned = CodeMapping.objects.get(target_system="therapyline.response")
    assert (learned.source_code, learned.target_code) == ("268910001", "PR")
    # Admins change it with the response picker.
    assert 'value="CR"' in adam_client.get(f"/code-map/{learned.pk}/").content.decode()
    assert adam_client.post(f"/code-map/{learned.pk}/", {"target_code": "SD"}).status_code == 302
    # Our own response code needs no question.
    status["valueCodeableConcept"] = {
        "coding": [{"system": own_system("therapyline.response"), "code": "SD"}]
    }
    again = preview_of(alice_client, given, status)
    assert [r["response"] for r in again.data["responses"]] == ["SD"]
    assert all(q["target"] != "therapyline.response" for q in fhir_import.questions(again.data))


def test_a_period_ending_before_it_starts_keeps_its_start_only(alice_client):
    backwards = period(
        medication("MedicationStatement", "b", "40048", "carboplatin", ""),
        "2019-06-01",
        "2019-05-01",
    )
    preview = preview_of(alice_client, backwards)
    item = items_of(preview)["MedicationStatement/b"]
    assert (item["start"], item["end"]) == ("2019-06-01", None)
    skipped = {row["source"]: row for row in preview.data["not_imported"]}
    assert "the period ends before it starts" in skipped["MedicationStatement/b"]["reason"]
