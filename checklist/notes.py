"""The tumour-board note: its snapshot (everything the note shows, frozen at signing), the
snapshot's hash, the one structure every rendering is built from, what signing needs, the
Markdown text and the PDF.

The snapshot (format 2) is self-describing: sections -> groups -> rows, each row naming its
label, its kind and its value (codes for coded values, never a translated word), plus the
labels of everything it names in both languages, taken at signing. `document(snapshot,
language)` turns it into sections of (label, value) rows in either language; the note page,
the print view, the PDF and the Markdown all loop over that structure, so each shows every
row of the snapshot. A translation changed later does not change a signed note.

A draft is rendered from a snapshot built live; a signed version from its stored snapshot, so
later edits to the case never change a signed note. Notes signed before format 2 (display
strings in the one language they were signed in) render in that language and are never
re-hashed: `_legacy_sections`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import models
from django.template.loader import render_to_string
from django.utils import formats, translation
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from checklist import rules
from checklist.models import (
    BoardNoteVersion,
    Checklist,
    Code,
    ItemStatus,
    NoteState,
    partial_date,
    user_display,
)
from checklist.record import CaseRecord

SNAPSHOT_FORMAT = 2
LANGUAGES = ("en", "de")

# The kinds of a snapshot row: how its stored value becomes text.
TEXT = "text"  # typed by the physician, one line: shown as their words
LONG = "long"  # typed by the physician, may span lines: shown as a quote
PLAIN = "plain"  # shown as stored: numbers, dates, OncoTree names, names of people
BOOL = "bool"  # yes / no
CHOICE = "choice"  # a code of a model's choices; its labels under "c:<ref>:<code>"
CODE = "code"  # a code of a shipped code list; its labels under "k:<system>:<code>"
CODES = "codes"  # a list of such codes
I18N = "i18n"  # a value given in both languages (catalogue text): {"en": ..., "de": ...}
ITEM = "item"  # a checklist item: {"status": code, "by": name, "at": ISO time}
DATETIME = "datetime"  # an ISO 8601 time, shown in local time
# A converted value with the laboratory's: {"value": "0.15", "lab": "150000", "unit": "/uL"},
# the unit's labels under "c:<ref>:<unit>"; shown "0.15 (lab: 150000 /µL)"
LAB = "lab"
PHYSICIAN_KINDS = (TEXT, LONG)

# Fields whose values are codes of a shipped code list.
CODE_FIELDS = {
    "boardnoteversion.board_type": "mii:therapieplanung-typ",
    "metastasis.site": "obds:fm_lokalisation",
    "therapyline.types": "mii:therapie-typ",
    "therapyline.intent": "mii:intention",
    "therapyline.end_reason": "mii:therapie-ende-grund",
}
# Text fields that come from a code list or the tool, not from the physician's keyboard.
PLAIN_FIELDS = {
    "tumour.oncotree_name",
    "tumour.oncotree_code",
    "tumour.oncotree_release",
    "tumour.oncotree_tissue",
    "tumour.oncotree_main_type",
}
# Statements that say something only when made: shown when true, left out when false.
FLAG_FIELDS = {
    "boardnoteversion.board_date_retrospective",
    "case.unknown_primary",
    "case.no_prior_therapy",
    "case.immune_not_assessed",
    "immunefinding.neutrophils_not_tested",
    "immunefinding.lymphocytes_not_tested",
    "immunefinding.cd4_not_tested",
    "immunefinding.igg_not_tested",
}
# Labels for fields whose model gives none a reader could use.
FIELD_LABELS = {
    "tumour.oncotree_name": gettext_lazy("Tumour type (OncoTree)"),
    "tumour.oncotree_code": gettext_lazy("OncoTree code"),
    "tumour.oncotree_release": gettext_lazy("OncoTree release"),
    "tumour.oncotree_tissue": gettext_lazy("OncoTree tissue"),
    "tumour.oncotree_main_type": gettext_lazy("OncoTree main type"),
    "case.prior_therapy_stated_on": gettext_lazy("Prior therapies stated on"),
    # capfirst would turn eGFR into EGFR, a different thing (a biomarker).
    "organfunction.egfr": gettext_lazy("eGFR (mL/min/1.73 m²)"),
    "stagingrecord.tumour": pgettext_lazy("board note", "Primary tumour"),
}


def _fields(names: str) -> list[str]:
    return names.split()


# What each kind of record shows, in the note's order. Every field of these models is here,
# or shown another way (see `_staging_rows`, the line headings, the checklist), or is
# technical; tests/test_note_renderings.py fails for a field that is none of these.
CASE_FIELDS = _fields("""
    label year_of_birth sex situation deceased_on last_restaging_on last_restaging_method
""")
TUMOUR_FIELDS = _fields("""
    oncotree_name oncotree_code oncotree_release oncotree_tissue oncotree_main_type
    icd10_text laterality diagnosed_on diagnosis_basis histology grade
""")
METASTASIS_STATUS_FIELDS = _fields("""
    metastasis_status metastasis_assessed_on metastasis_assessment_method
""")
METASTASIS_FIELDS = _fields("""
    site side level largest_size_mm lesions detected_on timing established_by
""")
BIOMARKER_FIELDS = _fields("""
    name kind specimen_type specimen sampled_on method assay scoring value unit
    categorical_result status
""")
PERFORMANCE_FIELDS = _fields("assessed_on ecog karnofsky")
IMMUNE_FIELDS = _fields("""
    assessed_on leukocytes neutrophils neutrophils_not_tested lymphocytes
    lymphocytes_not_tested platelets haemoglobin count_context cd4 cd4_not_tested igg
    igg_not_tested iga igm steroid_mg_per_day steroid_since hiv hbsag anti_hbc anti_hbs
    hbv_dna_qualifier hbv_dna hcv active_infection active_infection_type active_infection_on
    transplant_gvhd asplenia autoimmune_disease infections_12m infections_hospitalised comment
""")
# Values converted on entry: shown with the laboratory's value and unit (`_Builder.lab_row`).
CONVERTED_FIELDS = ("leukocytes", "neutrophils", "lymphocytes", "platelets", "haemoglobin")
PROPHYLAXIS_FIELDS = _fields("agent kind since until")
VACCINATION_FIELDS = _fields("vaccine given_on note")
COMORBIDITY_FIELDS = _fields("name since note")
ORGAN_FUNCTION_FIELDS = _fields("measured_on egfr bilirubin alt ast lvef")
MEDICATION_FIELDS = _fields("name kind dose")
LINE_FIELDS = _fields("""
    kind position types regimen agents intent started_on ended_on ongoing cycles
    dose_reductions response response_criteria mrd mrd_sensitivity mrd_specimen end_reason
    category
""")
EVENT_FIELDS = _fields("""
    term grade ctcae_version onset_on attributed_agent immune_related steroids steroid_dose
    steroid_started_on other_immunosuppressants treatment course improved_to_grade led_to_stop
    dose_reduced rechallenged
""")
LIFESTYLE_FIELDS = _fields("""
    recorded_on smoking pack_years quit_on alcohol alcohol_units_per_week comment
""")
FAMILY_FIELDS = _fields("""
    degree relation side cancer_type oncotree_code age_at_diagnosis hereditary_syndrome
    germline_testing germline_result comment
""")
GENOMIC_FIELDS = _fields("""
    result_kind status gene partner_gene transcript hgvs_c hgvs_p variant_type exons origin vaf
    tmb msi specimen assay_method assay laboratory reported_on comment
""")
REGISTRATION_ROWS = _fields("""
    registering_physician target_board board_type board_date board_date_retrospective
    images_available
    patient_informed requested_participants question question_radiology question_pathology
    question_radiotherapy question_surgery patient_goals trial_screening history_summary
    open_questions
""")

# The note's own words: section titles, group headings, labels of rows no model field names.
# Stored with every snapshot in both languages.
TEXTS = {
    "t:yes": gettext_lazy("yes"),
    "t:no": gettext_lazy("no"),
    "t:not_recorded": gettext_lazy("not recorded"),
    "t:none_recorded": gettext_lazy("none recorded"),
    "t:registration": gettext_lazy("Registration"),
    "t:case": gettext_lazy("Patient and case"),
    "t:tumour": gettext_lazy("Tumour, stage and metastases"),
    "t:findings": gettext_lazy(
        "Performance status, immune-relevant findings, individual situation"
    ),
    "t:therapy": gettext_lazy("Prior therapies and tolerability"),
    "t:raised": gettext_lazy("Questions raised by %(who)s"),
    "t:none_raised": gettext_lazy("No category marked to raise at the board."),
    "t:categories": gettext_lazy("Every category of catalogue version %(n)s, with its status"),
    "t:categories_note": gettext_lazy(
        "The order is the catalogue's own and states no priority. A category not raised is"
        " not thereby excluded."
    ),
    "t:signature": gettext_lazy("Authorship and signature"),
    "t:primary_tumour": gettext_lazy("Primary tumour %(n)s"),
    "t:tumour_types": gettext_lazy("Tumour type"),
    "t:staging": gettext_lazy("Staging"),
    "t:metastasis_status": gettext_lazy("Metastasis status"),
    "t:metastasis": gettext_lazy("Metastasis %(n)s"),
    "t:biomarkers": gettext_lazy("Biomarkers"),
    "t:biomarker": gettext_lazy("Biomarker %(n)s"),
    "t:performance": gettext_lazy("Performance status"),
    "t:immune": gettext_lazy("Immune-relevant findings"),
    "t:immune_event": gettext_lazy("Immune-related adverse event: %(name)s"),
    "t:prophylaxis": gettext_lazy("Antiviral or antimicrobial prophylaxis"),
    "t:vaccination": gettext_lazy("Vaccination"),
    "t:lab": gettext_lazy("%(value)s (lab: %(lab)s %(unit)s)"),
    "t:comorbidities": gettext_lazy("Comorbidities"),
    "t:comorbidity": pgettext_lazy("board note", "Comorbidity"),
    "t:organ_function": gettext_lazy("Organ function"),
    "t:medications": gettext_lazy("Current medication"),
    "t:medication": pgettext_lazy("board note", "Medication"),
    "t:lines": gettext_lazy("Therapy lines"),
    "t:line": gettext_lazy("Line %(n)s"),
    "t:line_position": gettext_lazy("Line %(n)s · %(name)s"),
    "t:episode": gettext_lazy("%(name)s · %(start)s"),
    "t:event": gettext_lazy("Adverse event of %(name)s"),
    "t:event_case": gettext_lazy("Adverse event (not attributed to a recorded episode)"),
    "t:unknown_grades": gettext_lazy("Events with unknown grade (not counted)"),
    "t:statements": gettext_lazy("Statements"),
    "t:history": gettext_lazy("Smoking, alcohol and family history"),
    "t:lifestyle": gettext_lazy("Smoking and alcohol"),
    "t:family_history": gettext_lazy("Family history"),
    "t:relative": gettext_lazy("Relative %(n)s"),
    "t:genomics": gettext_lazy("Genomic findings"),
    "t:genomic": gettext_lazy("Genomic finding %(n)s"),
    "t:genomics_note": gettext_lazy("As the laboratory reported them; no variant is interpreted."),
    "t:tnm": gettext_lazy("TNM"),
    "t:project_code": gettext_lazy("Project code (TNM 9 lung, not oBDS or MII)"),
    "t:worst_grade": gettext_lazy("Worst grade"),
    "t:author": gettext_lazy("Author"),
    "t:note_version": gettext_lazy("Note version"),
    "t:supersedes": gettext_lazy("Supersedes version"),
    "t:amendment_reason": gettext_lazy("Reason for the amendment"),
    "t:record_version": gettext_lazy("Case record version"),
    "t:catalogue_version": gettext_lazy("Catalogue version"),
    "t:signed_by": gettext_lazy("Signed by"),
    "t:signed_at": gettext_lazy("Signed at"),
    "t:before_move": gettext_lazy("%(name)s, before the catalogue update"),
}


# What a therapy line's category row reads when the physician linked it to none.
NO_CATEGORY = gettext_lazy("no catalogue category")


def _in_both_languages(text: Any) -> dict[str, str]:
    out = {}
    for language in LANGUAGES:
        with translation.override(language):
            out[language] = str(text)
    return out


def _d(value: date | None) -> str:
    return value.isoformat() if value else ""


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


# --- building a snapshot ----------------------------------------------------------------------


class _Builder:
    """Collects the rows of a snapshot and the labels they name."""

    def __init__(self, codes: dict[str, dict[str, tuple[str, str]]]) -> None:
        self.texts: dict[str, Any] = dict(TEXTS)  # key -> lazy text, evaluated per language
        self.codes = codes  # system -> code -> (English, German)
        self.code_labels: dict[str, dict[str, str]] = {}

    def row(
        self, label: Any, kind: str, value: Any, ref: str = "", quote: str = ""
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"l": label, "k": kind, "v": value}
        if ref:
            row["r"] = ref
        if quote:
            row["q"] = quote
        return row

    def _code(self, system: str, code: str) -> None:
        english, german = self.codes.get(system, {}).get(code, (code, code))
        self.code_labels[f"k:{system}:{code}"] = {"en": english, "de": german or english}

    def field(
        self, obj: models.Model, name: str, value: Any = None, kind: str = ""
    ) -> dict[str, Any] | None:
        """The row of one model field (its value shown as `kind`, if given), or None when
        nothing is recorded in it."""
        meta = obj._meta
        key = f"{meta.model_name}.{name}"
        field: Any = meta.get_field(name)
        raw = getattr(obj, name) if value is None else value
        if key in FLAG_FIELDS and not raw:
            return None
        if _empty(raw):
            return None
        label = f"f:{key}"
        self.texts[label] = FIELD_LABELS.get(key) or capfirst(field.verbose_name)
        if kind:
            return self.row(label, kind, raw)
        if key in CODE_FIELDS:
            system = CODE_FIELDS[key]
            for code in raw if isinstance(raw, list) else [raw]:
                self._code(system, code)
            return self.row(label, CODES if isinstance(raw, list) else CODE, raw, system)
        if key in PLAIN_FIELDS:
            return self.row(label, PLAIN, str(raw))
        if isinstance(raw, list):  # several short entries (an episode's agents)
            return self.row(label, TEXT, ", ".join(raw))
        if field.choices:
            self.texts[f"c:{key}:{raw}"] = dict(field.flatchoices).get(raw, raw)
            return self.row(label, CHOICE, raw, key)
        if isinstance(field, models.BooleanField):
            return self.row(label, BOOL, bool(raw))
        if isinstance(field, models.DateField):
            # At its precision: a month is "2021-02", never padded to a first day.
            return self.row(label, PLAIN, partial_date(obj, name).iso())  # type: ignore[union-attr]
        if isinstance(field, models.DecimalField | models.IntegerField):
            return self.row(label, PLAIN, _num(raw))
        if isinstance(field, models.TextField):
            return self.row(label, LONG, raw)
        return self.row(label, TEXT, str(raw))

    def rows(self, obj: models.Model, names: list[str]) -> list[dict[str, Any]]:
        return [row for name in names if (row := self.field(obj, name)) is not None]

    def lab_row(self, obj: models.Model, name: str) -> dict[str, Any] | None:
        """A converted value with the laboratory's value and unit beside it, when the lab
        reported it in another unit than the stored one; else the plain row."""
        row = self.field(obj, name)
        unit = getattr(obj, f"{name}_lab_unit", "")
        lab = getattr(obj, f"{name}_lab_value", None)
        if row is None or not unit or lab is None or unit == _stored_unit(name):
            return row
        ref = f"{obj._meta.model_name}.{name}_lab_unit"
        field: Any = obj._meta.get_field(f"{name}_lab_unit")
        self.texts[f"c:{ref}:{unit}"] = dict(field.flatchoices).get(unit, unit)
        value = {"value": row["v"], "lab": _num(lab), "unit": unit}
        return self.row(row["l"], LAB, value, ref)

    def labels(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for language in LANGUAGES:
            with translation.override(language):
                out[language] = {key: str(text) for key, text in self.texts.items()}
            for key, both in self.code_labels.items():
                out[language][key] = both[language]
        return out


def _group(heading: Any, rows: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    group: dict[str, Any] = {"h": heading, "rows": rows}
    if params:
        group["p"] = params
    return group


def _empty_group(heading: str, empty: str = "t:not_recorded") -> dict[str, Any]:
    return {"h": heading, "rows": [], "e": empty}


def _section(key: str, groups: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"key": key, "t": f"t:{key}", "groups": groups}
    if params:
        section["p"] = params
    return section


def _staging_rows(b: _Builder, s: Any) -> list[dict[str, Any]]:
    """A staging record: its TNM as one formula (y/r/a symbols, prefixes, T, N, M, m, L, V,
    Pn and R together, as physicians read it), the rest field by field."""
    rows = b.rows(s, ["staged_on"])
    if s.tumour_id and (row := b.field(s, "tumour", s.tumour.oncotree_name, PLAIN)):
        rows.append(row)
    rows += b.rows(s, ["kind", "system", "other_system_name", "tnm_edition"])
    if s.tnm_text:
        rows.append(b.row("t:tnm", PLAIN, s.tnm_text))
    if s.m_is_project_code:
        rows.append(b.row("t:project_code", PLAIN, f"M{s.m_category}"))
    rows += b.rows(s, ["uicc_stage", "stage_text"])
    return rows


def _stored_unit(name: str) -> str:
    return "g/dL" if name == "haemoglobin" else "1e9/L"


def _immune_rows(b: _Builder, finding: Any) -> list[dict[str, Any]]:
    rows = []
    for name in IMMUNE_FIELDS:
        row = b.lab_row(finding, name) if name in CONVERTED_FIELDS else b.field(finding, name)
        if row is not None:
            rows.append(row)
    return rows


def _line_rows(b: _Builder, line: Any) -> list[dict[str, Any]]:
    rows = []
    for name in LINE_FIELDS:
        if name == "category":
            # A line is linked only by the physician; unlinked reads so, never left out.
            category = line.category
            name_both = (
                {"en": category.name_en, "de": category.name_de}
                if category
                else _in_both_languages(NO_CATEGORY)
            )
            row = b.field(line, name, name_both, I18N)
        else:
            row = b.field(line, name)
        if row is not None:
            rows.append(row)
    worst, unknown = line.worst_grade()
    if worst:
        rows.append(b.row("t:worst_grade", PLAIN, f"G{worst}"))
    if unknown:
        rows.append(b.row("t:unknown_grades", PLAIN, str(unknown)))
    return rows


def _family_rows(b: _Builder, row: Any) -> list[dict[str, Any]]:
    """A relative's cancer: an OncoTree type as OncoTree names it, free text as typed."""
    rows = []
    for name in FAMILY_FIELDS:
        kind = (
            PLAIN
            if name == "oncotree_code" or (name == "cancer_type" and row.oncotree_code)
            else ""
        )
        if (found := b.field(row, name, kind=kind)) is not None:
            rows.append(found)
    return rows


def _history_sections(b: _Builder, record: CaseRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The genomic findings (after the tumour) and the smoking, alcohol and family history
    (after the findings), each row field by field."""
    genomic = [
        _group("t:genomic", b.rows(v, GENOMIC_FIELDS), n=n)
        for n, v in enumerate(record.genomic_variants, 1)
    ] or [_empty_group("t:genomics")]
    genomics = _section("genomics", genomic)
    genomics["note"] = "t:genomics_note"
    history = [_group("t:lifestyle", b.rows(r, LIFESTYLE_FIELDS)) for r in record.lifestyle]
    history = history or [_empty_group("t:lifestyle")]
    history += [
        _group("t:relative", _family_rows(b, r), n=n)
        for n, r in enumerate(record.family_history, 1)
    ] or [_empty_group("t:family_history")]
    return genomics, _section("history", history)


def _episode_heading(line: Any) -> dict[str, Any]:
    """A heading naming an episode as the page does, in both languages: "Line 1 ·
    maintenance", "Radiotherapy · 2021-03"."""
    if line.is_systemic:
        if not line.position:
            return {"key": "t:line", "p": {"n": line.number}}
        position = _in_both_languages(line.get_position_display())
        return {"key": "t:line_position", "name": position, "p": {"n": line.number}}
    kind = {
        language: capfirst(text)
        for language, text in _in_both_languages(line.get_kind_display()).items()
    }
    start = line.partial("started_on").iso()
    return {"key": "t:episode", "name": kind, "p": {"start": start}}


def _event_heading(event: Any, lines: dict[int, Any]) -> dict[str, Any] | str:
    line = lines.get(event.line_id)
    if line is None:
        return "t:event_case"
    return {"key": "t:event", "name": _episode_heading(line)}


def build_snapshot(
    version: BoardNoteVersion, *, language: str, record: CaseRecord | None = None
) -> dict[str, Any]:
    """Everything the note shows, as plain JSON-able data with its labels in both languages.
    `language` is the signer's (kept for the record). `record` is the note's case record if
    the caller has loaded it already."""
    with translation.override(language):
        if record is None:
            record = CaseRecord.load(version.note.case)
        return _build(version, language, record)


def _codes() -> dict[str, dict[str, tuple[str, str]]]:
    codes: dict[str, dict[str, tuple[str, str]]] = {}
    for code in Code.objects.filter(system__in=set(CODE_FIELDS.values())).only(
        "system", "code", "display", "display_de"
    ):
        codes.setdefault(code.system, {})[code.code] = (code.display, code.display_de)
    return codes


def _build(version: BoardNoteVersion, language: str, record: CaseRecord) -> dict[str, Any]:
    case = record.case
    b = _Builder(_codes())
    checklist, catalogue = Checklist.objects.worked_under(case)
    categories = (
        list(catalogue.categories.filter(active=True).order_by("position")) if catalogue else []
    )
    items = (
        {i.category_id: i for i in checklist.items.select_related("set_by__account_profile")}
        if checklist
        else {}
    )

    registration = _section("registration", [_group("", b.rows(version, REGISTRATION_ROWS))])
    patient = _section("case", [_group("", b.rows(case, CASE_FIELDS))])

    tumour_groups = []
    if case.unknown_primary:
        tumour_groups.append(_group("t:tumour_types", b.rows(case, ["unknown_primary"])))
    tumour_groups += [
        _group("t:primary_tumour", b.rows(t, TUMOUR_FIELDS), n=n)
        for n, t in enumerate(record.tumours, 1)
    ]
    if not tumour_groups:
        tumour_groups.append(_empty_group("t:tumour_types"))
    tumour_groups += [_group("t:staging", _staging_rows(b, s)) for s in record.staging]
    tumour_groups.append(
        _group("t:metastasis_status", b.rows(case, METASTASIS_STATUS_FIELDS))
        if case.metastasis_status
        else _empty_group("t:metastasis_status")
    )
    tumour_groups += [
        _group("t:metastasis", b.rows(m, METASTASIS_FIELDS), n=n)
        for n, m in enumerate(record.metastases, 1)
    ]
    tumour_groups += [
        _group("t:biomarker", b.rows(m, BIOMARKER_FIELDS), n=n)
        for n, m in enumerate(record.biomarkers, 1)
    ] or [_empty_group("t:biomarkers")]

    findings = [_group("t:performance", b.rows(p, PERFORMANCE_FIELDS)) for p in record.performance]
    findings = findings or [_empty_group("t:performance")]
    immune = [_group("t:immune", _immune_rows(b, f)) for f in record.immune]
    immune += [_group("t:prophylaxis", b.rows(p, PROPHYLAXIS_FIELDS)) for p in record.prophylaxes]
    immune += [_group("t:vaccination", b.rows(v, VACCINATION_FIELDS)) for v in record.vaccinations]
    # The immune-related adverse events, as the page's immune section shows them (the one
    # model's rows, recorded once; the therapy section lists them with the others).
    immune += [
        _group(
            {"key": "t:immune_event", "name": {"en": e.term, "de": e.term}}, b.rows(e, EVENT_FIELDS)
        )
        for e in record.immune_events
    ]
    if case.immune_not_assessed:
        immune.insert(0, _group("t:immune", b.rows(case, ["immune_not_assessed"])))
    findings += immune or [_empty_group("t:immune")]
    findings += [
        _group("t:comorbidity", b.rows(c, COMORBIDITY_FIELDS)) for c in record.comorbidities
    ] or [_empty_group("t:comorbidities", "t:none_recorded")]
    findings += [
        _group("t:organ_function", b.rows(o, ORGAN_FUNCTION_FIELDS)) for o in record.organ_functions
    ]
    findings += [
        _group("t:medication", b.rows(m, MEDICATION_FIELDS)) for m in record.medications
    ] or [_empty_group("t:medications", "t:none_recorded")]

    therapy = []
    statements = b.rows(case, ["no_prior_therapy", "prior_therapy_stated_on"])
    if statements:
        therapy.append(_group("t:statements", statements))
    lines = {line.pk: line for line in record.lines}
    for line in record.lines:
        therapy.append(_group(_episode_heading(line), _line_rows(b, line)))
        therapy += [
            _group(_event_heading(e, lines), b.rows(e, EVENT_FIELDS)) for e in line.recorded_events
        ]
    therapy += [_group("t:event_case", b.rows(e, EVENT_FIELDS)) for e in record.unlinked_events]
    if not record.lines and not case.no_prior_therapy:
        therapy.append(_empty_group("t:lines"))

    author = user_display(version.created_by)
    raised_rows = []
    category_groups: list[dict[str, Any]] = []
    b.texts.update({f"c:checklistitem.status:{c}": label for c, label in ItemStatus.choices})
    for category in categories:
        item = items.get(category.pk)
        name = {"en": category.name_en, "de": category.name_de}
        group = {"en": category.group_en, "de": category.group_de}
        if not category_groups or category_groups[-1]["h"] != group:
            category_groups.append({"h": group, "rows": []})
        status = item.status if item else ItemStatus.NOT_YET_REVIEWED
        value = {
            "status": status,
            "by": user_display(item.set_by) if item and item.set_by else "",
            "at": item.set_at.isoformat(timespec="seconds") if item and item.set_at else "",
        }
        note = item.note if item else ""
        category_groups[-1]["rows"].append(b.row(name, ITEM, value, quote=note))
        if item and item.previous_status:
            previous = {"status": item.previous_status, "by": "", "at": ""}
            label = {"name": name, "key": "t:before_move"}
            category_groups[-1]["rows"].append(
                b.row(label, ITEM, previous, quote=item.previous_note)
            )
        if status == ItemStatus.RAISE:
            raised_rows.append(
                b.row(name, ITEM, {"status": status, "by": "", "at": ""}, quote=note)
            )
    raised = _section(
        "raised",
        [_group("", raised_rows)] if raised_rows else [_empty_group("", "t:none_raised")],
        who=author,
    )
    catalogue_number = catalogue.number if catalogue else None
    listed = _section("categories", category_groups, n=catalogue_number)
    listed["note"] = "t:categories_note"

    signature_rows = [b.row("t:author", PLAIN, author)]
    signature_rows.append(b.row("t:note_version", PLAIN, str(version.number)))
    if version.supersedes:
        signature_rows.append(b.row("t:supersedes", PLAIN, str(version.supersedes.number)))
    if version.amendment_reason:
        signature_rows.append(b.row("t:amendment_reason", LONG, version.amendment_reason))
    signature_rows.append(b.row("t:record_version", PLAIN, str(case.version)))
    if catalogue_number is not None:
        signature_rows.append(b.row("t:catalogue_version", PLAIN, str(catalogue_number)))

    genomics, history = _history_sections(b, record)
    sections = [
        registration,
        patient,
        _section("tumour", tumour_groups),
        genomics,
        _section("findings", findings),
        history,
        _section("therapy", therapy),
        raised,
        listed,
        _section("signature", [_group("", signature_rows)]),
    ]
    return {
        "format": SNAPSHOT_FORMAT,
        "language": language,
        "meta": {
            "practice": case.practice.name,
            "case_label": case.label,
            "board_date": _d(version.board_date),
            "catalogue_version": catalogue_number,
            "note_version": version.number,
            "supersedes": version.supersedes.number if version.supersedes else None,
            "author": author,
        },
        "sections": sections,
        "disclaimer": {
            "en": catalogue.disclaimer_en if catalogue else "",
            "de": catalogue.disclaimer_de if catalogue else "",
        },
        "labels": b.labels(),
    }


def add_signature(snapshot: dict[str, Any], *, signed_by: str, signed_at: str) -> None:
    """Adds who signed and when to a snapshot before it is hashed."""
    snapshot["signed_by"] = signed_by
    snapshot["signed_at"] = signed_at
    if snapshot.get("format", 1) < 2:
        return
    signature = next(s for s in snapshot["sections"] if s["key"] == "signature")
    signature["groups"][0]["rows"] += [
        {"l": "t:signed_by", "k": PLAIN, "v": signed_by},
        {"l": "t:signed_at", "k": DATETIME, "v": signed_at},
    ]


# --- the one structure every rendering loops over ---------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    physician_text: bool = False  # the value is the physician's words
    quote: str = ""  # the physician's words beside a value (a checklist item's note)
    long: bool = False  # the physician's words may span lines: shown as a quote block


@dataclass(frozen=True)
class Group:
    heading: str
    rows: tuple[Row, ...]
    empty: str = ""  # said when nothing is recorded


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    groups: tuple[Group, ...]
    note: str = ""


@dataclass(frozen=True)
class Document:
    """A note in one language, as every rendering shows it."""

    language: str
    sections: tuple[Section, ...]
    practice: str
    case_label: str
    board_date: str
    catalogue_version: Any
    note_version: Any
    supersedes: Any
    author: str
    disclaimer: str
    signed_by: str = ""
    signed_at: str = ""  # ISO 8601
    legacy: bool = False  # signed before snapshots carried both languages


def is_legacy(snapshot: dict[str, Any]) -> bool:
    return int(snapshot.get("format", 1)) < 2


def render_language(snapshot: dict[str, Any], wanted: str) -> str:
    """The language a note is shown in: the reader's, or for a note signed before snapshots
    carried both languages, the one it was signed in."""
    if is_legacy(snapshot):
        return str(snapshot.get("language") or "en")
    return wanted if wanted in LANGUAGES else "en"


def document(snapshot: dict[str, Any], language: str, *, offset: bool = False) -> Document:
    """The note in `language` (a legacy note: in its own), section by section. `offset` adds
    the UTC offset to times (the PDF)."""
    language = render_language(snapshot, language)
    if is_legacy(snapshot):
        with translation.override(language):
            return _legacy_document(snapshot, language, offset)
    labels = snapshot["labels"].get(language) or snapshot["labels"]["en"]
    reader = _Reader(labels, language, offset)
    meta = snapshot["meta"]
    sections = tuple(
        Section(
            key=s["key"],
            title=reader.text(s["t"], s.get("p")),
            groups=tuple(
                Group(
                    heading=reader.text(g["h"], g.get("p")) if g["h"] else "",
                    rows=tuple(reader.row(r) for r in g["rows"]),
                    empty=reader.text(g["e"]) if g.get("e") else "",
                )
                for g in s["groups"]
            ),
            note=reader.text(s["note"]) if s.get("note") else "",
        )
        for s in snapshot["sections"]
    )
    return Document(
        language=language,
        sections=sections,
        practice=meta["practice"],
        case_label=meta["case_label"],
        board_date=meta["board_date"],
        catalogue_version=meta["catalogue_version"],
        note_version=meta["note_version"],
        supersedes=meta["supersedes"],
        author=meta["author"],
        disclaimer=snapshot["disclaimer"].get(language, ""),
        signed_by=str(snapshot.get("signed_by", "")),
        signed_at=str(snapshot.get("signed_at", "")),
    )


_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+\Z")


@functools.cache
def _decimal_labels() -> frozenset[str]:
    """The row labels of decimal fields ("f:organfunction.bilirubin")."""
    return frozenset(
        f"f:{model._meta.model_name}.{field.name}"
        for model in apps.get_app_config("checklist").get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.DecimalField)
    )


def _is_decimal(label: str, value: str) -> bool:
    return label in _decimal_labels() and _DECIMAL.match(value) is not None


class _Reader:
    """Turns stored rows into text with one language's labels."""

    def __init__(self, labels: dict[str, str], language: str, offset: bool) -> None:
        self.labels = labels
        self.language = language
        self.offset = offset

    def text(self, ref: Any, params: dict[str, Any] | None = None) -> str:
        if isinstance(ref, dict) and "key" in ref:  # a label built around a name and numbers
            params = dict(ref.get("p") or {})
            if "name" in ref:
                params["name"] = self.text(ref["name"])
            return self.text(ref["key"], params)
        if isinstance(ref, dict):
            return str(ref.get(self.language) or ref.get("en") or "")
        text = self.labels.get(ref, ref)
        if params:
            return text % {k: "" if v is None else v for k, v in params.items()}
        return text

    def _time(self, value: str) -> str:
        from checklist.templatetags.checklist_tags import local_datetime

        with translation.override(self.language):
            return local_datetime(value, offset=self.offset)

    def value(self, kind: str, value: Any, ref: str) -> str:
        if kind == BOOL:
            return self.text("t:yes" if value else "t:no")
        if kind == CHOICE:
            return self.labels.get(f"c:{ref}:{value}", str(value))
        if kind == CODE:
            return f"{self.labels.get(f'k:{ref}:{value}', value)} ({value})"
        if kind == CODES:
            return " + ".join(f"{self.labels.get(f'k:{ref}:{v}', v)} ({v})" for v in value)
        if kind == I18N:
            return self.text(value)
        if kind == DATETIME:
            return self._time(value)
        if kind == LAB:
            separator = str(formats.get_format("DECIMAL_SEPARATOR", self.language))
            return self.text("t:lab") % {
                "value": value["value"].replace(".", separator),
                "lab": value["lab"].replace(".", separator),
                "unit": self.labels.get(f"c:{ref}:{value['unit']}", value["unit"]),
            }
        if kind == ITEM:
            text = self.labels.get(f"c:checklistitem.status:{value['status']}", value["status"])
            if value.get("by"):
                text += f" · {value['by']}"
            if value.get("at"):
                text += f", {self._time(value['at'])}"
            return text
        return "" if value is None else str(value)

    def row(self, row: dict[str, Any]) -> Row:
        kind = row["k"]
        value = self.value(kind, row["v"], row.get("r", ""))
        label = row["l"]
        if kind == PLAIN and isinstance(label, str) and _is_decimal(label, value):
            # Stored with a point ("1.25"); each reader sees their decimal separator ("1,25").
            separator = str(formats.get_format("DECIMAL_SEPARATOR", self.language))
            value = value.replace(".", separator)
        return Row(
            label=self.text(label),
            value=value,
            physician_text=kind in PHYSICIAN_KINDS,
            quote=row.get("q", ""),
            long=kind == LONG,
        )


# --- notes signed before format 2 ---------------------------------------------------------------

# Labels of the keys of a format-1 snapshot whose name is not already an interface text.
_LEGACY_LABELS = {
    "label": gettext_lazy("pseudonymous label"),
    "sex": gettext_lazy("sex"),
    "situation": gettext_lazy("tumour situation"),
    "last_restaging": gettext_lazy("last restaging on"),
    "last_restaging_method": gettext_lazy("last restaging method"),
    "unknown_primary": gettext_lazy("cancer of unknown primary"),
    "record_version": gettext_lazy("Case record version"),
    "name": gettext_lazy("name"),
    "code": gettext_lazy("code"),
    "date": gettext_lazy("date"),
    "status_label": gettext_lazy("status"),
    "note": gettext_lazy("note"),
    "group": pgettext_lazy("board note", "group"),
    "neutrophils": gettext_lazy("neutrophils"),
    "lymphocytes": gettext_lazy("lymphocytes"),
    "steroid": gettext_lazy("steroid"),
    "hospitalised": gettext_lazy("hospitalised"),
}
_LEGACY_SKIPPED = {"format", "language", "summary", "raised", "status", "practice"}


def _legacy_label(key: str) -> str:
    if key in _LEGACY_LABELS:
        return capfirst(str(_LEGACY_LABELS[key]))
    return capfirst(_(key.replace("_", " ")))


# The order a format-1 snapshot was built in (its JSON object comes back from PostgreSQL in
# another order); keys not named here follow.
_LEGACY_ORDER = {
    key: index
    for index, key in enumerate(
        _fields("""label year_of_birth sex situation last_restaging last_restaging_method
        unknown_primary record_version registering_physician target_board board_type_label
        board_date images_available patient_informed requested_participants question
        question_radiology question_pathology question_radiotherapy question_surgery
        patient_goals trial_screening history_summary open_questions name code release
        laterality diagnosed_on basis histology grade icd10 date kind system edition
        classification stage other_system specimen assay scoring value unit categorical
        status_label site lesions detected_on timing established_by ecog karnofsky number
        types regimen setting palliative_line start end ongoing cycles response criteria
        end_reason worst_grade term ctcae agent led_to_stop dose_reduced resolved group
        note""")
    )
}


def _legacy_rows(entry: dict[str, Any]) -> tuple[Row, ...]:
    rows = []
    for key, value in sorted(entry.items(), key=lambda kv: _LEGACY_ORDER.get(kv[0], 999)):
        if key in _LEGACY_SKIPPED or isinstance(value, dict) or _empty(value):
            continue
        if key == "events" and isinstance(value, list):
            continue
        if isinstance(value, bool):
            text = _("yes") if value else _("no")
        elif isinstance(value, list):
            text = " + ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append(Row(_legacy_label(key), text, physician_text=isinstance(value, str)))
    return tuple(rows)


def _legacy_document(snapshot: dict[str, Any], language: str, offset: bool) -> Document:
    """A format-1 snapshot (display strings in the language it was signed in), every key of it
    shown under the interface's labels in that language."""
    groups: dict[str, list[Group]] = {}

    def add(section: str, heading: str, entry: Any) -> None:
        if isinstance(entry, dict):
            rows = _legacy_rows(entry)
            if rows:
                groups.setdefault(section, []).append(Group(heading, rows))

    registration = dict(snapshot.get("registration") or {})
    registration.pop("board_type", None)  # its label is kept as board_type_label
    add("registration", "", registration)
    add("case", "", snapshot.get("case") or {})
    for tumour in snapshot.get("tumours", []):
        add("tumour", pgettext("board note", "Primary tumour"), tumour)
    for staging in snapshot.get("staging", []):
        add("tumour", _("Staging"), staging)
    add(
        "tumour",
        _("Metastases"),
        {
            "metastasis_status": snapshot.get("metastasis_status"),
            "metastasis_assessed": snapshot.get("metastasis_assessed"),
        },
    )
    for metastasis in snapshot.get("metastases", []):
        add("tumour", pgettext("board note", "Metastasis"), metastasis)
    for biomarker in snapshot.get("biomarkers", []):
        add("tumour", _("Biomarkers"), biomarker)
    for performance in snapshot.get("performance", []):
        add("findings", _("Performance status"), performance)
    for finding in snapshot.get("immune_trend", []) or (
        [snapshot["immune_latest"]] if snapshot.get("immune_latest") else []
    ):
        add("findings", _("Immune-relevant findings"), finding)
    add(
        "findings",
        _("Immune-relevant findings"),
        {"immune_not_assessed": snapshot.get("immune_not_assessed")},
    )
    for event in snapshot.get("immune_events", []):
        add("findings", _("Prior immune-related adverse events"), event)
    for comorbidity in snapshot.get("comorbidities", []):
        add("findings", _("Comorbidities"), comorbidity)
    for organ in snapshot.get("organ_functions", []):
        add("findings", _("Organ function"), organ)
    for medication in snapshot.get("medications", []):
        add("findings", _("Current medication"), medication)
    add("therapy", "", {"no_prior_therapy": snapshot.get("no_prior_therapy")})
    for line in snapshot.get("lines", []):
        add("therapy", _("Line %(n)s") % {"n": line.get("number")}, line)
        for event in line.get("events", []):
            add("therapy", _("Adverse event"), event)
    for mark in snapshot.get("timeline", []):
        add("therapy", _("Timeline"), mark)
    for category in snapshot.get("categories", []):
        add("categories", category.get("group", ""), category)
    add(
        "signature",
        "",
        {
            "author": snapshot.get("author"),
            "note_version": snapshot.get("note_version"),
            "supersedes": snapshot.get("supersedes"),
            "amendment_reason": snapshot.get("amendment_reason"),
            "signed_by": snapshot.get("signed_by"),
            "signed_at": _Reader({}, language, offset)._time(str(snapshot.get("signed_at") or "")),
        },
    )
    titles = {
        "registration": _("Registration"),
        "case": _("Patient and case"),
        "tumour": _("Tumour, stage and metastases"),
        "findings": _("Performance status, immune-relevant findings, individual situation"),
        "therapy": _("Prior therapies and tolerability"),
        "categories": _("Every category of catalogue version %(n)s, with its status")
        % {"n": snapshot.get("catalogue_version")},
        "signature": _("Authorship and signature"),
    }
    registration_meta = snapshot.get("registration") or {}
    return Document(
        language=language,
        sections=tuple(
            Section(key, title, tuple(groups[key]))
            for key, title in titles.items()
            if key in groups
        ),
        practice=str(snapshot.get("practice", "")),
        case_label=str((snapshot.get("case") or {}).get("label", "")),
        board_date=str(registration_meta.get("board_date") or ""),
        catalogue_version=snapshot.get("catalogue_version"),
        note_version=snapshot.get("note_version"),
        supersedes=snapshot.get("supersedes"),
        author=str(snapshot.get("author", "")),
        disclaimer=str(snapshot.get("disclaimer", "")),
        signed_by=str(snapshot.get("signed_by", "")),
        signed_at=str(snapshot.get("signed_at", "")),
        legacy=True,
    )


# --- hash, signing needs, comparing versions -----------------------------------------------------


def canonical(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def snapshot_hash(snapshot: dict[str, Any]) -> str:
    """SHA-256 of the whole snapshot: values, codes and the labels of both languages."""
    return hashlib.sha256(canonical(snapshot)).hexdigest()


def verify(version: BoardNoteVersion) -> bool:
    return bool(version.snapshot) and snapshot_hash(version.snapshot or {}) == version.snapshot_hash


def _signing_needs() -> dict[str, str]:
    """The factor groups a signature needs documented, with what the physician is asked for.
    The stage is not among them: a haematological case signs without TNM."""
    return {
        rules.TUMOUR_TYPE: _("a tumour type, or “cancer of unknown primary”"),
        rules.METASTASES: _("the metastasis status"),
        rules.PRIOR_THERAPIES: _("the prior therapies, or “no prior tumour-specific therapy”"),
        rules.IMMUNE_STATUS: _(
            "immune-relevant findings, or the statement that they were not assessed"
        ),
    }


def missing_for_signing(version: BoardNoteVersion, record: CaseRecord) -> list[str]:
    """What a signature needs and the note lacks: the question, and each group above that the
    case page shows as a gap (`record.gaps`, the same rules.py call). A metastasis status, or
    immune findings stated as not assessed, count as documented, rows or not."""
    missing = []
    if not version.question.strip():
        missing.append(_("the question for the board"))
    missing += [text for group, text in _signing_needs().items() if group in record.gaps]
    return missing


def snapshot_for(
    version: BoardNoteVersion, language: str, record: CaseRecord | None = None
) -> dict[str, Any]:
    """A signed version's stored snapshot; otherwise one built live (from `record`, if the
    caller has loaded the case's record already)."""
    if version.state == NoteState.SIGNED and version.snapshot:
        return version.snapshot
    return build_snapshot(version, language=language, record=record)


def flatten(doc: Document) -> dict[str, str]:
    """A note as "section › heading › label" -> text, for the changes between two versions.
    A heading that repeats in its section (several findings) gets the group's number."""
    out: dict[str, str] = {}
    for section in doc.sections:
        for index, group in enumerate(section.groups, 1):
            where = f"{section.title} › {group.heading}" if group.heading else section.title
            if sum(g.heading == group.heading for g in section.groups) > 1:
                where += f" ({index})"
            for row in group.rows:
                text = f"{row.value} “{row.quote}”" if row.quote else row.value
                out[f"{where} › {row.label}"] = text
    return out


def diff(old: Document, new: Document) -> list[tuple[str, str, str]]:
    a, b = flatten(old), flatten(new)
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k, ""), b.get(k, "")) for k in keys if a.get(k) != b.get(k)]


@dataclass(frozen=True)
class SigningSummary:
    """What the confirmation step shows before a physician signs."""

    sections: tuple[str, ...]  # the sections with something recorded
    statuses: tuple[tuple[str, int], ...]  # each status of the checklist with its count
    not_reviewed: tuple[str, ...]  # the categories still "not yet reviewed"


def signing_summary(snapshot: dict[str, Any], doc: Document) -> SigningSummary:
    counts: Counter[str] = Counter()
    not_reviewed = []
    listed = next((s for s in snapshot.get("sections", []) if s["key"] == "categories"), None)
    reader_section = next((s for s in doc.sections if s.key == "categories"), None)
    if listed and reader_section:
        for stored, shown in zip(listed["groups"], reader_section.groups, strict=True):
            for stored_row, shown_row in zip(stored["rows"], shown.rows, strict=True):
                if isinstance(stored_row["l"], dict) and "key" in stored_row["l"]:
                    continue  # the status before a catalogue update
                status = stored_row["v"]["status"]
                counts[status] += 1
                if status == ItemStatus.NOT_YET_REVIEWED:
                    not_reviewed.append(shown_row.label)
    statuses = tuple(
        (str(label), counts[code]) for code, label in ItemStatus.choices if counts[code]
    )
    present = tuple(
        s.title
        for s in doc.sections
        if s.key not in ("raised", "categories", "signature") and any(g.rows for g in s.groups)
    )
    return SigningSummary(present, statuses, tuple(not_reviewed))


# --- the fixed sentences, Markdown and PDF -----------------------------------------------------


def disclaimer_lines() -> dict[str, str]:
    """The fixed sentences exports carry beside the source's disclaimer."""
    return {
        # Translators: disclaimer
        "footer_notice": _("No automated recommendation was generated."),
        # Translators: disclaimer
        "catalogue_notice": _(
            "This note lists every category documented in the practice's catalogue. It is not"
            " a complete list of treatment options. No automated recommendation was generated."
        ),
    }


def markdown_text(value: Any) -> Any:
    """Every string of a value as text for Markdown: HTML-escaped (`&`, `<` and `>`, so
    no tag or entity typed into the record reaches a system the note is pasted into, while
    quotes and apostrophes stay readable), line breaks indented as continuation lines of the
    list item or paragraph they are in (so a typed line never starts a heading, a list or a
    "---" of its own). The template quotes multi-line text with `markdown_quote`."""
    if isinstance(value, str):
        lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        escaped = (
            line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in lines
        )
        return mark_safe(MARKDOWN_CONTINUATION.join(escaped))  # noqa: S308 - escaped above
    if isinstance(value, dict):
        return {key: markdown_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(markdown_text(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value,
            **{f.name: markdown_text(getattr(value, f.name)) for f in dataclasses.fields(value)},
        )
    return value


MARKDOWN_CONTINUATION = "\n  "


@dataclass(frozen=True)
class MarkdownRow:
    label: str
    value: str  # the value as it follows "label: " (physician text quoted)
    block: str = ""  # physician text that needs a quote block of its own: "> " lines


def _markdown_rows(doc: Document) -> dict[tuple[int, int], list[MarkdownRow]]:
    """Each row of the (escaped) document as a Markdown list item: physician text quoted,
    inline in double quotes when it is a short field of one line without one, else as a "> "
    block inside the item (every typed line in it: none starts a heading, list or rule of its
    own), so that `wording.strip_exempt_markdown` finds every word the physician typed."""
    out: dict[tuple[int, int], list[MarkdownRow]] = {}
    for s, section in enumerate(doc.sections):
        for g, group in enumerate(section.groups):
            rows = []
            for row in group.rows:
                value, block = row.value, ""
                words = row.value if row.physician_text else row.quote
                if words:
                    one_line = MARKDOWN_CONTINUATION not in words and '"' not in words
                    if one_line and not row.long:
                        quoted = f'"{words}"'
                    else:
                        quoted = ""
                        block = "  > " + words.replace(MARKDOWN_CONTINUATION, "\n  > ")
                    value = quoted if row.physician_text else f"{row.value} {quoted}".rstrip()
                rows.append(MarkdownRow(row.label, mark_safe(value), mark_safe(block)))  # noqa: S308 - escaped
            out[(s, g)] = rows
    return out


def render_text(
    snapshot: dict[str, Any], version: BoardNoteVersion, *, language: str | None = None
) -> str:
    """The note as Markdown, in `language` (a legacy note: in its own). The template renders
    with autoescape on; the note's strings come escaped for Markdown by `markdown_text`,
    anything else is HTML-escaped by Django."""
    language = render_language(snapshot, language or str(snapshot.get("language", "en")))
    doc = markdown_text(document(snapshot, language))
    rows = _markdown_rows(doc)
    sections = [
        (section, [(group, rows[(s, g)]) for g, group in enumerate(section.groups)])
        for s, section in enumerate(doc.sections)
    ]
    with translation.override(language):
        return render_to_string(
            "checklist/note.md",
            {
                "doc": doc,
                "sections": sections,
                "version": version,
                "signed": version.state == NoteState.SIGNED,
                **markdown_text(disclaimer_lines()),
            },
        )


def render_pdf(
    snapshot: dict[str, Any],
    version: BoardNoteVersion,
    *,
    base_url: str,
    language: str | None = None,
) -> bytes:
    """The note as a PDF, in `language` (a legacy note: in its own). Its text (running headers
    too) is document text, never style; what WeasyPrint may read is our static files only
    (`checklist.pdf.StaticOnlyFetcher`)."""
    from weasyprint import HTML

    from checklist.pdf import StaticOnlyFetcher

    language = render_language(snapshot, language or str(snapshot.get("language", "en")))
    doc = document(snapshot, language, offset=True)
    with translation.override(language):
        html = render_to_string(
            "checklist/note_pdf.html",
            {
                "doc": doc,
                "version": version,
                "signed": version.state == NoteState.SIGNED,
                "pdf": True,
                **disclaimer_lines(),
            },
        )
    fetcher = StaticOnlyFetcher(base_url)
    pdf: bytes = HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf()
    return pdf
