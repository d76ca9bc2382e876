"""Mutated example bundles never give a 500 and never leave a partial case: an upload is
refused with a message or previewed; a confirmation creates the whole case or nothing."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checklist import fhir_import
from checklist.models import (
    AdverseEvent,
    Biomarker,
    Case,
    Comorbidity,
    GenomicVariant,
    ImmuneFinding,
    Metastasis,
    PerformanceStatus,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from tests.factories import JENNY_M_COLLECTION, MCODE_EXAMPLES

pytestmark = pytest.mark.usefixtures("codelists")


def _base() -> dict[str, Any]:
    bundle = json.loads(JENNY_M_COLLECTION.read_text())
    brain = json.loads(
        (
            MCODE_EXAMPLES / "example" / "Condition-secondary-cancer-condition-brain-mets.json"
        ).read_text()
    )
    brain["subject"] = {"reference": "Patient/cancer-patient-jenny-m"}
    bundle["entry"].append({"fullUrl": "urn:uuid:brain", "resource": brain})
    subject = {"reference": "Patient/cancer-patient-jenny-m"}
    bundle["entry"] += [
        {
            "fullUrl": "urn:uuid:ae",
            "resource": {
                "resourceType": "AdverseEvent",
                "id": "ae",
                "actuality": "actual",
                "subject": subject,
                "event": {"text": "Neutropenia"},
                "date": "2018-05-01",
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/us/ctcae/StructureDefinition/ctcae-grade",
                        "valueCodeableConcept": {"coding": [{"code": "C41340"}]},
                    }
                ],
                "suspectEntity": [
                    {
                        "instance": {
                            "reference": "MedicationRequest/"
                            "cancer-related-medication-request-doxorubicin-jenny-m"
                        }
                    }
                ],
            },
        },
        {
            "fullUrl": "urn:uuid:leu",
            "resource": {
                "resourceType": "Observation",
                "id": "leu",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
                "subject": subject,
                "effectiveDateTime": "2018-05-01",
                "valueQuantity": {"value": 3900, "code": "/uL"},
            },
        },
    ]
    # Only the resources the import maps or checks, to keep each example quick.
    kinds = {"Patient", "Condition", "MedicationRequest", "Procedure", "AdverseEvent"}
    bundle["entry"] = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in kinds
        or any(
            part in e["resource"].get("id", "")
            for part in ("tnm", "ecog", "comorbid", "tumor-marker", "genomic-variant", "leu")
        )
    ]
    return bundle


BASE = _base()
LABELS = itertools.count()

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(max_size=20),
    st.sampled_from(
        ["2019", "2019-03", "2019-13-40", "Patient/none", "urn:uuid:x", "Bundle", "", "\x00"]
    ),
    # Fresh objects: a later mutation may descend into them.
    st.builds(dict),
    st.builds(list),
    st.builds(lambda: {"reference": "Patient/other"}),
)


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    bundle = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node: Any = bundle
        for _depth in range(draw(st.integers(min_value=1, max_value=6))):
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
            elif isinstance(node, list) and node:
                key = draw(st.integers(min_value=0, max_value=len(node) - 1))
            else:
                break
            child = node[key]
            if not isinstance(child, dict | list) or draw(st.booleans()):
                if isinstance(node, dict) and draw(st.booleans()):
                    del node[key]
                else:
                    node[key] = draw(VALUES)
                break
            node = child
    return bundle


ROWS = (
    Tumour,
    StagingRecord,
    Metastasis,
    PerformanceStatus,
    Comorbidity,
    TherapyLine,
    AdverseEvent,
    Biomarker,
    GenomicVariant,
    ImmuneFinding,
)


def _answers(form: Any) -> dict[str, str]:
    answers = {"label": f"FZ-{next(LABELS)}", "year_of_birth": "1965", "sex": "female"}
    answers["situation"] = "first_diagnosis"
    for name, field in form.fields.items():
        if name.startswith("oq_"):
            label = str(field.label)
            answers[name] = (
                "IDC"
                if "OncoTree" in label
                else "CH"
                if "Therapy type" in label
                else "Colitis"
                if "Adverse-event term" in label
                else "BRA"
            )
        elif name.startswith(("line_", "ownline_")):
            answers[name] = "1"
        elif name.startswith("episode_"):
            answers[name] = form.initial.get(name) or "skip"
        elif name.startswith("grade_"):
            answers[name] = form.initial.get(name) or "U"
        elif name.startswith("laterality_"):
            answers[name] = "left"
        elif name.startswith("timing_"):
            answers[name] = "synchronous"
        elif name.startswith("detected_"):
            answers[name] = "2020"
    return answers


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bundle=mutated())
def test_mutated_bundles_never_give_a_500_or_a_partial_case(alice_client, bundle):
    before = {model: model.objects.count() for model in (Case, *ROWS)}
    raw = json.dumps(bundle).encode()
    response = alice_client.post(
        "/import/fhir/", {"bundle_file": SimpleUploadedFile("b.json", raw)}
    )
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert response.context["form"].non_field_errors()
        return
    page = alice_client.get(response.url)
    assert page.status_code == 200
    mapped = page.context["mapped"]
    confirm = alice_client.post(response.url, _answers(page.context["form"]))
    assert confirm.status_code in (302, 400)
    after = {model: model.objects.count() for model in (Case, *ROWS)}
    if confirm.status_code == 400:
        assert after == before
        return
    case = Case.objects.get(pk=int(confirm.url.strip("/").split("/")[-1]))
    assert after[Case] == before[Case] + 1
    assert Tumour.objects.filter(case=case).count() == len(mapped["tumours"])
    assert Metastasis.objects.filter(case=case).count() == len(mapped["metastases"])
    assert PerformanceStatus.objects.filter(case=case).count() == len(mapped["performance"])
    assert Comorbidity.objects.filter(case=case).count() == len(mapped["comorbidities"])
    assert AdverseEvent.objects.filter(case=case).count() == len(mapped["adverse_events"])
    assert Biomarker.objects.filter(case=case).count() == len(mapped["biomarkers"])
    assert GenomicVariant.objects.filter(case=case).count() == len(mapped["genomic_variants"])
    assert ImmuneFinding.objects.filter(case=case).count() == len(mapped["findings"])
    systemic = {e["key"] for e in mapped["episodes"] if e["kind"] == "systemic"}
    assert TherapyLine.objects.filter(case=case).count() == len(mapped["episodes"])
    assert TherapyLine.objects.filter(case=case, kind="systemic").count() == len(systemic)


@settings(max_examples=300, deadline=None)
@given(bundle=mutated())
def test_reading_and_mapping_raise_nothing_but_a_bundle_error(bundle):
    """The pure part, with many more examples: a mutated bundle is mapped or refused with a
    message, and what is mapped is JSON that PostgreSQL's jsonb accepts (no NUL)."""
    raw = json.dumps(bundle).encode()
    try:
        mapped = fhir_import.map_bundle(
            fhir_import.read_bundle(raw, max_bytes=10_000_000, max_entries=5000)
        )
    except fhir_import.BundleError as error:
        assert error.message
        return
    assert "\\u0000" not in json.dumps(mapped)
    assert mapped["tumours"]
