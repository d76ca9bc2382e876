"""FHIR R4 export: a case as a Bundle of type collection, validated before it is served.

`case_bundle(record)` builds the bundle from a loaded `CaseRecord` (no query of its own beyond
the code labels the record reads once) and `validate` checks it: the `fhir.resources.R4B`
models (the package's top-level models are R5), every reference resolving inside the bundle,
and our own table of the required elements and fixed values of each mCODE STU4 profile a
resource claims. An invalid bundle raises `ExportInvalid`: a bug, caught by the tests.

What goes where:
- Every recorded field of an exported row reaches the bundle: in its FHIR element where FHIR
  has one (`HOMES` lists them), else as an extension of ours whose URL names the field
  (`own_extension("<model>.<field>")`) holding the value; a coded value is a coding of our own
  code system of that field (`own_system`). The importer reads both back.
- OncoTree codes use OncoTree's canonical FHIR system; ICD-10 (GM) and LOINC codes only where
  we have them. No SNOMED CT code: we cannot ship SNOMED's tables.
- `meta.profile` names an mCODE STU4 profile only where the resource conforms: the patient
  (US Core's name rule met by a name marked as masked) and ECOG/Karnofsky. The cancer
  conditions, TNM observations, procedures and the rest bind SNOMED CT (extensibly) or fix
  SNOMED codes, so they go as base R4 with our codings and text and claim nothing.
- The patient carries no name and no identifier but the case's pseudonymous label: it is the
  handle the receiving board and the sender share (the file name and the board note name it
  already), it is a pseudonym by the label's own rule, and US Core asks for one identifier.
- Never exported: checklist statuses and an episode's link to a catalogue category.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import translation

from checklist import hgvs
from checklist.fhir_codes import ROW_SYSTEM, own_extension, own_system
from checklist.models import (
    AE_NUMERIC_GRADES,
    Case,
    partial_date,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
HGVS = "http://varnomen.hgvs.org"
# OncoTree's canonical code system as MSK's FHIR rendering of the tree names it.
ONCOTREE_SYSTEM = "http://oncotree.mskcc.org/fhir/CodeSystem/snapshot"
ICD10_GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
ICD10_CODE = re.compile(r"^([A-Z][0-9]{2}(?:\.[0-9]{1,2})?)(?=\s|$)")
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DATA_ABSENT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
HISTOLOGY_EXTENSION = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"
)
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
CANCER_PATIENT = MCODE + "mcode-cancer-patient"
ECOG_PROFILE = MCODE + "mcode-ecog-performance-status"
KARNOFSKY_PROFILE = MCODE + "mcode-karnofsky-performance-status"
# The kind of case row a resource holds (code: the model's name), so that the importer tells
# our comorbidity from a primary tumour whatever its words say.
ROW = ROW_SYSTEM
# Which part of a staging record an observation holds: T, N, M, S (the stage group) or
# "record" (a record of another system, or none of the four).
STAGING_PART = own_system("stagingrecord.part")
NAMESPACE = uuid.UUID("3c5e0a8e-7d0b-4f55-9a43-0f1f6a2b9c11")

# LOINC codes of what we export (from LOINC's own table; no answer list of SNOMED codes).
TNM_LOINC = {
    ("clinical", "T"): ("21905-5", "Primary tumor.clinical [Class] Cancer"),
    ("clinical", "N"): ("21906-3", "Regional lymph nodes.clinical [Class] Cancer"),
    ("clinical", "M"): ("21907-1", "Distant metastases.clinical [Class] Cancer"),
    ("clinical", "S"): ("21908-9", "Stage group.clinical Cancer"),
    ("pathological", "T"): ("21899-0", "Primary tumor.pathology Cancer"),
    ("pathological", "N"): ("21900-6", "Regional lymph nodes.pathology Cancer"),
    ("pathological", "M"): ("21901-4", "Distant metastases.pathology Cancer"),
    ("pathological", "S"): ("21902-2", "Stage group.pathology Cancer"),
}
ECOG_ANSWERS = {0: "LA9622-7", 1: "LA9623-5", 2: "LA9624-3", 3: "LA9625-0", 4: "LA9626-8"}
KARNOFSKY_ANSWERS = {
    100: "LA29175-9",
    90: "LA29176-7",
    80: "LA29177-5",
    70: "LA29178-3",
    60: "LA29179-1",
    50: "LA29180-9",
    40: "LA29181-7",
    30: "LA29182-5",
    20: "LA29183-3",
    10: "LA29184-1",
}
# Laboratory values: field -> (LOINC code or None, name, UCUM unit)
LABS = {
    "immunefinding.leukocytes": ("6690-2", "Leukocytes [#/volume] in Blood", "10*9/L"),
    "immunefinding.neutrophils": ("751-8", "Neutrophils [#/volume] in Blood", "10*9/L"),
    "immunefinding.lymphocytes": ("731-0", "Lymphocytes [#/volume] in Blood", "10*9/L"),
    "immunefinding.platelets": ("777-3", "Platelets [#/volume] in Blood", "10*9/L"),
    "immunefinding.haemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "immunefinding.cd4": ("24467-3", "CD3+CD4+ (T4 helper) cells [#/volume] in Blood", "/uL"),
    "immunefinding.igg": ("2465-3", "IgG [Mass/volume] in Serum", "g/L"),
    "immunefinding.iga": ("2458-8", "IgA [Mass/volume] in Serum", "g/L"),
    "immunefinding.igm": ("2472-9", "IgM [Mass/volume] in Serum", "g/L"),
    "immunefinding.hbv_dna": (None, "HBV DNA", "[IU]/mL"),
    "organfunction.egfr": (None, "eGFR", "mL/min/{1.73_m2}"),
    "organfunction.bilirubin": ("1975-2", "Bilirubin.total [Mass/volume] in Serum", "mg/dL"),
    "organfunction.alt": ("1742-6", "ALT [Enzymatic activity/volume] in Serum", "U/L"),
    "organfunction.ast": ("1920-8", "AST [Enzymatic activity/volume] in Serum", "U/L"),
    "organfunction.lvef": ("10230-1", "Left ventricular Ejection fraction", "%"),
}
SEROLOGY = {
    "immunefinding.hiv": None,
    "immunefinding.hbsag": ("5196-1", "Hepatitis B virus surface Ag [Presence] in Serum"),
    "immunefinding.anti_hbc": ("16933-4", "Hepatitis B virus core Ab [Presence] in Serum"),
    "immunefinding.anti_hbs": ("16935-9", "Hepatitis B virus surface Ab [Presence] in Serum"),
    "immunefinding.hcv": ("16128-1", "Hepatitis C virus Ab [Presence] in Serum"),
}
SMOKING_LOINC = ("72166-2", "Tobacco smoking status")
VARIANT_LOINC = ("69548-6", "Genetic variant assessment")
TMB_LOINC = ("94076-7", "Mutations/Megabase [# Ratio] in Tumor")
MSI_LOINC = ("81695-9", "Microsatellite instability [Interpretation] in Cancer specimen")
GENE_LOINC = ("48018-6", "Gene studied [ID]")
HGVS_C_LOINC = ("48004-6", "DNA change (c.HGVS)")
HGVS_P_LOINC = ("48005-3", "Amino acid change (pHGVS)")
VAF_LOINC = ("81258-6", "Sample variant allelic frequency [NFr]")
ORIGIN_LOINC = ("48002-0", "Genomic source class [Type]")
ORIGIN_ANSWERS = {"germline": ("LA6683-2", "Germline"), "somatic": ("LA6684-0", "Somatic")}

GENDERS = {"female": "female", "male": "male", "diverse": "other", "unknown": "unknown"}
RELATIONS = {
    # relation -> (v3 RoleCode, maternal, paternal)
    "mother": ("MTH", "MTH", "MTH"),
    "father": ("FTH", "FTH", "FTH"),
    "sister": ("SIS", "SIS", "SIS"),
    "brother": ("BRO", "BRO", "BRO"),
    "daughter": ("DAU", "DAU", "DAU"),
    "son": ("SON", "SON", "SON"),
    "grandmother": ("GRMTH", "MGRMTH", "PGRMTH"),
    "grandfather": ("GRFTH", "MGRFTH", "PGRFTH"),
    "aunt": ("AUNT", "MAUNT", "PAUNT"),
    "uncle": ("UNCLE", "MUNCLE", "PUNCLE"),
    "niece": ("NIECE", "NIECE", "NIECE"),
    "nephew": ("NEPHEW", "NEPHEW", "NEPHEW"),
    "half_sister": ("HSIS", "HSIS", "HSIS"),
    "half_brother": ("HBRO", "HBRO", "HBRO"),
    "granddaughter": ("GRNDDAU", "GRNDDAU", "GRNDDAU"),
    "grandson": ("GRNDSON", "GRNDSON", "GRNDSON"),
}
AE_OUTCOMES = {
    "resolved": "resolved",
    "improved": "recovering",
    "persisting": "ongoing",
    "sequelae": "resolvedWithSequelae",
    "not_recorded": "unknown",
}

# Never in an export: a row's key, tenant and case, who changed it when (the audit trail
# keeps that), the case's lock counter, and an episode's catalogue link.
TECHNICAL = {"id", "practice", "case", "created_at", "created_by", "updated_at", "updated_by"}
NOT_EXPORTED = {"case.version", "therapyline.category"}

# Fields whose value is its FHIR element (the rest go as our extensions).
HOMES = {
    "case.label": "Patient.identifier",
    "case.year_of_birth": "Patient.birthDate",
    "case.sex": "Patient.gender",
    "case.deceased_on": "Patient.deceasedDateTime",
    "tumour.oncotree_code": "Condition.code.coding (OncoTree)",
    "tumour.oncotree_name": "Condition.code.coding.display",
    "tumour.oncotree_release": "Condition.code.coding.version",
    "tumour.diagnosed_on": "Condition.onsetDateTime",
    "tumour.histology": "Condition.extension (mCODE histology-morphology-behavior text)",
    "stagingrecord.tumour": "Observation.focus",
    "stagingrecord.staged_on": "Observation.effectiveDateTime",
    "stagingrecord.system": "Observation.method",
    "stagingrecord.tnm_edition": "Observation.method",
    "stagingrecord.t_category": "Observation.valueCodeableConcept (T)",
    "stagingrecord.n_category": "Observation.valueCodeableConcept (N)",
    "stagingrecord.m_category": "Observation.valueCodeableConcept (M)",
    "stagingrecord.uicc_stage": "Observation.valueCodeableConcept (stage group)",
    "metastasis.site": "Condition.bodySite",
    "metastasis.detected_on": "Condition.onsetDateTime",
    "biomarker.name": "Observation.code.text",
    "biomarker.sampled_on": "Observation.effectiveDateTime",
    "biomarker.method": "Observation.method",
    "biomarker.value": "Observation.valueQuantity.value",
    "biomarker.unit": "Observation.valueQuantity.unit",
    "therapyline.started_on": "effectivePeriod.start / performedPeriod.start",
    "therapyline.ended_on": "effectivePeriod.end / performedPeriod.end",
    "therapyline.end_reason": "statusReason",
    "adverseevent.term": "AdverseEvent.event.text",
    "adverseevent.onset_on": "AdverseEvent.date",
    "adverseevent.line": "AdverseEvent.suspectEntity.instance",
    "adverseevent.course": "AdverseEvent.outcome (and our coding)",
    "performancestatus.assessed_on": "Observation.effectiveDateTime",
    "performancestatus.ecog": "Observation.valueInteger (ECOG)",
    "performancestatus.karnofsky": "Observation.valueInteger (Karnofsky)",
    "immunefinding.assessed_on": "Observation.effectiveDateTime",
    "prophylaxis.agent": "MedicationStatement.medicationCodeableConcept.text",
    "prophylaxis.since": "MedicationStatement.effectivePeriod.start",
    "prophylaxis.until": "MedicationStatement.effectivePeriod.end",
    "vaccination.vaccine": "Immunization.vaccineCode.text",
    "vaccination.given_on": "Immunization.occurrenceDateTime",
    "vaccination.note": "Immunization.note",
    "comorbidity.name": "Condition.code.text",
    "comorbidity.since": "Condition.onsetDateTime",
    "comorbidity.note": "Condition.note",
    "organfunction.measured_on": "Observation.effectiveDateTime",
    "medication.name": "MedicationStatement.medicationCodeableConcept.text",
    "medication.dose": "MedicationStatement.dosage.text",
    "lifestyle.recorded_on": "Observation.effectiveDateTime",
    "lifestyle.smoking": "Observation.valueCodeableConcept",
    "therapyline.kind": "MedicationStatement.category / Procedure.category",
    "medication.kind": "MedicationStatement.category",
    "familyhistory.cancer_type": "FamilyMemberHistory.condition.code.text",
    "familyhistory.oncotree_code": "FamilyMemberHistory.condition.code.coding",
    "familyhistory.age_at_diagnosis": "FamilyMemberHistory.condition.onsetAge",
    "genomicvariant.gene": "Observation.component (48018-6)",
    "genomicvariant.hgvs_c": "Observation.component (48004-6)",
    "genomicvariant.hgvs_p": "Observation.component (48005-3)",
    "genomicvariant.vaf": "Observation.component (81258-6)",
    "genomicvariant.tmb": "Observation.valueQuantity (94076-7)",
    "genomicvariant.reported_on": "Observation.effectiveDateTime",
}
for _lab_key in list(LABS) + list(SEROLOGY):
    HOMES[_lab_key] = "Observation.value of its own observation"
for _lab_key in ("leukocytes", "neutrophils", "lymphocytes", "platelets", "haemoglobin"):
    for _suffix in ("_lab_value", "_lab_unit"):  # beside the converted value
        HOMES[f"immunefinding.{_lab_key}{_suffix}"] = "an extension of its own observation"


class ExportInvalid(Exception):
    """The bundle we built does not pass its own validation: a bug in this module."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- values ---------------------------------------------------------------------------------


def _key(obj: models.Model, name: str) -> str:
    return f"{obj._meta.model_name}.{name}"


def _date(obj: models.Model, name: str) -> str | None:
    """A recorded date at its precision: "2021", "2021-03" or "2021-03-20"."""
    value = partial_date(obj, name)
    return value.iso() if value is not None else None


def _number(value: Decimal | int) -> Decimal | int:
    return value.normalize() if isinstance(value, Decimal) else value


def coding(system: str, code: str, display: str = "", version: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {"system": system}
    if version:
        found["version"] = version
    found["code"] = str(code)
    if display:
        found["display"] = display
    return found


_LABELS: dict[tuple[str, str, str], dict[Any, str]] = {}


def _choice_label(model_field: Any, value: Any) -> str:
    """A choice's label in the active language (English in a bundle), read once per field."""
    if not model_field.choices:
        return ""
    key = (model_field.model._meta.label, model_field.name, translation.get_language() or "")
    if key not in _LABELS:
        _LABELS[key] = {code: str(label) for code, label in model_field.flatchoices}
    return _LABELS[key].get(value, str(value))


def own_coding(obj: models.Model, name: str, value: Any = None) -> dict[str, Any]:
    """Our coding of a coded field's value, with the English label as display."""
    model_field = obj._meta.get_field(name)
    value = getattr(obj, name) if value is None else value
    return coding(own_system(_key(obj, name)), str(value), _choice_label(model_field, value))


def own_concept(obj: models.Model, name: str, text: str = "") -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [own_coding(obj, name)]}
    if text:
        concept["text"] = text
    return concept


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def recorded_fields(model: type[models.Model]) -> list[Any]:
    """The fields of a row the export carries (concrete, not technical; a date's precision
    travels with its date)."""
    names = {f.name for f in model._meta.concrete_fields}
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in TECHNICAL
        and f"{model._meta.model_name}.{f.name}" not in NOT_EXPORTED
        and not (f.name.endswith("_precision") and f.name.removesuffix("_precision") in names)
    ]


def _extension_values(obj: models.Model, model_field: Any) -> list[dict[str, Any]]:
    """The value[x] of our extension(s) for one field (one per entry of a list)."""
    value = getattr(obj, model_field.name)
    key = _key(obj, model_field.name)
    if key in CODED_TEXT_FIELDS:  # codes of a shipped list the model keeps as text
        values = value if isinstance(value, list) else [value]
        return [{"valueCoding": coding(own_system(key), str(v))} for v in values]
    if isinstance(model_field, ArrayField):
        return [{"valueString": str(v)} for v in value]
    if model_field.choices:
        return [{"valueCoding": own_coding(obj, model_field.name)}]
    if isinstance(model_field, models.BooleanField):
        return [{"valueBoolean": bool(value)}]
    if isinstance(model_field, models.DateField):
        return [{"valueDateTime": _date(obj, model_field.name)}]
    if isinstance(model_field, models.DecimalField):
        return [{"valueDecimal": _number(value)}]
    if isinstance(model_field, models.IntegerField):
        return [{"valueInteger": int(value)}]
    return [{"valueString": str(value)}]


def field_extensions(obj: models.Model, name: str) -> list[dict[str, Any]]:
    """Our extension(s) holding the field `name` of `obj` (none when it is empty)."""
    if _is_empty(getattr(obj, name)):
        return []
    url = own_extension(_key(obj, name))
    return [{"url": url, **value} for value in _extension_values(obj, obj._meta.get_field(name))]


# Text fields that hold a code of a shipped list (not choices on the model).
CODED_TEXT_FIELDS = {
    "therapyline.types",
    "therapyline.intent",
    "therapyline.end_reason",
    "metastasis.site",
}


def extras(obj: models.Model, *, homed: Collection[str] = ()) -> list[dict[str, Any]]:
    """Our extensions for every recorded field of `obj` not in its FHIR home."""
    found = []
    for model_field in recorded_fields(type(obj)):
        if model_field.is_relation or model_field.name in homed:
            continue
        if _key(obj, model_field.name) in HOMES:
            continue
        found.extend(field_extensions(obj, model_field.name))
    return found


# --- the bundle -----------------------------------------------------------------------------


@dataclass
class _Builder:
    case: Case
    labels: dict[str, dict[str, str]]
    sites: dict[str, str]
    entries: list[dict[str, Any]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)

    def url(self, kind: str, pk: Any) -> str:
        key = f"{kind}/{pk}"
        if key not in self.urls:
            self.urls[key] = f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{self.case.pk}/{key}')}"
        return self.urls[key]

    def add(self, resource: dict[str, Any], kind: str, pk: Any) -> str:
        url = self.url(kind, pk)
        resource["id"] = f"{kind}-{pk}".replace("_", "-")[:64]
        self.entries.append({"fullUrl": url, "resource": resource})
        return url

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": self.url("patient", self.case.pk)}

    def row_kind(self, name: str) -> dict[str, Any]:
        return {"coding": [coding(ROW, name)]}


def _with_extensions(resource: dict[str, Any], found: list[dict[str, Any]]) -> dict[str, Any]:
    if found:
        resource["extension"] = resource.get("extension", []) + found
    return resource


def _patient(b: _Builder) -> None:
    case = b.case
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": [CANCER_PATIENT]},
        "identifier": [
            {
                "use": "secondary",
                "type": {"text": "pseudonymous case label"},
                # Labels are unique within a practice: the system names the practice.
                "system": f"urn:oncoboard:practice:{case.practice_id}:case-label",
                "value": case.label,
            }
        ],
        # US Core asks for a name or the statement that it is withheld: it is withheld.
        "name": [{"extension": [{"url": DATA_ABSENT_EXTENSION, "valueCode": "masked"}]}],
        "gender": GENDERS[case.sex],
        "birthDate": f"{case.year_of_birth:04d}",
    }
    if case.deceased_on:
        patient["deceasedDateTime"] = case.deceased_on.isoformat()
    b.add(_with_extensions(patient, extras(case)), "patient", case.pk)


def _condition(b: _Builder, row_kind: str, code: dict[str, Any]) -> dict[str, Any]:
    # No problem-list category: it asks for a clinical status (con-3), which we do not record.
    return {
        "resourceType": "Condition",
        "category": [b.row_kind(row_kind)],
        "code": code,
        "subject": b.subject,
    }


def _tumour(b: _Builder, tumour: Any) -> None:
    codings = [
        coding(
            ONCOTREE_SYSTEM,
            tumour.oncotree_code,
            tumour.oncotree_name,
            tumour.oncotree_release,
        )
    ]
    # An ICD-10 text that starts with a code gives an ICD-10-GM coding beside (the whole text
    # travels in our extension).
    if found := ICD10_CODE.match(tumour.icd10_text):
        codings.append(coding(ICD10_GM, found.group(1)))
    code = {"coding": codings, "text": tumour.oncotree_name}
    resource = _condition(b, "tumour", code)
    if tumour.diagnosed_on:
        resource["onsetDateTime"] = _date(tumour, "diagnosed_on")
    if tumour.histology:
        resource["extension"] = [
            {"url": HISTOLOGY_EXTENSION, "valueCodeableConcept": {"text": tumour.histology}}
        ]
    b.add(_with_extensions(resource, extras(tumour)), "tumour", tumour.pk)


def _metastasis(b: _Builder, metastasis: Any) -> None:
    site = b.sites.get(metastasis.site, metastasis.site)
    resource = _condition(b, "metastasis", {"text": f"Metastasis ({site})"})
    resource["bodySite"] = [
        {"coding": [coding(own_system("metastasis.site"), metastasis.site, site)], "text": site}
    ]
    resource["onsetDateTime"] = _date(metastasis, "detected_on")
    b.add(_with_extensions(resource, extras(metastasis)), "metastasis", metastasis.pk)


def _observation(
    b: _Builder, code: dict[str, Any], when: str | None, category: str = ""
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
    if category:
        resource["category"] = [{"coding": [coding(OBSERVATION_CATEGORY, category)]}]
    resource["code"] = code
    resource["subject"] = b.subject
    if when:
        resource["effectiveDateTime"] = when
    return resource


STAGE_LETTERS = (("T", "t"), ("N", "n"), ("M", "m"))


def _staging(b: _Builder, record: Any) -> None:
    when = _date(record, "staged_on")
    parts: list[tuple[str, str, str, str]] = []  # (letter, value, prefix, text)
    if record.system == "uicc_tnm":
        symbols = "".join(s for s, on in (("y", record.y_symbol), ("r", record.r_symbol)) if on)
        symbols += "a" if record.a_symbol else ""
        for letter, name in STAGE_LETTERS:
            value = getattr(record, f"{name}_category")
            if value:
                prefix = getattr(record, f"{name}_prefix")
                parts.append((letter, value, prefix, f"{symbols}{prefix}{letter}{value}"))
        if record.uicc_stage:
            parts.append(("S", record.uicc_stage, "", f"Stage {record.uicc_stage}"))
    homed = {"system", "tnm_edition"}
    observations = []
    for letter, value, prefix, text in parts:
        field_name = "uicc_stage" if letter == "S" else f"{letter.lower()}_category"
        loinc = TNM_LOINC.get((record.kind, letter))
        code_codings = [coding(LOINC, *loinc)] if loinc else []
        code_codings.append(coding(STAGING_PART, letter))
        resource = _observation(
            b,
            {"coding": code_codings, "text": f"{record.get_kind_display()} {letter}"},
            when,
        )
        resource["valueCodeableConcept"] = {
            "coding": [coding(own_system(f"stagingrecord.{field_name}"), value)],
            "text": text,
        }
        homed.add(field_name)
        if prefix:
            resource["extension"] = [
                {
                    "url": own_extension(f"stagingrecord.{letter.lower()}_prefix"),
                    "valueCoding": own_coding(record, f"{letter.lower()}_prefix"),
                }
            ]
            homed.add(f"{letter.lower()}_prefix")
        observations.append(resource)
    if not observations:  # another system, or no category recorded
        resource = _observation(
            b,
            {
                "coding": [coding(STAGING_PART, "record")],
                "text": f"{record.get_kind_display()} staging",
            },
            when,
        )
        observations.append(resource)
    for resource in observations:
        resource["method"] = {
            "coding": [own_coding(record, "system")]
            + (
                [
                    coding(
                        own_system("stagingrecord.tnm_edition"),
                        record.tnm_edition,
                        f"UICC TNM {record.tnm_edition}th edition",
                    )
                ]
                if record.tnm_edition
                else []
            ),
            "text": record.get_system_display(),
        }
        resource.setdefault("extension", []).append(
            {"url": own_extension("stagingrecord.kind"), "valueCoding": own_coding(record, "kind")}
        )
        if record.tumour_id:
            resource["focus"] = [{"reference": b.url("tumour", record.tumour_id)}]
    # The record's other fields travel once, with its first observation (a category of a
    # record not in UICC TNM as well: it has no TNM observation of its own).
    rest = extras(record, homed=homed | {"kind"})
    if not parts:
        for name in ("t_category", "n_category", "m_category", "uicc_stage"):
            rest += field_extensions(record, name)
    _with_extensions(observations[0], rest)
    for number, resource in enumerate(observations):
        b.add(resource, "staging", f"{record.pk}-{number}")


def _status(obj: Any, resource: dict[str, Any]) -> None:
    """A result's status: pending is registered, failed and not tested carry the reason the
    value is absent (never a value)."""
    status = obj.status
    resource["status"] = "registered" if status == "pending" else "final"
    if status in ("failed", "not_tested"):
        reason = "error" if status == "failed" else "not-performed"
        resource["dataAbsentReason"] = {"coding": [coding(DATA_ABSENT, reason)]}


def _quantity(value: Decimal, unit: str, ucum: str = "") -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": _number(value)}
    if unit:
        quantity["unit"] = unit
    if ucum:
        quantity.update({"system": UCUM, "code": ucum})
    return quantity


def _biomarker(b: _Builder, marker: Any) -> None:
    # The name as a coding of ours too: how an import knows the observation is a marker row.
    code = {"coding": [coding(own_system("biomarker.name"), marker.name)], "text": marker.name}
    resource = _observation(b, code, _date(marker, "sampled_on"), "laboratory")
    _status(marker, resource)
    extension = extras(marker)
    if marker.value is not None and "dataAbsentReason" not in resource:
        resource["valueQuantity"] = _quantity(
            marker.value, marker.unit, "%" if marker.unit == "%" else ""
        )
    else:  # no value element beside the reason it is absent: the recorded text goes along
        extension += field_extensions(marker, "value") + field_extensions(marker, "unit")
    if marker.method:
        resource["method"] = own_concept(marker, "method", marker.get_method_display())
    b.add(_with_extensions(resource, extension), "biomarker", marker.pk)


def _therapy(b: _Builder, line: Any) -> None:
    period: dict[str, Any] = {"start": _date(line, "started_on")}
    if line.ended_on:
        period["end"] = _date(line, "ended_on")
    reason = (
        [
            {
                "coding": [
                    coding(
                        own_system("therapyline.end_reason"),
                        line.end_reason,
                        b.labels["mii:therapie-ende-grund"].get(line.end_reason, ""),
                    )
                ]
            }
        ]
        if line.end_reason
        else []
    )
    text = line.regimen or ", ".join(line.agents) or line.get_kind_display()
    kind = own_concept(line, "kind", line.get_kind_display())
    if line.is_systemic:
        resource: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "status": "active" if line.ongoing else "completed" if line.ended_on else "unknown",
            "category": kind,
            "medicationCodeableConcept": {"text": text},
            "subject": b.subject,
            "effectivePeriod": period,
        }
        if reason:
            resource["statusReason"] = reason
    else:
        resource = {
            "resourceType": "Procedure",
            "status": "in-progress"
            if line.ongoing
            else "completed"
            if line.ended_on
            else "unknown",
            "category": kind,
            "code": {"text": text},
            "subject": b.subject,
            "performedPeriod": period,
        }
        if reason:
            resource["statusReason"] = reason[0]
    b.add(_with_extensions(resource, extras(line)), "therapy", line.pk)


def _adverse_event(b: _Builder, event: Any) -> None:
    resource: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "actuality": "actual",
        "event": {"text": event.term},
        "subject": b.subject,
        "outcome": {
            "coding": [
                coding(
                    "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                    AE_OUTCOMES[event.course],
                ),
                own_coding(event, "course"),
            ]
        },
    }
    if event.onset_on:
        resource["date"] = _date(event, "onset_on")
    if event.line_id:
        resource["suspectEntity"] = [{"instance": {"reference": b.url("therapy", event.line_id)}}]
    grade = [
        {
            "url": own_extension("adverseevent.grade"),
            "valueCoding": coding(
                own_system("adverseevent.grade"),
                event.grade,
                f"CTCAE grade {event.grade}" if event.grade in AE_NUMERIC_GRADES else "unknown",
            ),
        }
    ]
    b.add(_with_extensions(resource, grade + extras(event, homed={"grade"})), "ae", event.pk)


def _performance(b: _Builder, row: Any) -> None:
    when = _date(row, "assessed_on")
    for name, value, profile, loinc, answers in (
        (
            "ecog",
            row.ecog,
            ECOG_PROFILE,
            ("89247-1", "ECOG Performance Status score"),
            ECOG_ANSWERS,
        ),
        (
            "karnofsky",
            row.karnofsky,
            KARNOFSKY_PROFILE,
            ("89243-0", "Karnofsky Performance Status score"),
            KARNOFSKY_ANSWERS,
        ),
    ):
        if value is None:
            continue
        resource = _observation(b, {"coding": [coding(LOINC, *loinc)]}, when, "survey")
        resource["meta"] = {"profile": [profile]}
        resource["valueInteger"] = value
        if value in answers:
            resource["interpretation"] = [{"coding": [coding(LOINC, answers[value])]}]
        b.add(resource, name, row.pk)


def _lab(
    b: _Builder, obj: Any, name: str, when: str | None, extension: list[dict[str, Any]]
) -> str | None:
    key = _key(obj, name)
    value = getattr(obj, name)
    if value is None:
        return None
    loinc, text, ucum = LABS[key]
    code: dict[str, Any] = {"text": text}
    code["coding"] = ([coding(LOINC, loinc, text)] if loinc else []) + [
        coding(own_system("field"), key)
    ]
    resource = _observation(b, code, when, "laboratory")
    resource["valueQuantity"] = _quantity(value, ucum, ucum)
    qualifier = getattr(obj, f"{name}_qualifier", "")
    if qualifier:  # "below / above the limit" is the quantity's comparator
        resource["valueQuantity"] = {"comparator": qualifier, **resource["valueQuantity"]}
    return b.add(_with_extensions(resource, extension), "lab", f"{obj.pk}-{name}")


def _panel(b: _Builder, obj: Any, kind: str, title: str, members: list[str]) -> None:
    """A dated set of findings: one observation per value, grouped by a panel observation
    that carries the set's other fields."""
    when = _date(obj, "assessed_on" if kind == "immune" else "measured_on")
    resource = _observation(b, {"coding": [coding(ROW, obj._meta.model_name)], "text": title}, when)
    if members:
        resource["hasMember"] = [{"reference": url} for url in members]
    b.add(_with_extensions(resource, extras(obj)), kind, obj.pk)


def _immune(b: _Builder, finding: Any) -> None:
    when = _date(finding, "assessed_on")
    members = []
    for key in LABS:
        model, name = key.split(".")
        if model != "immunefinding":
            continue
        extension = [
            e
            for suffix in ("_lab_value", "_lab_unit")
            if hasattr(finding, f"{name}{suffix}")
            for e in field_extensions(finding, f"{name}{suffix}")
        ]
        url = _lab(b, finding, name, when, extension)
        if url:
            members.append(url)
    for key, loinc in SEROLOGY.items():
        name = key.split(".")[1]
        value = getattr(finding, name)
        if not value:
            continue
        code = {
            "coding": ([coding(LOINC, *loinc)] if loinc else [])
            + [coding(own_system("field"), key)],
            "text": str(finding._meta.get_field(name).verbose_name),
        }
        resource = _observation(b, code, when, "laboratory")
        if value == "not_tested":
            resource["dataAbsentReason"] = {"coding": [coding(DATA_ABSENT, "not-performed")]}
        else:
            resource["valueCodeableConcept"] = own_concept(finding, name)
        members.append(b.add(resource, "lab", f"{finding.pk}-{name}"))
    _panel(b, finding, "immune", "Immune-relevant findings", members)


def _organ(b: _Builder, row: Any) -> None:
    when = _date(row, "measured_on")
    members = [
        url
        for key in LABS
        if key.startswith("organfunction.") and (url := _lab(b, row, key.split(".")[1], when, []))
    ]
    _panel(b, row, "organ", "Organ function", members)


def _prophylaxis(b: _Builder, row: Any) -> None:
    period = {"start": _date(row, "since")}
    if row.until:
        period["end"] = _date(row, "until")
    resource = {
        "resourceType": "MedicationStatement",
        "status": "completed" if row.until else "active",
        "category": b.row_kind("prophylaxis"),
        "medicationCodeableConcept": {"text": row.agent},
        "subject": b.subject,
        "effectivePeriod": period,
    }
    b.add(_with_extensions(resource, extras(row)), "prophylaxis", row.pk)


def _vaccination(b: _Builder, row: Any) -> None:
    resource: dict[str, Any] = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {"text": row.vaccine or "vaccination (vaccine not recorded)"},
        "patient": b.subject,
    }
    if row.given_on:
        resource["occurrenceDateTime"] = _date(row, "given_on")
    else:
        resource["occurrenceString"] = "date not recorded"
    if row.note:
        resource["note"] = [{"text": row.note}]
    b.add(_with_extensions(resource, extras(row)), "vaccination", row.pk)


def _comorbidity(b: _Builder, row: Any) -> None:
    resource = _condition(b, "comorbidity", {"text": row.name})
    if row.since:
        resource["onsetDateTime"] = _date(row, "since")
    if row.note:
        resource["note"] = [{"text": row.note}]
    b.add(_with_extensions(resource, extras(row)), "comorbidity", row.pk)


def _medication(b: _Builder, row: Any) -> None:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "category": own_concept(row, "kind", row.get_kind_display()),
        "medicationCodeableConcept": {"text": row.name},
        "subject": b.subject,
    }
    if row.dose:
        resource["dosage"] = [{"text": row.dose}]
    b.add(_with_extensions(resource, extras(row)), "medication", row.pk)


def _lifestyle(b: _Builder, row: Any) -> None:
    resource = _observation(
        b, {"coding": [coding(LOINC, *SMOKING_LOINC)]}, _date(row, "recorded_on"), "social-history"
    )
    resource["valueCodeableConcept"] = own_concept(row, "smoking", row.get_smoking_display())
    b.add(_with_extensions(resource, extras(row)), "lifestyle", row.pk)


def _family(b: _Builder, row: Any) -> None:
    codes = RELATIONS.get(row.relation)
    role = (
        codes[1 if row.side == "maternal" else 2 if row.side == "paternal" else 0]
        if codes
        else "FAMMEMB"
    )
    condition: dict[str, Any] = {"code": {"text": row.cancer_type}}
    if row.oncotree_code:
        condition["code"]["coding"] = [coding(ONCOTREE_SYSTEM, row.oncotree_code)]
    if row.age_at_diagnosis is not None:
        condition["onsetAge"] = {
            "value": row.age_at_diagnosis,
            "unit": "a",
            "system": UCUM,
            "code": "a",
        }
    resource = {
        "resourceType": "FamilyMemberHistory",
        "status": "completed",
        "patient": b.subject,
        "relationship": {"coding": [coding(ROLE_CODE, role)]},
        "condition": [condition],
    }
    b.add(_with_extensions(resource, extras(row)), "family", row.pk)


def _component(loinc: tuple[str, str], value: dict[str, Any]) -> dict[str, Any]:
    return {"code": {"coding": [coding(LOINC, *loinc)]}, **value}


def _genomic(b: _Builder, row: Any) -> None:
    when = _date(row, "reported_on")
    loinc = {"variant": VARIANT_LOINC, "tmb": TMB_LOINC, "msi": MSI_LOINC}[row.result_kind]
    resource = _observation(b, {"coding": [coding(LOINC, *loinc)]}, when, "laboratory")
    _status(row, resource)
    components = []
    if row.gene:
        components.append(_component(GENE_LOINC, {"valueCodeableConcept": {"text": row.gene}}))
    for name, code in (("hgvs_c", HGVS_C_LOINC), ("hgvs_p", HGVS_P_LOINC)):
        if getattr(row, name):
            concept: dict[str, Any] = {"text": getattr(row, name)}
            # A well-formed c. notation on its reference sequence is an HGVS code.
            if name == "hgvs_c" and row.transcript and hgvs.check_coding(row.hgvs_c) is None:
                concept["coding"] = [coding(HGVS, f"{row.transcript}:{row.hgvs_c}")]
            components.append(_component(code, {"valueCodeableConcept": concept}))
    if row.vaf is not None:
        components.append(_component(VAF_LOINC, {"valueQuantity": _quantity(row.vaf, "%", "%")}))
    if row.origin in ORIGIN_ANSWERS:
        answer = coding(LOINC, *ORIGIN_ANSWERS[row.origin])
        components.append(_component(ORIGIN_LOINC, {"valueCodeableConcept": {"coding": [answer]}}))
    if components:
        resource["component"] = components
    if "dataAbsentReason" not in resource:
        if row.result_kind == "tmb" and row.tmb is not None:
            resource["valueQuantity"] = _quantity(row.tmb, "mutations/Mb")
        elif row.result_kind == "msi" and row.msi:
            resource["valueCodeableConcept"] = own_concept(row, "msi", row.get_msi_display())
    extension = extras(row)
    if "valueQuantity" not in resource:
        extension += field_extensions(row, "tmb")
    b.add(_with_extensions(resource, extension), "genomic", row.pk)


def case_bundle(record: Any) -> dict[str, Any]:
    """The case of `record` (a loaded `CaseRecord`) as a validated FHIR R4 collection Bundle,
    the same whatever the reader's language: codes carry the meaning, displays are English."""
    with translation.override("en"):
        return _case_bundle(record)


def _case_bundle(record: Any) -> dict[str, Any]:
    case = record.case
    b = _Builder(case=case, labels=record.code_labels("en"), sites=record.site_labels("en"))
    _patient(b)
    for tumour in record.tumours:
        _tumour(b, tumour)
    for staging in record.staging:
        _staging(b, staging)
    for metastasis in record.metastases:
        _metastasis(b, metastasis)
    for marker in record.biomarkers:
        _biomarker(b, marker)
    for line in record.lines:
        _therapy(b, line)
    for event in record.events:
        _adverse_event(b, event)
    for row in record.performance:
        _performance(b, row)
    for finding in record.immune:
        _immune(b, finding)
    for row in record.prophylaxes:
        _prophylaxis(b, row)
    for row in record.vaccinations:
        _vaccination(b, row)
    for row in record.comorbidities:
        _comorbidity(b, row)
    for row in record.organ_functions:
        _organ(b, row)
    for row in record.medications:
        _medication(b, row)
    for row in record.lifestyle:
        _lifestyle(b, row)
    for row in record.family_history:
        _family(b, row)
    for row in record.genomic_variants:
        _genomic(b, row)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(NAMESPACE, f"bundle/{case.pk}")),
        "type": "collection",
        "entry": b.entries,
    }
    bundle = _plain(bundle)
    validate(bundle)
    return bundle


def _plain(value: Any) -> Any:
    """JSON values: a Decimal as a number (json writes it as float text), dates as text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileRule:
    """What a profile asks of a resource that claims it, as far as we fill it: the elements
    every instance must have (a dotted path is required in every parent present) and the
    codings some instance of an element must carry."""

    resource_type: str
    required: tuple[str, ...]
    fixed: tuple[tuple[str, str, str], ...] = ()
    integers: tuple[int, ...] = ()  # the allowed valueInteger, if restricted


# What both mCODE performance-status profiles (ECOG, Karnofsky) require of the Observation.
PERFORMANCE_PATHS = (
    "status",
    "category",
    "code",
    "subject",
    "subject.reference",
    "effectiveDateTime",
    "valueInteger",
)

PROFILE_RULES = {
    # mCODE CancerPatient = US Core Patient: identifier (system, value), name (a given or
    # family name, or a data-absent-reason; us-core-6), gender.
    CANCER_PATIENT: ProfileRule(
        "Patient", ("identifier", "identifier.system", "identifier.value", "name", "gender")
    ),
    # mCODE ECOG / Karnofsky (parent Observation): status, category survey, the LOINC code,
    # a subject (the cancer patient), effective[x], an integer value.
    ECOG_PROFILE: ProfileRule(
        "Observation",
        PERFORMANCE_PATHS,
        (("code", LOINC, "89247-1"), ("category", OBSERVATION_CATEGORY, "survey")),
        tuple(range(0, 6)),
    ),
    KARNOFSKY_PROFILE: ProfileRule(
        "Observation",
        PERFORMANCE_PATHS,
        (("code", LOINC, "89243-0"), ("category", OBSERVATION_CATEGORY, "survey")),
        tuple(range(0, 101, 10)),
    ),
}


# The codes FHIR binds required for the coded elements we fill (the R4B models check a
# code's form, not its value set).
REQUIRED_CODES = {
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Observation", "status"): {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    ("MedicationStatement", "status"): {
        "active",
        "completed",
        "entered-in-error",
        "intended",
        "stopped",
        "on-hold",
        "unknown",
        "not-taken",
    },
    ("Procedure", "status"): {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    },
    ("AdverseEvent", "actuality"): {"actual", "potential"},
    ("Immunization", "status"): {"completed", "entered-in-error", "not-done"},
    ("FamilyMemberHistory", "status"): {
        "partial",
        "completed",
        "entered-in-error",
        "health-unknown",
    },
}


def _present(values: list[Any], step: str) -> tuple[list[Any], bool]:
    """The values of `step` under each of `values`, and whether every one of them has it."""
    found: list[Any] = []
    every = True
    for value in values:
        inner = value.get(step) if isinstance(value, dict) else None
        if inner in (None, "", [], {}):
            every = False
            continue
        found.extend(inner if isinstance(inner, list) else [inner])
    return found, every


def profile_problems(resource: dict[str, Any], profile: str) -> list[str]:
    """What `resource` lacks for `profile` by our table (an unknown profile is a problem: we
    claim nothing we do not check)."""
    rule = PROFILE_RULES.get(profile)
    where = f"{resource.get('resourceType')}/{resource.get('id')}"
    if rule is None:
        return [f"{where}: claims {profile}, which the export does not check"]
    problems = []
    if resource.get("resourceType") != rule.resource_type:
        problems.append(f"{where}: {profile} is a profile of {rule.resource_type}")
    for path in rule.required:
        values: list[Any] = [resource]
        for step in path.split("."):
            values, every = _present(values, step)
            if not every or not values:
                problems.append(f"{where}: {profile} requires {path}")
                break
    for path, system, code in rule.fixed:
        concepts = resource.get(path)
        concepts = concepts if isinstance(concepts, list) else [concepts]
        if not any(
            c.get("system") == system and c.get("code") == code
            for concept in concepts
            if isinstance(concept, dict)
            for c in concept.get("coding") or []
        ):
            problems.append(f"{where}: {profile} fixes {path} to {system}|{code}")
    if rule.integers and resource.get("valueInteger") not in rule.integers:
        problems.append(f"{where}: {profile} allows valueInteger {list(rule.integers)}")
    if rule.resource_type == "Patient":
        for name in resource.get("name") or []:
            masked = any(e.get("url") == DATA_ABSENT_EXTENSION for e in name.get("extension") or [])
            if not (name.get("given") or name.get("family") or masked):
                problems.append(f"{where}: {profile}: a name needs a part or a data-absent-reason")
    return problems


def _empty_values(value: Any, where: str) -> list[str]:
    """Where the JSON holds an empty array, object or string (FHIR's JSON allows none)."""
    if value in ([], {}, ""):
        return [where]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _empty_values(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [p for item in value for p in _empty_values(item, where)]
    return []


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def validate(bundle: dict[str, Any]) -> None:
    """Raises ExportInvalid unless the bundle passes the R4B models, holds no empty value,
    every reference resolves inside it, every coded element FHIR binds required holds one of
    its codes, every resource claiming a profile meets our table of it, and every subject of a
    profiled resource is a patient that claims the cancer patient profile."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    problems: list[str] = []
    try:
        Bundle.model_validate(bundle)
    except ValidationError as error:
        problems.extend(f"{e['loc']}: {e['msg']}" for e in error.errors()[:20])
    entries = bundle.get("entry") or []
    by_url = {e.get("fullUrl"): e.get("resource") or {} for e in entries}
    for entry in entries:
        resource = entry.get("resource") or {}
        where = f"{resource.get('resourceType')}/{resource.get('id')}"
        for reference in _references(resource):
            if reference not in by_url:
                problems.append(f"{where}: the reference {reference} is not in the bundle")
        problems.extend(f"{p}: empty" for p in _empty_values(resource, where))
        for (kind, element), allowed in REQUIRED_CODES.items():
            if resource.get("resourceType") == kind and resource.get(element) not in allowed:
                problems.append(f"{where}: {element} {resource.get(element)!r} is not a FHIR code")
        profiles = (resource.get("meta") or {}).get("profile") or []
        for profile in profiles:
            problems.extend(profile_problems(resource, profile))
        if profiles and resource.get("resourceType") != "Patient":
            subject = by_url.get((resource.get("subject") or {}).get("reference"), {})
            if CANCER_PATIENT not in ((subject.get("meta") or {}).get("profile") or []):
                problems.append(f"{where}: its subject is not a cancer patient of the bundle")
    if problems:
        raise ExportInvalid(problems)
