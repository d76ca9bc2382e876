"""Tumour-board notes: prepare, ready, sign, amend, outcomes, print view, PDF and text exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, forms, notes, services
from checklist.access import (
    PracticeRequest,
    get_case_for_user,
    get_note_for_user,
    practice_required,
)
from checklist.models import (
    BoardNote,
    BoardNoteVersion,
    Code,
    Membership,
    NoteState,
    user_display,
)
from checklist.record import CaseRecord
from checklist.views.common import query_int, valid


def _version(note: BoardNote, number: int | None = None) -> BoardNoteVersion:
    versions = note.versions.select_related("created_by", "signed_by", "supersedes")
    if number is None:
        found = versions.order_by("-number").first()
    else:
        found = versions.filter(number=number).first()
    if found is None:
        raise Http404
    return found


@practice_required()
def note_list(request: PracticeRequest) -> HttpResponse:
    practice = request.practice
    notes = (
        BoardNote.objects.for_practice(practice)
        .for_list()
        .order_by(F("board_date").desc(nulls_last=True), "-pk")
    )
    wanted = valid(forms.NoteListQuery(request.GET)).cleaned_data["state"]
    if wanted in (NoteState.DRAFT, NoteState.READY, NoteState.SIGNED):
        notes = notes.filter(latest_state=wanted)
    elif wanted == "outcome_pending":
        notes = notes.filter(has_signed=True, has_outcome=False)
    return render(request, "checklist/note_list.html", {"notes": notes[:200], "wanted": wanted})


@practice_required(role=Membership.PHYSICIAN)
def note_create(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    initial = {"registering_physician": user_display(request.user)}
    form = forms.NoteForm(request.POST or None, initial=initial, language=get_language())
    if request.method == "POST" and form.is_valid():
        version = services.note_create(case=case, data=form.cleaned_data, acting_user=request.user)
        return redirect("note_detail", pk=version.note_id)
    return render(request, "checklist/note_form.html", {"form": form, "case": case})


@practice_required(role=Membership.PHYSICIAN)
def note_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    version = _version(note)
    if version.state == NoteState.SIGNED:
        messages.error(request, _("A signed version is never changed; amend it instead."))
        return redirect("note_detail", pk=note.pk)
    form = forms.NoteForm(request.POST or None, instance=version, language=get_language())
    if request.method == "POST" and form.is_valid():
        try:
            services.note_update(
                version=version,
                data=form.cleaned_data,
                expected_revision=query_int(request.POST.get("revision"), -1),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("note_detail", pk=note.pk)
    return render(
        request,
        "checklist/note_form.html",
        {"form": form, "case": note.case, "note": note, "version": version},
    )


@practice_required()
def note_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    version = _version(note, valid(forms.NoteVersionQuery(request.GET)).cleaned_data["v"])
    # An unsigned version shows the live record, which its signing check reads as well.
    record = CaseRecord.load(note.case) if version.state != NoteState.SIGNED else None
    snapshot = notes.snapshot_for(version, get_language(), record)
    versions = list(note.versions.select_related("signed_by").order_by("number"))
    previous = next((v for v in versions if v.number == version.number - 1), None)
    changes = notes.diff(notes.snapshot_for(previous, get_language()), snapshot) if previous else []
    audit.record_access(
        request,
        audit.NOTE_VIEWED,
        practice_id=note.practice_id,
        table="checklist_boardnoteversion",
        case_id=note.case_id,
        row_id=version.pk,
        detail={"label": note.case.label, "version": version.number},
    )
    return render(
        request,
        "checklist/note_detail.html",
        {
            "note": note,
            "version": version,
            "s": snapshot,
            "versions": versions,
            "previous": previous,
            "changes": changes,
            "missing": notes.missing_for_signing(version, record) if record is not None else [],
            "verified": notes.verify(version) if version.state == NoteState.SIGNED else None,
            "outcomes": note.outcomes.select_related("recorded_by").order_by("-number"),
            "amend_form": forms.AmendForm(),
            "is_latest": version.number == versions[-1].number,
            "deviation_labels": dict(_deviation_choices()),
        },
    )


def _deviation_choices() -> list[tuple[str, str]]:
    return [(c.code, c.label(get_language())) for c in Code.objects.of("mii:therapieabweichung")]


def _note_action(
    request: PracticeRequest, pk: int, action: Callable[[BoardNoteVersion], Any], done: str
) -> HttpResponse:
    note = get_note_for_user(request, pk)
    try:
        action(_version(note))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done)
    return redirect("note_detail", pk=note.pk)


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_ready(request: PracticeRequest, pk: int) -> HttpResponse:
    return _note_action(
        request, pk, lambda v: services.note_mark_ready(version=v), _("The note is ready.")
    )


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_sign(request: PracticeRequest, pk: int) -> HttpResponse:
    return _note_action(
        request,
        pk,
        lambda v: services.note_sign(
            version=v,
            acting_membership=request.membership,
            language=get_language(),
            expected_revision=query_int(request.POST.get("revision"), -1),
            expected_case_version=query_int(request.POST.get("case_version"), -1),
        ),
        _("The note is signed."),
    )


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_amend(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    form = forms.AmendForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the reason for the amendment."))
        return redirect("note_detail", pk=note.pk)
    try:
        services.note_amend(note=note, reason=form.cleaned_data["reason"], acting_user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("note_detail", pk=note.pk)
    return redirect("note_edit", pk=note.pk)


def _export_version(
    request: PracticeRequest, pk: int, number: int, *, op: str, fmt: str
) -> tuple[BoardNote, BoardNoteVersion, dict[str, Any]]:
    """The note version to print or export, with the access event that says so."""
    note = get_note_for_user(request, pk)
    version = _version(note, number)
    audit.record_access(
        request,
        op,
        practice_id=note.practice_id,
        table="checklist_boardnoteversion",
        case_id=note.case_id,
        row_id=version.pk,
        detail={"label": note.case.label, "version": version.number, "format": fmt},
    )
    return note, version, notes.snapshot_for(version, get_language())


@practice_required()
def note_print(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot = _export_version(
        request, pk, number, op=audit.NOTE_PRINTED, fmt="print"
    )
    return render(
        request, "checklist/note_print.html", {"s": snapshot, "version": version, "note": note}
    )


@practice_required()
def note_pdf(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot = _export_version(request, pk, number, op=audit.EXPORTED, fmt="pdf")
    pdf = notes.render_pdf(snapshot, version, base_url=request.build_absolute_uri("/"))
    response = HttpResponse(pdf, content_type="application/pdf")
    filename = f"board-note-{slugify(note.case.label) or note.case_id}-v{version.number}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@practice_required()
def note_text(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    _note, version, snapshot = _export_version(
        request, pk, number, op=audit.EXPORTED, fmt="markdown"
    )
    return HttpResponse(
        notes.render_text(snapshot, version), content_type="text/markdown; charset=utf-8"
    )


@practice_required(role=Membership.PHYSICIAN)
def outcome_create(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    form = forms.OutcomeForm(request.POST or None, language=get_language())
    if request.method == "POST" and form.is_valid():
        try:
            services.outcome_record(
                note=note,
                held_on=form.cleaned_data["held_on"],
                attendees=form.cleaned_data["attendees"],
                measures=form.measures(),
                reason=form.cleaned_data["reason"],
                acting_user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The outcome is recorded."))
            return redirect("note_detail", pk=note.pk)
    return render(request, "checklist/outcome_form.html", {"form": form, "note": note})
