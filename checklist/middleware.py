"""Per-request state: the active practice and the audit context for the database triggers."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.cache import add_never_cache_headers

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
    """Gives the request an id and binds it as the audit context of the transactions it opens.

    No query: each service's transaction sets `audit.context` for itself (`audit.atomic`), so
    nothing is left on the connection to reset after the response. A reset query here failed
    when the connection had just died and turned a committed save into an error page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = audit.new_request_id()  # type: ignore[attr-defined]
        token = audit.bind_request(request)
        try:
            return self.get_response(request)
        finally:
            audit.unbind(token)


class NoStoreMiddleware:
    """Pages, print views, exports and htmx fragments carry patient data: no browser or proxy
    cache may keep them. Static files are served by WhiteNoise before this runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response


class RefuseNulMiddleware:
    """NUL fits no field we store (PostgreSQL text refuses it): a request naming one in its path,
    query or form data is a 400 before any view parses it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or _has_nul(request.GET) or _has_nul(request.POST):
            raise BadRequest("NUL in request")
        return self.get_response(request)


def _has_nul(data: QueryDict) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())
