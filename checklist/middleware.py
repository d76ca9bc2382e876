"""Per-request state: the active practice and the audit context for the database triggers."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import BadRequest
from django.db.models import OuterRef
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext, ngettext
from django_htmx.http import HttpResponseClientRedirect

from checklist import audit, second_factor, sessions
from checklist.models import Membership

SESSION_KEY = "active_practice_id"
# Paths that must answer without the session, user or practice (health check, ping).
_NO_DB_PATHS = ("/healthz", "/ping")


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
        if not request.path.startswith(_NO_DB_PATHS) and request.user.is_authenticated:
            memberships = list(
                Membership.objects.filter(user=request.user, active=True)
                .select_related("practice")
                # Asked on every page of a user without a code step (access.py); here
                # without a round trip of its own.
                .annotate(user_has_device=second_factor.device_exists(OuterRef("user_id")))
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
            response = self.get_response(request)
        finally:
            audit.unbind(token)
        # The id the request's audit events carry: lets an operator (and the load test's
        # lost-update check) find what a response did in the trail. Ids only.
        response.headers["X-Request-Id"] = request.request_id  # type: ignore[attr-defined]
        return response


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


class SessionTimeoutMiddleware:
    """Ends a session idle for SESSION_IDLE_SECONDS or older than SESSION_MAX_SECONDS (Python
    time, stored in the session: `checklist.sessions`). The ending is a logout, audited with
    its reason; the next page is the login page saying why (htmx: a full-page redirect, never
    the login form swapped into a fragment).

    Any request counts as activity except one marked as background (`X-Background: 1`). The
    activity time is written at most every `_write_every` seconds, so most requests cost no
    session write; the keep-alive view always writes. Runs after the practice is resolved,
    which names the chain of the logout event."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_NO_DB_PATHS) or not request.user.is_authenticated:
            return self.get_response(request)
        now = time.time()
        reason = sessions.expired_reason(request.session, now)
        if reason is not None:
            _end_session(request, reason)
            return self.get_response(request) if request.path == _login_url() else _away(request)
        last = request.session.get(sessions.LAST_ACTIVITY)
        stale = not isinstance(last, int | float) or now - last >= _write_every()
        if stale and not sessions.is_background(request):
            sessions.touch(request.session, now)
        left = sessions.seconds_left(request.session, now)
        request.session_seconds_left = left  # type: ignore[attr-defined]
        request.session_warning_seconds = settings.SESSION_WARNING_SECONDS  # type: ignore[attr-defined]
        response = self.get_response(request)
        if request.user.is_authenticated:  # not after a logout in the view
            response.headers[sessions.SECONDS_LEFT_HEADER] = str(left)
        return response


def _write_every() -> float:
    return min(60.0, settings.SESSION_IDLE_SECONDS / 10)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    if seconds % 60 == 0:
        minutes = seconds // 60
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}


def _end_session(request: HttpRequest, reason: str) -> None:
    request.session_end_reason = reason  # type: ignore[attr-defined]  # read by the audit
    logout(request)
    if reason == sessions.IDLE:
        text = gettext("Your session ended after %(duration)s without activity.") % {
            "duration": _duration(settings.SESSION_IDLE_SECONDS)
        }
    else:
        text = gettext("Your session ended after %(duration)s, the longest a session lasts.") % {
            "duration": _duration(settings.SESSION_MAX_SECONDS)
        }
    messages.info(request, text + " " + gettext("Please log in again."))


def _login_url() -> str:
    return reverse(settings.LOGIN_URL)


def _away(request: HttpRequest) -> HttpResponse:
    """Where a request of an ended session goes: the login page, the way its kind of request
    can follow (the keep-alive's script reads JSON, htmx must load a whole page)."""
    if request.path == reverse("session_keep_alive"):
        return JsonResponse({"seconds_left": 0})
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(_login_url())
    if request.method == "GET":
        return redirect_to_login(request.get_full_path(), _login_url())
    return redirect(_login_url())
