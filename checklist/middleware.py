"""Per-request state: the active practice and the audit context for the database triggers."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from checklist import audit
from checklist.models import Membership

SESSION_KEY = "active_practice_id"
# Paths that must answer without touching the database (health check) or before login.
_NO_DB_PATHS = ("/healthz",)


class PracticeMiddleware:
    """Resolves `request.membership` and `request.practice` from the session.

    The active practice must be one of the user's active memberships; anything else in the
    session (a stale or forged id) falls back to the user's first active membership.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.membership = None  # type: ignore[attr-defined]
        request.practice = None  # type: ignore[attr-defined]
        if request.user.is_authenticated and not request.path.startswith(_NO_DB_PATHS):
            memberships = list(
                Membership.objects.filter(user=request.user, active=True)
                .select_related("practice")
                .order_by("practice__name")
            )
            wanted = request.session.get(SESSION_KEY)
            chosen = next((m for m in memberships if m.practice_id == wanted), None)
            if chosen is None and memberships:
                chosen = memberships[0]
                request.session[SESSION_KEY] = chosen.practice_id
            request.memberships = memberships  # type: ignore[attr-defined]
            request.membership = chosen  # type: ignore[attr-defined]
            request.practice = chosen.practice if chosen else None  # type: ignore[attr-defined]
        return self.get_response(request)


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = audit.new_request_id()  # type: ignore[attr-defined]
        if request.path.startswith(_NO_DB_PATHS):
            return self.get_response(request)
        audit.set_context(user=request.user, path=request.path, request_id=request.request_id)  # type: ignore[attr-defined]
        try:
            return self.get_response(request)
        finally:
            audit.reset_context()
