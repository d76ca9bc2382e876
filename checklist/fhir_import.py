"""FHIR R4 / mCODE import: a Bundle read and mapped to the preview of a new case.

`read_bundle` checks size, JSON nesting, string lengths and entry count, then validates with
`fhir.resources.R4B` (the package's top-level models are R5). `map_bundle` is pure: it turns
the validated JSON into the preview structure, which holds the mapped values only, never a
name or an identifier (every text taken from the bundle is scrubbed of the patient's names,
identifiers and id). `resolve` (database reads) fills in what OncoTree, the oBDS lists and the
practice's learned code map already answer; what is left are the physician's questions.

Mapped: patient (year of birth, sex, date of death), primary cancer conditions (tumours),
secondary cancer conditions (metastases), TNM observations (staging records), ECOG/Karnofsky,
comorbid conditions, therapies (medications given or ordered, surgery and radiotherapy
procedures) grouped into episodes (`_Clinical.group`), adverse events, tumour markers,
genomic variants and laboratory findings. Our own code systems (`fhir_codes`) are taken
directly wherever they occur. Everything else is listed with its quoted text and the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _

from checklist.fhir_codes import ROW_SYSTEM, own_extension, own_extension_name, own_name
from checklist.models import (
    AdverseEvent,
    AeCourse,
    AeGrade,
    AssayMethod,
    BiomarkerKind,
    CtcaeVersion,
    EpisodeKind,
    GenomicResultKind,
    GenomicVariant,
    ImmuneFinding,
    Laterality,
    LinePosition,
    MetastasisTiming,
    Response,
    ResultStatus,
    Situation,
    SpecimenType,
    TherapyLine,
    VariantOrigin,
)

DAY, MONTH, YEAR = "day", "month", "year"
MAX_DEPTH = 64
MAX_STRING = 100_000
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
BUNDLE_TYPES = {"transaction", "collection", "batch", "searchset"}

ONCOTREE_SYSTEMS = ("oncotree",)  # any system URL containing it
SITE_SYSTEM = "obds:fm_lokalisation"
ONCOTREE = "oncotree"
TEXT_SYSTEM = "urn:oncoboard:text"  # a condition with text but no coding

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

# code -> (kind, letter): letter T, N, M or S (stage group); kind c/p or "" (not stated)
TNM_CODES = {
    (LOINC, "21905-5"): ("c", "T"),
    (LOINC, "21906-3"): ("c", "N"),
    (LOINC, "21907-1"): ("c", "M"),
    (LOINC, "21908-9"): ("c", "S"),
    (LOINC, "21899-0"): ("p", "T"),
    (LOINC, "21900-6"): ("p", "N"),
    (LOINC, "21901-4"): ("p", "M"),
    (LOINC, "21902-2"): ("p", "S"),
    (SNOMED, "399504009"): ("c", "T"),
    (SNOMED, "384625004"): ("p", "T"),
    (SNOMED, "399534004"): ("c", "N"),
    (SNOMED, "371494008"): ("p", "N"),
    (SNOMED, "399387003"): ("c", "M"),
    (SNOMED, "371497001"): ("p", "M"),
    (SNOMED, "399537006"): ("c", "S"),
    (SNOMED, "399588009"): ("p", "S"),
}
# Our own code systems of the staging record's values -> the TNM letter (S: stage group).
OWN_TNM = {
    "stagingrecord.t_category": "T",
    "stagingrecord.n_category": "N",
    "stagingrecord.m_category": "M",
    "stagingrecord.uicc_stage": "S",
}
EDITION_CODES = {"443830009": "7", "897275008": "8"}
ECOG_LOINC = "89247-1"
KARNOFSKY_LOINC = "89243-0"
ECOG_ANSWERS = {"LA9622-7": 0, "LA9623-5": 1, "LA9624-3": 2, "LA9625-0": 3, "LA9626-8": 4}
KARNOFSKY_ANSWERS = {
    "LA29175-9": 100,
    "LA29176-7": 90,
    "LA29177-5": 80,
    "LA29178-3": 70,
    "LA29179-1": 60,
    "LA29180-9": 50,
    "LA29181-7": 40,
    "LA29182-5": 30,
    "LA29183-3": 20,
    "LA29184-1": 10,
}
LATERALITY_CODES = {"7771000": "left", "24028007": "right", "51440002": "bilateral"}
GENDERS = {"female": "female", "male": "male", "other": "diverse", "unknown": "unknown"}
EPISODE_KINDS = EpisodeKind.values
RESPONSES = Response.values
POSITIONS = LinePosition.values
AE_GRADES = AeGrade.values
CTCAE_CHOICES = CtcaeVersion.values
RESULT_STATUSES = ResultStatus.values
ASSAY_METHODS = AssayMethod.values
BIOMARKER_KINDS = BiomarkerKind.values
ORIGIN_CHOICES = VariantOrigin.values

REPORTS = {"DiagnosticReport", "Specimen", "MolecularSequence"}
PEOPLE = {
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "RelatedPerson",
    "Person",
    "Group",
}


class BundleError(Exception):
    """The bundle cannot be imported; `message` says why, naming the resource and field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- reading -------------------------------------------------------------------------------


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def read_bundle(raw: bytes, *, max_bytes: int, max_entries: int) -> dict[str, Any]:
    """The bundle's JSON, checked and validated; BundleError otherwise."""
    if len(raw) > max_bytes:
        raise BundleError(
            _("The file is larger than %(limit)s MB; nothing was imported.")
            % {"limit": max_bytes // 1_000_000 or 1}
        )
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BundleError(
            _("The JSON is nested more than %(limit)s levels deep; nothing was imported.")
            % {"limit": MAX_DEPTH}
        ) from None
    except ValueError:
        raise BundleError(_("This is not JSON; nothing was imported.")) from None
    _check_values(data)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        kind = data.get("resourceType") if isinstance(data, dict) else None
        raise BundleError(
            _("Expected a FHIR Bundle, found resourceType “%(kind)s”; nothing was imported.")
            % {"kind": str(kind)[:60]}
        )
    if not isinstance(data.get("type"), str) or data["type"] not in BUNDLE_TYPES:
        raise BundleError(
            _(
                "Bundle.type is “%(type)s”; a transaction, collection, batch or searchset"
                " bundle can be imported."
            )
            % {"type": str(data.get("type"))[:40]}
        )
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise BundleError(_("Bundle.entry is not a list; nothing was imported."))
    if len(entries) > max_entries:
        raise BundleError(
            _("The bundle has %(count)s entries; at most %(limit)s can be imported at once.")
            % {"count": len(entries), "limit": max_entries}
        )
    for number, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise BundleError(
                _("Bundle entry %(number)s has no resource with a resourceType.")
                % {"number": number}
            )
    _validate_r4(data)
    return data


def _check_values(data: Any) -> None:
    """Refuses JSON nested deeper than MAX_DEPTH and strings longer than MAX_STRING, naming
    where they are (the parser itself stops at Python's recursion limit, memory bounded)."""
    stack: list[tuple[Any, str, int]] = [(data, "Bundle", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BundleError(
                _("The JSON is nested more than %(limit)s levels deep; nothing was imported.")
                % {"limit": MAX_DEPTH}
            )
        if isinstance(value, dict):
            kind = value.get("resourceType")
            label = f"{kind}" if isinstance(kind, str) and kind != "Bundle" else where
            for key in value:
                if CONTROL.search(key):
                    raise BundleError(
                        _("%(field)s: a property name holds a control character.")
                        % {"field": label[:120]}
                    )
            stack.extend((v, f"{label}.{k}", depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, where, depth + 1) for v in value)
        elif isinstance(value, str) and len(value) > MAX_STRING:
            raise BundleError(
                _("%(field)s holds a text of %(length)s characters (at most %(limit)s).")
                % {"field": where[:120], "length": len(value), "limit": MAX_STRING}
            )
        elif isinstance(value, str) and (found := CONTROL.search(value)):
            # FHIR strings hold no character below U+0020 but tab and line breaks.
            raise BundleError(
                _("%(field)s holds a control character (U+%(code)04X), which FHIR does not allow.")
                % {"field": where[:120], "code": ord(found.group())}
            )


def _validate_r4(data: dict[str, Any]) -> None:
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise BundleError(_describe_error(data, first["loc"], first["msg"])) from None
    except (ValueError, TypeError, RecursionError) as error:
        raise BundleError(
            _("The bundle is not valid FHIR R4: %(reason)s") % {"reason": str(error)[:200]}
        ) from None


def _describe_error(data: dict[str, Any], loc: tuple[Any, ...], message: str) -> str:
    parts = list(loc)
    where = "Bundle"
    if len(parts) >= 3 and parts[0] == "entry" and isinstance(parts[1], int):
        resource = data["entry"][parts[1]].get("resource") or {}
        kind = resource.get("resourceType", "?")
        where = _("%(kind)s (entry %(number)s)") % {"kind": kind, "number": parts[1] + 1}
        parts = parts[3:]
        if parts and parts[0] == kind:
            parts = parts[1:]
    field = ".".join(str(p) for p in parts) or "resourceType"
    return _("%(where)s, field %(field)s: %(message)s. Nothing was imported.") % {
        "where": where,
        "field": field[:120],
        "message": str(message)[:200],
    }


# --- dates ----------------------------------------------------------------------------------

DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?$")


def fhir_date(text: Any, where: str) -> tuple[str, str] | None:
    """A FHIR date or dateTime as (first day ISO, precision); "2019" stays a year."""
    if text is None:
        return None
    match = DATE_RE.match(str(text))
    if not match:
        raise BundleError(
            _("%(where)s: “%(text)s” is not a date. Nothing was imported.")
            % {"where": where, "text": str(text)[:40]}
        )
    year, month, day = match.groups()
    try:
        value = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise BundleError(
            _("%(where)s: “%(text)s” is not a date. Nothing was imported.")
            % {"where": where, "text": str(text)[:40]}
        ) from None
    precision = DAY if day else MONTH if month else YEAR
    return value.isoformat(), precision


# --- the mapping ----------------------------------------------------------------------------


class _Scrubber:
    """Removes the patient's names, identifiers and id from any text kept in the preview."""

    def __init__(self, patient: dict[str, Any] | None) -> None:
        secrets: set[str] = set()
        if patient:
            secrets.add(str(patient.get("id") or ""))
            for name in patient.get("name") or []:
                if isinstance(name, dict):
                    secrets.update(str(g) for g in name.get("given") or [])
                    secrets.add(str(name.get("family") or ""))
                    secrets.add(str(name.get("text") or ""))
            for ident in patient.get("identifier") or []:
                if isinstance(ident, dict):
                    secrets.add(str(ident.get("value") or ""))
        words = sorted((s for s in secrets if len(s.strip()) >= 2), key=len, reverse=True)
        self.pattern = (
            re.compile("|".join(re.escape(w.strip()) for w in words), re.IGNORECASE)
            if words
            else None
        )

    def __call__(self, text: Any, limit: int = 300) -> str:
        value = "" if text is None else str(text)
        if self.pattern is not None:
            value = self.pattern.sub("[…]", value)
        value = "".join(c if c.isprintable() else " " for c in value).strip()
        return value if len(value) <= limit else value[: limit - 1] + "…"


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in _codings(concept):
        if coding.get("display"):
            return str(coding["display"])
    for coding in _codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return ""


def _profiles(resource: dict[str, Any]) -> str:
    meta = resource.get("meta") or {}
    return " ".join(str(p) for p in meta.get("profile") or []).lower()


def _extensions(resource: dict[str, Any], part: str) -> list[dict[str, Any]]:
    return [
        e
        for e in resource.get("extension") or []
        if isinstance(e, dict) and part.lower() in str(e.get("url", "")).lower()
    ]


def _is_oncotree(system: str) -> bool:
    return "oncotree" in system.lower()


def _is_icd10(system: str) -> bool:
    system = system.lower()
    return "icd-10" in system or "icd10" in system


OWN_ROWS = {"tumour": "primary", "metastasis": "secondary", "comorbidity": "other"}


def _own_values(resource: dict[str, Any]) -> dict[str, Any]:
    """Our own extensions of a resource (our export's fields FHIR has no element for): field
    name -> the code of a coding, else the value."""
    found: dict[str, Any] = {}
    for extension in resource.get("extension") or []:
        name = (
            own_extension_name(str(extension.get("url", "")))
            if isinstance(extension, dict)
            else None
        )
        if name is None:
            continue
        coded = extension.get("valueCoding")
        value = coded.get("code") if isinstance(coded, dict) else None
        for key, item in extension.items():
            if value is None and key.startswith("value") and key != "valueCoding":
                value = item
        found[name] = value
    return found


def own_fields(
    resource: dict[str, Any], model: Any, mapped: set[str], where: str
) -> tuple[dict[str, Any], list[str]]:
    """The fields of a row of `model` our own export wrote as our extensions
    (`<model>.<field>`) that the mapping does not otherwise take (`mapped`), each converted
    to the field's type and checked as the model checks it (choices, validators, a date with
    its precision). Returns (field -> JSON value, problems naming the resource and field);
    an invalid value is a problem, never a value. Other producers' extensions never match."""
    prefix = f"{model._meta.model_name}."
    names = {f.name: f for f in model._meta.concrete_fields if not f.is_relation}
    raw: dict[str, list[Any]] = {}
    for extension in resource.get("extension") or []:
        if not isinstance(extension, dict):
            continue
        name = own_extension_name(str(extension.get("url", "")))
        if not name or not name.startswith(prefix):
            continue
        coded = extension.get("valueCoding")
        if isinstance(coded, dict):
            value = coded.get("code")
        else:
            value = next((v for k, v in extension.items() if k.startswith("value")), None)
        raw.setdefault(name[len(prefix) :], []).append(value)
    found: dict[str, Any] = {}
    problems: list[str] = []
    for name, values in raw.items():
        model_field = names.get(name)
        if model_field is None or name in mapped or name.endswith("_precision"):
            continue
        try:
            found.update(_own_field_value(model_field, values, names))
        except (ValidationError, TypeError, ValueError, BundleError):
            problems.append(
                _("%(where)s: our field “%(field)s” holds a value it cannot take")
                % {"where": where, "field": f"{prefix}{name}"}
            )
    return found, problems


def _own_field_value(model_field: Any, values: list[Any], names: dict[str, Any]) -> dict[str, Any]:
    """One field of ours as JSON (dates ISO with their precision, decimals as text), checked
    like the model checks it; raises ValidationError/TypeError/ValueError when it is not."""
    if isinstance(model_field, ArrayField):
        if not all(isinstance(v, str) for v in values):
            raise TypeError
        model_field.clean(list(values), None)
        return {model_field.name: list(values)}
    if len(values) != 1:
        raise ValueError
    value = values[0]
    if isinstance(model_field, models.BooleanField):
        if not isinstance(value, bool):
            raise TypeError
        return {model_field.name: value}
    if isinstance(model_field, models.DateField):
        parsed = fhir_date(value, model_field.name) if isinstance(value, str) else None
        if parsed is None:
            raise TypeError
        day, precision = parsed
        model_field.clean(date.fromisoformat(day), None)
        found = {model_field.name: day}
        if f"{model_field.name}_precision" in names:
            found[f"{model_field.name}_precision"] = precision
        return found
    if isinstance(model_field, models.DecimalField):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        number = model_field.clean(Decimal(str(value)), None)
        return {model_field.name: str(number)}
    if isinstance(model_field, models.IntegerField):
        if model_field.choices and isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,6}", value):
            value = int(value)  # a coded number (our coding's code is text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return {model_field.name: model_field.clean(value, None)}
    if isinstance(model_field, models.CharField | models.TextField):
        if not isinstance(value, str):
            raise TypeError
        return {model_field.name: model_field.clean(value, None)}
    raise TypeError


def _own_list(resource: dict[str, Any], name: str) -> list[str]:
    """Every value of our extension for the list field `name` (one extension per entry)."""
    found = []
    for extension in resource.get("extension") or []:
        if not isinstance(extension, dict) or own_extension_name(str(extension.get("url"))) != name:
            continue
        coded = extension.get("valueCoding")
        value = coded.get("code") if isinstance(coded, dict) else extension.get("valueString")
        if isinstance(value, str) and value:
            found.append(value)
    return found


def _own_types(resource: dict[str, Any], own: dict[str, str]) -> list[str]:
    """Our therapy types: each of our export's extensions, else a coding of ours anywhere."""
    found = _own_list(resource, "therapyline.types")
    return found or ([own["therapyline.types"]] if "therapyline.types" in own else [])


def condition_kind(resource: dict[str, Any]) -> str:
    """primary | secondary | other, from the profile, else the codes, else the words."""
    profiles = _profiles(resource)
    for concept in resource.get("category") or []:  # our own export says which row it is
        for coding in _codings(concept):
            if coding.get("system") == ROW_SYSTEM and coding.get("code") in OWN_ROWS:
                return OWN_ROWS[str(coding["code"])]
    named = own_codes(resource)
    if "secondary-cancer-condition" in profiles or "secondarycancercondition" in profiles:
        return "secondary"
    if any(name.startswith("metastasis.") for name in named):
        return "secondary"
    if any(name.startswith("tumour.") for name in named):
        return "primary"
    if "primary-cancer-condition" in profiles or "primarycancercondition" in profiles:
        return "primary"
    for coding in _codings(resource.get("code")):
        system, code = str(coding.get("system", "")), str(coding.get("code", "")).upper()
        if _is_oncotree(system) or "icd-o" in system.lower():
            return "primary"
        if _is_icd10(system):
            if re.match(r"^C7[789]", code):
                return "secondary"
            if re.match(r"^(C\d\d|D0\d)", code):
                return "primary"
    words = _concept_text(resource.get("code")).lower()
    if "secondary malignant" in words or "metasta" in words:
        return "secondary"
    if re.search(r"malignant|carcinoma|cancer|lymphoma|leuk|melanoma|sarcoma|myeloma", words):
        return "primary"
    return "other"


class _Bundle:
    """Entries indexed for reference resolution: fullUrl (urn:uuid too), Type/id, and the
    identifiers a resource carries (a Reference by identifier; the identifier is used for the
    lookup only, never kept)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.entries: list[tuple[int, dict[str, Any]]] = []
        self.index: dict[str, int] = {}
        self.identifiers: dict[tuple[str, str], int] = {}
        for number, entry in enumerate(data.get("entry") or [], start=1):
            resource = entry["resource"]
            self.entries.append((number, resource))
            kind, rid = resource.get("resourceType"), resource.get("id")
            if entry.get("fullUrl"):
                self.index[str(entry["fullUrl"])] = number
            if rid:
                self.index[f"{kind}/{rid}"] = number
            for ident in resource.get("identifier") or []:
                if isinstance(ident, dict) and ident.get("value"):
                    key = (str(ident.get("system") or ""), str(ident["value"]))
                    self.identifiers.setdefault(key, number)

    def resolve(self, reference: Any) -> int | None:
        """The entry number a Reference points to (by reference or by identifier), or None."""
        if not isinstance(reference, dict):
            return None
        ref = str(reference.get("reference") or "")
        if ref in self.index:
            return self.index[ref]
        match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/.*)?$", ref)
        if match and match.group(1) in self.index:
            return self.index[match.group(1)]
        ident = reference.get("identifier")
        if not ref and isinstance(ident, dict) and ident.get("value"):
            return self.identifiers.get((str(ident.get("system") or ""), str(ident["value"])))
        return None

    def target(
        self, container: dict[str, Any], reference: Any
    ) -> tuple[str, dict[str, Any] | None]:
        """What a Reference of `container` points to: ("entry"|"contained", the resource),
        ("none", None) for an empty reference, ("dangling", None) for one pointing nowhere."""
        if not isinstance(reference, dict) or not (
            reference.get("reference") or reference.get("identifier")
        ):
            return "none", None
        ref = str(reference.get("reference") or "")
        if ref.startswith("#"):
            for inner in container.get("contained") or []:
                if isinstance(inner, dict) and str(inner.get("id")) == ref[1:]:
                    return "contained", inner
            return "dangling", None
        number = self.resolve(reference)
        return ("entry", self.resource(number)) if number is not None else ("dangling", None)

    def resource(self, number: int) -> dict[str, Any]:
        return self.entries[number - 1][1]


def map_bundle(data: dict[str, Any]) -> dict[str, Any]:
    """The preview structure of a validated bundle; BundleError for what cannot be imported
    (several patients, no cancer condition, dangling subject references, invalid dates)."""
    bundle = _Bundle(data)
    patients = [(n, r) for n, r in bundle.entries if r["resourceType"] == "Patient"]
    if len(patients) > 1:
        raise BundleError(
            _(
                "The bundle holds %(count)s patients; import a bundle with one patient. Nothing"
                " was imported."
            )
            % {"count": len(patients)}
        )
    patient_number, patient = patients[0] if patients else (None, None)
    scrub = _Scrubber(patient)
    preview: dict[str, Any] = {
        "patient": {"year_of_birth": None, "sex": "unknown", "source": "", "deceased_on": None},
        "tumours": [],
        "metastases": [],
        "staging": [],
        "performance": [],
        "comorbidities": [],
        "episodes": [],
        "therapy_items": [],
        "adverse_events": [],
        "responses": [],
        "biomarkers": [],
        "genomic_variants": [],
        "findings": [],
        "not_imported": [],
        "people": 0,
    }
    if patient is not None:
        birth = fhir_date(patient.get("birthDate"), "Patient.birthDate")
        died = fhir_date(patient.get("deceasedDateTime"), "Patient.deceasedDateTime")
        preview["patient"] = {
            "year_of_birth": int(birth[0][:4]) if birth else None,
            "sex": GENDERS.get(str(patient.get("gender")), "unknown"),
            "source": f"Patient (entry {patient_number})",
            "deceased_on": died[0] if died and died[1] == DAY else None,
        }
        if died and died[1] != DAY:
            preview["not_imported"].append(
                {
                    "source": f"Patient (entry {patient_number})",
                    "entry": patient_number,
                    "reason": _(
                        "Patient.deceasedDateTime: the date of death is not known to the day;"
                        " not imported (the case keeps a day)"
                    ),
                    "text": died[0][: 4 if died[1] == YEAR else 7],
                }
            )

    def source(number: int, resource: dict[str, Any]) -> str:
        rid = scrub(resource.get("id") or "", 80)
        return f"{resource['resourceType']}/{rid}" if rid else resource["resourceType"]

    def check_subject(number: int, resource: dict[str, Any]) -> None:
        subject = resource.get("subject") or resource.get("patient")
        if not isinstance(subject, dict) or not subject.get("reference"):
            return
        target = bundle.resolve(subject)
        if patient_number is not None and target != patient_number:
            raise BundleError(
                _(
                    "%(kind)s (entry %(number)s), field subject: the reference does not point"
                    " to the bundle's patient. Nothing was imported."
                )
                % {"kind": resource["resourceType"], "number": number}
            )

    def not_imported(number: int, resource: dict[str, Any], reason: str) -> None:
        parts = [_concept_text(resource.get("code"))]
        for key in ("valueCodeableConcept", "valueQuantity", "valueString", "valueInteger"):
            value = resource.get(key)
            if isinstance(value, dict) and "value" in value:
                parts.append(f"{value.get('value')} {value.get('unit') or ''}".strip())
            elif isinstance(value, dict):
                parts.append(_concept_text(value))
            elif value is not None:
                parts.append(str(value))
        medication = resource.get("medicationCodeableConcept")
        if medication:
            parts.append(_concept_text(medication))
        when = (
            resource.get("effectiveDateTime")
            or resource.get("performedDateTime")
            or resource.get("authoredOn")
            or resource.get("onsetDateTime")
        )
        if when:
            parts.append(str(when)[:10])
        preview["not_imported"].append(
            {
                "source": source(number, resource),
                "entry": number,
                "reason": reason,
                "text": scrub(" · ".join(p for p in parts if p), 500),
            }
        )

    preview["situation"] = own_choice(own_codes(data), "case.situation", Situation.values)
    clinical = _Clinical(bundle, preview, scrub)
    conditions: dict[int, str] = {}  # entry number -> tumour key
    staging_parts: list[dict[str, Any]] = []
    comorbidity_entries: set[int] = set()
    for number, resource in bundle.entries:
        kind = resource["resourceType"]
        if kind != "Patient" and kind not in PEOPLE:
            check_subject(number, resource)
        if kind == "Condition":
            which = condition_kind(resource)
            if which == "primary":
                tumour = _map_tumour(number, resource, scrub)
                tumour["source"] = source(number, resource)
                conditions[number] = tumour["key"]
                preview["tumours"].append(tumour)
            elif which == "secondary":
                metastasis = _map_metastasis(number, resource, scrub)
                metastasis["source"] = source(number, resource)
                preview["metastases"].append(metastasis)
            else:
                comorbidity_entries.add(number)
        elif kind == "Observation":
            mapped = _map_observation(number, resource, bundle, preview, scrub)
            if mapped == "staging":
                part = _map_tnm(number, resource, bundle, scrub)
                part["source"] = source(number, resource)
                staging_parts.append(part)
            elif mapped is None:
                if clinical.grade_observation(number, resource):
                    continue
                if clinical.response(number, resource):
                    continue
                if clinical.is_own_signature(resource):
                    clinical.signature(number, resource)
                elif clinical.is_variant(resource):
                    clinical.variant(number, resource)
                elif clinical.is_marker(resource):
                    clinical.marker(number, resource)
                elif clinical.is_lab(resource):
                    clinical.lab(number, resource)
                elif clinical.is_own_panel(resource):
                    clinical.panel(number, resource)
                else:
                    not_imported(number, resource, _observation_reason(resource))
        elif kind in PEOPLE:
            preview["people"] += 1
        elif kind in MEDICATIONS:
            clinical.medication(number, resource)
        elif kind == "Procedure":
            clinical.procedure(number, resource)
        elif kind == "AdverseEvent":
            clinical.adverse_event(number, resource)
        elif kind in NEVER_THERAPY:
            not_imported(number, resource, _("a plan or order, not a therapy given; not imported"))
        elif kind == "Medication":
            not_imported(
                number,
                resource,
                _("a medication's definition: the therapy naming it shows it as its agent"),
            )
        elif kind in REPORTS:
            not_imported(
                number,
                resource,
                _("a report or specimen: its observations are mapped one by one"),
            )
        elif kind == "Patient":
            continue
        else:
            not_imported(number, resource, _("not mapped"))
    for number in sorted(comorbidity_entries):
        resource = bundle.resource(number)
        since = fhir_date(resource.get("onsetDateTime"), f"Condition (entry {number}).onset")
        status = _concept_text(resource.get("clinicalStatus"))
        notes = [
            str(n["text"])
            for n in resource.get("note") or []
            if isinstance(n, dict) and n.get("text")
        ]
        if notes and (not status or status == "active"):  # our export keeps its note there
            status = " ".join(notes)
        preview["comorbidities"].append(
            {
                "source": source(number, resource),
                "name": scrub(_concept_text(resource.get("code")) or _("(no text)"), 200),
                "since": since[0] if since else None,
                "since_precision": since[1] if since else DAY,
                "note": scrub(status, 300) if status and status != "active" else "",
            }
        )
    if not preview["tumours"]:
        raise BundleError(
            _(
                "The bundle holds no primary cancer condition (a Condition with the mCODE"
                " primary cancer profile, an OncoTree, ICD-O-3 or ICD-10 C/D0 code). Nothing"
                " was imported."
            )
        )
    preview["staging"] = _group_staging(staging_parts, conditions)
    clinical.group()
    clinical.apply_grades()
    if preview["metastases"]:
        preview["metastasis_status"] = "present"
    return preview


def _observation_reason(resource: dict[str, Any]) -> str:
    profiles = _profiles(resource)
    text = " ".join(
        [profiles] + [str(c.get("code", "")) for c in _codings(resource.get("category"))]
    ).lower()
    if re.search(r"tumor-marker|genomic|laboratory|lab|biomarker|variant", text):
        return _("a laboratory or pathology result the case record has no field for")
    return _("not mapped")


def _question(system: str, code: str, version: str, display: str, target: str) -> dict[str, Any]:
    key = hashlib.sha1(f"{target}|{system}|{code}|{version}".encode()).hexdigest()[:12]  # noqa: S324
    return {
        "key": key,
        "system": system[:200],
        "code": code[:100],
        "version": version[:200],
        "display": display,
        "target": target,
        "answer": "",
        "learned": False,
    }


def _map_tumour(number: int, resource: dict[str, Any], scrub: _Scrubber) -> dict[str, Any]:
    codings = _codings(resource.get("code"))
    oncotree = next(
        (str(c.get("code")) for c in codings if _is_oncotree(str(c.get("system", "")))), ""
    )
    icd10 = next((c for c in codings if _is_icd10(str(c.get("system", "")))), None)
    ranked = sorted(
        (c for c in codings if c.get("code") and not _is_oncotree(str(c.get("system", "")))),
        key=lambda c: 0 if _is_icd10(str(c.get("system", ""))) else 1,
    )
    text = _concept_text(resource.get("code"))
    if ranked:
        first = ranked[0]
        question = _question(
            str(first.get("system", "")),
            str(first.get("code")),
            str(first.get("version") or ""),
            scrub(first.get("display") or text),
            ONCOTREE,
        )
    else:
        question = _question(TEXT_SYSTEM, scrub(text, 100).lower(), "", scrub(text), ONCOTREE)
    when = f"Condition (entry {number}).onset"
    diagnosed = fhir_date(resource.get("onsetDateTime"), when)
    if diagnosed is None and isinstance(resource.get("onsetPeriod"), dict):
        diagnosed = fhir_date(resource["onsetPeriod"].get("start"), when)
    if diagnosed is None:
        for extension in _extensions(resource, "asserteddate"):
            diagnosed = fhir_date(extension.get("valueDateTime"), f"Condition (entry {number})")
    laterality, laterality_from = "unknown", ""
    for site in resource.get("bodySite") or []:
        for extension in site.get("extension") or [] if isinstance(site, dict) else []:
            if "laterality" in str(extension.get("url", "")).lower():
                for coding in _codings(extension.get("valueCodeableConcept")):
                    if str(coding.get("code")) in LATERALITY_CODES:
                        laterality = LATERALITY_CODES[str(coding.get("code"))]
                        laterality_from = _concept_text(extension.get("valueCodeableConcept"))
    own = own_choice(own_codes(resource), "tumour.laterality", Laterality.values)
    if own:
        laterality, laterality_from = own, ""
    if laterality == "unknown":
        words = re.findall(r"[a-z]+", text.lower())
        for word, value in (("left", "left"), ("right", "right"), ("bilateral", "bilateral")):
            if word in words:
                laterality, laterality_from = value, text
    histology = ""
    for extension in _extensions(resource, "histology-morphology-behavior"):
        histology = _concept_text(extension.get("valueCodeableConcept"))
    extended = _own_values(resource)
    icd10_text = f"{icd10.get('code')} {icd10.get('display') or ''}".strip() if icd10 else ""
    if isinstance(extended.get("tumour.icd10_text"), str):
        icd10_text = extended["tumour.icd10_text"]
    return {
        "key": f"t{number}",
        "entry": number,
        "text": scrub(text),
        "oncotree": oncotree,
        "question": question,
        "icd10_text": scrub(icd10_text, 100),
        "laterality": laterality,
        "laterality_from": scrub(laterality_from),
        "diagnosed_on": diagnosed[0] if diagnosed else None,
        "diagnosed_on_precision": diagnosed[1] if diagnosed else DAY,
        "histology": scrub(histology, 300),
    }


def _map_metastasis(number: int, resource: dict[str, Any], scrub: _Scrubber) -> dict[str, Any]:
    sites = [s for s in resource.get("bodySite") or [] if isinstance(s, dict)]
    codings = [c for s in sites for c in _codings(s) if c.get("code")]
    codings.sort(key=lambda c: own_name(str(c.get("system") or "")) != "metastasis.site")
    if not codings:  # "Secondary malignant neoplasm of brain": the code names the site
        codings = [c for c in _codings(resource.get("code")) if c.get("code")]
    site_text = _concept_text(sites[0]) if sites else ""
    if codings:
        first = codings[0]
        question = _question(
            str(first.get("system", "")),
            str(first.get("code")),
            str(first.get("version") or ""),
            scrub(first.get("display") or site_text),
            SITE_SYSTEM,
        )
    else:
        text = site_text or _concept_text(resource.get("code"))
        question = _question(TEXT_SYSTEM, scrub(text, 100).lower(), "", scrub(text), SITE_SYSTEM)
    detected = fhir_date(resource.get("onsetDateTime"), f"Condition (entry {number}).onset")
    if detected is None:
        detected = fhir_date(
            resource.get("recordedDate"), f"Condition (entry {number}).recordedDate"
        )
    return {
        "key": f"m{number}",
        "entry": number,
        "text": scrub(_concept_text(resource.get("code"))),
        "question": question,
        "detected_on": detected[0] if detected else None,
        "detected_on_precision": detected[1] if detected else DAY,
        "timing": own_choice(own_codes(resource), "metastasis.timing", MetastasisTiming.values),
    }


def _observation_code(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(c.get("system", "")), str(c.get("code", ""))) for c in _codings(resource.get("code"))
    ]


def _map_observation(
    number: int,
    resource: dict[str, Any],
    bundle: _Bundle,
    preview: dict[str, Any],
    scrub: _Scrubber,
) -> str | None:
    """Maps ECOG, Karnofsky and mCODE comorbidity observations into `preview`; "staging" for
    a TNM observation; None for one not mapped."""
    codes = _observation_code(resource)
    where = f"Observation (entry {number})"
    named = {own_name(system) for system, _code in codes}
    if any(key in TNM_CODES for key in codes) or named & set(OWN_TNM):
        return "staging"
    own_ecog = "performancestatus.ecog" in named
    own_karnofsky = "performancestatus.karnofsky" in named
    if (
        (LOINC, ECOG_LOINC) in codes
        or (LOINC, KARNOFSKY_LOINC) in codes
        or own_ecog
        or own_karnofsky
    ):
        ecog = (LOINC, ECOG_LOINC) in codes or own_ecog
        answers = ECOG_ANSWERS if ecog else KARNOFSKY_ANSWERS
        value = resource.get("valueInteger")
        for coding in _codings(resource.get("valueCodeableConcept")):
            value = answers.get(str(coding.get("code")), value)
            if (
                own_name(str(coding.get("system") or "")) in named
                and str(coding.get("code")).isdigit()
            ):
                value = int(str(coding["code"]))
        allowed = range(0, 5) if ecog else range(0, 101, 10)
        if not isinstance(value, int) or value not in allowed:
            return None
        when = fhir_date(resource.get("effectiveDateTime"), f"{where}.effectiveDateTime")
        if when is None:
            return None
        preview["performance"].append(
            {
                "source": f"Observation/{scrub(resource.get('id') or '', 80)}",
                "assessed_on": when[0],
                "assessed_on_precision": when[1],
                "ecog": value if ecog else None,
                "karnofsky": None if ecog else value,
            }
        )
        return "performance"
    if "comorbidities" in _profiles(resource):
        for extension in resource.get("extension") or []:
            url = str(extension.get("url", "")).lower()
            absent = "absent" in url
            concept = extension.get("valueCodeableConcept")
            reference = extension.get("valueReference")
            if reference is not None and bundle.resolve(reference) is not None:
                continue  # the referenced Condition is imported as a comorbidity itself
            text = (
                _concept_text(concept)
                if concept
                else _("a condition not contained in the bundle (%(ref)s)")
                % {"ref": scrub((reference or {}).get("reference"), 120)}
            )
            if absent:
                reason = _("stated absent; not imported")
            elif concept:
                preview["comorbidities"].append(
                    {
                        "source": f"Observation/{scrub(resource.get('id') or '', 80)}",
                        "name": scrub(text, 200),
                        "since": None,
                        "since_precision": DAY,
                        "note": "",
                    }
                )
                continue
            else:
                reason = _("referenced resource is not in the bundle")
            preview["not_imported"].append(
                {
                    "source": f"Observation/{scrub(resource.get('id') or '', 80)}",
                    "entry": number,
                    "reason": reason,
                    "text": scrub(text, 500),
                }
            )
        return "comorbidities"
    return None


TNM_VALUE_RE = re.compile(
    r"(?:^|[\s(])(y?r?a?)([cp]?)([TNM])([0-9a-zX][0-9a-d]*(?:\([a-z+\-]+\))?)"
)
STAGE_RE = re.compile(r"stage\s+(0|[IV]+[A-D]?[0-9]?)\b", re.IGNORECASE)
ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV"}


def _map_tnm(
    number: int, resource: dict[str, Any], bundle: _Bundle, scrub: _Scrubber
) -> dict[str, Any]:
    codes = _observation_code(resource)
    letters = [TNM_CODES[key] for key in codes if key in TNM_CODES]
    letters += [("", OWN_TNM[n]) for n in (own_name(s) for s, _c in codes) if n in OWN_TNM]
    kind, letter = letters[0]  # _map_observation found one of the two
    own = own_codes(resource)
    kind = {"clinical": "c", "pathological": "p"}.get(own.get("stagingrecord.kind", ""), kind)
    concept = resource.get("valueCodeableConcept")
    raw = ""
    for coding in _codings(concept):
        if "cancerstaging.org" in str(coding.get("system", "")):
            raw = str(coding.get("code", ""))
    valued = own_codes(concept)
    ours = next((n for n, letter_of in OWN_TNM.items() if letter_of == letter and n in valued), "")
    if ours:  # our own code: the value as our lists spell it, no parsing
        prefix = own.get(f"stagingrecord.{letter.lower()}_prefix", "")
        when = fhir_date(resource.get("effectiveDateTime"), f"Observation (entry {number})")
        focus = [bundle.resolve(f) for f in resource.get("focus") or []]
        return {
            "entry": number,
            "kind": kind or prefix or "c",
            "letter": letter,
            "prefix": prefix or kind or "c",
            "value": valued[ours],
            "text": scrub(_concept_text(concept) or valued[ours]),
            "edition": own.get("stagingrecord.tnm_edition", ""),
            "date": when,
            "focus": [f for f in focus if f is not None],
        }
    text = raw or _concept_text(concept)
    value = prefix = ""
    if letter == "S":
        if raw and raw[:1] in ROMAN:
            value = ROMAN[raw[:1]] + raw[1:].upper()
        else:
            match = STAGE_RE.search(text)
            value = match.group(1).upper() if match else ""
    else:
        for match in TNM_VALUE_RE.finditer(" " + text):
            if match.group(3) == letter:
                prefix, value = match.group(2), match.group(4)
                break
    edition = ""
    for coding in _codings(resource.get("method")):
        edition = EDITION_CODES.get(str(coding.get("code")), edition)
        found = re.search(r"\b([789])th edition", str(coding.get("display") or ""))
        edition = found.group(1) if found else edition
    when = fhir_date(resource.get("effectiveDateTime"), f"Observation (entry {number})")
    focus = [bundle.resolve(f) for f in resource.get("focus") or []]
    return {
        "entry": number,
        "kind": kind or prefix or "c",
        "letter": letter,
        "prefix": prefix or kind or "c",
        "value": value,
        "text": scrub(text),
        "edition": edition,
        "date": when,
        "focus": [f for f in focus if f is not None],
    }


def _group_staging(parts: list[dict[str, Any]], conditions: dict[int, str]) -> list[dict[str, Any]]:
    """One staging record per kind (clinical/pathological) and date."""
    records: dict[tuple[str, Any], dict[str, Any]] = {}
    for part in parts:
        date_key = tuple(part["date"]) if part["date"] else None
        record = records.setdefault(
            (part["kind"], date_key),
            {
                "kind": "pathological" if part["kind"] == "p" else "clinical",
                "staged_on": part["date"][0] if part["date"] else None,
                "staged_on_precision": part["date"][1] if part["date"] else DAY,
                "tnm_edition": "",
                "tumour": "",
                "values": [],
                "sources": [],
            },
        )
        record["tnm_edition"] = record["tnm_edition"] or part["edition"]
        for focus in part["focus"]:
            record["tumour"] = record["tumour"] or conditions.get(focus, "")
        record["values"].append(
            {
                "letter": part["letter"],
                "prefix": part["prefix"],
                "value": part["value"],
                "text": part["text"],
                "source": part["source"],
            }
        )
        record["sources"].append(part["source"])
    return list(records.values())


# --- therapies, adverse events, biomarkers, genomic variants, laboratory findings ----------

THERAPY_TYPE = "mii:therapie-typ"  # the question target of a medication's code
RESPONSE = "therapyline.response"  # the question target of a response observation's value
AE_TERM = "adverseevent.term"  # the question target of an adverse event's code (free text)
MEDICATIONS = {"MedicationRequest", "MedicationAdministration", "MedicationStatement"}
NEVER_THERAPY = {"CarePlan", "ServiceRequest"}
# What happened (or is happening), per resource type; anything else is not imported.
HAPPENED = {
    "MedicationAdministration": {"completed", "in-progress", "stopped", "on-hold"},
    "MedicationStatement": {"active", "completed", "stopped", "on-hold"},
    "MedicationRequest": {"active", "completed", "stopped", "on-hold"},
    "Procedure": {"completed", "in-progress", "stopped"},
}
ONGOING_STATUSES = {"active", "in-progress", "on-hold"}
ORDER_INTENTS = {"order", "original-order", "instance-order"}
# SNOMED CT concepts of mCODE's procedure-intent value set and of common treatment-stop
# reasons, to the MII codes of our intent and end-reason lists.
INTENT_CODES = {"373808002": "K", "363676003": "P", "261004008": "D"}
END_REASON_CODES = {
    "182992009": "E",  # treatment completed
    "407563006": "A",  # treatment not tolerated
    "266721009": "P",  # absent response to treatment
    "105480006": "V",  # refusal of treatment by patient
    "419620001": "T",  # death
}
SURGERY_CATEGORY = "387713003"
RADIOTHERAPY_CATEGORY = "108290001"
RADIOTHERAPY_COURSE = "1217123003"
EPISODE_TYPES = {"surgery": ["OP"], "radiotherapy": ["ST"], "radiosurgery": ["ST"]}
# NCI thesaurus codes of the CTCAE grades (as the CodeX adverse-event grade extension uses).
NCI_GRADES = {"C41338": "1", "C41339": "2", "C41340": "3", "C41337": "4", "C48275": "5"}
CTCAE_VERSIONS = ("4.03", "5.0", "6.0")

# Tumour markers: LOINC code -> our marker name (the biomarker form's common names).
MARKER_NAMES = {
    "85337-4": "ER",
    "16112-5": "ER",
    "85339-0": "PR",
    "16113-3": "PR",
    "48676-1": "HER2",
    "85319-2": "HER2",
    "85318-4": "HER2",
    "29593-1": "Ki-67",
    "2857-1": "PSA",
    "2039-6": "CEA",
    "6875-9": "CA 15-3",
    "24108-3": "CA 19-9",
}
CIRCULATING = {"PSA", "CEA", "CA 15-3", "CA 19-9"}
GENOMIC_VARIANT_CODE = "69548-6"
GENE_STUDIED = "48018-6"
CODING_CHANGE = "48004-6"
PROTEIN_CHANGE = "48005-3"
GENOMIC_CHANGE = "81290-9"
DISCRETE_VARIANT = "81252-9"
SOURCE_CLASS = "48002-0"
ALLELE_FREQUENCY = "81258-6"
ORIGINS = {"LA6684-0": "somatic", "LA6683-2": "germline", "LA18198-4": "germline"}
VARIANT_NAME_RE = re.compile(
    r"^(?P<transcript>[NX][MR]_\d+(?:\.\d+)?)?(?:\((?P<gene>[A-Za-z0-9\-]+)\))?:?"
    r"(?P<c>c\.\S+)?(?:\s*\((?P<p>p\.[^)]*\)?)\))?"
)

# Laboratory findings by LOINC: code -> the finding's field.
LAB_FIELDS = {
    "6690-2": "leukocytes",
    "26464-8": "leukocytes",
    "751-8": "neutrophils",
    "753-4": "neutrophils",
    "26499-4": "neutrophils",
    "731-0": "lymphocytes",
    "732-8": "lymphocytes",
    "26474-7": "lymphocytes",
    "777-3": "platelets",
    "26515-7": "platelets",
    "718-7": "haemoglobin",
    "2465-3": "igg",
    "2458-8": "iga",
    "2472-9": "igm",
    "5196-1": "hbsag",
    "5195-3": "hbsag",
    "16933-4": "anti_hbc",
    "13952-7": "anti_hbc",
    "22322-2": "anti_hbs",
    "10900-9": "anti_hbs",
    "16935-9": "anti_hbs",
    "29615-2": "hbv_dna",
    "24467-3": "cd4",
    "16128-1": "hcv",
}
COUNTS = {"leukocytes", "neutrophils", "lymphocytes", "platelets"}
SEROLOGY = {"hbsag", "anti_hbc", "anti_hbs", "hcv", "hiv"}
CD4_UNITS = {"/uL", "{cells}/uL", "10*6/L", "/mm3", "{cells}/mm3"}
IMMUNOGLOBULINS = {"igg", "iga", "igm"}
# UCUM unit -> (factor to the stored unit, the laboratory unit kept beside the value).
COUNT_UNITS = {
    "10*9/L": ("1", "1e9/L"),
    "10^9/L": ("1", "1e9/L"),
    "10*3/uL": ("1", "1e9/L"),
    "10^3/uL": ("1", "1e9/L"),
    "10*3/mm3": ("1", "1e9/L"),
    "Gpt/L": ("1", "Gpt/L"),
    "/uL": ("0.001", "/uL"),
    "{cells}/uL": ("0.001", "/uL"),
    "/mm3": ("0.001", "/uL"),
}
HAEMOGLOBIN_UNITS = {
    "g/dL": ("1", "g/dL"),
    "g/L": ("0.1", "g/L"),
    "mmol/L": ("1.6114", "mmol/L"),
}
IG_UNITS = {"g/L": "1", "mg/dL": "0.01", "g/dL": "10", "mg/L": "0.001"}
HBV_DNA_UNITS = {"[IU]/mL", "IU/mL"}
LAB_LIMITS = {
    "leukocytes": 1000,
    "neutrophils": 100,
    "lymphocytes": 500,
    "platelets": 5000,
    "haemoglobin": 30,
    "igg": 100,
    "iga": 100,
    "igm": 100,
    "cd4": 20000,
}
POSITIVE = {"LA6576-8", "10828004", "POS", "DET", "LA11882-0", "positive", "reactive", "detected"}
NEGATIVE = {
    "LA6577-6",
    "260385009",
    "NEG",
    "ND",
    "LA11883-8",
    "negative",
    "non-reactive",
    "nonreactive",
    "not detected",
}


def own_codes(resource: Any) -> dict[str, str]:
    """The codes of our own code systems anywhere in a resource (codings, extensions,
    contained resources): field name -> code, the first of each field."""
    found: dict[str, str] = {}
    stack = [resource]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            name = own_name(str(value.get("system") or ""))
            if name and value.get("code") is not None:
                found.setdefault(name, str(value["code"]))
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    return found


def own_choice(found: dict[str, str], name: str, choices: Any) -> str:
    """Our code for field `name` when it is one of the field's choices, else ""."""
    code = found.get(name, "")
    return code if code in {str(c) for c in choices} else ""


def _date_of(resource: dict[str, Any], where: str, *names: str) -> dict[str, Any]:
    """start/end with precision from the first of `names` present (a dateTime or a Period)."""
    for name in names:
        value = resource.get(name)
        if value is None:
            continue
        if isinstance(value, dict):
            start = fhir_date(value.get("start"), f"{where}.{name}.start")
            end = fhir_date(value.get("end"), f"{where}.{name}.end")
        else:
            start, end = fhir_date(value, f"{where}.{name}"), None
        if start is None and end is None:
            continue
        return {
            "start": start[0] if start else None,
            "start_precision": start[1] if start else DAY,
            "end": end[0] if end else None,
            "end_precision": end[1] if end else DAY,
        }
    return {"start": None, "start_precision": DAY, "end": None, "end_precision": DAY}


def _request_period(resource: dict[str, Any], where: str) -> dict[str, Any]:
    """A MedicationRequest's period: its dosage's bounds, else the dispense validity, else
    the day it was authored."""
    for number, dosage in enumerate(resource.get("dosageInstruction") or []):
        bounds = (((dosage or {}).get("timing") or {}).get("repeat") or {}).get("boundsPeriod")
        if isinstance(bounds, dict):
            found = _date_of(
                {"boundsPeriod": bounds},
                f"{where}.dosageInstruction[{number}].timing.repeat",
                "boundsPeriod",
            )
            if found["start"]:
                return found
    validity = (resource.get("dispenseRequest") or {}).get("validityPeriod")
    if isinstance(validity, dict):
        found = _date_of({"validityPeriod": validity}, f"{where}.dispenseRequest", "validityPeriod")
        if found["start"]:
            return found
    return _date_of(resource, where, "authoredOn")


def _own_episode(own: dict[str, str], status: str) -> bool:
    """Whether a resource is an episode our own export wrote with status "unknown": a recorded
    episode, neither ongoing nor with an end recorded (from anybody else "unknown" may be a
    therapy that never happened)."""
    return status == "unknown" and bool(own_choice(own, "therapyline.kind", EPISODE_KINDS))


def _coded(concepts: Any, table: dict[str, str]) -> tuple[str, str]:
    """(our code, the quoted text) of the first coding in `table` among one or several
    CodeableConcepts; ("", text) when none is."""
    items = concepts if isinstance(concepts, list) else [concepts]
    text = ""
    for concept in items:
        text = text or _concept_text(concept)
        for coding in _codings(concept):
            if str(coding.get("code")) in table:
                return table[str(coding.get("code"))], _concept_text(concept)
    return "", text


def _linked(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The references that tie one therapy resource to another: basedOn, partOf, request,
    priorPrescription and any reference to a CarePlan (not reasonReference: every therapy
    of the case names the same cancer)."""
    found: list[dict[str, Any]] = []
    for name in ("basedOn", "partOf", "request", "priorPrescription"):
        value = resource.get(name)
        found.extend(v for v in (value if isinstance(value, list) else [value]) if v)
    stack: list[Any] = list(resource.get("extension") or [])
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "CarePlan/" in str(value.get("reference") or ""):
                found.append(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return [r for r in found if isinstance(r, dict)]


# The episode fields the mapping takes from the resource itself (not as our extension).
THERAPY_MAPPED = {
    *("kind", "number", "types", "regimen", "agents", "intent", "position"),
    *("started_on", "ended_on", "ongoing", "response", "end_reason", "category"),
}


# The adverse event fields the mapping takes from the resource itself (the attributed agent
# of our own export is read as ours, in place of the causative resource's text).
AE_MAPPED = {
    *("term", "grade", "ctcae_version", "onset_on", "immune_related", "course", "line"),
}


def _improved(course: str, grade: str, extra: dict[str, Any]) -> tuple[str, str]:
    """The course and the grade it improved to, only together and only to a lower grade (as
    the form and the database require); else neither, with the reason."""
    improved = extra.get("improved_to_grade")
    if course == AeCourse.IMPROVED and improved is None:
        return "", _("the course “improved” without the grade it improved to is not imported")
    if improved is None:
        return course, ""
    if course != AeCourse.IMPROVED or (grade.isdigit() and improved >= int(grade)):
        extra.pop("improved_to_grade")
        return course if course != AeCourse.IMPROVED else "", _(
            "the grade it improved to (%(grade)s) does not fit the course or the grade; it is"
            " not imported"
        ) % {"grade": improved}
    return course, ""


# The variant fields the mapping takes from the resource itself (a signature's TMB and MSI
# belong to rows of their own kind: see `signature`).
VARIANT_MAPPED = {
    *("result_kind", "status", "gene", "transcript", "hgvs_c", "hgvs_p", "origin", "vaf"),
    *("assay", "reported_on", "tmb", "msi"),
}


# A signature's fields the mapping takes from the resource itself (its TMB: see `signature`).
SIGNATURES = {"tmb", "msi"}
SIGNATURE_MAPPED = {"result_kind", "status", "reported_on", "vaf"}


class _Clinical:
    """Maps therapies, adverse events, tumour markers, genomic variants and laboratory
    findings of one bundle into the preview; whatever it cannot map goes to `not_imported`
    with the reason (naming the resource and field)."""

    def __init__(self, bundle: _Bundle, preview: dict[str, Any], scrub: _Scrubber) -> None:
        self.bundle = bundle
        self.preview = preview
        self.scrub = scrub
        self.items: list[dict[str, Any]] = []
        self.links: dict[str, list[str]] = {}  # item key -> the reference keys it names
        self.grades: dict[int, tuple[str, str, str]] = {}  # AdverseEvent entry -> grade

    def source(self, resource: dict[str, Any]) -> str:
        rid = self.scrub(resource.get("id") or "", 80)
        return f"{resource['resourceType']}/{rid}" if rid else resource["resourceType"]

    def given(
        self,
        number: int,
        resource: dict[str, Any],
        happened: Any,
        own: dict[str, str],
        status: str,
        text: str,
    ) -> bool:
        """Whether the resource's status says the therapy was given (or it is an episode of our
        own export); otherwise it is listed as not imported."""
        if status in happened or _own_episode(own, status):
            return True
        self.skip(
            number,
            resource,
            _("status “%(status)s”: not a therapy given; not imported")
            % {"status": self.scrub(status, 40)},
            text,
        )
        return False

    def skip(self, number: int, resource: dict[str, Any], reason: str, text: str = "") -> None:
        for name in ("effectiveDateTime", "performedDateTime", "authoredOn", "date"):
            if isinstance(resource.get(name), str):
                text = " · ".join(p for p in (text, resource[name][:10]) if p)
                break
        self.preview["not_imported"].append(
            {
                "source": self.source(resource),
                "entry": number,
                "reason": reason,
                "text": self.scrub(text, 500),
            }
        )

    def own_extra(
        self, number: int, resource: dict[str, Any], model: Any, mapped: set[str]
    ) -> dict[str, Any]:
        """`own_fields` of a resource of our own export, its texts scrubbed; each value it
        cannot take is listed as not imported."""
        found, problems = own_fields(resource, model, mapped, self.source(resource))
        for problem in problems:
            self.preview["not_imported"].append(
                {"source": self.source(resource), "entry": number, "reason": problem, "text": ""}
            )
        for name, value in found.items():
            model_field = model._meta.get_field(name)
            free = not model_field.choices and not name.endswith("_precision")
            if free and isinstance(model_field, models.CharField | models.TextField):
                found[name] = self.scrub(value, model_field.max_length or 2000)
        return found

    # therapies

    def medication(self, number: int, resource: dict[str, Any]) -> None:
        kind = resource["resourceType"]
        where = f"{self.source(resource)} (entry {number})"
        concept = resource.get("medicationCodeableConcept")
        if concept is None and resource.get("medicationReference") is not None:
            how, medication = self.bundle.target(resource, resource["medicationReference"])
            if medication is None:
                self.skip(
                    number,
                    resource,
                    _(
                        "%(where)s, field medicationReference: the reference points to no"
                        " resource in the bundle; not imported."
                    )
                    % {"where": where},
                    str(resource["medicationReference"].get("display") or ""),
                )
                return
            concept = medication.get("code")
        text = _concept_text(concept)
        status = str(resource.get("status") or "")
        if kind == "MedicationRequest" and resource.get("intent") not in ORDER_INTENTS:
            self.skip(
                number,
                resource,
                _("a plan or proposal (intent “%(intent)s”), not a therapy given; not imported")
                % {"intent": self.scrub(resource.get("intent"), 40)},
                text,
            )
            return
        own = own_codes(resource)
        if not self.given(number, resource, HAPPENED[kind], own, status, text):
            return
        if kind == "MedicationRequest":
            period = _request_period(resource, where)
        else:
            period = _date_of(resource, where, "effectivePeriod", "effectiveDateTime")
        if not period["start"]:
            self.skip(number, resource, _("no start date; not imported"), text)
            return
        codings = [
            c
            for c in _codings(concept)
            if c.get("code") and not own_name(str(c.get("system") or ""))
        ]
        question = None
        types = _own_types(resource, own)
        if own_choice(own, "therapyline.kind", EPISODE_KINDS):
            # Our own export: its types (none recorded, none said) answer, nothing is asked.
            self._item(number, resource, "systemic", text, period, own, None, types)
            return
        if codings:
            first = codings[0]
            question = _question(
                str(first.get("system", "")),
                str(first.get("code")),
                str(first.get("version") or ""),
                self.scrub(first.get("display") or text),
                THERAPY_TYPE,
            )
        else:
            question = _question(
                TEXT_SYSTEM, self.scrub(text, 100).lower(), "", self.scrub(text), THERAPY_TYPE
            )
        if types:  # our own code answers; the question is kept should the code be wrong
            item = self._item(number, resource, "systemic", text, period, own, None, types)
            item["fallback"] = question
        else:
            self._item(number, resource, "systemic", text, period, own, question, types)

    def procedure(self, number: int, resource: dict[str, Any]) -> None:
        where = f"{self.source(resource)} (entry {number})"
        text = _concept_text(resource.get("code"))
        own = own_codes(resource)
        profiles = _profiles(resource)
        category = {str(c.get("code")) for c in _codings(resource.get("category"))}
        codes = {str(c.get("code")) for c in _codings(resource.get("code"))}
        kind = own_choice(own, "therapyline.kind", EPISODE_KINDS)
        if not kind:
            if (
                "radiotherapy" in profiles
                or RADIOTHERAPY_CATEGORY in category
                or RADIOTHERAPY_COURSE in codes
            ):
                kind = "radiotherapy"
            elif "surgical-procedure" in profiles or SURGERY_CATEGORY in category:
                kind = "surgery"
        if kind == "radiotherapy" and "radiosurgery" in text.lower():
            kind = "radiosurgery"
        if not kind:
            self.skip(
                number,
                resource,
                _(
                    "a procedure that no profile or category marks as surgery or radiotherapy;"
                    " not imported as a therapy"
                ),
                text,
            )
            return
        status = str(resource.get("status") or "")
        if not self.given(number, resource, HAPPENED["Procedure"], own, status, text):
            return
        period = _date_of(resource, where, "performedPeriod", "performedDateTime")
        if not period["start"]:
            self.skip(number, resource, _("no start date; not imported"), text)
            return
        if kind == "radiotherapy" and not text.strip(" 0123456789"):
            text = _("radiotherapy course")
        types = EPISODE_TYPES.get(kind, [])
        if own_choice(own, "therapyline.kind", EPISODE_KINDS) or "therapyline.types" in own:
            types = _own_types(resource, own)  # ours: its types only (none when none said)
        item = self._item(number, resource, kind, text, period, own, None, list(types))
        if not item["own"]:
            item["regimen"] = self.scrub(self._doses(number, resource, text), 300)

    def _doses(self, number: int, resource: dict[str, Any], text: str) -> str:
        """The procedure's text with the doses delivered ("60 Gy in 30 fractions")."""
        parts = []
        for extension in resource.get("extension") or []:
            if not isinstance(extension, dict) or "dose-delivered" not in str(extension.get("url")):
                continue
            dose, fractions = None, None
            for inner in extension.get("extension") or []:
                if not isinstance(inner, dict):
                    continue
                if inner.get("url") == "totalDoseDelivered":
                    quantity = inner.get("valueQuantity") or {}
                    unit = str(quantity.get("code") or quantity.get("unit") or "")
                    value = _decimal(quantity.get("value"))
                    if value is not None and unit in ("cGy", "Gy"):
                        gray = value / 100 if unit == "cGy" else value
                        dose = f"{gray.normalize():f} Gy"
                    else:
                        self.skip(
                            number,
                            resource,
                            _(
                                "%(where)s, field extension.totalDoseDelivered: the unit"
                                " “%(unit)s” is not known (Gy or cGy); the dose is not imported"
                            )
                            % {"where": self.source(resource), "unit": self.scrub(unit, 30)},
                            str(quantity.get("value")),
                        )
                elif inner.get("url") == "fractionsDelivered":
                    fractions = inner.get("valueUnsignedInt")
            if dose:
                parts.append(
                    _("%(dose)s in %(n)s fractions") % {"dose": dose, "n": fractions}
                    if isinstance(fractions, int)
                    else dose
                )
        return "; ".join([text, *parts]) if parts else text

    def _item(
        self,
        number: int,
        resource: dict[str, Any],
        kind: str,
        text: str,
        period: dict[str, Any],
        own: dict[str, str],
        question: dict[str, Any] | None,
        types: list[str],
    ) -> dict[str, Any]:
        intent = own.get("therapyline.intent", "")
        intent_text = ""
        if not intent:
            intents = [e.get("valueCodeableConcept") for e in _extensions(resource, "intent")]
            intent, intent_text = _coded(intents, INTENT_CODES) if intents else ("", "")
        end_reason = own.get("therapyline.end_reason", "")
        end_reason_text = ""
        if not end_reason and resource.get("statusReason"):
            end_reason, end_reason_text = _coded(resource.get("statusReason"), END_REASON_CODES)
        if period["end"] and period["end"] < period["start"]:
            self.skip(
                number,
                resource,
                _("%(where)s: the period ends before it starts; the end is not imported")
                % {"where": self.source(resource)},
                text,
            )
            period = period | {"end": None, "end_precision": DAY}
        status = str(resource.get("status") or "")
        ongoing = status in ONGOING_STATUSES and not period["end"]
        # Our own export's line number: proposed in the preview, never guessed otherwise.
        line = _own_values(resource).get("therapyline.number")
        item = {
            "key": f"i{number}",
            "entry": number,
            "source": self.source(resource),
            "kind": kind,
            "text": self.scrub(text, 200),
            "question": question,
            "types": types,
            "status": self.scrub(status, 40),
            **period,
            "ongoing": ongoing,
            "intent": intent,
            "intent_text": self.scrub(intent_text, 200),
            "end_reason": "" if ongoing else end_reason,
            "end_reason_text": self.scrub(end_reason_text, 200),
            "response": own_choice(own, "therapyline.response", RESPONSES),
            "position": own_choice(own, "therapyline.position", POSITIONS),
            "number": line if type(line) is int and 1 <= line <= 99 else None,
            # Our own export names its regimen and agents apart from the resource's text.
            "own": bool(own_choice(own, "therapyline.kind", EPISODE_KINDS)),
            "agents": [self.scrub(a, 200) for a in _own_list(resource, "therapyline.agents")],
            "regimen": self.scrub(_own_values(resource).get("therapyline.regimen") or "", 300),
            "episode": "",
            # Our own export's other fields (cycles, dose reductions, MRD...), as recorded.
            "extra": self.own_extra(number, resource, TherapyLine, THERAPY_MAPPED)
            if own_choice(own, "therapyline.kind", EPISODE_KINDS)
            else {},
        }
        self.items.append(item)
        keys = [f"entry:{number}"]
        for reference in _linked(resource):
            target = self.bundle.resolve(reference)
            raw = str(reference.get("reference") or "")
            ident = reference.get("identifier")
            if target is not None:
                keys.append(f"entry:{target}")
            elif raw and not raw.startswith("#"):  # a contained id is the resource's own
                keys.append(f"ref:{raw}")
            elif not raw and isinstance(ident, dict) and ident.get("value"):
                # Shared like any reference, but shown without the identifier.
                keys.append(f"ident:{ident.get('system') or ''}|{ident['value']}")
        self.links[item["key"]] = keys
        return item

    def group(self) -> None:
        """Systemic items become episodes: items naming a shared reference (basedOn, partOf,
        request, a CarePlan) or with overlapping periods are one episode; each procedure is
        an episode of its own. Every episode says how it was grouped."""
        systemic = [i for i in self.items if i["kind"] == "systemic"]
        parent = {i["key"]: i["key"] for i in systemic}
        why: dict[str, set[str]] = {i["key"]: set() for i in systemic}

        def root(key: str) -> str:
            while parent[key] != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        def join(a: str, b: str, reason: str) -> None:
            ra, rb = root(a), root(b)
            why[a].add(reason)
            why[b].add(reason)
            if ra != rb:
                parent[rb] = ra

        owner: dict[str, str] = {}
        for item in systemic:
            for ref in self.links[item["key"]]:
                if ref in owner:
                    shown = self._ref_text(ref)
                    join(owner[ref], item["key"], _("shared reference %(ref)s") % {"ref": shown})
                else:
                    owner[ref] = item["key"]
        # Overlapping periods: a sweep over the items by start (an item without an end
        # covers its start day only).
        spans = sorted(
            (i["start"], i["end"] or i["start"], i["key"]) for i in systemic if i["start"]
        )
        current_end, current_key = "", ""
        for start, end, key in spans:
            if current_key and start <= current_end:
                join(current_key, key, _("overlapping period"))
                current_end = max(current_end, end)
            else:
                current_end, current_key = end, key
        episodes: dict[str, dict[str, Any]] = {}
        number = 0
        for item in sorted(self.items, key=lambda i: (i["start"] or "", i["entry"])):
            group = root(item["key"]) if item["kind"] == "systemic" else item["key"]
            if group not in episodes:
                number += 1
                episodes[group] = {
                    "key": f"e{number}",
                    "kind": item["kind"],
                    "items": [],
                    "grouped_by": [],
                    "position": item["position"],
                    "number": item.get("number"),
                }
            episode = episodes[group]
            episode["items"].append(item["key"])
            item["episode"] = episode["key"]
            for reason in sorted(why.get(item["key"], ())):
                if reason not in episode["grouped_by"]:
                    episode["grouped_by"].append(reason)
        for episode in episodes.values():
            if not episode["grouped_by"]:
                episode["grouped_by"] = [_("one resource")]
        self.preview["therapy_items"] = self.items
        self.preview["episodes"] = list(episodes.values())

    def _ref_text(self, ref: str) -> str:
        kind, _sep, value = ref.partition(":")
        if kind == "entry" and value.isdigit():
            return self.source(self.bundle.resource(int(value)))
        if kind == "ident":
            return _("(a reference by identifier, not in the bundle)")
        return self.scrub(value, 80)

    # adverse events

    def adverse_event(self, number: int, resource: dict[str, Any]) -> None:
        where = self.source(resource)
        text = _concept_text(resource.get("event"))
        if resource.get("actuality") == "potential":
            self.skip(number, resource, _("a potential adverse event; not imported"), text)
            return
        own = own_codes(resource)
        grade, grade_text, version = self._grade(resource)
        grade = own_choice(own, "adverseevent.grade", AE_GRADES) or grade
        onset = _date_of(resource, f"{where} (entry {number})", "date", "detected", "recordedDate")
        question = None
        term = ""
        codings = [c for c in _codings(resource.get("event")) if c.get("code")]
        plain = (resource.get("event") or {}).get("text") or next(
            (c.get("display") for c in codings if c.get("display")), ""
        )
        if plain:
            term = self.scrub(plain, 200)
        elif codings:
            first = codings[0]
            question = _question(
                str(first.get("system", "")),
                str(first.get("code")),
                str(first.get("version") or ""),
                self.scrub(first.get("code")),
                AE_TERM,
            )
        else:
            self.skip(
                number,
                resource,
                _("%(where)s, field event: no term given; not imported") % {"where": where},
            )
            return
        causes = []
        agent = ""
        for suspect in resource.get("suspectEntity") or []:
            instance = (suspect or {}).get("instance") if isinstance(suspect, dict) else None
            how, target = self.bundle.target(resource, instance)
            if target is None:
                if how == "dangling":
                    self.skip(
                        number,
                        resource,
                        _(
                            "%(where)s, field suspectEntity.instance: the reference points to"
                            " no resource in the bundle; the event is imported without it"
                        )
                        % {"where": where},
                        str((instance or {}).get("display") or ""),
                    )
                continue
            entry = self.bundle.resolve(instance) if how == "entry" else None
            if entry is not None and target["resourceType"] in MEDICATIONS | {"Procedure"}:
                causes.append(f"i{entry}")
            if target["resourceType"] == "Medication" or target["resourceType"] in MEDICATIONS:
                concept = target.get("code") or target.get("medicationCodeableConcept")
                agent = agent or _concept_text(concept)
        extra: dict[str, Any] = {}
        course = own_choice(own, "adverseevent.course", AeCourse.values)
        if "adverseevent.grade" in own:  # our own export: its other fields, as recorded
            extra = self.own_extra(number, resource, AdverseEvent, AE_MAPPED)
            # The agent as our export says it (none if it names none), not the episode text.
            agent = extra.pop("attributed_agent", "")
        course, problem = _improved(course, grade, extra)
        if problem:
            self.skip(number, resource, f"{where}: {problem}", text)
        self.preview["adverse_events"].append(
            {
                "key": f"a{number}",
                "entry": number,
                "source": where,
                "term": term,
                "question": question,
                "grade": grade,
                "grade_text": self.scrub(grade_text, 200),
                "ctcae_version": own_choice(own, "adverseevent.ctcae_version", CTCAE_CHOICES)
                or version,
                "onset_on": onset["start"],
                "onset_on_precision": onset["start_precision"],
                "causes": causes,
                "attributed_agent": self.scrub(agent, 200),
                "course": course,
                "extra": extra,
                # Our export says it as a valueBoolean of our extension, not a coding.
                "immune_related": _own_values(resource).get("adverseevent.immune_related") is True,
            }
        )

    def _grade(self, resource: dict[str, Any]) -> tuple[str, str, str]:
        """(grade 1-5 or "U", the quoted text it was read from, CTCAE version)."""
        for extension in resource.get("extension") or []:
            if not isinstance(extension, dict) or "grade" not in str(extension.get("url")).lower():
                continue
            found = _grade_value(extension)
            if found[0] != "U":
                return found
        return "U", _concept_text(resource.get("severity")), "not_recorded"

    def response(self, number: int, resource: dict[str, Any]) -> bool:
        """An Observation that is part of a therapy resource (Observation.partOf), e.g. an
        mCODE disease status: the response of that resource's episode, asked with the
        response picker unless our own code gives it."""
        therapies = []
        for part in resource.get("partOf") or []:
            entry = self.bundle.resolve(part)
            kind = self.bundle.resource(entry)["resourceType"] if entry is not None else ""
            if kind in MEDICATIONS or kind == "Procedure":
                therapies.append(f"i{entry}")
        concept = resource.get("valueCodeableConcept")
        if not therapies or not isinstance(concept, dict):
            return False
        own = own_choice(own_codes(concept), "therapyline.response", RESPONSES)
        codings = [c for c in _codings(concept) if c.get("code")]
        text = _concept_text(concept)
        question = None
        if not own:
            first = codings[0] if codings else {"system": TEXT_SYSTEM, "code": text.lower()}
            question = _question(
                str(first.get("system", "")),
                self.scrub(first.get("code"), 100),
                str(first.get("version") or ""),
                self.scrub(first.get("display") or text),
                RESPONSE,
            )
        self.preview["responses"].append(
            {
                "key": f"r{number}",
                "source": self.source(resource),
                "items": therapies,
                "text": self.scrub(text, 200),
                "response": own,
                "question": question,
            }
        )
        return True

    def grade_observation(self, number: int, resource: dict[str, Any]) -> bool:
        """An Observation of an adverse event's grade (focus: the event): kept for the event."""
        words = (_concept_text(resource.get("code")) + " " + _profiles(resource)).lower()
        if "grade" not in words and "ctcae" not in words:
            return False
        for focus in resource.get("focus") or []:
            entry = self.bundle.resolve(focus)
            if entry is not None and self.bundle.resource(entry)["resourceType"] == "AdverseEvent":
                found = _grade_value(resource)
                if found[0] != "U":
                    self.grades[entry] = found
                    return True
        return False

    def apply_grades(self) -> None:
        for event in self.preview["adverse_events"]:
            if event["grade"] == "U" and event["entry"] in self.grades:
                event["grade"], event["grade_text"], event["ctcae_version"] = self.grades[
                    event["entry"]
                ]

    # tumour markers and genomic variants

    def is_marker(self, resource: dict[str, Any]) -> bool:
        codes = _observation_code(resource)
        return (
            "tumor-marker" in _profiles(resource)
            or any(system == LOINC and code in MARKER_NAMES for system, code in codes)
            or "biomarker.name" in own_codes(resource.get("code"))
        )

    def is_variant(self, resource: dict[str, Any]) -> bool:
        return "genomic-variant" in _profiles(resource) or (
            LOINC,
            GENOMIC_VARIANT_CODE,
        ) in _observation_code(resource)

    def marker(self, number: int, resource: dict[str, Any]) -> None:
        where = f"{self.source(resource)} (entry {number})"
        own = own_codes(resource)
        codes = _observation_code(resource)
        text = _concept_text(resource.get("code"))
        name = own.get("biomarker.name") or next(
            (MARKER_NAMES[c] for s, c in codes if s == LOINC and c in MARKER_NAMES), ""
        )
        name = self.scrub(name or text, 60)
        when = _date_of(resource, where, "effectiveDateTime", "effectivePeriod")
        value, unit, categorical = None, "", ""
        quantity = resource.get("valueQuantity")
        if isinstance(quantity, dict):
            value = _decimal(quantity.get("value"))
            unit = self.scrub(quantity.get("unit") or quantity.get("code") or "", 30)
            comparator = quantity.get("comparator")
            if comparator:
                categorical = self.scrub(f"{comparator} {quantity.get('value')} {unit}", 100)
                value = None
        elif resource.get("valueCodeableConcept") is not None:
            categorical = self.scrub(_concept_text(resource["valueCodeableConcept"]), 100)
        elif resource.get("valueString") is not None:
            categorical = self.scrub(resource["valueString"], 100)
        elif resource.get("valueInteger") is not None:
            value = _decimal(resource.get("valueInteger"))
        status = own_choice(own, "biomarker.status", RESULT_STATUSES)
        if not status:
            absent = _concept_text(resource.get("dataAbsentReason")).lower()
            if resource.get("status") in ("registered", "preliminary"):
                status = "pending"
            elif value is None and not categorical:
                status = "not_tested" if "not" in absent and "perform" in absent else "failed"
            else:
                status = "result"
        if value is not None and abs(value) >= 10**8:
            self.skip(
                number,
                resource,
                _("%(where)s, field valueQuantity.value: the value is too large to store")
                % {"where": where},
                str(quantity),
            )
            return
        method_text = _concept_text(resource.get("method"))
        lowered = (method_text + " " + text).lower()
        assay = method_text
        specimen = {"specimen_type": "", "specimen": "", "scoring": ""}
        if "biomarker.name" in own:  # our own export: the assay and a categorical result as said
            values = _own_values(resource)
            assay = str(values.get("biomarker.assay") or "")
            specimen = {
                "specimen_type": own_choice(own, "biomarker.specimen_type", SpecimenType.values),
                "specimen": self.scrub(values.get("biomarker.specimen"), 200),
                "scoring": self.scrub(values.get("biomarker.scoring"), 30),
            }
            categorical = categorical or self.scrub(values.get("biomarker.categorical_result"), 100)
        method = own_choice(own, "biomarker.method", ASSAY_METHODS)
        if not method:
            if "immune stain" in lowered or "immunohisto" in lowered:
                method = "ihc"
            elif "fish" in lowered or "in situ" in lowered:
                method = "fish"
            elif "sequenc" in lowered:
                method = "sequencing"
        kind = own_choice(own, "biomarker.kind", BIOMARKER_KINDS) or (
            "circulating"
            if name in CIRCULATING or "serum" in lowered or "plasma" in lowered
            else "somatic"
        )
        self.preview["biomarkers"].append(
            {
                "key": f"b{number}",
                "source": self.source(resource),
                "name": name,
                "text": self.scrub(text, 200),
                "kind": kind,
                "sampled_on": when["start"],
                "sampled_on_precision": when["start_precision"],
                "method": method,
                "assay": self.scrub(assay, 200),
                **specimen,
                "value": None if value is None else str(value),
                "unit": unit if value is not None else "",
                "categorical_result": categorical,
                "status": status,
            }
        )

    def variant(self, number: int, resource: dict[str, Any]) -> None:
        from checklist import genes, hgvs

        where = f"{self.source(resource)} (entry {number})"
        own = own_codes(resource)
        gene = transcript = coding = protein = origin = ""
        quoted: list[str] = []
        vaf = None
        for component in resource.get("component") or []:
            if not isinstance(component, dict):
                continue
            codes = {c for s, c in _observation_code(component) if s == LOINC}
            concept = component.get("valueCodeableConcept")
            value_text = _concept_text(concept)
            if GENE_STUDIED in codes:
                for text in [c.get("display") for c in _codings(concept)] + [value_text]:
                    found = genes.lookup(str(text)) if text else None
                    if found is not None and found.state != genes.UNKNOWN:
                        gene = found.symbol
                        break
                if not gene and value_text:
                    quoted.append(_("gene “%(text)s” (not an HGNC symbol)") % {"text": value_text})
            elif DISCRETE_VARIANT in codes:
                match = VARIANT_NAME_RE.match(value_text)
                if match:
                    transcript = transcript or (match.group("transcript") or "")
                    coding = coding or (match.group("c") or "")
                    protein = protein or (match.group("p") or "")
                quoted.append(value_text)
            elif CODING_CHANGE in codes:
                coding = value_text or str(component.get("valueString") or "")
            elif PROTEIN_CHANGE in codes:
                protein = value_text or str(component.get("valueString") or "")
            elif GENOMIC_CHANGE in codes and value_text:
                quoted.append(value_text)
            elif SOURCE_CLASS in codes:
                origin = next(
                    (
                        ORIGINS[str(c.get("code"))]
                        for c in _codings(concept)
                        if str(c.get("code")) in ORIGINS
                    ),
                    "",
                )
            elif ALLELE_FREQUENCY in codes:
                quantity = component.get("valueQuantity") or {}
                number_value = _decimal(quantity.get("value"))
                unit = str(quantity.get("code") or quantity.get("unit") or "")
                if number_value is not None and unit == "%":
                    vaf = number_value
                elif number_value is not None and unit in ("", "1") and number_value <= 1:
                    vaf = number_value * 100
        if coding and hgvs.check_coding(coding) is not None:
            quoted.append(_("“%(text)s” (not read as HGVS c.)") % {"text": coding})
            coding = ""
        if protein and hgvs.check_protein(protein) is not None:
            quoted.append(_("“%(text)s” (not read as HGVS p.)") % {"text": protein})
            protein = ""
        if vaf is not None and not 0 <= vaf <= 100:
            quoted.append(_("allele frequency %(value)s out of range") % {"value": vaf})
            vaf = None
        presence = _concept_text(resource.get("valueCodeableConcept"))
        if presence:
            quoted.insert(0, _("reported: %(text)s") % {"text": presence})
        when = _date_of(resource, where, "effectiveDateTime", "effectivePeriod", "issued")
        assay = _concept_text(resource.get("method"))
        if "genomicvariant.status" in own:  # our own export: its reference sequence and assay
            values = _own_values(resource)
            transcript = transcript or str(values.get("genomicvariant.transcript") or "")
            assay = str(values.get("genomicvariant.assay") or "")
        extra: dict[str, Any] = {}
        if "genomicvariant.status" in own:  # our own export: its other fields, as recorded
            extra = self.own_extra(number, resource, GenomicVariant, VARIANT_MAPPED)
            # The physician's comment as recorded, before anything quoted here.
            quoted.insert(0, extra.pop("comment", ""))
        self.preview["genomic_variants"].append(
            {
                "key": f"g{number}",
                "source": self.source(resource),
                "gene": gene[:40],
                "transcript": self.scrub(transcript, 40),
                "hgvs_c": self.scrub(coding, 200),
                "hgvs_p": self.scrub(protein, 200),
                "origin": own_choice(own, "genomicvariant.origin", ORIGIN_CHOICES) or origin,
                "vaf": None if vaf is None else str(vaf.quantize(Decimal("0.01"))),
                "assay": self.scrub(assay, 200),
                "reported_on": when["start"],
                "reported_on_precision": when["start_precision"],
                "status": own_choice(own, "genomicvariant.status", RESULT_STATUSES) or "result",
                "comment": self.scrub("; ".join(filter(None, quoted)), 1000),
                "extra": extra,
            }
        )

    def is_own_signature(self, resource: dict[str, Any]) -> bool:
        """A TMB or MSI result of our own export (our coding of the result kind)."""
        return own_codes(resource).get("genomicvariant.result_kind") in SIGNATURES

    def signature(self, number: int, resource: dict[str, Any]) -> None:
        """A TMB or MSI result of our own export: its fields as recorded (the TMB from the
        value when there is one, else from our extension), each checked like the model."""
        own = own_codes(resource)
        where = f"{self.source(resource)} (entry {number})"
        when = _date_of(resource, where, "effectiveDateTime")
        extra = self.own_extra(number, resource, GenomicVariant, SIGNATURE_MAPPED)
        quantity = resource.get("valueQuantity")
        if isinstance(quantity, dict):
            extra.pop("tmb", None)
            found, problems = own_fields(
                {"extension": [{"url": own_extension("genomicvariant.tmb"), **quantity}]},
                GenomicVariant,
                set(),
                self.source(resource),
            )
            extra.update(found)
            for problem in problems:
                self.skip(number, resource, problem, "")
        kind = own["genomicvariant.result_kind"]
        self.preview["genomic_variants"].append(
            {
                "key": f"g{number}",
                "source": self.source(resource),
                "result_kind": kind,
                "signature": str(GenomicResultKind(kind).label),
                **dict.fromkeys(("gene", "transcript", "hgvs_c", "hgvs_p", "origin"), ""),
                "vaf": None,
                "assay": extra.pop("assay", ""),
                "reported_on": when["start"],
                "reported_on_precision": when["start_precision"],
                "status": own_choice(own, "genomicvariant.status", RESULT_STATUSES) or "result",
                "comment": extra.pop("comment", ""),
                "extra": extra,
            }
        )

    # laboratory findings

    def is_lab(self, resource: dict[str, Any]) -> bool:
        return _lab_field(resource) is not None

    def is_own_panel(self, resource: dict[str, Any]) -> bool:
        """Our own export's panel of an immune finding (its fields beside the values)."""
        return any(
            c.get("system") == ROW_SYSTEM and c.get("code") == "immunefinding"
            for c in _codings(resource.get("code"))
        )

    def panel(self, number: int, resource: dict[str, Any]) -> None:
        """The finding's fields of ours (steroids, infections, transplant, comment...) on
        that day's finding, which is made when the day has no laboratory value."""
        where = self.source(resource)
        when = _date_of(resource, f"{where} (entry {number})", "effectiveDateTime")
        if not when["start"]:
            self.skip(number, resource, _("no date; not imported"), "")
            return
        extra = self.own_extra(number, resource, ImmuneFinding, FINDING_MAPPED)
        row = self.finding_row(number, when, lambda r: "extra" not in r)
        row["extra"] = extra
        for name, value in extra.items():
            if name.endswith("_precision"):
                continue
            row["values"].append(
                {
                    "field": name,
                    "label": _lab_name(name),
                    "value": value,
                    "text": str(value),
                    "source": where,
                }
            )
        row["sources"].append(where)

    def finding_row(self, number: int, when: dict[str, Any], free: Any) -> dict[str, Any]:
        """The day's finding that has room (`free`), else a new one."""
        row = next(
            (r for r in self.preview["findings"] if r["assessed_on"] == when["start"] and free(r)),
            None,
        )
        if row is None:
            row = {
                "key": f"f{number}",
                "assessed_on": when["start"],
                "assessed_on_precision": when["start_precision"],
                "fields": {},
                "values": [],
                "sources": [],
            }
            self.preview["findings"].append(row)
        return row

    def lab(self, number: int, resource: dict[str, Any]) -> None:
        where = self.source(resource)
        field = _lab_field(resource)
        assert field is not None
        text = _concept_text(resource.get("code"))
        when = _date_of(
            resource, f"{where} (entry {number})", "effectiveDateTime", "effectivePeriod"
        )
        if not when["start"]:
            self.skip(number, resource, _("no date; not imported"), text)
            return
        values: dict[str, Any] = {}
        quantity = resource.get("valueQuantity")
        shown = text
        if field in SEROLOGY:
            result = _serology(resource)
            if not result:
                self.skip(
                    number,
                    resource,
                    _("%(where)s, field value: not read as positive or negative; not imported")
                    % {"where": where},
                    text + " · " + _concept_text(resource.get("valueCodeableConcept")),
                )
                return
            values[field] = result
        elif not isinstance(quantity, dict) or _decimal(quantity.get("value")) is None:
            self.skip(
                number,
                resource,
                _("%(where)s, field valueQuantity: no number; not imported") % {"where": where},
                text,
            )
            return
        else:
            value = _decimal(quantity.get("value"))
            assert value is not None
            unit = str(quantity.get("code") or quantity.get("unit") or "")
            shown = f"{text} · {quantity.get('value')} {unit}"
            converted = _convert_lab(field, value, unit)
            if converted is None:
                self.skip(
                    number,
                    resource,
                    _(
                        "%(where)s, field valueQuantity.code: the unit “%(unit)s” is not known"
                        " for %(field)s; not imported"
                    )
                    % {"where": where, "unit": self.scrub(unit, 30), "field": _lab_name(field)},
                    shown,
                )
                return
            stored, lab_unit = converted
            limit = LAB_LIMITS.get(field)
            # CD4 is a whole count the database keeps non-negative (as the form does).
            if limit is not None and (stored > limit or (field == "cd4" and stored < 0)):
                self.skip(
                    number,
                    resource,
                    _(
                        "%(where)s, field valueQuantity: %(value)s %(unit)s is %(stored)s in"
                        " our unit, which is not plausible for %(field)s; not imported"
                    )
                    % {
                        "where": where,
                        "value": quantity.get("value"),
                        "unit": self.scrub(unit, 30),
                        "stored": f"{stored.normalize():f}",
                        "field": _lab_name(field),
                    },
                    shown,
                )
                return
            places = Decimal("0.001")
            if field in IMMUNOGLOBULINS | {"haemoglobin"}:
                places = Decimal("0.01")
            if field == "cd4":
                places = Decimal("1")
            if field == "hbv_dna":
                places = Decimal("0.1")
                if quantity.get("comparator") in ("<", "<="):
                    values["hbv_dna_qualifier"] = "<"
                elif quantity.get("comparator") in (">", ">="):
                    values["hbv_dna_qualifier"] = ">"
            if field == "hbv_dna" and abs(stored) >= 10**13:
                self.skip(
                    number,
                    resource,
                    _("%(where)s, field valueQuantity: the value is too large to store")
                    % {"where": where},
                    shown,
                )
                return
            values[field] = str(stored.quantize(places))
            if lab_unit:
                values[f"{field}_lab_value"] = str(value)
                values[f"{field}_lab_unit"] = lab_unit
        row = self.finding_row(number, when, lambda r: field not in r["fields"])
        row["fields"].update(values)
        row["values"].append(
            {
                "field": field,
                "label": _lab_name(field),
                "value": values[field],
                "text": self.scrub(shown, 200),
                "source": where,
            }
        )
        row["sources"].append(where)


OWN_LAB_FIELDS = {f"immunefinding.{name}": name for name in [*LAB_FIELDS.values(), "hiv"]}
# The finding fields the mapping takes from the laboratory observations, not from the panel
# (the laboratory's original value and unit: from the bundle's value, see `lab`).
FINDING_MAPPED = {
    "assessed_on",
    "hbv_dna_qualifier",
    *OWN_LAB_FIELDS.values(),
    *(
        f"{name}{suffix}"
        for name in COUNTS | {"haemoglobin"}
        for suffix in ("_lab_value", "_lab_unit")
    ),
}


def _lab_field(resource: dict[str, Any]) -> str | None:
    """The finding field a laboratory observation holds: by its LOINC code, else by our own
    export's field coding (HBV DNA goes without a LOINC code)."""
    codes = _observation_code(resource)
    found = next((LAB_FIELDS[c] for s, c in codes if s == LOINC and c in LAB_FIELDS), None)
    own = own_codes(resource.get("code")).get("field", "")
    return found or OWN_LAB_FIELDS.get(own)


def _lab_name(field: str) -> str:
    """The finding field's label with its unit ("lymphocytes (10⁹/L)")."""

    return str(getattr(ImmuneFinding._meta.get_field(field), "verbose_name", field))


def _grade_value(holder: dict[str, Any]) -> tuple[str, str, str]:
    """A CTCAE grade from an extension's or observation's value: (grade or "U", text,
    version)."""
    concept = holder.get("valueCodeableConcept")
    for coding in _codings(concept):
        code, version = str(coding.get("code") or ""), str(coding.get("version") or "")
        grade = NCI_GRADES.get(code, "")
        if own_name(str(coding.get("system") or "")) == "adverseevent.grade" and code in AE_GRADES:
            grade = code
        match = re.search(r"grade\s*([1-5])\b", str(coding.get("display") or ""), re.IGNORECASE)
        grade = grade or (match.group(1) if match else "")
        if grade:
            found = next((v for v in CTCAE_VERSIONS if version.startswith(v)), "not_recorded")
            return grade, _concept_text(concept), found
    match = re.search(r"grade\s*([1-5])\b", _concept_text(concept), re.IGNORECASE)
    if match:
        return match.group(1), _concept_text(concept), "not_recorded"
    for name in ("valueInteger", "valuePositiveInt"):
        value = holder.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            return str(value), f"{value}", "not_recorded"
    return "U", "", "not_recorded"


def _serology(resource: dict[str, Any]) -> str:
    said = [str(resource.get("valueString") or "").strip().lower()]
    for concept in [resource.get("valueCodeableConcept"), *(resource.get("interpretation") or [])]:
        said.append(_concept_text(concept).strip().lower())
        said.extend(str(c.get("code") or "") for c in _codings(concept))
    for text in said:
        if text in POSITIVE:
            return "positive"
        if text in NEGATIVE:
            return "negative"
    return ""


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() and abs(number) < 10**15 else None


def _convert_lab(field: str, value: Decimal, unit: str) -> tuple[Decimal, str] | None:
    """The value in the unit the finding stores, and the laboratory unit kept beside it
    ("" when the stored unit has no such column); None for a unit we do not know. UCUM
    writes the litre "l" or "L": both are read."""
    unit = re.sub(r"(^|/)([dmu]?)l$", r"\1\2L", unit.strip())
    if field in COUNTS and unit in COUNT_UNITS:
        factor, lab_unit = COUNT_UNITS[unit]
        return value * Decimal(factor), lab_unit
    if field == "haemoglobin" and unit in HAEMOGLOBIN_UNITS:
        factor, lab_unit = HAEMOGLOBIN_UNITS[unit]
        return value * Decimal(factor), lab_unit
    if field in IMMUNOGLOBULINS and unit in IG_UNITS:
        return value * Decimal(IG_UNITS[unit]), ""
    if field == "hbv_dna" and unit in HBV_DNA_UNITS:
        return value, ""
    if field == "cd4" and unit in CD4_UNITS:
        return value, ""
    return None


# --- what the practice's lists and learned map already answer (database reads) ---------------


def questions(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """The distinct code questions of the preview (one per code, however often it occurs)."""
    found: dict[str, dict[str, Any]] = {}
    for item in preview["tumours"]:
        if not item.get("oncotree_node"):
            found.setdefault(item["question"]["key"], item["question"])
    for item in preview["metastases"]:
        found.setdefault(item["question"]["key"], item["question"])
    for item in (
        preview.get("therapy_items", [])
        + preview.get("adverse_events", [])
        + preview.get("responses", [])
    ):
        if item.get("question"):
            found.setdefault(item["question"]["key"], item["question"])
    return list(found.values())


def _asked(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item that carries a code question (one question may be shared by several)."""
    return [
        item
        for group in ("tumours", "metastases", "therapy_items", "adverse_events", "responses")
        for item in preview.get(group, [])
        if item.get("question")
    ]


def resolve(preview: dict[str, Any], *, practice_id: int) -> dict[str, Any]:
    """Fills in OncoTree nodes given directly, oBDS site codes, checks the TNM values against
    the oBDS lists, and proposes the practice's learned mappings (marked `learned`)."""
    from django.db.models import Q

    from checklist.models import Code, CodeMapping

    tnm_lists = {"T": "obds:tnm_t", "N": "obds:tnm_n", "M": "obds:tnm_m", "S": "obds:tnm_uicc"}
    direct = {t["oncotree"] for t in preview["tumours"] if t["oncotree"]}
    therapy_lists = [THERAPY_TYPE, INTENTS, END_REASONS]
    codes = {
        (c.system, c.code): c
        for c in Code.objects.filter(
            Q(system__in=[SITE_SYSTEM, *tnm_lists.values(), *therapy_lists])
            | Q(system=ONCOTREE, code__in=direct)
        )
    }
    _check_own_therapy_codes(preview, codes)
    for tumour in preview["tumours"]:
        node = codes.get((ONCOTREE, tumour["oncotree"]))
        tumour["oncotree_node"] = node.code if node is not None and node.selectable else ""
    pending = questions(preview)
    learned: dict[tuple[str, str, str], dict[str, Any]] = {}
    if pending:
        rows = CodeMapping.objects.filter(
            practice_id=practice_id, source_code__in={q["code"] for q in pending}
        )
        for row in rows:
            exact = (row.target_system, row.source_system, row.source_code)
            if exact not in learned or row.source_version == "":
                learned[exact] = {"code": row.target_code, "version": row.source_version}
    for item in _asked(preview):
        question = item["question"]
        hit = learned.get((question["target"], question["system"], question["code"]))
        ours = any(part in question["system"].lower() for part in ("obds", "lokalisation"))
        ours = ours or own_name(question["system"]) == "metastasis.site"
        if question["target"] == SITE_SYSTEM and ours and (SITE_SYSTEM, question["code"]) in codes:
            question["answer"], question["learned"] = question["code"], True
        elif hit is not None and (
            question["target"] not in (SITE_SYSTEM, THERAPY_TYPE, RESPONSE)
            or (question["target"], hit["code"]) in codes
            or (question["target"] == RESPONSE and hit["code"] in RESPONSES)
        ):
            question["answer"], question["learned"] = hit["code"], True
    for record in preview["staging"]:
        for value in record["values"]:
            listed = (tnm_lists[value["letter"]], value["value"]) in codes
            value["valid"] = bool(value["value"]) and listed
    return preview


INTENTS = "mii:intention"
END_REASONS = "mii:therapie-ende-grund"


def _check_own_therapy_codes(preview: dict[str, Any], codes: dict[tuple[str, str], Any]) -> None:
    """Our own therapy codes (types, intent, end reason) are taken only when they are in our
    lists; anything else is kept as quoted text (and a type is asked for)."""
    for item in preview.get("therapy_items", []):
        wrong = [t for t in item["types"] if (THERAPY_TYPE, t) not in codes]
        if wrong:
            item["types"] = [t for t in item["types"] if t not in wrong]
            if not item["types"] and item["kind"] == "systemic" and not item.get("question"):
                item["question"] = item.get("fallback")
        for name, system in (("intent", INTENTS), ("end_reason", END_REASONS)):
            if item[name] and (system, item[name]) not in codes:
                item[f"{name}_text"] = item[f"{name}_text"] or item[name]
                item[name] = ""
