"""FHIR R4 / mCODE import: a Bundle read and mapped to the preview of a new case.

`read_bundle` checks size, JSON nesting, string lengths and entry count, then validates with
`fhir.resources.R4B` (the package's top-level models are R5). `map_bundle` is pure: it turns
the validated JSON into the preview structure, which holds the mapped values only, never a
name or an identifier (every text taken from the bundle is scrubbed of the patient's names,
identifiers and id). `resolve` (database reads) fills in what OncoTree, the oBDS lists and the
practice's learned code map already answer; what is left are the physician's questions.

Mapped in this version: patient (year of birth, sex), primary cancer conditions (tumours),
secondary cancer conditions (metastases), TNM observations (staging records), ECOG/Karnofsky,
comorbid conditions. Everything else is listed with its quoted text as not imported.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Any

from django.utils.translation import gettext as _

from checklist.fhir_codes import ROW_SYSTEM, own_extension_name, own_name

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
LATERALITIES = {"left", "right", "bilateral", "midline", "not_applicable", "unknown"}
GENDERS = {"female": "female", "male": "male", "other": "diverse", "unknown": "unknown"}

# Resource types another part of the work maps (therapies, adverse events, findings,
# biomarkers): listed with their text as not imported in this version.
LATER = {
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "Procedure",
    "AdverseEvent",
    "CarePlan",
    "ServiceRequest",
}
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


def condition_kind(resource: dict[str, Any]) -> str:
    """primary | secondary | other, from the profile, else the codes, else the words."""
    profiles = _profiles(resource)
    for concept in resource.get("category") or []:  # our own export says which row it is
        for coding in _codings(concept):
            if coding.get("system") == ROW_SYSTEM and coding.get("code") in OWN_ROWS:
                return OWN_ROWS[str(coding["code"])]
    if "secondary-cancer-condition" in profiles or "secondarycancercondition" in profiles:
        return "secondary"
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
    """Entries indexed for reference resolution (fullUrl, Type/id, urn:uuid)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.entries: list[tuple[int, dict[str, Any]]] = []
        self.index: dict[str, int] = {}
        for number, entry in enumerate(data.get("entry") or [], start=1):
            resource = entry["resource"]
            self.entries.append((number, resource))
            kind, rid = resource.get("resourceType"), resource.get("id")
            if entry.get("fullUrl"):
                self.index[str(entry["fullUrl"])] = number
            if rid:
                self.index[f"{kind}/{rid}"] = number

    def resolve(self, reference: Any) -> int | None:
        """The entry number a Reference points to, or None."""
        if not isinstance(reference, dict):
            return None
        ref = str(reference.get("reference") or "")
        if ref in self.index:
            return self.index[ref]
        match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/.*)?$", ref)
        if match and match.group(1) in self.index:
            return self.index[match.group(1)]
        return None

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
        "patient": {"year_of_birth": None, "sex": "unknown", "source": ""},
        "tumours": [],
        "metastases": [],
        "staging": [],
        "performance": [],
        "comorbidities": [],
        "not_imported": [],
        "people": 0,
    }
    if patient is not None:
        birth = fhir_date(patient.get("birthDate"), "Patient.birthDate")
        preview["patient"] = {
            "year_of_birth": int(birth[0][:4]) if birth else None,
            "sex": GENDERS.get(str(patient.get("gender")), "unknown"),
            "source": f"Patient (entry {patient_number})",
        }

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
                not_imported(number, resource, _observation_reason(resource))
        elif kind in PEOPLE:
            preview["people"] += 1
        elif kind in LATER:
            not_imported(number, resource, _("not imported in this version (therapy)"))
        elif kind in REPORTS:
            not_imported(
                number, resource, _("not imported in this version (findings and biomarkers)")
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
    if preview["metastases"]:
        preview["metastasis_status"] = "present"
    return preview


def _observation_reason(resource: dict[str, Any]) -> str:
    profiles = _profiles(resource)
    text = " ".join(
        [profiles] + [str(c.get("code", "")) for c in _codings(resource.get("category"))]
    ).lower()
    if re.search(r"tumor-marker|genomic|laboratory|lab|biomarker|variant", text):
        return _("not imported in this version (findings and biomarkers)")
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
    if laterality == "unknown":
        words = re.findall(r"[a-z]+", text.lower())
        for word, value in (("left", "left"), ("right", "right"), ("bilateral", "bilateral")):
            if word in words:
                laterality, laterality_from = value, text
    histology = ""
    for extension in _extensions(resource, "histology-morphology-behavior"):
        histology = _concept_text(extension.get("valueCodeableConcept"))
    own = _own_values(resource)
    if str(own.get("tumour.laterality")) in LATERALITIES:
        laterality, laterality_from = str(own["tumour.laterality"]), ""
    icd10_text = f"{icd10.get('code')} {icd10.get('display') or ''}".strip() if icd10 else ""
    if isinstance(own.get("tumour.icd10_text"), str):
        icd10_text = own["tumour.icd10_text"]
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
    if any(key in TNM_CODES for key in codes):
        return "staging"
    if (LOINC, ECOG_LOINC) in codes or (LOINC, KARNOFSKY_LOINC) in codes:
        ecog = (LOINC, ECOG_LOINC) in codes
        answers = ECOG_ANSWERS if ecog else KARNOFSKY_ANSWERS
        value = resource.get("valueInteger")
        for coding in _codings(resource.get("valueCodeableConcept")):
            value = answers.get(str(coding.get("code")), value)
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
    kind, letter = next(TNM_CODES[key] for key in _observation_code(resource) if key in TNM_CODES)
    concept = resource.get("valueCodeableConcept")
    raw = ""
    for coding in _codings(concept):
        if "cancerstaging.org" in str(coding.get("system", "")):
            raw = str(coding.get("code", ""))
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
    own_code = {
        own_name(str(c.get("system", ""))): str(c.get("code", "")) for c in _codings(concept)
    }
    own_field = (
        "stagingrecord.uicc_stage" if letter == "S" else f"stagingrecord.{letter.lower()}_category"
    )
    if own_code.get(own_field):  # our own export: the value and its prefix as recorded
        value = own_code[own_field]
        prefix = str(_own_values(resource).get(f"stagingrecord.{letter.lower()}_prefix") or "")
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


# --- what the practice's lists and learned map already answer (database reads) ---------------


def questions(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """The distinct code questions of the preview (one per code, however often it occurs)."""
    found: dict[str, dict[str, Any]] = {}
    for item in preview["tumours"]:
        if not item.get("oncotree_node"):
            found.setdefault(item["question"]["key"], item["question"])
    for item in preview["metastases"]:
        found.setdefault(item["question"]["key"], item["question"])
    return list(found.values())


def resolve(preview: dict[str, Any], *, practice_id: int) -> dict[str, Any]:
    """Fills in OncoTree nodes given directly, oBDS site codes, checks the TNM values against
    the oBDS lists, and proposes the practice's learned mappings (marked `learned`)."""
    from django.db.models import Q

    from checklist.models import Code, CodeMapping

    tnm_lists = {"T": "obds:tnm_t", "N": "obds:tnm_n", "M": "obds:tnm_m", "S": "obds:tnm_uicc"}
    direct = {t["oncotree"] for t in preview["tumours"] if t["oncotree"]}
    codes = {
        (c.system, c.code): c
        for c in Code.objects.filter(
            Q(system__in=[SITE_SYSTEM, *tnm_lists.values()]) | Q(system=ONCOTREE, code__in=direct)
        )
    }
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
    for item in preview["tumours"] + preview["metastases"]:
        question = item["question"]
        hit = learned.get((question["target"], question["system"], question["code"]))
        ours = any(part in question["system"].lower() for part in ("obds", "lokalisation"))
        ours = ours or own_name(question["system"]) == "metastasis.site"
        if question["target"] == SITE_SYSTEM and ours and (SITE_SYSTEM, question["code"]) in codes:
            question["answer"], question["learned"] = question["code"], True
        elif hit is not None and (
            question["target"] != SITE_SYSTEM or (SITE_SYSTEM, hit["code"]) in codes
        ):
            question["answer"], question["learned"] = hit["code"], True
    for record in preview["staging"]:
        for value in record["values"]:
            listed = (tnm_lists[value["letter"]], value["value"]) in codes
            value["valid"] = bool(value["value"]) and listed
    return preview
