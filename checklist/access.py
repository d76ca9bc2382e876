"""The only ways a view reaches a practice's rows: login, membership and role, then the row
scoped to the active practice (404 otherwise, a cross-practice miss recorded as a denial)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django_htmx.middleware import HtmxDetails

from checklist import audit, second_factor
from checklist.models import (
    AgendaItem,
    Attendance,
    Board,
    BoardMeeting,
    BoardNote,
    Case,
    Membership,
    Practice,
)

View = Callable[..., HttpResponseBase]


class PracticeRequest(HttpRequest):
    """A request that passed `practice_required`: `PracticeMiddleware` has set the active
    practice and membership, and the user is logged in. For type checking only."""

    user: User
    practice: Practice
    membership: Membership
    memberships: list[Membership]
    htmx: HtmxDetails
    request_id: str


def practice_required(role: str | tuple[str, ...] | None = None) -> Callable[[View], View]:
    """Login, an active membership in the active practice and, if given, that role (or one of
    those roles: `Membership.COORDINATOR_ROLES`)."""
    roles = (role,) if isinstance(role, str) else role

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            membership = getattr(request, "membership", None)
            if membership is None:
                return render(request, "checklist/no_membership.html", status=403)
            pending = second_factor_step(request)
            if pending is not None:
                return pending
            if roles is not None and membership.role not in roles:
                audit.record_access(
                    request,
                    audit.PERMISSION_DENIED,
                    practice_id=membership.practice_id,
                    detail={"reason": "role", "needs": " | ".join(roles)},
                )
                return render(request, "checklist/forbidden.html", status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def second_factor_step(request: HttpRequest) -> HttpResponseBase | None:
    """Where a logged-in user must go before any practice page: the code step when they have
    a device and this session is not verified yet, enrolment when they need a second factor
    (`second_factor.required_for`) and have none; None when they may go on."""
    user: Any = request.user
    if user.is_verified():
        return None
    query = urlencode({"next": request.get_full_path()})
    if second_factor.request_has_device(request):
        return redirect(f"{reverse('otp_verify')}?{query}")
    if second_factor.required_for(getattr(request, "memberships", [])):
        return redirect(f"{reverse('otp_enrol')}?{query}")
    return None


def recent_reauth_required(view: View) -> View:
    """Exports and account management: the password (and code) again unless given within
    `second_factor.REAUTH_SECONDS`; the re-authentication page returns to the view. Goes
    below `practice_required`."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not second_factor.reauth_is_recent(request.session):
            back = request.get_full_path() if request.method == "GET" else ""
            back = back or request.META.get("HTTP_REFERER", "")
            return redirect(f"{reverse('reauth')}?{urlencode({'next': back})}")
        return view(request, *args, **kwargs)

    return wrapped


def get_in_practice(request: PracticeRequest, queryset: Any, pk: int) -> Any:
    """The row `pk` of `queryset` within the active practice, 404 otherwise. A miss on a row
    that exists in another practice is recorded as a permission denial."""
    practice = request.practice
    found = queryset.for_practice(practice).filter(pk=pk).first()
    if found is None:
        if queryset.model.objects.filter(pk=pk).exists():
            audit.record_access(
                request,
                audit.PERMISSION_DENIED,
                practice_id=practice.pk,
                table=queryset.model._meta.db_table,
                row_id=pk,
                detail={"reason": "other practice"},
            )
        raise Http404
    return found


def get_case_for_user(
    request: PracticeRequest, pk: int, queryset: QuerySet[Case] | None = None
) -> Case:
    """The only way a view reaches a case: scoped to the active practice, 404 otherwise.
    `queryset`: the cases as the view wants them read (e.g. with `select_related`)."""
    case: Case = get_in_practice(request, Case.objects.all() if queryset is None else queryset, pk)
    return case


def get_note_for_user(request: PracticeRequest, pk: int) -> BoardNote:
    """Notes are reached only within the active practice; another practice's note is 404."""
    queryset = BoardNote.objects.select_related("case", "case__practice")
    note: BoardNote = get_in_practice(request, queryset, pk)
    return note


def get_board_for_user(request: PracticeRequest, pk: int) -> Board:
    board: Board = get_in_practice(request, Board.objects.all(), pk)
    return board


def get_meeting_for_user(request: PracticeRequest, pk: int) -> BoardMeeting:
    """A board meeting of the active practice, with its board; another practice's is 404."""
    meeting: BoardMeeting = get_in_practice(
        request, BoardMeeting.objects.select_related("board"), pk
    )
    return meeting


def get_agenda_item_for_user(
    request: PracticeRequest, meeting: BoardMeeting, pk: int
) -> AgendaItem:
    """An agenda item of `meeting` (itself reached through `get_meeting_for_user`)."""
    item: AgendaItem = get_in_practice(
        request, AgendaItem.objects.filter(meeting=meeting).select_related("meeting__board"), pk
    )
    return item


def get_attendance_for_user(request: PracticeRequest, meeting: BoardMeeting, pk: int) -> Attendance:
    found: Attendance = get_in_practice(
        request, Attendance.objects.filter(meeting=meeting).select_related("meeting"), pk
    )
    return found
