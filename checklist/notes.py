"""The tumour-board note: its snapshot (everything the note shows, frozen at signing), the
snapshot's hash, what signing needs, the plain-text form and the PDF.

A draft is rendered from a snapshot built live; a signed version from its stored snapshot, so
later edits to the case never change a signed note.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from checklist import rules
from checklist.models import (
    BoardNoteVersion,
    Case,
    Checklist,
    Code,
    ItemStatus,
    NoteState,
    user_display,
)
from checklist.record import CaseRecord, category_text

SNAPSHOT_FORMAT = 1


def _d(value: date | None) -> str:
    return value.isoformat() if value else ""


def _num(value: Any) -> str:
    return (
        ""
        if value is None
        else f"{value.normalize():f}"
        if hasattr(value, "normalize")
        else str(value)
    )


def build_snapshot(
    version: BoardNoteVersion, *, language: str, record: CaseRecord | None = None
) -> dict[str, Any]:
    """Everything the note shows, as plain JSON-able data in the given language. `record` is
    the note's case record if the caller has loaded it already (its facts not yet read)."""
    with translation.override(language):
        if record is None:
            record = CaseRecord.load(version.note.case)
        return _build(version, language, record)


def _build(version: BoardNoteVersion, language: str, record: CaseRecord) -> dict[str, Any]:
    case: Case = record.case
    labels = record.code_labels(language)
    sites = record.site_labels(language)
    board_types = {
        c.code: c.label(language) for c in Code.objects.filter(system="mii:therapieplanung-typ")
    }
    checklist, catalogue = Checklist.objects.worked_under(case)
    categories = (
        list(catalogue.categories.filter(active=True).order_by("position")) if catalogue else []
    )
    items = {i.category_id: i for i in checklist.items.all()} if checklist else {}
    view = rules.checklist(
        record.facts,
        rules.Catalogue(
            catalogue.number if catalogue else 0,
            tuple(category_text(c, language) for c in categories),
        ),
    )
    statuses = dict(ItemStatus.choices)
    category_rows = []
    for category in categories:
        item = items.get(category.pk)
        status = item.status if item else ItemStatus.NOT_YET_REVIEWED
        category_rows.append(
            {
                "code": category.code,
                "group": category.group(language),
                "name": category.name(language),
                "status": status,
                "status_label": str(statuses[status]),
                "note": item.note if item else "",
            }
        )
    registration = {f: getattr(version, f) for f in BoardNoteVersion.REGISTRATION_FIELDS}
    registration["board_date"] = _d(version.board_date)
    registration["board_type_label"] = board_types.get(version.board_type, version.board_type)
    latest_immune = record.immune[-1] if record.immune else None
    timeline_layout = record.timeline(timezone.localdate(), language)
    return {
        "format": SNAPSHOT_FORMAT,
        "language": language,
        "practice": case.practice.name,
        "case": {
            "label": case.label,
            "year_of_birth": case.year_of_birth,
            "sex": str(case.get_sex_display()),
            "situation": str(case.get_situation_display()),
            "last_restaging": _d(case.last_restaging_on),
            "last_restaging_method": str(case.get_last_restaging_method_display()),
            "unknown_primary": case.unknown_primary,
            "record_version": case.version,
        },
        "registration": registration,
        "tumours": [
            {
                "name": t.oncotree_name,
                "code": t.oncotree_code,
                "release": t.oncotree_release,
                "laterality": str(t.get_laterality_display()),
                "diagnosed_on": _d(t.diagnosed_on),
                "basis": str(t.get_diagnosis_basis_display()),
                "histology": t.histology,
                "grade": str(t.get_grade_display()),
                "icd10": t.icd10_text,
            }
            for t in record.tumours
        ],
        "staging": [
            {
                "date": _d(s.staged_on),
                "kind": str(s.get_kind_display()),
                "system": str(s.get_system_display()),
                "edition": s.tnm_edition,
                "classification": s.tnm_text or s.stage_text,
                "stage": s.uicc_stage,
                "other_system": s.other_system_name,
            }
            for s in record.staging
        ],
        "biomarkers": [
            {
                "name": b.name,
                "kind": str(b.get_kind_display()),
                "specimen": b.specimen,
                "date": _d(b.sampled_on),
                "assay": b.assay,
                "scoring": b.scoring,
                "value": _num(b.value),
                "unit": b.unit,
                "categorical": b.categorical_result,
                "status": b.status,
                "status_label": str(b.get_status_display()),
            }
            for b in record.biomarkers
        ],
        "metastasis_status": str(case.get_metastasis_status_display())
        if case.metastasis_status
        else "",
        "metastasis_assessed": _d(case.metastasis_assessed_on),
        "metastases": [
            {
                "site": sites.get(m.site, m.site),
                "code": m.site,
                "lesions": m.lesions,
                "detected_on": _d(m.detected_on),
                "timing": str(m.get_timing_display()),
                "established_by": str(m.get_established_by_display()),
            }
            for m in record.metastases
        ],
        "performance": [
            {"date": _d(p.assessed_on), "ecog": p.ecog, "karnofsky": p.karnofsky}
            for p in record.performance
        ],
        "immune_latest": _immune(latest_immune) if latest_immune else None,
        "immune_trend": [_immune(f) for f in record.immune],
        "immune_not_assessed": case.immune_not_assessed,
        "immune_events": [
            {
                "organ": e.organ,
                "grade": e.grade,
                "treatment": e.treatment,
                "resolved": e.resolved,
                "rechallenged": e.rechallenged,
            }
            for e in record.immune_events
        ],
        "comorbidities": [
            {"name": c.name, "since": _d(c.since), "note": c.note} for c in record.comorbidities
        ],
        "organ_functions": [
            {
                "date": _d(o.measured_on),
                "egfr": _num(o.egfr),
                "bilirubin": _num(o.bilirubin),
                "alt": _num(o.alt),
                "ast": _num(o.ast),
                "lvef": o.lvef,
            }
            for o in record.organ_functions
        ],
        "medications": [
            {"name": m.name, "dose": m.dose, "kind": str(m.get_kind_display())}
            for m in record.medications
        ],
        "no_prior_therapy": case.no_prior_therapy,
        "lines": [
            {
                "number": line.number,
                "types": [labels["mii:therapie-typ"].get(t, t) for t in line.types],
                "regimen": line.regimen,
                "setting": str(line.get_setting_display()),
                "palliative_line": line.palliative_line,
                "start": line.started_on.strftime(
                    "%Y-%m" if line.start_precision == "month" else "%Y-%m-%d"
                ),
                "end": (
                    line.ended_on.strftime("%Y-%m" if line.end_precision == "month" else "%Y-%m-%d")
                    if line.ended_on
                    else ""
                ),
                "ongoing": line.ongoing,
                "cycles": line.cycles,
                "response": str(line.get_response_display()) if line.response else "",
                "criteria": str(line.get_response_criteria_display())
                if line.response_criteria
                else "",
                "end_reason": labels["mii:therapie-ende-grund"].get(line.end_reason, ""),
                "worst_grade": CaseRecord.worst_grade(line),
                "events": [
                    {
                        "term": e.term,
                        "ctcae": e.ctcae_version,
                        "grade": e.grade,
                        "agent": e.attributed_agent,
                        "led_to_stop": e.led_to_stop,
                        "dose_reduced": e.dose_reduced,
                        "resolved": e.resolved,
                    }
                    for e in line.events.all()
                ],
            }
            for line in record.lines
        ],
        "timeline": [{"date": m.on.isoformat(), "label": m.label} for m in timeline_layout.marks]
        if timeline_layout
        else [],
        "summary": [
            {"group": s.group, "state": s.state, "detail": list(s.detail)} for s in view.summary
        ],
        "raised": [r for r in category_rows if r["status"] == ItemStatus.RAISE],
        "categories": category_rows,
        "catalogue_version": catalogue.number if catalogue else None,
        "disclaimer": (catalogue.disclaimer_de if language == "de" else catalogue.disclaimer_en)
        if catalogue
        else "",
        "author": user_display(version.created_by),
        "note_version": version.number,
        "supersedes": version.supersedes.number if version.supersedes else None,
        "amendment_reason": version.amendment_reason,
    }


def _immune(f: Any) -> dict[str, Any]:
    return {
        "date": _d(f.assessed_on),
        "leukocytes": _num(f.leukocytes),
        "neutrophils": _num(f.neutrophils),
        "neutrophils_not_tested": f.neutrophils_not_tested,
        "lymphocytes": _num(f.lymphocytes),
        "lymphocytes_not_tested": f.lymphocytes_not_tested,
        "context": f.count_context,
        "cd4": f.cd4,
        "cd4_not_tested": f.cd4_not_tested,
        "igg": _num(f.igg),
        "igg_not_tested": f.igg_not_tested,
        "iga": _num(f.iga),
        "igm": _num(f.igm),
        "steroid": _num(f.steroid_mg_per_day),
        "steroid_since": _d(f.steroid_since),
        "hiv": f.hiv,
        "hbsag": f.hbsag,
        "anti_hbc": f.anti_hbc,
        "transplant_gvhd": f.transplant_gvhd,
        "asplenia": f.asplenia,
        "autoimmune": f.autoimmune_disease,
        "infections": f.infections_12m,
        "hospitalised": f.infections_hospitalised,
        "vaccinations": f.vaccinations,
        "comment": f.comment,
    }


def canonical(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def snapshot_hash(snapshot: dict[str, Any]) -> str:
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


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A snapshot as path -> text, for the diff between two versions."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index + 1}]"))
        return out
    return {prefix: "" if value is None else str(value)}


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    a, b = flatten(old), flatten(new)
    return [
        (k, a.get(k, ""), b.get(k, "")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


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
    """Every string of a snapshot as text for Markdown: HTML-escaped (`&`, `<` and `>`, so
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
    if isinstance(value, list):
        return [markdown_text(item) for item in value]
    return value


MARKDOWN_CONTINUATION = "\n  "


def render_text(snapshot: dict[str, Any], version: BoardNoteVersion) -> str:
    """The note as Markdown. The template renders with autoescape on; the snapshot's strings
    come escaped for Markdown by `markdown_text`, anything else is HTML-escaped by Django."""
    with translation.override(snapshot.get("language", "en")):
        return render_to_string(
            "checklist/note.md",
            {"s": markdown_text(snapshot), "version": version, **markdown_text(disclaimer_lines())},
        )


def render_pdf(snapshot: dict[str, Any], version: BoardNoteVersion, *, base_url: str) -> bytes:
    """The note as a PDF. Its text (running headers too) is document text, never style; what
    WeasyPrint may read is our static files only (`checklist.pdf.StaticOnlyFetcher`)."""
    from weasyprint import HTML

    from checklist.pdf import StaticOnlyFetcher

    with translation.override(snapshot.get("language", "en")):
        html = render_to_string(
            "checklist/note_pdf.html",
            {"s": snapshot, "version": version, "pdf": True, **disclaimer_lines()},
        )
    fetcher = StaticOnlyFetcher(base_url)
    pdf: bytes = HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf()
    return pdf
