"""Sessions: the database engine that knows each session's user, idle and absolute timeouts,
and ending all of a user's sessions.

A session stores when its user logged in and when they were last active (Python time, so a
test can move it; PostgreSQL's clock is not involved). `SessionTimeoutMiddleware` ends a
session idle for `SESSION_IDLE_SECONDS` or older than `SESSION_MAX_SECONDS`. The cookie has no
expiry (`SESSION_EXPIRE_AT_BROWSER_CLOSE`); the row's own expiry is the absolute lifetime, so
`clearsessions` removes what the middleware never saw again.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth import user_logged_in
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.http import HttpRequest
from django.utils.translation import gettext

LOGIN_AT = "_login_at"
LAST_ACTIVITY = "_last_activity"
# A request with this header (a poller, the warning asking how long is left) is not activity.
BACKGROUND_HEADER = "X-Background"
# On every signed-in response: the seconds until the session ends without further activity
# (app.js moves the warning with each htmx answer).
SECONDS_LEFT_HEADER = "X-Session-Seconds-Left"

IDLE = "idle"
MAX_AGE = "max_age"


class SessionStore(DatabaseStore):
    """Django's database sessions, with the user id in its own indexed column."""

    @classmethod
    def get_model_class(cls) -> Any:
        from checklist.models import UserSession

        return UserSession

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        instance: Any = super().create_model_instance(data)
        try:
            instance.user_id = int(data["_auth_user_id"])
        except (KeyError, TypeError, ValueError):
            instance.user_id = None
        return instance


def end_user_sessions(user_id: int) -> int:
    """Deletes every session of the user (one query); returns how many there were."""
    from checklist.models import UserSession

    deleted, _ = UserSession.objects.filter(user_id=user_id).delete()
    return deleted


def expired_reason(session: Any, now: float) -> str | None:
    """IDLE, MAX_AGE or None for a logged-in session's stored times."""
    login_at = session.get(LOGIN_AT)
    last = session.get(LAST_ACTIVITY)
    if not isinstance(login_at, int | float) or not isinstance(last, int | float):
        return None  # stamped by the middleware on this request
    if now - login_at >= settings.SESSION_MAX_SECONDS:
        return MAX_AGE
    if now - last >= settings.SESSION_IDLE_SECONDS:
        return IDLE
    return None


def seconds_left(session: Any, now: float) -> int:
    """Seconds until the session ends if nothing more happens: the idle deadline, capped by the
    absolute one."""
    login_at = session.get(LOGIN_AT, now)
    last = session.get(LAST_ACTIVITY, now)
    idle_end = last + settings.SESSION_IDLE_SECONDS
    max_end = login_at + settings.SESSION_MAX_SECONDS
    return max(0, round(min(idle_end, max_end) - now))


def ends_at_max(session: Any, now: float) -> bool:
    """Whether the absolute lifetime, which activity cannot extend, comes before the idle end."""
    login_at = session.get(LOGIN_AT, now)
    last = session.get(LAST_ACTIVITY, now)
    return bool(login_at + settings.SESSION_MAX_SECONDS <= last + settings.SESSION_IDLE_SECONDS)


def touch(session: Any, now: float) -> None:
    session[LAST_ACTIVITY] = now
    session.setdefault(LOGIN_AT, now)


def is_background(request: HttpRequest) -> bool:
    return request.headers.get(BACKGROUND_HEADER) == "1"


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    now = time.time()
    request.session[LOGIN_AT] = now
    request.session[LAST_ACTIVITY] = now


def connect_signals() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="session_times")


class EndSessionsOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for its `password_changed` hook, which Django calls
    after every saved password change (the set-password link, `changepassword`, any later
    change form), and not for the re-hash at login. Validates nothing; its help text tells the
    user what a change does.

    Ends all of the user's sessions. A change form that keeps its user signed in calls
    `update_session_auth_hash` afterwards, which saves that session's data under a new key."""

    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None and user.pk is not None:
            end_user_sessions(user.pk)

    def get_help_text(self) -> str:
        return gettext("A new password signs you out everywhere you are signed in.")
