"""Tumour-board meetings: boards (admin), meetings and their agendas (coordinator), meeting
mode (the chair and the recorder), agenda and summary PDFs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, forms, meetings, notes, services
from checklist.access import (
    PracticeRequest,
    get_agenda_item_for_user,
    get_attendance_for_user,
    get_board_for_user,
    get_meeting_for_user,
    practice_required,
    recent_reauth_required,
)
from checklist.models import (
    AgendaItem,
    AgendaStatus,
    Board,
    BoardMeeting,
    BoardNoteVersion,
    Membership,
    OutcomeDraft,
    display_name,
)
from checklist.views.common import valid

COORDINATORS = Membership.COORDINATOR_ROLES
RECORDERS = Membership.RECORDER_ROLES


# --- boards ------------------------------------------------------------------------------


@practice_required()
def board_list(request: PracticeRequest) -> HttpResponse:
    today = timezone.localdate()
    boards = Board.objects.for_practice(request.practice).order_by("-active", "name")
    upcoming = (
        BoardMeeting.objects.for_practice(request.practice)
        .filter(date__gte=today)
        .select_related("board")
        .order_by("date", "board__name")[:30]
    )
    return render(request, "checklist/board_list.html", {"boards": boards, "upcoming": upcoming})


def _board_form(request: PracticeRequest, board: Board | None) -> HttpResponse:
    form = forms.BoardForm(request.POST or None, instance=board)
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            saved = services.board_save(practice=request.practice, data=data, board=board)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The board is saved."))
            return redirect("board_detail", pk=saved.pk)
    return render(request, "checklist/board_form.html", {"form": form, "board": board})


@practice_required(role=Membership.PRACTICE_ADMIN)
def board_create(request: PracticeRequest) -> HttpResponse:
    return _board_form(request, None)


@practice_required(role=Membership.PRACTICE_ADMIN)
def board_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    return _board_form(request, get_board_for_user(request, pk))


@practice_required()
def board_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    board = get_board_for_user(request, pk)
    today = timezone.localdate()
    board_meetings = board.meetings.order_by("-date")
    return render(
        request,
        "checklist/board_detail.html",
        {
            "board": board,
            "upcoming": board_meetings.filter(date__gte=today).order_by("date"),
            "past": board_meetings.filter(date__lt=today)[:50],
            "form": forms.MeetingCreateForm(),
            "ahead": services.MEETINGS_AHEAD,
        },
    )


@practice_required(role=COORDINATORS)
@require_POST
def meeting_create(request: PracticeRequest, pk: int) -> HttpResponse:
    """A date: that one meeting (on demand); no date: the next meetings on the usual weekday."""
    board = get_board_for_user(request, pk)
    form = forms.MeetingCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(m) for ms in form.errors.values() for m in ms))
        return redirect("board_detail", pk=board.pk)
    try:
        if form.cleaned_data["date"]:
            meeting = services.meeting_create(
                board=board, day=form.cleaned_data["date"], acting_user=request.user
            )
            return redirect("meeting_detail", pk=meeting.pk)
        services.meetings_create_ahead(board=board, acting_user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("The next meetings are planned."))
    return redirect("board_detail", pk=board.pk)


# --- a meeting's agenda ------------------------------------------------------------------


def _record_meeting_view(
    request: PracticeRequest, meeting: BoardMeeting, what: str, rows: list[meetings.AgendaRow]
) -> None:
    """An agenda shows cases: its viewing, printing and export are access events naming the
    cases (one event, so the queries stay as many however many cases)."""
    audit.record_access(
        request,
        audit.EXPORTED if "pdf" in what else audit.AGENDA_VIEWED,
        practice_id=meeting.practice_id,
        table="checklist_boardmeeting",
        row_id=meeting.pk,
        detail={
            "meeting": str(meeting.date),
            "board": meeting.board.name,
            "page": what,
            "cases": [r.item.case.label for r in rows],
        },
    )


@practice_required()
def meeting_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    rows = meetings.agenda_rows(meeting)
    _record_meeting_view(request, meeting, "agenda", rows)
    return render(
        request,
        "checklist/meeting_detail.html",
        {"meeting": meeting, "rows": rows, "today": timezone.localdate()},
    )


@practice_required(role=COORDINATORS)
@require_POST
def meeting_shift(request: PracticeRequest, pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    form = valid(forms.AgendaShiftForm(request.POST))
    item = get_agenda_item_for_user(request, meeting, form.cleaned_data["item"])
    services.agenda_item_shift(item=item, up=form.cleaned_data["direction"] == "up")
    return redirect(reverse("meeting_detail", kwargs={"pk": meeting.pk}) + f"#item-{item.pk}")


@practice_required(role=COORDINATORS)
@require_POST
def meeting_registration(request: PracticeRequest, pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    closed = valid(forms.RegistrationForm(request.POST)).cleaned_data["closed"]
    services.meeting_set_registration(meeting=meeting, closed=closed)
    messages.success(
        request,
        _("Registration for this meeting is closed.")
        if closed
        else _("Registration for this meeting is open."),
    )
    return redirect("meeting_detail", pk=meeting.pk)


@practice_required(role=COORDINATORS)
def agenda_item_move(request: PracticeRequest, pk: int, item_pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    item = get_agenda_item_for_user(request, meeting, item_pk)
    form = forms.AgendaMoveForm(request.POST or None, item=item)
    if request.method == "POST" and form.is_valid():
        try:
            moved = services.agenda_item_move(
                item=item,
                to_meeting=form.cleaned_data["meeting"],
                reason=form.cleaned_data["reason"],
                acting_user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The case is moved."))
            return redirect("meeting_detail", pk=moved.meeting_id)
    return render(
        request,
        "checklist/agenda_item_move.html",
        {"meeting": meeting, "item": item, "form": form},
    )


def _pdf_response(pdf: bytes, name: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@practice_required()
@recent_reauth_required
def meeting_agenda_pdf(request: PracticeRequest, pk: int) -> HttpResponse:
    """The agenda: an overview page, and with `?notes=1` each case's signed note after it."""
    meeting = get_meeting_for_user(request, pk)
    query = valid(forms.AgendaPdfQuery(request.GET)).cleaned_data
    language = query["lang"] or get_language()
    with_notes = query["notes"] == "1"
    rows = meetings.agenda_rows(meeting, snapshots=with_notes)
    what = "agenda pdf with notes" if with_notes else "agenda pdf"
    _record_meeting_view(request, meeting, what, rows)
    pdf = meetings.render_agenda_pdf(
        meeting,
        rows,
        with_notes=with_notes,
        base_url=request.build_absolute_uri("/"),
        language=language,
        practice_name=request.practice.name,
    )
    suffix = "-notes" if with_notes else ""
    return _pdf_response(pdf, f"agenda-{meeting.date.isoformat()}{suffix}-{language}.pdf")


@practice_required()
@recent_reauth_required
def meeting_summary_pdf(request: PracticeRequest, pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    language = valid(forms.AgendaPdfQuery(request.GET)).cleaned_data["lang"] or get_language()
    rows = meetings.agenda_rows(meeting, with_outcomes=True)
    _record_meeting_view(request, meeting, "summary pdf", rows)
    pdf = meetings.render_summary_pdf(
        meeting,
        rows,
        list(meeting.attendance.order_by("discipline", "name", "pk")),
        base_url=request.build_absolute_uri("/"),
        language=language,
        practice_name=request.practice.name,
    )
    return _pdf_response(pdf, f"board-summary-{meeting.date.isoformat()}-{language}.pdf")


# --- meeting mode ------------------------------------------------------------------------


def _mode_url(meeting: BoardMeeting, item: AgendaItem | None = None) -> str:
    url = reverse("meeting_mode", kwargs={"pk": meeting.pk})
    return f"{url}?item={item.pk}" if item else url


def _draft_initial(draft: OutcomeDraft | None) -> dict[str, Any]:
    if draft is None:
        return {"revision": 0}
    initial: dict[str, Any] = {"revision": draft.revision, "follow_up_on": draft.follow_up_on}
    for index, measure in enumerate(draft.measures, start=1):
        initial[f"measure_{index}"] = measure.get("text", "")
        initial[f"deviation_{index}"] = measure.get("deviation", "")
    return initial


@practice_required()
def meeting_mode(request: PracticeRequest, pk: int) -> HttpResponse:
    """One screen for the chair and the recorder: the agenda in order, the current case's
    signed note, the attendance (once per meeting, the quorum shown) and the decision being
    recorded for the case."""
    meeting = get_meeting_for_user(request, pk)
    wanted = valid(forms.MeetingModeQuery(request.GET)).cleaned_data["item"]
    rows = meetings.agenda_rows(meeting, with_outcomes=True)
    current = next((r for r in rows if r.item.pk == wanted), None)
    if current is None:  # the first case still open, else the first
        current = next((r for r in rows if r.pending), rows[0] if rows else None)
    attendance = list(meeting.attendance.order_by("discipline", "name", "pk"))
    language = get_language()
    context: dict[str, Any] = {
        "meeting": meeting,
        "rows": rows,
        "current": current,
        "attendance": attendance,
        "quorum": meetings.quorum(meeting, attendance),
        "attendance_form": forms.AttendanceForm(),
        "deviation_labels": meetings.deviation_labels(language),
        "today": timezone.localdate(),
    }
    if current is not None:
        index = rows.index(current)
        context["previous"] = rows[index - 1] if index > 0 else None
        context["following"] = rows[index + 1] if index + 1 < len(rows) else None
        if current.signed is not None:
            # Only the current case's snapshot is read (the agenda's rows defer theirs).
            snapshot: dict[str, Any] = (
                BoardNoteVersion.objects.filter(pk=current.signed.pk)
                .values_list("snapshot", flat=True)
                .get()
            ) or {}
            if snapshot:
                language_of_note = notes.render_language(snapshot, language)
                current.doc = notes.document(snapshot, language_of_note)
        draft = getattr(current.item, "draft", None)
        context["draft"] = draft
        context["form"] = forms.OutcomeDraftForm(initial=_draft_initial(draft), language=language)
        audit.record_access(
            request,
            audit.NOTE_VIEWED,
            practice_id=meeting.practice_id,
            table="checklist_agendaitem",
            case_id=current.item.case_id,
            row_id=current.item.pk,
            detail={"label": current.item.case.label, "page": "meeting mode"},
        )
    return render(request, "checklist/meeting_mode.html", context)


@practice_required(role=RECORDERS)
@require_POST
def attendance_add(request: PracticeRequest, pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    form = forms.AttendanceForm(request.POST)
    if form.is_valid():
        services.attendance_add(
            meeting=meeting,
            name=form.cleaned_data["name"],
            discipline=form.cleaned_data["discipline"],
            acting_user=request.user,
        )
    else:
        messages.error(request, " ".join(str(m) for ms in form.errors.values() for m in ms))
    back = forms.MeetingModeQuery(request.GET)
    item = back.cleaned_data["item"] if back.is_valid() else None
    return redirect(_mode_url(meeting) + (f"?item={item}" if item else "") + "#attendance")


@practice_required(role=RECORDERS)
@require_POST
def attendance_remove(request: PracticeRequest, pk: int, attendance_pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    services.attendance_remove(attendance=get_attendance_for_user(request, meeting, attendance_pk))
    return redirect(_mode_url(meeting) + "#attendance")


@practice_required(role=RECORDERS)
@require_POST
def agenda_item_decision(request: PracticeRequest, pk: int, item_pk: int) -> HttpResponse:
    """Saves the decision draft: measures and follow-up date together (the one save path, as
    a checklist card). With `finalise` it is then recorded as the note's outcome. htmx gets
    only the status line and, out of band, the draft's revision; a refusal is shown there
    with status 200, so the browser keeps what was typed. Without JavaScript a save
    redirects back to the case in meeting mode."""
    meeting = get_meeting_for_user(request, pk)
    item = get_agenda_item_for_user(request, meeting, item_pk)
    form = forms.OutcomeDraftForm(request.POST, language=get_language())
    draft: OutcomeDraft | None = None
    error = ""
    stale = False
    finalised = False
    if not form.is_valid():
        error = " ".join(str(m) for ms in form.errors.values() for m in ms)
    else:
        revision = form.cleaned_data["revision"]
        try:
            draft = services.outcome_draft_save(
                item=item,
                measures=form.measures(),
                follow_up_on=form.cleaned_data["follow_up_on"],
                acting_user=request.user,
                expected_revision=-1 if revision is None else revision,
            )
            if request.POST.get("finalise"):
                services.agenda_item_finalise(
                    item=item, acting_user=request.user, expected_revision=draft.revision
                )
                finalised = True
        except services.StaleDraft as refused:
            draft, stale = refused.draft, True
            error = _(
                "%(who)s changed this decision in the meantime. Your entry was not saved;"
                " check it and save again."
            ) % {"who": display_name(draft.updated_by)}
        except ValidationError as invalid:
            error = " ".join(invalid.messages)
    if finalised:
        messages.success(
            request, _("The board decision for %(label)s is recorded.") % {"label": item.case.label}
        )
        following = (
            AgendaItem.objects.filter(meeting=meeting, status=AgendaStatus.PENDING)
            .order_by("position", "registered_at", "pk")
            .first()
        )
        url = _mode_url(meeting, following or item)
        if request.htmx:
            response = HttpResponse()
            response["HX-Redirect"] = url
            return response
        return redirect(url)
    if request.htmx:
        return render(
            request,
            "checklist/_decision_answer.html",
            {"item": item, "draft": draft, "error": error, "stale": stale, "saved": not error},
        )
    if error:
        messages.error(request, error)
    return redirect(_mode_url(meeting, item) + "#decision")


@practice_required(role=RECORDERS)
@require_POST
def agenda_item_status(request: PracticeRequest, pk: int, item_pk: int) -> HttpResponse:
    meeting = get_meeting_for_user(request, pk)
    item = get_agenda_item_for_user(request, meeting, item_pk)
    status = valid(forms.AgendaStatusForm(request.POST)).cleaned_data["status"]
    try:
        services.agenda_item_set_status(item=item, status=status, acting_user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{item.case.label}: {AgendaStatus(status).label}")
    return redirect(_mode_url(meeting, item))
