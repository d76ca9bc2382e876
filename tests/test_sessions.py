"""Sessions: idle timeout, absolute lifetime, a cookie that ends with the browser, a new session
key at login, and all of a user's sessions ended when their membership is deactivated or their
password changes (checklist/sessions.py, SessionTimeoutMiddleware).

Time is moved with time-machine: the timeouts read Python's clock (stored in the session),
never PostgreSQL's. alice is a physician of practice A, adam its admin.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model, login
from django.contrib.auth.tokens import default_token_generator
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from checklist import audit, services
from checklist.models import AuditEvent, Membership, UserSession
from checklist.sessions import SessionStore
from tests.factories import PASSWORD, logged_in

pytestmark = pytest.mark.django_db

CASES = "/cases/"


@pytest.fixture
def start():
    """A fixed point in Python time to move from (not moving: each step is said)."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _ended_at_login(client: Client, url: str = CASES) -> list[str]:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    return _messages(response)


def test_it_ends_a_session_after_30_minutes_without_activity(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=29, seconds=59))
    assert client.get(CASES).status_code == 200
    start.shift(timedelta(minutes=30))
    response = client.get(CASES)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/cases/"
    assert _messages(response) == [
        "Your session ended after 30 minutes without activity. Please log in again."
    ]
    # The session is gone from the database, and the next page is the login page.
    assert not UserSession.objects.filter(user=alice).exists()
    assert client.get(CASES).status_code == 302


def test_it_shows_the_login_page_itself_with_the_reason(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=31))
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"Your session ended after 30 minutes without activity." in response.content


def test_it_keeps_a_session_while_the_user_is_active(alice, start):
    """Each request counts as activity: an hour of pages every 20 minutes stays signed in."""
    client = logged_in(alice)
    for _ in range(6):
        start.shift(timedelta(minutes=20))
        assert client.get(CASES).status_code == 200


def test_it_ends_a_session_after_12_hours_whatever_the_activity(alice, start):
    client = logged_in(alice)
    for _ in range(12 * 3 - 1):
        start.shift(timedelta(minutes=20))
        assert client.get(CASES).status_code == 200
    start.shift(timedelta(minutes=20))
    assert _ended_at_login(client) == [
        "Your session ended after 12 hours, the longest a session lasts. Please log in again."
    ]


def test_it_reads_the_timeouts_from_the_settings(alice, start, settings):
    settings.SESSION_IDLE_SECONDS = 10 * 60
    settings.SESSION_MAX_SECONDS = 60 * 60
    client = logged_in(alice)
    start.shift(timedelta(minutes=10))
    assert _ended_at_login(client) == [
        "Your session ended after 10 minutes without activity. Please log in again."
    ]
    client = logged_in(alice)
    for _ in range(6):
        start.shift(timedelta(minutes=9, seconds=59))
        assert client.get(CASES).status_code == 200
    start.shift(timedelta(seconds=6))  # 60 minutes after the login
    assert _ended_at_login(client) == [
        "Your session ended after 1 hour, the longest a session lasts. Please log in again."
    ]


def test_it_audits_a_timeout_as_a_logout_with_its_reason(alice, practice_a, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=31))
    client.get(CASES)
    event = AuditEvent.objects.filter(practice_id=practice_a.pk, op=audit.LOGOUT).get()
    assert event.kind == "access"
    assert event.actor_id == alice.pk
    assert event.detail == {"reason": "session expired: idle timeout"}


def test_it_sends_an_htmx_request_to_the_login_page_as_a_whole_page(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=31))
    response = client.get(CASES, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/"
    assert response.content == b""


def test_it_does_not_count_background_requests_as_activity(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=29))
    asked = client.get(reverse("session_keep_alive"), HTTP_X_BACKGROUND="1")
    assert asked.json() == {"seconds_left": 60, "final": False}
    start.shift(timedelta(minutes=1))
    assert _ended_at_login(client)


def test_it_keeps_a_session_alive_with_the_stay_signed_in_button(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=29))
    kept = client.post(reverse("session_keep_alive"))
    assert kept.json() == {"seconds_left": 30 * 60, "final": False}
    start.shift(timedelta(minutes=29))
    response = client.get(CASES)
    assert response.status_code == 200
    assert response["X-Session-Seconds-Left"] == str(30 * 60)
    # The page tells the warning script when the session ends and how early to warn.
    assert b'data-session-seconds-left="1800"' in response.content
    assert b'data-session-warning-seconds="120"' in response.content


def test_it_says_when_the_lifetime_cannot_be_extended(alice, start):
    client = logged_in(alice)
    for _ in range(12 * 2 - 1):
        start.shift(timedelta(minutes=29))
        client.get(CASES)
    # 11 h 7 min in: 53 minutes left of the lifetime, the idle end is 30 minutes away.
    assert client.post(reverse("session_keep_alive")).json()["final"] is False
    start.shift(timedelta(minutes=29))
    assert client.post(reverse("session_keep_alive")).json() == {
        "seconds_left": 24 * 60,
        "final": True,
    }


def test_it_answers_the_keep_alive_of_an_ended_session_without_a_redirect(alice, start):
    client = logged_in(alice)
    start.shift(timedelta(minutes=31))
    response = client.post(reverse("session_keep_alive"))
    assert response.json() == {"seconds_left": 0}
    # The message waits for the next page.
    assert _messages(response) == [
        "Your session ended after 30 minutes without activity. Please log in again."
    ]


def test_it_writes_the_activity_time_at_most_once_a_minute(
    alice, start, django_assert_max_num_queries
):
    """The timeout costs a request no query of its own while its user is active: the session
    is saved for the activity only when a minute has passed."""
    client = logged_in(alice)
    client.get(CASES)
    start.shift(timedelta(seconds=30))
    with django_assert_max_num_queries(50) as within_a_minute:
        client.get(CASES)
    start.shift(timedelta(seconds=31))
    with django_assert_max_num_queries(50) as after_a_minute:
        client.get(CASES)

    def session_updates(queries) -> list[str]:
        return [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].startswith("UPDATE") and "checklist_usersession" in q["sql"]
        ]

    assert session_updates(within_a_minute) == []
    assert len(session_updates(after_a_minute)) == 1


def test_its_session_cookie_ends_with_the_browser(alice, client):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == ""
    assert cookie["expires"] == ""
    assert cookie["httponly"]


def test_it_gives_a_new_session_key_at_login(alice, client):
    session = client.session
    session["language_seen"] = "en"
    session.save()
    before = session.session_key
    client.cookies["sessionid"] = before
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    after = response.cookies["sessionid"].value
    assert after and after != before
    assert not UserSession.objects.filter(session_key=before).exists()


def test_login_moves_the_session_to_a_new_key_with_its_user():
    """The same, at the level of `login`: the old row is gone, the new one names its user."""
    user = get_user_model().objects.create_user("dora", password=PASSWORD)
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session["language_seen"] = "en"
    request.session.save()
    before = request.session.session_key
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    assert request.session.session_key != before
    assert not UserSession.objects.filter(session_key=before).exists()
    assert UserSession.objects.get(session_key=request.session.session_key).user_id == user.pk


def test_it_ends_every_session_of_a_deactivated_member(alice, adam):
    at_work, at_home = logged_in(alice), logged_in(alice)
    admin = logged_in(adam)
    assert UserSession.objects.filter(user=alice).count() == 2
    membership = Membership.objects.get(user=alice)
    response = admin.post(
        reverse("account_edit", args=[membership.pk]),
        {"role": Membership.PHYSICIAN, "active": "", "title": ""},
    )
    assert response.status_code == 302
    assert not Membership.objects.get(pk=membership.pk).active
    assert not UserSession.objects.filter(user=alice).exists()
    for client in (at_work, at_home):
        assert client.get(CASES)["Location"].startswith("/login/")
    # The admin's own session is untouched.
    assert admin.get(CASES).status_code == 200


def test_it_leaves_sessions_alone_when_only_the_role_changes(alice, adam):
    logged_in(alice)
    membership = Membership.objects.get(user=alice)
    services.membership_update(
        membership=membership,
        role=Membership.PRACTICE_ADMIN,
        active=True,
        acting_membership=Membership.objects.get(user=adam),
    )
    assert UserSession.objects.filter(user=alice).count() == 1


def test_it_ends_every_session_when_the_password_changes(alice, bob):
    at_work, at_home = logged_in(alice), logged_in(alice)
    other = logged_in(bob)
    alice.set_password("a-new-Password-42")
    alice.save()
    assert not UserSession.objects.filter(user=alice).exists()
    for client in (at_work, at_home):
        assert client.get(CASES)["Location"].startswith("/login/")
    assert other.get(CASES).status_code == 200


def test_it_ends_every_session_when_a_set_password_link_is_used(alice, client):
    at_work = logged_in(alice)
    url = reverse(
        "set_password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(alice.pk)),
            "token": default_token_generator.make_token(alice),
        },
    )
    form_url = client.get(url)["Location"]
    new = "a-new-Password-42"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    assert not UserSession.objects.filter(user=alice).exists()
    assert at_work.get(CASES)["Location"].startswith("/login/")
