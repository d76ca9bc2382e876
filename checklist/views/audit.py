"""Audit browsing for practice admins: trail with filters, CSV export, reports, chain checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import get_language

from checklist import audit, forms, services
from checklist.access import PracticeRequest, practice_required, recent_reauth_required
from checklist.models import (
    AgendaItem,
    AgendaStatus,
    Attendance,
    AuditCheckpoint,
    AuditEvent,
    AuditVerification,
    BoardMeeting,
    BoardNoteVersion,
    BoardOutcome,
    Case,
    Membership,
    NoteState,
    display_name,
)
from checklist.views.common import valid

CSV_COLUMNS = [
    "practice_id",
    "seq",
    "ts",
    "kind",
    "table_name",
    "op",
    "row_id",
    "case_id",
    "actor_id",
    "actor_name",
    "path",
    "request_id",
    "old_values",
    "new_values",
    "detail",
    "hash",
]


AUDIT_PAGE = 50


def _audit_filters(
    request: PracticeRequest, practice_id: int
) -> tuple[Any, dict[str, str], int | None]:
    """The trail filtered by the query string (`forms.AuditQuery`), the filters as text (for
    the form and links) and the keyset cursor."""
    params = valid(forms.AuditQuery(request.GET)).cleaned_data
    events = AuditEvent.objects.filter(practice_id=practice_id)
    if params["user"] is not None:
        events = events.filter(actor_id=params["user"])
    if params["case"]:
        case_filter = Q(label=params["case"])
        if params["case"].isascii() and params["case"].isdigit():
            case_filter |= Q(pk=int(params["case"]))
        case = Case.objects.for_practice(practice_id).filter(case_filter).first()
        events = events.filter(case_id=case.pk if case else -1)
    if params["kind"] == "change":
        events = events.filter(kind="change")
    elif params["kind"] == "access":
        events = events.filter(kind="access").exclude(op__in=audit.LOGIN_OPS)
    elif params["kind"] == "login":
        events = events.filter(kind="access", op__in=audit.LOGIN_OPS)
    if params["table"]:
        events = events.filter(table_name=params["table"])
    if params["date_from"]:
        events = events.filter(ts__date__gte=params["date_from"])
    if params["date_to"]:
        events = events.filter(ts__date__lte=params["date_to"])
    shown = {k: "" if v is None else str(v) for k, v in params.items() if k != "before"}
    return events, shown, params["before"]


def event_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    by_table = audit.table_models()
    # One more query, only when a page shows rows whose fields hold code-list codes.
    coded_tables = {table for table, _field in audit.CODE_LIST_FIELDS}
    codes = (
        audit.code_list_labels(get_language())
        if any(e.table_name in coded_tables for e in events)
        else {}
    )
    # Everything the page names, in one query: the people (who acted, "signed by"...), the
    # cases, and the rows the values point to (a checklist item's category...).
    rows = audit.row_labels(events, get_language(), by_table)
    user_model = get_user_model()
    return [
        {
            "event": e,
            "what": audit.ACCESS_LABELS.get(e.op, e.op)
            if e.kind == "access"
            else audit.CHANGE_LABELS.get(e.op, e.op),
            "table": audit.table_label(e.table_name, by_table) if e.table_name else "",
            "row_label": audit.event_row_label(e, rows, by_table) if e.kind == "change" else "",
            "changes": audit.field_changes(e, by_table, codes, rows) if e.kind == "change" else [],
            "details": audit.detail_items(e.detail),
            "case_label": rows.get((Case, str(e.case_id))) if e.case_id else None,
            # Today's name of the person, beside the user name the event stored.
            "who": rows.get((user_model, str(e.actor_id)), "") if e.actor_id else "",
        }
        for e in events
    ]


def keyset_page(events: Any, before: int | None) -> tuple[list[AuditEvent], int | None]:
    """One page of events, newest first, older than sequence number `before`."""
    if before is not None:
        events = events.filter(seq__lt=before)
    page = list(events.order_by("-seq")[: AUDIT_PAGE + 1])
    next_before = page[AUDIT_PAGE - 1].seq if len(page) > AUDIT_PAGE else None
    return page[:AUDIT_PAGE], next_before


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_trail(request: PracticeRequest) -> HttpResponse:
    practice = request.practice
    events, params, before = _audit_filters(request, practice.pk)
    page, next_before = keyset_page(events, before)
    query = {k: v for k, v in params.items() if v}
    users = (
        Membership.objects.for_practice(practice)
        .select_related("user__account_profile")
        .order_by("user__username")
    )
    return render(
        request,
        "checklist/audit_trail.html",
        {
            "rows": event_rows(page),
            "params": params,
            "next_query": urlencode({**query, "before": next_before}) if next_before else "",
            "first_query": urlencode(query) if before is not None else None,
            "export_query": urlencode(query),
            "users": users,
            "tables": sorted(
                (
                    (t, audit.table_label(t))
                    for t in audit.table_models()
                    if t != "checklist_auditevent" and t != "checklist_code"
                ),
                key=lambda pair: pair[1],
            ),
        },
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
def audit_export(request: PracticeRequest) -> StreamingHttpResponse:
    """The filtered trail as CSV, streamed from a server-side cursor: the download starts at
    once and memory stays flat however many rows there are."""
    practice = request.practice
    events, params, _before = _audit_filters(request, practice.pk)
    audit.record_access(
        request,
        audit.EXPORTED,
        practice_id=practice.pk,
        table="checklist_auditevent",
        detail={"format": "csv", "filters": {k: v for k, v in params.items() if v}},
    )
    # PostgreSQL writes the CSV itself (COPY ... TO STDOUT), chunk by chunk: no row objects in
    # Python, so a million rows stream at copy speed in constant memory.
    sql, params = events.order_by("seq").values_list(*CSV_COLUMNS).query.sql_with_params()

    def stream() -> Any:
        with connection.cursor() as cursor:
            copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"
            # The stubs type the wrapped cursor as DB-API's; psycopg 3's has `copy`.
            with cursor.cursor.copy(copy_sql, params) as copy:  # type: ignore[union-attr]
                for chunk in copy:
                    yield bytes(chunk)

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{practice.pk}.csv"'
    return response


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_reports(request: PracticeRequest) -> HttpResponse:
    practice = request.practice
    today = timezone.localdate()
    query = valid(forms.ReportQuery(request.GET)).cleaned_data
    days = 7 if query["days"] is None else query["days"]
    start = query["date_from"] or today - timedelta(days=30)
    end = query["date_to"] or today
    incomplete = (
        Case.objects.for_practice(practice)
        .with_completeness()
        .filter(complete=False)
        .order_by("label")[:200]
    )
    ready_unsigned = (
        BoardNoteVersion.objects.filter(
            practice=practice,
            state=NoteState.READY,
            ready_at__lt=timezone.now() - timedelta(days=days),
        )
        .latest_only()
        .select_related("note__case")
        .order_by("ready_at")
    )
    signed_without_outcome = (
        BoardNoteVersion.objects.filter(
            practice=practice, state=NoteState.SIGNED, board_date__lt=today
        )
        .latest_only()
        .exclude(Exists(BoardOutcome.objects.filter(note=OuterRef("note"))))
        .select_related("note__case")
        .order_by("board_date")
    )
    # Board meetings that took place: without attendance (a meeting with cases only), cases
    # marked "not discussed", and cases still open on the agenda (no decision recorded, not
    # deferred).
    past_items = AgendaItem.objects.for_practice(practice).filter(meeting__date__lt=today)
    meetings_without_attendance = (
        BoardMeeting.objects.for_practice(practice)
        .filter(date__lt=today)
        .filter(Exists(AgendaItem.objects.filter(meeting=OuterRef("pk"))))
        .exclude(Exists(Attendance.objects.filter(meeting=OuterRef("pk"))))
        .select_related("board")
        .order_by("-date")[:200]
    )
    items = past_items.select_related("case", "meeting__board").order_by("-meeting__date", "pk")
    not_discussed = items.filter(status=AgendaStatus.NOT_DISCUSSED)[:200]
    decision_missing = items.filter(status=AgendaStatus.PENDING)[:200]
    period = AuditEvent.objects.filter(
        practice_id=practice.pk, ts__date__gte=start, ts__date__lte=end
    )
    activity = (
        period.values("actor_id", "actor_name")
        .annotate(
            changes=Count("seq", filter=Q(kind="change")),
            accesses=Count("seq", filter=Q(kind="access")),
        )
        .order_by("actor_name")
    )
    security = period.filter(op__in=[audit.LOGIN_FAILURE, audit.PERMISSION_DENIED]).order_by(
        "-seq"
    )[:200]
    activity_rows = list(activity)
    users = get_user_model().objects.filter(
        pk__in={a["actor_id"] for a in activity_rows if a["actor_id"]}
    )
    names = {u.pk: display_name(u) for u in users.select_related("account_profile")}
    return render(
        request,
        "checklist/audit_reports.html",
        {
            "days": days,
            "start": start,
            "end": end,
            "incomplete": incomplete,
            "ready_unsigned": ready_unsigned,
            "signed_without_outcome": signed_without_outcome,
            "meetings_without_attendance": meetings_without_attendance,
            "not_discussed": not_discussed,
            "decision_missing": decision_missing,
            "activity": [
                {**a, "who": names.get(a["actor_id"], "") if a["actor_id"] else ""}
                for a in activity_rows
            ],
            "security": [
                {
                    "event": e,
                    "what": audit.ACCESS_LABELS.get(e.op, e.op),
                    "details": audit.detail_items(e.detail),
                }
                for e in security
            ],
        },
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_chain(request: PracticeRequest) -> HttpResponse:
    practice = request.practice
    if request.method == "POST":
        services.audit_verify_practice(practice_id=practice.pk, ran_by=request.user.get_username())
        return redirect("audit_chain")
    runs = list(AuditVerification.objects.filter(chain=practice.pk).order_by("-ran_at")[:10])
    # A run stores the user name of whoever ran it (a command leaves it empty).
    users = get_user_model().objects.filter(username__in={r.ran_by for r in runs if r.ran_by})
    names = {u.get_username(): display_name(u) for u in users.select_related("account_profile")}
    return render(
        request,
        "checklist/audit_chain.html",
        {
            "runs": [(run, names.get(run.ran_by, run.ran_by)) for run in runs],
            # The newest signed checkpoint's copy (display only: audit_verify reads the store).
            "checkpoint": AuditCheckpoint.objects.filter(chain=practice.pk)
            .order_by("-seq", "-taken_at")
            .first(),
        },
    )
