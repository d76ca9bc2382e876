"""FHIR import: upload or paste a Bundle, a preview the physician checks and completes, then
one confirmation that creates the case; the practice's learned code map (admins); and the
export of a case as a validated FHIR bundle.

Nothing is written before the confirmation but the preview row (no practice_id, no names, no
identifiers; it expires after a day and belongs to the user who uploaded it)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, fhir_export, fhir_import, forms, services
from checklist.access import (
    PracticeRequest,
    get_case_for_user,
    get_in_practice,
    practice_required,
    recent_reauth_required,
)
from checklist.models import (
    AdverseEvent,
    Code,
    CodeMapping,
    FhirImportPreview,
    GenomicVariant,
    ImmuneFinding,
    Membership,
    Response,
    TherapyLine,
)
from checklist.record import CaseRecord


class BoundedMemoryUploadHandler(FileUploadHandler):
    """Holds every uploaded file in memory up to `FHIR_IMPORT_MAX_BYTES` and never writes a
    temporary file; of a larger file only its size is kept (an empty file of that size), so
    the view refuses it before reading anything."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = BytesIO()
        self.too_big = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if not self.too_big:
            if self.buffer.tell() + len(raw_data) > settings.FHIR_IMPORT_MAX_BYTES:
                self.too_big = True
                self.buffer = BytesIO()
            else:
                self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


def _preview_for_user(request: PracticeRequest, pk: UUID) -> FhirImportPreview:
    """The user's own unexpired preview in the active practice; 404 for anyone else's."""
    preview = FhirImportPreview.objects.filter(
        pk=pk,
        user=request.user,
        owner_practice=request.practice.pk,
        expires_at__gt=timezone.now(),
    ).first()
    if preview is None:
        raise Http404
    return preview


@practice_required(role=Membership.PHYSICIAN)
def fhir_upload(request: PracticeRequest) -> HttpResponse:
    try:
        posted = request.method == "POST"
        form = forms.FhirUploadForm(
            request.POST if posted else None, request.FILES if posted else None
        )
    except RequestDataTooBig:
        form = forms.FhirUploadForm()
        form.add_error(None, _("The pasted text is too long; upload the file instead."))
        return render(request, "checklist/fhir_upload.html", {"form": form}, status=400)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("bundle_file")
        max_bytes = settings.FHIR_IMPORT_MAX_BYTES
        try:
            if upload is not None:
                if upload.size > max_bytes:
                    raise fhir_import.BundleError(
                        _("The file is larger than %(limit)s MB; nothing was imported.")
                        % {"limit": max_bytes // 1_000_000 or 1}
                    )
                raw = upload.read(max_bytes + 1)
            else:
                raw = form.cleaned_data["bundle_text"].encode()
            data = fhir_import.read_bundle(
                raw, max_bytes=max_bytes, max_entries=settings.FHIR_IMPORT_MAX_ENTRIES
            )
            mapped = fhir_import.map_bundle(data)
        except fhir_import.BundleError as error:
            form.add_error(None, error.message)
        else:
            preview = services.fhir_preview_save(
                user=request.user,
                practice=request.practice,
                sha256=fhir_import.sha256(raw),
                entries=len(data.get("entry") or []),
                data=mapped,
            )
            return redirect("fhir_preview", pk=preview.pk)
    status = 400 if form.errors else 200
    return render(request, "checklist/fhir_upload.html", {"form": form}, status=status)


def _questions(mapped: dict[str, Any]) -> list[dict[str, Any]]:
    """The code questions with the text their current answer shows in the form."""
    questions = fhir_import.questions(mapped)
    codes = [q["answer"] for q in questions if q["target"] == "oncotree" and q["answer"]]
    names = {c.code: c.display for c in Code.objects.filter(system="oncotree", code__in=codes)}
    for question in questions:
        if question["target"] == "oncotree" and question["answer"] in names:
            question["answer_text"] = f"{names[question['answer']]} ({question['answer']})"
    return questions


@practice_required(role=Membership.PHYSICIAN)
def fhir_preview(request: PracticeRequest, pk: UUID) -> HttpResponse:
    preview = _preview_for_user(request, pk)
    mapped = fhir_import.resolve(preview.data, practice_id=request.practice.pk)
    questions = _questions(mapped)
    form = forms.FhirPreviewForm(
        request.POST if request.method == "POST" else None, preview=mapped, questions=questions
    )
    if request.method == "POST" and form.is_valid():
        data = _confirmed(mapped, questions, form)
        data.update({"sha256": preview.bundle_sha256, "entries": preview.entries})
        try:
            case = services.case_import(
                practice=request.practice, data=data, acting_user=request.user, preview=preview
            )
        except services.PreviewGone:
            raise Http404 from None
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The case was imported."))
            return redirect("case_detail", pk=case.pk)
    context = {
        "preview": preview,
        "mapped": mapped,
        "form": form,
        "questions": questions,
        "fields": {field.name: field for field in form},
        "items": {item["key"]: item for item in mapped.get("therapy_items", [])},
        "site_names": {
            c.code: c.label(get_language()) for c in Code.objects.of("obds:fm_lokalisation")
        },
    }
    return render(
        request, "checklist/fhir_preview.html", context, status=400 if form.errors else 200
    )


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _confirmed(
    mapped: dict[str, Any], questions: list[dict[str, Any]], form: forms.FhirPreviewForm
) -> dict[str, Any]:
    """The service's input: the preview's values with the physician's answers."""
    cleaned = form.cleaned_data
    answers: dict[str, Any] = {}
    mappings = []
    for question in questions:
        if question["learned"]:
            learned = question["answer"]
            answers[question["key"]] = (
                form.nodes[learned] if question["target"] == "oncotree" else learned
            )
            continue
        answer = cleaned[f"oq_{question['key']}"]
        code = answer.code if isinstance(answer, Code) else answer
        answers[question["key"]] = answer
        mappings.append(
            {
                "source_system": question["system"],
                "source_code": question["code"],
                "source_version": question["version"],
                "display": question["display"][:300],
                "target_system": question["target"],
                "target_code": code,
            }
        )
    tumours = []
    for tumour in mapped["tumours"]:
        node = form.nodes.get(tumour["oncotree_node"]) or answers[tumour["question"]["key"]]
        tumours.append(
            {
                "key": tumour["key"],
                "fields": {
                    "oncotree_code": node.code,
                    "oncotree_name": node.display,
                    "oncotree_release": node.release,
                    "oncotree_tissue": node.extra.get("tissue") or "",
                    "oncotree_main_type": node.extra.get("mainType") or "",
                    "icd10_text": tumour["icd10_text"],
                    "laterality": cleaned[f"laterality_{tumour['key']}"],
                    "diagnosed_on": _day(tumour["diagnosed_on"]),
                    "diagnosed_on_precision": tumour["diagnosed_on_precision"],
                    "histology": tumour["histology"],
                },
            }
        )
    staging = []
    for record in mapped["staging"]:
        fields: dict[str, Any] = {
            "staged_on": _day(record["staged_on"]),
            "staged_on_precision": record["staged_on_precision"],
            "kind": record["kind"],
            "system": "uicc_tnm",
            "tnm_edition": record["tnm_edition"],
        }
        for value in record["values"]:
            if not value["valid"]:
                continue
            if value["letter"] == "S":
                fields["uicc_stage"] = value["value"]
            else:
                letter = value["letter"].lower()
                fields[f"{letter}_prefix"] = value["prefix"]
                fields[f"{letter}_category"] = value["value"]
        if record["staged_on"] and any(v["valid"] for v in record["values"]):
            staging.append({"tumour": record["tumour"], "fields": fields})
    metastases = []
    for metastasis in mapped["metastases"]:
        typed = cleaned.get(f"detected_{metastasis['key']}")
        metastases.append(
            {
                "site": answers[metastasis["question"]["key"]],
                "detected_on": typed.value if typed else _day(metastasis["detected_on"]),
                "detected_on_precision": typed.precision
                if typed
                else metastasis["detected_on_precision"],
                "timing": cleaned[f"timing_{metastasis['key']}"],
            }
        )
    episodes, adverse_events = _therapy(mapped, answers, form)
    header = {
        "label": cleaned["label"],
        "year_of_birth": cleaned["year_of_birth"],
        "sex": cleaned["sex"],
        "situation": cleaned["situation"],
    }
    if metastases:
        header["metastasis_status"] = "present"
    if mapped["patient"].get("deceased_on"):
        header["deceased_on"] = _day(mapped["patient"]["deceased_on"])
    return {
        "case": header,
        "tumours": tumours,
        "staging": staging,
        "metastases": metastases,
        "performance": [
            {k: v for k, v in row.items() if k != "source"}
            | {"assessed_on": _day(row["assessed_on"])}
            for row in mapped["performance"]
        ],
        "comorbidities": [
            {k: v for k, v in row.items() if k != "source"} | {"since": _day(row["since"])}
            for row in mapped["comorbidities"]
        ],
        "episodes": episodes,
        "adverse_events": adverse_events,
        "biomarkers": [
            {
                k: v
                for k, v in row.items()
                if k not in ("key", "source", "text", "value", "sampled_on")
            }
            | {
                "value": Decimal(row["value"]) if row["value"] is not None else None,
                "sampled_on": _day(row["sampled_on"]),
            }
            for row in mapped.get("biomarkers", [])
        ],
        "genomic_variants": [
            _typed(GenomicVariant, row.get("extra") or {})
            | {
                k: v
                for k, v in row.items()
                if k not in ("key", "source", "vaf", "reported_on", "extra", "signature")
            }
            | {
                "result_kind": row.get("result_kind", "variant"),
                "vaf": Decimal(row["vaf"]) if row["vaf"] is not None else None,
                "reported_on": _day(row["reported_on"]),
            }
            for row in mapped.get("genomic_variants", [])
        ],
        "findings": [
            {
                "assessed_on": _day(row["assessed_on"]),
                "assessed_on_precision": row["assessed_on_precision"],
                # The values (as the model's types) and our own export's other fields.
                **_typed(ImmuneFinding, row["fields"], row.get("extra") or {}),
            }
            for row in mapped.get("findings", [])
        ],
        "code_mappings": mappings,
    }


def _typed(model: Any, *extras: dict[str, Any]) -> dict[str, Any]:
    """The preview's values of our own fields (JSON) as the model's Python values."""
    return {
        name: model._meta.get_field(name).to_python(value)
        for extra in extras
        for name, value in extra.items()
    }


def _therapy(
    mapped: dict[str, Any], answers: dict[str, Any], form: forms.FhirPreviewForm
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The therapy episodes as the physician grouped them (each from its resources: start
    and end with precision, agents, types, intent, end reason) and the adverse events with
    the episode of their causative resource."""
    cleaned = form.cleaned_data
    items = {i["key"]: i for i in mapped.get("therapy_items", [])}
    kinds = {e["key"]: e["kind"] for e in mapped.get("episodes", [])}
    episodes: list[dict[str, Any]] = []
    episode_of: dict[str, str] = {}
    for key, members in form.episodes.items():
        rows = sorted((items[k] for k in members), key=lambda i: (i["start"], i["entry"]))
        own = key.startswith("own:")
        kind = "systemic" if own else kinds[key]
        for row in rows:
            episode_of[row["key"]] = key
        first = rows[0]
        ongoing = any(r["ongoing"] for r in rows)
        ended = [r for r in rows if r["end"]]
        last = max(ended, key=lambda r: r["end"]) if ended and not ongoing else None
        types: list[str] = []
        for row in rows:
            found = row["types"] or (
                [answers[row["question"]["key"]]] if row.get("question") else []
            )
            types += [t for t in found if t not in types]
        agents: list[str] = []
        if kind == "systemic":  # our own export's agents, else each resource's text
            named = (r.get("agents", []) if r.get("own") else [r["text"]] for r in rows)
            agents = list(dict.fromkeys(a for found in named for a in found if a))
        systemic = kind == "systemic"
        # Our own export's regimen as recorded; else a local episode's text (with its doses).
        regimens = [
            r["regimen"] if r.get("own") else "" if systemic else r["regimen"] or r["text"]
            for r in rows
        ]
        number = cleaned.get(f"ownline_{key[4:]}" if own else f"line_{key}")
        position = "" if own else cleaned.get(f"position_{key}") or ""
        fields: dict[str, Any] = {
            # Our own export's fields the mapping has no other place for (cycles, MRD...).
            **_typed(TherapyLine, *(r.get("extra") or {} for r in rows)),
            "kind": kind,
            "number": number if systemic else None,
            "position": position if systemic else next((r["position"] for r in rows), ""),
            "types": types,
            "regimen": "; ".join(filter(None, regimens))[:300],
            "agents": agents,
            "intent": next((r["intent"] for r in rows if r["intent"]), ""),
            "started_on": _day(first["start"]),
            "started_on_precision": first["start_precision"],
            "ended_on": _day(last["end"]) if last else None,
            "ended_on_precision": last["end_precision"] if last else "day",
            "ongoing": ongoing,
            "end_reason": ""
            if ongoing
            else next((r["end_reason"] for r in reversed(rows) if r["end_reason"]), ""),
            "response": next((r["response"] for r in rows if r["response"]), ""),
        }
        episodes.append({"key": key, "fields": fields})
    by_episode = {e["key"]: e for e in episodes}
    for row in mapped.get("responses", []):
        response = row["response"] or answers.get((row.get("question") or {}).get("key", ""), "")
        for item in row["items"]:
            episode = by_episode.get(episode_of.get(item, ""))
            if episode is not None and response and not episode["fields"]["response"]:
                episode["fields"]["response"] = response
    adverse_events = []
    for event in mapped.get("adverse_events", []):
        term = event["term"] or answers.get((event.get("question") or {}).get("key", ""), "")
        cause = next((episode_of[c] for c in event["causes"] if c in episode_of), "")
        adverse_events.append(
            {
                "episode": cause,
                "fields": {
                    # Our own export's fields the mapping has no other place for.
                    **_typed(AdverseEvent, event.get("extra") or {}),
                    "term": str(term)[:200],
                    "grade": cleaned[f"grade_{event['key']}"],
                    "ctcae_version": event["ctcae_version"],
                    "onset_on": _day(event["onset_on"]),
                    "onset_on_precision": event["onset_on_precision"],
                    "attributed_agent": event["attributed_agent"],
                    "immune_related": event["immune_related"],
                    "course": event.get("course") or "not_recorded",
                },
            }
        )
    return episodes, adverse_events


# --- the learned code map (practice admins) -------------------------------------------------

# Questions answered with text, not with a code of our lists.
FREE_TEXT_TARGETS = {fhir_import.AE_TERM}


@practice_required(role=Membership.PRACTICE_ADMIN)
def code_mapping_list(request: PracticeRequest) -> HttpResponse:
    mappings = (
        CodeMapping.objects.for_practice(request.practice)
        .select_related("mapped_by__account_profile")
        .order_by("target_system", "source_system", "source_code")
    )
    return render(request, "checklist/fhir_code_map.html", {"mappings": mappings})


@practice_required(role=Membership.PRACTICE_ADMIN)
def code_mapping_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    mapping: CodeMapping = get_in_practice(request, CodeMapping.objects.all(), pk)
    choices: list[tuple[str, str]] | None = None
    if mapping.target_system == fhir_import.RESPONSE:
        choices = [(code, str(label)) for code, label in Response.choices]
    elif mapping.target_system not in FREE_TEXT_TARGETS:
        choices = [
            (c.code, f"{c.label(get_language())} ({c.code})")
            for c in Code.objects.filter(system=mapping.target_system, selectable=True).order_by(
                "display"
            )
        ]
    form = forms.CodeMappingForm(
        request.POST or None, choices=choices, initial={"target_code": mapping.target_code}
    )
    if request.method == "POST" and form.is_valid():
        services.code_mapping_update(
            mapping=mapping,
            target_code=form.cleaned_data["target_code"],
            acting_user=request.user,
        )
        messages.success(request, _("Saved."))
        return redirect("code_mapping_list")
    return render(request, "checklist/fhir_code_map_edit.html", {"mapping": mapping, "form": form})


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def code_mapping_delete(request: PracticeRequest, pk: int) -> HttpResponse:
    mapping: CodeMapping = get_in_practice(request, CodeMapping.objects.all(), pk)
    services.code_mapping_delete(mapping=mapping)
    messages.success(request, _("Deleted."))
    return redirect("code_mapping_list")


# --- the export -----------------------------------------------------------------------------


@practice_required()
@recent_reauth_required
def case_fhir_export(request: PracticeRequest, pk: int) -> HttpResponse:
    """The case as a FHIR R4 collection bundle (validated; an invalid one raises), a download
    named by the case's pseudonymous label like the note's exports, and an access event."""
    case = get_case_for_user(request, pk)
    bundle = fhir_export.case_bundle(CaseRecord.load(case))
    audit.record_access(
        request,
        audit.EXPORTED,
        practice_id=case.practice_id,
        table="checklist_case",
        row_id=case.pk,
        case_id=case.pk,
        detail={"label": case.label, "format": "fhir"},
    )
    response = HttpResponse(
        json.dumps(bundle, ensure_ascii=False, indent=1),
        content_type="application/fhir+json; charset=utf-8",
    )
    filename = f"case-{slugify(case.label) or case.pk}-fhir.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
