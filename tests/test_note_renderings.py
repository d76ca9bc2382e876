"""The board note's renderings: one structure (notes.document) behind the note page, the print
view, the PDF and the Markdown, each showing every recorded fact, in the reader's language.

The central test walks every field of every clinical model (`_meta.get_fields()`), sets each
to a value of its own, signs the note and looks for each field's label and value in the HTML,
the PDF's text and the Markdown. A field added to a model and not to the note fails it, until
it is in the note or, if it is technical, in TECHNICAL below with the reason.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy

from checklist import notes, services
from checklist.models import (
    BoardNote,
    BoardNoteVersion,
    Case,
    Category,
    Checklist,
    ChecklistItem,
    Code,
    ItemStatus,
    Laterality,
    MedicationKind,
    Membership,
    MetastasisStatus,
    Tumour,
    partial_date,
    precise_date_fields,
)
from checklist.templatetags.checklist_tags import local_datetime
from tests.factories import PASSWORD, create_note, logged_in, make_signable, make_user, post_row

# The models whose every field the note shows (immune-related adverse events are adverse
# events with the flag: one model since issue 15).
CLINICAL_MODELS = [
    "Case",
    "Tumour",
    "StagingRecord",
    "Biomarker",
    "Metastasis",
    "TherapyLine",
    "AdverseEvent",
    "PerformanceStatus",
    "ImmuneFinding",
    "Prophylaxis",
    "Vaccination",
    "Comorbidity",
    "OrganFunction",
    "Medication",
    "Lifestyle",
    "FamilyHistory",
    "GenomicVariant",
    "ChecklistItem",
    "BoardNoteVersion",
]

# Technical fields: not facts of the case, so not in the note.
TECHNICAL = {
    # every row: its key, tenant and the case it belongs to
    "*.id",
    "*.practice",
    "*.case",
    # who changed the case record when: the audit trail keeps it
    "case.created_at",
    "case.created_by",
    "case.updated_at",
    "case.updated_by",
    # an event is listed under the episode it belongs to ("Adverse event of Line 2 · ...")
    "adverseevent.line",
    # a checklist item's checklist and its optimistic-lock counter
    "checklistitem.checklist",
    "checklistitem.revision",
    # the note's own bookkeeping: its parent, its state (the page and the draft marker say
    # it), its edit counter, when it was created or marked ready, and the snapshot and hash
    # themselves (the page and every export show the hash)
    "boardnoteversion.note",
    "boardnoteversion.state",
    "boardnoteversion.revision",
    "boardnoteversion.created_at",
    "boardnoteversion.ready_at",
    "boardnoteversion.snapshot",
    "boardnoteversion.snapshot_hash",
    # the practice's board the note is registered for: the note names it by its name
    # (target_board, filled from the board); the link puts the case on the meeting's agenda
    "boardnoteversion.board",
}

# Fields shown inside another row: a staging record's TNM formula.
TNM_PARTS = {
    f"stagingrecord.{name}"
    for name in [
        "y_symbol",
        "r_symbol",
        "a_symbol",
        "m_symbol",
        "t_prefix",
        "t_category",
        "n_prefix",
        "n_category",
        "m_prefix",
        "m_category",
        "l_category",
        "v_category",
        "pn_category",
        "r_classification",
    ]
}


PRECISIONS = ("month", "year", "day")


def _model(name: str) -> Any:
    try:
        return apps.get_model("checklist", name)
    except LookupError:
        return None


def _key(field: Any) -> str:
    return f"{field.model._meta.model_name}.{field.name}"


def _recorded_fields(model: Any) -> list[Any]:
    return [
        f
        for f in model._meta.get_fields()
        if f.concrete and f"*.{f.name}" not in TECHNICAL and _key(f) not in TECHNICAL
    ]


class FullRecord:
    """Sets every recorded field of a row to a value of its own: text and numbers unique, dates
    a week apart, booleans true, choices the last choice, codes real codes."""

    def __init__(self) -> None:
        self.n = count(11)
        self.codes = {
            system: list(Code.objects.of(system).values_list("code", flat=True)[:2])
            for system in set(notes.CODE_FIELDS.values())
        }

    def value(self, field: Any) -> Any:
        n = next(self.n)
        key = _key(field)
        if key in notes.CODE_FIELDS:
            codes = self.codes[notes.CODE_FIELDS[key]]
            return codes if isinstance(field, ArrayField) else codes[-1]
        if field.choices:
            return [c for c, _label in field.flatchoices if c != ""][-1]
        if isinstance(field, models.BooleanField):
            return True
        if isinstance(field, models.DateTimeField):
            return timezone.now().replace(microsecond=0) - timedelta(days=n)
        if isinstance(field, models.DateField):
            return date(2019, 1, 7) + timedelta(days=7 * n)
        if isinstance(field, models.DecimalField):
            return Decimal(f"{n}.{n % 9 + 1}")
        if isinstance(field, models.IntegerField):
            return n
        if isinstance(field, ArrayField):  # several short entries (an episode's agents)
            return [f"Zq{n}{field.name}a", f"Zq{n}{field.name}b"]
        if isinstance(field, models.CharField | models.TextField):
            token = f"Zq{n}{field.name.replace('_', '')}"
            return token[: field.max_length] if field.max_length else token
        raise AssertionError(f"{key}: no value for a {type(field).__name__}; add one here")

    def fill(self, obj: Any, *, skip: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
        for field in _recorded_fields(type(obj)):
            if field.is_relation or field.name in skip:
                continue
            setattr(obj, field.name, self.value(field))
        # Dates with a precision take day, month and year in turn, stored as the first day of
        # their month or year (as the forms store them).
        for name in precise_date_fields(type(obj)):
            precision = PRECISIONS[next(self.n) % 3]
            setattr(obj, f"{name}_precision", precision)
            day = getattr(obj, name)
            if precision != "day":
                day = day.replace(day=1, month=1 if precision == "year" else day.month)
            setattr(obj, name, day)
        return obj


def _fully_recorded_note(alice: Any, practice: Any) -> tuple[BoardNoteVersion, dict[str, Any]]:
    """A case with every field of every row recorded, and a signed amendment of its note
    (so that "supersedes" and the reason are recorded too)."""
    full = FullRecord()
    rows: dict[str, Any] = {}
    case = full.fill(Case(practice=practice, created_by=alice), skip={"label"})
    case.label = "FULL-1"
    case.save()
    rows["case"] = case

    def add(name: str, fixed: dict[str, Any] | None = None, **links: Any) -> Any:
        model = _model(name)
        obj = full.fill(model(practice=practice, case=case, **links))
        for field_name, value in (fixed or {}).items():  # values the model's checks tie
            setattr(obj, field_name, value)
        obj.save()
        rows[model._meta.model_name] = obj
        return obj

    tumour = add("Tumour")
    add("StagingRecord", tumour=tumour)
    for name in (
        "Biomarker",
        "Metastasis",
        "PerformanceStatus",
        "ImmuneFinding",
        "Prophylaxis",
        "Vaccination",
    ):
        add(name)
    for name in ("Comorbidity", "OrganFunction", "Medication"):
        add(name)
    add("Lifestyle")
    # Values inside the ranges the database checks (the running number would pass them).
    add("FamilyHistory", {"age_at_diagnosis": 47})
    add("GenomicVariant", {"vaf": Decimal("42.5")})
    categories = list(Category.objects.filter(practice=practice, active=True).order_by("position"))
    # A systemic line (only it has a number); an event that improved to a lower grade (only
    # that course has a grade it improved to).
    line = add("TherapyLine", {"kind": "systemic"}, category=categories[0])
    add("AdverseEvent", {"course": "improved", "improved_to_grade": 1}, line=line)
    checklist = Checklist.objects.create(
        practice=practice, case=case, version=categories[0].version
    )
    item = full.fill(
        ChecklistItem(
            practice=practice, case=case, checklist=checklist, category=categories[1], set_by=alice
        )
    )
    item.save()
    rows["checklistitem"] = item

    membership = Membership.objects.get(user=alice, practice=practice)
    first = services.note_create(
        case=case,
        acting_user=alice,
        data={
            "registering_physician": "x",
            "target_board": "x",
            "board_type": full.codes["mii:therapieplanung-typ"][-1],
            "question": "first question",
        },
    )
    case.refresh_from_db()
    services.note_sign(version=first, acting_membership=membership, language="en")
    version = services.note_amend(note=first.note, reason="Zq99reason", acting_user=alice)
    full.fill(version, skip={"number", "signed_at"})
    version.amendment_reason = "Zq98amendmentreason"
    version.save()
    case.refresh_from_db()
    signed = services.note_sign(version=version, acting_membership=membership, language="en")
    rows["boardnoteversion"] = signed
    return signed, rows


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _html_text(page: str) -> str:
    body = page[page.index('<div class="note-body"') :]
    return _flat(html.unescape(re.sub(r"<[^>]+>", " ", body)))


def _pdf_text(pdf: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return _flat(result.stdout.decode())


def _expected(
    rows: dict[str, Any], snapshot: dict[str, Any], language: str
) -> list[tuple[str, str, str]]:
    """(field, label, value) for every recorded field, as the note must show it in
    `language`; labels are the note's own (its snapshot's), values computed here."""
    labels = snapshot["labels"][language]
    expected = []
    with translation.override(language):
        yes = translation.gettext("yes")
        for name in CLINICAL_MODELS:
            model = _model(name)
            if model is None:
                continue
            obj = rows[model._meta.model_name]
            for field in _recorded_fields(model):
                key = _key(field)
                value = getattr(obj, field.name)
                if key in TNM_PARTS:
                    expected.append((key, labels["t:tnm"], obj.tnm_text))
                    continue
                special = _special(key, obj, labels, snapshot)
                if special is not None:
                    expected.append(special)
                    continue
                label = labels.get(f"f:{key}")
                assert label, f"{key} is not in the note: add it to notes.py (or to TECHNICAL)"
                if key in notes.CODE_FIELDS:
                    code = value[0] if isinstance(value, list) else value
                    text = Code.objects.get(system=notes.CODE_FIELDS[key], code=code).label(
                        language
                    )
                elif field.choices:
                    text = str(dict(field.flatchoices)[value])
                elif isinstance(value, bool):
                    text = yes
                elif isinstance(value, list):
                    text = ", ".join(value)
                elif isinstance(value, date):
                    text = value.isoformat()
                elif isinstance(value, Decimal):
                    # In the reader's decimal separator: "1,25" for a German reader.
                    text = f"{value.normalize():f}".replace(".", "," if language == "de" else ".")
                else:
                    text = str(value)
                expected.append((key, label, text))
    return expected


PRECISE_KEYS = {
    f"{model._meta.model_name}.{name}_precision"
    for model in apps.get_app_config("checklist").get_models()
    for name in precise_date_fields(model)
}


def _special(
    key: str, obj: Any, labels: dict[str, str], snapshot: dict[str, Any]
) -> tuple[str, str, str] | None:
    """Fields the note shows in another form than label and value of their own."""
    if key == "case.version":
        return key, labels["t:record_version"], str(obj.version)
    name = key.split(".")[1].split("_lab_")[0]
    if key.startswith("immunefinding.") and name in notes.CONVERTED_FIELDS:
        # A value converted on entry, with the laboratory's value and unit beside it.
        separator = "," if translation.get_language() == "de" else "."

        def number(value: Decimal) -> str:
            return f"{value.normalize():f}".replace(".", separator)

        unit = labels[f"c:immunefinding.{name}_lab_unit:{obj.__dict__[f'{name}_lab_unit']}"]
        text = labels["t:lab"] % {
            "value": number(getattr(obj, name)),
            "lab": number(getattr(obj, f"{name}_lab_value")),
            "unit": unit,
        }
        return key, labels[f"f:immunefinding.{name}"], text
    if key == "stagingrecord.tumour":
        return key, labels["f:stagingrecord.tumour"], obj.tumour.oncotree_name
    if key == "therapyline.number":
        return key, "", labels["t:line"] % {"n": obj.number}
    if key.endswith("_precision") or f"{key}_precision" in PRECISE_KEYS:
        # A date with its precision: shown to the month or year, never padded to a day.
        name = key.split(".")[1].removesuffix("_precision")
        model = key.split(".")[0]
        return key, labels[f"f:{model}.{name}"], partial_date(obj, name).iso()  # type: ignore[union-attr]
    if key == "therapyline.category":
        name = obj.category.name_de if translation.get_language() == "de" else obj.category.name_en
        return key, labels["f:therapyline.category"], name
    if key == "checklistitem.category":
        name = obj.category.name_de if translation.get_language() == "de" else obj.category.name_en
        return key, name, labels[f"c:checklistitem.status:{obj.status}"]
    if key == "checklistitem.status":
        return key, "", labels[f"c:checklistitem.status:{obj.status}"]
    if key in ("checklistitem.note", "checklistitem.previous_note"):
        return key, "", getattr(obj, key.split(".")[1])
    if key == "checklistitem.set_by":
        return key, "", obj.set_by.first_name
    if key == "checklistitem.set_at":
        return key, "", local_datetime(obj.set_at)
    if key == "checklistitem.previous_status":
        name = obj.category.name_de if translation.get_language() == "de" else obj.category.name_en
        status = labels[f"c:checklistitem.status:{obj.previous_status}"]
        return key, labels["t:before_move"] % {"name": name}, status
    if key == "boardnoteversion.number":
        return key, labels["t:note_version"], str(obj.number)
    if key == "boardnoteversion.supersedes":
        return key, labels["t:supersedes"], str(obj.supersedes.number)
    if key == "boardnoteversion.amendment_reason":
        return key, labels["t:amendment_reason"], obj.amendment_reason
    if key == "boardnoteversion.created_by":
        return key, labels["t:author"], obj.created_by.first_name
    if key == "boardnoteversion.signed_by":
        return key, labels["t:signed_by"], snapshot["signed_by"]
    if key == "boardnoteversion.signed_at":
        return key, labels["t:signed_at"], local_datetime(snapshot["signed_at"])
    return None


def _shown(text: str, label: str, value: str, *, markdown: bool, pdf: bool = False) -> bool:
    if pdf:
        # pdftotext breaks lines where the PDF does (also after a "/") and reads the narrow
        # space in "80 %" as none: the label and the value must follow each other, spaces aside.
        return re.sub(r"\s", "", label + value) in re.sub(r"\s", "", text)
    if not label:
        return value in text
    if markdown:
        return any(f"{label}: {form}" in text for form in (value, f'"{value}"', f"> {value}"))
    return f"{label} {value}" in text


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_recorded_field_is_in_the_page_the_print_view_the_pdf_and_the_markdown(
    alice, practice_a, codelists, language
):
    version, rows = _fully_recorded_note(alice, practice_a)
    snapshot = version.snapshot or {}
    expected = _expected(rows, snapshot, language)
    client = logged_in(alice)
    header = {"HTTP_ACCEPT_LANGUAGE": language}
    base = f"/notes/{version.note_id}/"
    renderings = {
        "page": _html_text(client.get(base, **header).content.decode()),
        "print view": _html_text(client.get(f"{base}v2/print/", **header).content.decode()),
        "PDF": _pdf_text(client.get(f"{base}v2/pdf/", **header).content),
        "Markdown": _flat(client.get(f"{base}v2/text/", **header).content.decode()),
    }
    missing = [
        f"{where}: {key} ({label!r} {value!r})"
        for where, text in renderings.items()
        for key, label, value in expected
        if not _shown(text, label, value, markdown=where == "Markdown", pdf=where == "PDF")
    ]
    assert not missing, "\n".join(missing)
    assert len(expected) > 150  # every model's fields were walked


def test_the_walk_covers_every_clinical_model():
    """A model renamed or added to the record must be named here (and in the note)."""
    names = {m.__name__ for m in apps.get_app_config("checklist").get_models()}
    for name in CLINICAL_MODELS:
        assert name in names, name


# --- language -----------------------------------------------------------------------------

# A note signed before snapshots carried both languages (format 1, as checklist/notes.py built
# it until then): display strings in the language it was signed in, hashed as they are.
OLD_SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "language": "en",
    "practice": "Practice A",
    "case": {
        "label": "BC-1",
        "year_of_birth": 1965,
        "sex": "female",
        "situation": "first diagnosis",
        "last_restaging": "",
        "last_restaging_method": "",
        "unknown_primary": False,
        "record_version": 7,
    },
    "registration": {
        "registering_physician": "Dr. Alice",
        "target_board": "Interdisziplinäre Tumorkonferenz",
        "board_type": "postth",
        "board_date": "2026-12-03",
        "images_available": False,
        "question": "Further systemic therapy after progression under line 2?",
        "question_radiology": "",
        "question_pathology": "",
        "question_radiotherapy": "",
        "question_surgery": "",
        "patient_informed": False,
        "patient_goals": "Möchte weiter arbeiten; Lebensqualität zuerst.",
        "trial_screening": "",
        "requested_participants": "",
        "history_summary": "",
        "open_questions": "",
        "board_type_label": "Post-therapeutic tumour board",
    },
    "tumours": [
        {
            "name": "Breast Invasive Ductal Carcinoma",
            "code": "IDC",
            "release": "oncotree_2025_10_03",
            "laterality": "left",
            "diagnosed_on": "",
            "basis": "",
            "histology": "",
            "grade": "",
            "icd10": "",
        }
    ],
    "staging": [],
    "biomarkers": [],
    "metastasis_status": "metastases present",
    "metastasis_assessed": "",
    "metastases": [],
    "performance": [],
    "immune_latest": None,
    "immune_trend": [],
    "immune_not_assessed": True,
    "immune_events": [],
    "comorbidities": [{"name": "Type 2 diabetes", "since": "", "note": "on metformin"}],
    "organ_functions": [],
    "medications": [{"name": "Apixaban", "dose": "5 mg twice daily", "kind": "anticoagulant"}],
    "no_prior_therapy": True,
    "lines": [],
    "timeline": [],
    "summary": [
        {
            "group": "tumour_type",
            "state": "recorded",
            "detail": ["Breast Invasive Ductal Carcinoma"],
        },
        {"group": "stage", "state": "not_recorded", "detail": []},
        {"group": "metastases", "state": "recorded", "detail": []},
        {"group": "immune_status", "state": "not_assessed", "detail": []},
        {"group": "prior_therapies", "state": "explicitly_none", "detail": []},
        {"group": "performance_status", "state": "not_recorded", "detail": []},
        {"group": "biomarkers", "state": "not_recorded", "detail": []},
    ],
    "raised": [
        {
            "code": "radiotherapy",
            "group": "Classic oncological therapies",
            "name": "Radiotherapy",
            "status": "raise",
            "status_label": "raise at board",
            "note": "Liver lesion: SBRT?",
        }
    ],
    "categories": [
        {
            "code": "chemotherapy",
            "group": "Classic oncological therapies",
            "name": "Chemotherapy",
            "status": "not_yet_reviewed",
            "status_label": "not yet reviewed",
            "note": "",
        },
        {
            "code": "hormone_therapy",
            "group": "Classic oncological therapies",
            "name": "Hormone therapy",
            "status": "not_yet_reviewed",
            "status_label": "not yet reviewed",
            "note": "",
        },
        {
            "code": "radiotherapy",
            "group": "Classic oncological therapies",
            "name": "Radiotherapy",
            "status": "raise",
            "status_label": "raise at board",
            "note": "Liver lesion: SBRT?",
        },
        {
            "code": "dendritic_cell_therapy",
            "group": "Immunological procedures",
            "name": "Dendritic cell therapy",
            "status": "not_yet_reviewed",
            "status_label": "not yet reviewed",
            "note": "",
        },
        {
            "code": "immune_supportive",
            "group": "Accompanying and supportive measures",
            "name": "Accompanying immune-building and supportive measures",
            "status": "not_yet_reviewed",
            "status_label": "not yet reviewed",
            "note": "",
        },
        {
            "code": "metabolic_cell_biological",
            "group": "Metabolic and cell-biological approaches",
            "name": "Metabolic and cell-biological approaches",
            "status": "not_yet_reviewed",
            "status_label": "not yet reviewed",
            "note": "",
        },
    ],
    "catalogue_version": 1,
    "disclaimer": "The approaches mentioned do not constitute a promise of cure and do not "
    "replace guideline-based oncological treatment. Whether and which combination "
    "therapies are appropriate must always be assessed individually and by a "
    "physician.",
    "author": "Alice",
    "note_version": 1,
    "supersedes": None,
    "amendment_reason": "",
    "signed_by": "Alice",
    "signed_at": "2026-03-02T14:01:47+00:00",
}


def _signed_by_alice(alice_client: Any, case: Any, **change: Any) -> int:
    note = create_note(alice_client, case, **change)
    version = BoardNoteVersion.objects.get(note_id=note)
    response = alice_client.post(
        f"/notes/{note}/sign/",
        {"password": PASSWORD, "revision": version.revision, "case_version": case.version},
    )
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.state == "signed"
    return note


@pytest.fixture
def recorded(alice_client, case):
    """A case that signs, with a medication and a category raised."""
    make_signable(alice_client, case)
    post_row(alice_client, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    radio = Category.objects.get(practice=case.practice, code="radiotherapy")
    alice_client.post(
        f"/cases/{case.pk}/checklist/{radio.pk}/",
        {"status": "raise", "note": "Liver lesion: SBRT?", "revision": 0},
    )
    case.refresh_from_db()
    return case


def _labels(language: str) -> dict[str, str]:
    """Labels and coded values of the recorded case, as the interface says them."""
    with translation.override(language):
        return {
            "laterality": capfirst(str(Tumour._meta.get_field("laterality").verbose_name)),
            "left": str(Laterality.LEFT.label),
            "present": str(MetastasisStatus.PRESENT.label),
            "anticoagulant": str(MedicationKind.ANTICOAGULANT.label),
            "raise": str(ItemStatus.RAISE.label),
            "registration": translation.gettext("Registration"),
        }


def test_a_german_reader_sees_a_note_signed_in_english_in_german(
    alice_client, recorded, practice_a
):
    note = _signed_by_alice(alice_client, recorded)
    greta = logged_in(make_user("greta", practice_a, Membership.PHYSICIAN))
    de, en = _labels("de"), _labels("en")
    page = greta.get(f"/notes/{note}/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    body = _html_text(page)
    for key in ("registration", "laterality", "left", "present", "anticoagulant", "raise"):
        assert de[key] in body, key
    assert "Laterality" not in body and "metastases present" not in body
    assert "anticoagulant" not in body and "raise at board" not in body
    # The physician's words stay as typed.
    assert "Further systemic therapy after progression under line 2?" in body
    assert "Liver lesion: SBRT?" in body and "Apixaban" in body
    assert f"{de['laterality']} {de['left']}" in body

    pdf = _pdf_text(greta.get(f"/notes/{note}/v1/pdf/", HTTP_ACCEPT_LANGUAGE="de").content)
    assert "Seite 1 von" in pdf and "page 1 of" not in pdf
    assert f"{de['laterality']} {de['left']}" in pdf and "metastases present" not in pdf
    assert "Further systemic therapy after progression under line 2?" in pdf
    # The other language on request.
    english = _pdf_text(
        greta.get(f"/notes/{note}/v1/pdf/?lang=en", HTTP_ACCEPT_LANGUAGE="de").content
    )
    assert "page 1 of" in english and f"{en['laterality']} {en['left']}" in english
    assert 'data-testid="pdf-other-language"' in page and "?lang=en" in page

    text = greta.get(f"/notes/{note}/v1/text/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert f"{de['laterality']}: {de['left']}" in text and "Laterality" not in text
    printed = greta.get(f"/notes/{note}/v1/print/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert f"{de['laterality']} {de['left']}" in _html_text(printed)
    assert '<html lang="de">' in printed


def test_the_snapshot_holds_both_languages_and_the_hash_covers_them(alice_client, recorded):
    note = _signed_by_alice(alice_client, recorded)
    version = BoardNoteVersion.objects.get(note_id=note)
    snapshot = version.snapshot or {}
    assert snapshot["format"] == notes.SNAPSHOT_FORMAT == 2
    assert snapshot["language"] == "en"
    de, en = snapshot["labels"]["de"], snapshot["labels"]["en"]
    assert en["c:tumour.laterality:left"] == "left" and de["c:tumour.laterality:left"] != "left"
    assert set(de) == set(en)
    # Codes are stored, not words of either language.
    tumour = next(s for s in snapshot["sections"] if s["key"] == "tumour")
    rows = [r for g in tumour["groups"] for r in g["rows"]]
    assert {
        "l": "f:tumour.laterality",
        "k": "choice",
        "v": "left",
        "r": "tumour.laterality",
    } in rows
    assert notes.verify(version)
    changed = json.loads(json.dumps(snapshot))
    changed["labels"]["de"]["c:tumour.laterality:left"] = "rechts"
    assert notes.snapshot_hash(changed) != version.snapshot_hash


def test_a_later_translation_change_does_not_change_a_signed_note(
    alice_client, recorded, monkeypatch
):
    note = _signed_by_alice(alice_client, recorded)
    before = alice_client.get(f"/notes/{note}/v1/text/").content
    monkeypatch.setitem(notes.TEXTS, "t:registration", gettext_lazy("Registration (reworded)"))
    monkeypatch.setitem(notes.FIELD_LABELS, "tumour.laterality", gettext_lazy("Side (reworded)"))
    assert alice_client.get(f"/notes/{note}/v1/text/").content == before
    # A draft is built now, with today's words.
    draft = create_note(alice_client, recorded, question="A second question?")
    text = alice_client.get(f"/notes/{draft}/v1/text/").content.decode()
    assert "Registration (reworded)" in text and "Side (reworded): left" in text


def test_a_note_signed_before_both_languages_keeps_its_language_and_hash(
    alice, recorded, practice_a
):
    note = BoardNote.objects.create(practice=practice_a, case=recorded, created_by=alice)
    version = BoardNoteVersion.objects.create(
        practice=practice_a,
        note=note,
        case=recorded,
        number=1,
        state="signed",
        registering_physician="Dr. Alice",
        target_board="Interdisziplinäre Tumorkonferenz",
        board_type="postth",
        question=OLD_SNAPSHOT["registration"]["question"],
        created_by=alice,
        signed_by=alice,
        signed_at=timezone.now(),
        snapshot=OLD_SNAPSHOT,
        snapshot_hash=notes.snapshot_hash(OLD_SNAPSHOT),
    )
    stored_hash = version.snapshot_hash
    greta = logged_in(make_user("greta", practice_a, Membership.PHYSICIAN))
    page = greta.get(f"/notes/{note.pk}/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    body = _html_text(page)
    assert 'data-testid="legacy-note"' in page
    assert "Laterality left" in body and "Metastasis status metastases present" in body
    assert "Medications" in body or "Current medication" in body
    assert "Apixaban" in body and "Liver lesion: SBRT?" in body
    assert "Further systemic therapy after progression under line 2?" in body
    assert '<span data-testid="verified">' in page  # the stored hash still matches
    assert 'data-testid="pdf-other-language"' not in page
    for query in ("", "?lang=de"):
        pdf = _pdf_text(
            greta.get(f"/notes/{note.pk}/v1/pdf/{query}", HTTP_ACCEPT_LANGUAGE="de").content
        )
        assert "page 1 of" in pdf and "Laterality left" in pdf
    text = greta.get(f"/notes/{note.pk}/v1/text/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Laterality: " in text and "left" in text
    version.refresh_from_db()
    assert version.snapshot == OLD_SNAPSHOT and version.snapshot_hash == stored_hash
    assert notes.verify(version)
    # Every value of the old snapshot is on the page.
    for value in _old_values(OLD_SNAPSHOT):
        assert value in body, value


def _old_values(value: Any, key: str = "") -> list[str]:
    """The values a format-1 snapshot shows: its texts and numbers, less what it kept only
    for the machine (codes beside their labels, the summary, the time of signing, which
    the page shows in local time)."""
    if key in ("format", "language", "summary", "status", "board_type", "practice", "signed_at"):
        return []
    if isinstance(value, dict):
        return [v for k, item in value.items() for v in _old_values(item, k)]
    if isinstance(value, list):
        return [v for item in value for v in _old_values(item, key)]
    if isinstance(value, bool) or value is None or value == "":
        return []
    return [str(value)]


def test_a_draft_and_its_print_view_say_draft_not_signed(alice_client, recorded):
    note = create_note(alice_client, recorded)
    marker = "DRAFT, not signed"
    assert marker in alice_client.get(f"/notes/{note}/").content.decode()
    assert marker in alice_client.get(f"/notes/{note}/v1/print/").content.decode()
    assert marker in alice_client.get(f"/notes/{note}/v1/text/").content.decode()
    assert marker in _pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content)
    german = alice_client.get(f"/notes/{note}/v1/print/", HTTP_ACCEPT_LANGUAGE="de")
    assert "ENTWURF, nicht signiert" in german.content.decode()
    version = BoardNoteVersion.objects.get()
    alice_client.post(
        f"/notes/{note}/sign/",
        {"password": PASSWORD, "revision": version.revision, "case_version": recorded.version},
    )
    assert marker not in alice_client.get(f"/notes/{note}/").content.decode()
    assert marker not in alice_client.get(f"/notes/{note}/v1/print/").content.decode()


@pytest.mark.parametrize("query", ["?lang=fr", "?lang=de%00", "?lang=" + "d" * 300])
def test_an_unknown_export_language_is_a_bad_request(alice_client, recorded, query):
    note = create_note(alice_client, recorded)
    for kind in ("pdf", "print", "text"):
        assert alice_client.get(f"/notes/{note}/v1/{kind}/{query}").status_code == 400
