"""Tumour-board notes: prepare, ready, sign, amend, outcomes, print view, PDF and text exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.text import slugify
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, forms, notes, second_factor, services
from checklist.access import (
    PracticeRequest,
    get_case_for_user,
    get_note_for_user,
    practice_required,
    recent_reauth_required,
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
from checklist.views.common import already_saved_message, duplicate_question, query_int, valid
from checklist.views.second_factor import accept_code


def _version(note: BoardNote, number: int | None = None) -> BoardNoteVersion:
    # The users with their profiles: the note names them with their titles.
    versions = note.versions.select_related(
        "created_by__account_profile", "signed_by__account_profile", "supersedes"
    )
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
    form = forms.NoteForm(
        request.POST or None, initial=initial, language=get_language(), practice=request.practice
    )
    context: dict[str, Any] = {"form": form, "case": case}
    if request.method == "POST" and form.is_valid():
        try:
            version = services.note_create(
                case=case,
                data=form.cleaned_data,
                acting_user=request.user,
                token=request.POST.get("submission_token"),
                confirm_duplicate=request.POST.get("confirm_duplicate") == "on",
            )
        except services.AlreadySaved as error:
            messages.info(request, already_saved_message(error))
            return redirect("note_detail", pk=error.submission.object_id)
        except services.PossibleDuplicate as error:
            url = reverse("note_detail", kwargs={"pk": error.existing.note_id})
            context["duplicate"] = duplicate_question(error, _("Board note"), url)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("note_detail", pk=version.note_id)
    return render(request, "checklist/note_form.html", context)


@practice_required(role=Membership.PHYSICIAN)
def note_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    version = _version(note)
    if version.state == NoteState.SIGNED:
        messages.error(request, _("A signed version is never changed; amend it instead."))
        return redirect("note_detail", pk=note.pk)
    form = forms.NoteForm(
        request.POST or None, instance=version, language=get_language(), practice=request.practice
    )
    context: dict[str, Any] = {"form": form, "case": note.case, "note": note, "version": version}
    if request.method == "POST" and form.is_valid():
        try:
            services.note_update(
                version=version,
                data=form.cleaned_data,
                expected_revision=query_int(request.POST.get("revision"), -1),
                acting_user=request.user,
                token=request.POST.get("submission_token"),
                confirm_resubmit=request.POST.get("confirm_duplicate") == "on",
            )
        except services.AlreadySaved as error:
            messages.info(request, already_saved_message(error))
            return redirect("note_detail", pk=note.pk)
        except services.PossibleDuplicate as error:
            url = reverse("note_detail", kwargs={"pk": note.pk})
            context["duplicate"] = duplicate_question(error, _("Board note"), url)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("note_detail", pk=note.pk)
    return render(request, "checklist/note_form.html", context)


@practice_required()
def note_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk)
    version = _version(note, valid(forms.NoteVersionQuery(request.GET)).cleaned_data["v"])
    # An unsigned version shows the live record, which its signing check reads as well.
    record = CaseRecord.load(note.case) if version.state != NoteState.SIGNED else None
    snapshot = notes.snapshot_for(version, get_language(), record)
    doc = notes.document(snapshot, get_language())
    versions = list(note.versions.select_related("signed_by").order_by("number"))
    previous = next((v for v in versions if v.number == version.number - 1), None)
    changes = (
        notes.diff(notes.document(notes.snapshot_for(previous, get_language()), doc.language), doc)
        if previous
        else []
    )
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
            "doc": doc,
            "signed": version.state == NoteState.SIGNED,
            "other_language": _other_language(doc),
            "versions": versions,
            "previous": previous,
            "changes": changes,
            "missing": notes.missing_for_signing(version, record) if record is not None else [],
            "verified": notes.verify(version) if version.state == NoteState.SIGNED else None,
            "outcomes": note.outcomes.select_related("recorded_by__account_profile").order_by(
                "-number"
            ),
            "amend_form": forms.AmendForm(),
            # The meetings the note is on: where it waits, was moved (and why), was decided.
            "agenda_items": note.agenda_items.select_related(
                "meeting__board", "moved_from", "moved_by__account_profile"
            ).order_by("meeting__date", "pk"),
            "is_latest": version.number == versions[-1].number,
            "deviation_labels": dict(_deviation_choices()),
        },
    )


def _other_language(doc: notes.Document) -> tuple[str, str] | None:
    """The other language a note's exports can be had in (code, name); none for a note
    signed before notes carried both languages."""
    if doc.legacy:
        return None
    names = dict(settings.LANGUAGES)
    code = next(c for c in notes.LANGUAGES if c != doc.language)
    return code, translation.get_language_info(code)["name_translated"] or names[code]


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
def note_sign(request: PracticeRequest, pk: int) -> HttpResponse:
    """Signing, deliberately: GET shows what is signed (sections, categories by status, what
    is still "not yet reviewed") and asks for the password again; POST with the right
    password signs. A wrong password signs nothing and is audited. Signing the signed
    revision again (double click, back button) answers as the first time did."""
    note = get_note_for_user(request, pk)
    version = _version(note)
    if version.state == NoteState.SIGNED and request.method != "POST":
        messages.info(request, _("This version is signed already."))
        return redirect("note_detail", pk=note.pk)
    # The code too when the user has a second factor and gave no code in the last minutes.
    with_code = second_factor.has_device(request.user) and not second_factor.reauth_is_recent(
        request.session
    )
    form = forms.SignForm(
        request.POST or None, user=request.user, request=request, with_code=with_code
    )
    if request.method == "POST":
        if form.is_valid() and (not with_code or accept_code(request, form)):
            try:
                services.note_sign(
                    version=version,
                    acting_membership=request.membership,
                    language=get_language(),
                    expected_revision=form.cleaned_data["revision"],
                    expected_case_version=form.cleaned_data["case_version"],
                )
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            else:
                messages.success(request, _("The note is signed."))
            return redirect("note_detail", pk=note.pk)
        if form.has_error("password", "wrong_password"):
            audit.record_access(
                request,
                audit.SIGN_REFUSED,
                practice_id=note.practice_id,
                table="checklist_boardnoteversion",
                case_id=note.case_id,
                row_id=version.pk,
                detail={"label": note.case.label, "version": version.number},
            )
        if version.state == NoteState.SIGNED:
            return redirect("note_detail", pk=note.pk)
    record = CaseRecord.load(note.case)
    snapshot = notes.build_snapshot(version, language=get_language(), record=record)
    doc = notes.document(snapshot, get_language())
    if not form.is_bound:
        form = forms.SignForm(
            initial={"revision": version.revision, "case_version": note.case.version},
            user=request.user,
            with_code=with_code,
        )
    return render(
        request,
        "checklist/note_sign.html",
        {
            "note": note,
            "version": version,
            "form": form,
            "summary": notes.signing_summary(snapshot, doc),
            "missing": notes.missing_for_signing(version, record),
        },
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
) -> tuple[BoardNote, BoardNoteVersion, dict[str, Any], str]:
    """The note version to print or export, with the access event that says so, and the
    language to render it in (`?lang=`, else the reader's; a legacy note: its own)."""
    note = get_note_for_user(request, pk)
    version = _version(note, number)
    wanted = valid(forms.NoteExportQuery(request.GET)).cleaned_data["lang"] or get_language()
    audit.record_access(
        request,
        op,
        practice_id=note.practice_id,
        table="checklist_boardnoteversion",
        case_id=note.case_id,
        row_id=version.pk,
        detail={"label": note.case.label, "version": version.number, "format": fmt},
    )
    snapshot = notes.snapshot_for(version, get_language())
    return note, version, snapshot, notes.render_language(snapshot, wanted)


@practice_required()
def note_print(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot, language = _export_version(
        request, pk, number, op=audit.NOTE_PRINTED, fmt="print"
    )
    with translation.override(language):
        return render(
            request,
            "checklist/note_print.html",
            {
                "doc": notes.document(snapshot, language),
                "version": version,
                "note": note,
                "signed": version.state == NoteState.SIGNED,
            },
        )


@practice_required()
@recent_reauth_required
def note_pdf(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot, language = _export_version(
        request, pk, number, op=audit.EXPORTED, fmt="pdf"
    )
    pdf = notes.render_pdf(
        snapshot, version, base_url=request.build_absolute_uri("/"), language=language
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    filename = (
        f"board-note-{slugify(note.case.label) or note.case_id}-v{version.number}-{language}.pdf"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@practice_required()
@recent_reauth_required
def note_text(request: PracticeRequest, pk: int, number: int) -> HttpResponse:
    _note, version, snapshot, language = _export_version(
        request, pk, number, op=audit.EXPORTED, fmt="markdown"
    )
    return HttpResponse(
        notes.render_text(snapshot, version, language=language),
        content_type="text/markdown; charset=utf-8",
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
                follow_up_on=form.cleaned_data["follow_up_on"],
                reason=form.cleaned_data["reason"],
                acting_user=request.user,
                token=request.POST.get("submission_token"),
            )
        except services.AlreadySaved as error:
            messages.info(request, already_saved_message(error))
            return redirect("note_detail", pk=note.pk)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The outcome is recorded."))
            return redirect("note_detail", pk=note.pk)
    return render(request, "checklist/outcome_form.html", {"form": form, "note": note})
