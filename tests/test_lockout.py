"""Lockout and passwords: a lockout is per (user name, client address), the client address
behind the reverse proxy comes from X-Forwarded-For only through trusted proxies, a lockout
is an audit event, practice admins see and end lockouts of their own practice's users, and
passwords are 12 to 128 characters, not common and not like the user's name.

Who is who (tests/conftest.py): alice is a physician and adam the admin of practice A; bob is
a physician in practice B only; carol is in both practices.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.test import Client, RequestFactory

from checklist import lockout
from checklist.management.commands.load_demo import DEMO_PASSWORD, DEMO_USERS
from checklist.models import AuditEvent, Membership
from tests.factories import PASSWORD, logged_in, make_user

LIMIT = 3
A, B = "198.51.100.7", "203.0.113.9"


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def _login(username: str, password: str, address: str, **headers: Any):
    return Client(REMOTE_ADDR=address, **headers).post(
        "/login/", {"username": username, "password": password}
    )


def _fail(username: str, address: str, times: int = LIMIT, **headers: Any):
    return [_login(username, "wrong-password", address, **headers) for _ in range(times)]


def _events_after(practice_id: int, head: int, op: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(practice_id=practice_id, seq__gt=head, op=op).order_by("seq")
    )


def _head(practice_id: int) -> int:
    return AuditEvent.objects.filter(practice_id=practice_id).aggregate(m=Max("seq"))["m"] or 0


# --- the lockout ----------------------------------------------------------------------------


def test_it_locks_out_after_the_limit_and_says_for_how_long(alice, settings):
    responses = _fail("alice", A)
    assert [r.status_code for r in responses[:-1]] == [200] * (LIMIT - 1)
    locked = responses[-1]
    assert locked.status_code == 429
    assert b"locked from this network address for 60 minutes" in locked.content
    assert b"ask your practice admin to unlock the account" in locked.content
    # Even the right password is refused from that address now.
    again = _login("alice", PASSWORD, A)
    assert again.status_code == 429 and "_auth_user_id" not in Client().session


def test_the_message_follows_the_configured_time(alice, settings):
    from datetime import timedelta

    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    assert b"for 15 minutes" in _fail("alice", A)[-1].content


def test_the_message_is_in_german_too(alice):
    locked = _fail("alice", A, HTTP_ACCEPT_LANGUAGE="de")[-1]
    assert "für 60 Minuten gesperrt" in locked.content.decode()


def test_one_client_cannot_lock_a_user_out_for_everyone(alice):
    _fail("alice", A)
    assert _login("alice", PASSWORD, A).status_code == 429
    from_b = _login("alice", PASSWORD, B)
    assert from_b.status_code == 302  # on to the next step, not the lockout page
    # A stays locked: a success from B does not end A's lockout.
    assert _login("alice", PASSWORD, A).status_code == 429


def test_other_users_from_the_same_address_are_not_locked(alice, adam):
    _fail("alice", A)
    assert _login("adam", PASSWORD, A).status_code == 302


def test_a_lockout_is_one_audit_event_in_the_users_practices(carol, practice_a, practice_b):
    heads = {p.pk: _head(p.pk) for p in (practice_a, practice_b)}
    _fail("carol", A, times=LIMIT + 2)  # two more attempts during the lockout
    for practice in (practice_a, practice_b):
        events = _events_after(practice.pk, heads[practice.pk], "account_locked")
        assert len(events) == 1
        membership = Membership.objects.get(user=carol, practice=practice)
        assert events[0].table_name == "checklist_membership"
        assert events[0].row_id == str(membership.pk)
        assert events[0].detail == {"username": "carol", "address": A, "minutes": 60}
        assert events[0].actor_id is None
        failures = _events_after(practice.pk, heads[practice.pk], "login_failure")
        assert len(failures) == LIMIT + 2
    assert "wrong-password" not in str(
        list(AuditEvent.objects.filter(op="account_locked").values_list("detail", flat=True))
    )


def test_an_unknown_user_name_is_not_written_to_the_lockout_event(db):
    head = _head(0)
    _fail("no-such-person", A)
    events = _events_after(0, head, "account_locked")
    assert len(events) == 1
    assert events[0].detail == {"address": A, "minutes": 60}


def test_the_trail_names_the_lockout(carol, practice_a, adam_client):
    _fail("carol", A)
    page = adam_client.get("/audit/")
    assert b"account locked" in page.content


# --- the client address behind the proxy ---------------------------------------------------


def _ip(remote: str, forwarded: str | None = None) -> str | None:
    meta: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return lockout.client_ip(RequestFactory().get("/", **meta))


def test_without_the_proxy_setting_the_header_is_ignored(settings):
    settings.BEHIND_PROXY = False
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert _ip("127.0.0.1", "203.0.113.9") == "127.0.0.1"


def test_a_header_from_an_untrusted_client_is_ignored(settings):
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert _ip("198.51.100.7", "203.0.113.9") == "198.51.100.7"


def test_a_trusted_proxy_gives_the_right_most_untrusted_address(settings):
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "::1"]
    assert _ip("10.0.0.5", "203.0.113.9") == "203.0.113.9"
    # A client that writes its own header: the proxy appends the real address on the right.
    assert _ip("10.0.0.5", "1.2.3.4, 203.0.113.9") == "203.0.113.9"
    # A chain of trusted proxies is walked past.
    assert _ip("::1", "1.2.3.4, 203.0.113.9, 10.0.0.8") == "203.0.113.9"
    # Garbage ends the walk at the last trusted hop; never a non-address.
    assert _ip("10.0.0.5", "not-an-address") == "10.0.0.5"
    assert _ip("10.0.0.5", "203.0.113.9, junk, 10.0.0.8") == "10.0.0.8"
    # No header: the proxy itself.
    assert _ip("10.0.0.5") == "10.0.0.5"


def test_an_invalid_trusted_proxy_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = ["10.0.0.300"]
    with pytest.raises(ImproperlyConfigured):
        _ip("10.0.0.5", "203.0.113.9")


def test_the_system_check_asks_for_trusted_proxies_behind_a_proxy(settings):
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = []
    assert [m.id for m in lockout._proxy_check()] == ["checklist.W001"]
    settings.TRUSTED_PROXIES = ["10.0.0.0/33"]
    assert [m.id for m in lockout._proxy_check()] == ["checklist.E001"]
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert lockout._proxy_check() == []
    settings.BEHIND_PROXY = False
    settings.TRUSTED_PROXIES = []
    assert lockout._proxy_check() == []


def test_a_spoofed_header_cannot_lock_out_another_client(alice, settings):
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    # An attacker connecting directly and claiming to be B: locked out as itself (A).
    _fail("alice", A, HTTP_X_FORWARDED_FOR=B)
    assert AccessAttempt.objects.get(username="alice").ip_address == A
    # Through the proxy, each client is its own address: B still logs in, A does not.
    through_proxy = {"HTTP_X_FORWARDED_FOR": B}
    assert _login("alice", PASSWORD, "10.0.0.1", **through_proxy).status_code == 302
    _fail("alice", "10.0.0.1", HTTP_X_FORWARDED_FOR=A)
    assert _login("alice", PASSWORD, "10.0.0.1", HTTP_X_FORWARDED_FOR=A).status_code == 429
    assert _login("alice", PASSWORD, "10.0.0.1", **through_proxy).status_code == 302


# --- admins see and end lockouts -------------------------------------------------------------


def test_the_accounts_page_shows_who_is_locked(adam_client, alice, carol):
    _fail("alice", A)
    page = adam_client.get("/accounts/").content.decode()
    assert 'data-testid="locked-alice"' in page
    assert 'data-testid="locked-carol"' not in page
    alice_pk = Membership.objects.get(user=alice).pk
    assert f'action="/accounts/{alice_pk}/unlock/"' in page
    edit = adam_client.get(f"/accounts/{alice_pk}/").content.decode()
    assert "This account is locked out" in edit


def test_an_admin_unlocks_and_it_is_audited(adam_client, adam, alice, practice_a):
    _fail("alice", A)
    _fail("alice", B)
    head = _head(practice_a.pk)
    membership = Membership.objects.get(user=alice)
    response = adam_client.post(f"/accounts/{membership.pk}/unlock/", follow=True)
    assert b"can log in again" in response.content
    assert b'data-testid="locked-alice"' not in response.content
    assert _login("alice", PASSWORD, A).status_code == 302
    assert _login("alice", PASSWORD, B).status_code == 302
    (event,) = _events_after(practice_a.pk, head, "account_unlocked")
    assert event.actor_name == "adam"
    assert event.row_id == str(membership.pk)
    assert event.detail == {"account": "alice"}


def test_unlocking_needs_post(adam_client, alice):
    membership = Membership.objects.get(user=alice)
    assert adam_client.get(f"/accounts/{membership.pk}/unlock/").status_code == 405


def test_another_practices_admin_can_neither_see_nor_unlock(alice, practice_b):
    ben = make_user("ben", practice_b, Membership.PRACTICE_ADMIN)  # admin of B only
    _fail("alice", A)
    client = logged_in(ben)
    assert b"alice" not in client.get("/accounts/").content
    membership = Membership.objects.get(user=alice)
    assert client.post(f"/accounts/{membership.pk}/unlock/").status_code == 404
    assert client.get(f"/accounts/{membership.pk}/").status_code == 404
    assert lockout.is_locked("alice")


def test_a_physician_cannot_unlock(alice_client, alice, practice_a):
    colleague = make_user("cora", practice_a, Membership.PHYSICIAN)
    _fail("cora", A)
    membership = Membership.objects.get(user=colleague)
    assert alice_client.post(f"/accounts/{membership.pk}/unlock/").status_code in (403, 404)
    assert lockout.is_locked("cora")


@pytest.mark.parametrize("locked", [1, 12])
def test_the_accounts_page_query_count_is_constant(
    adam_client, practice_a, django_assert_num_queries, locked
):
    for n in range(locked):
        make_user(f"user{n:02}", practice_a, Membership.PHYSICIAN)
        _fail(f"user{n:02}", A)
    adam_client.get("/accounts/")  # warm the session
    # session, user, second-factor device, memberships (middleware); the accounts with their
    # lock state (one query with a subquery)
    with django_assert_num_queries(5):
        response = adam_client.get("/accounts/")
    assert response.content.count(b"locked out") == locked


# --- passwords --------------------------------------------------------------------------------


def _problems(password: str, user=None) -> list[str]:
    try:
        validate_password(password, user)
    except ValidationError as error:
        return [str(e.code) for e in error.error_list]
    return []


def test_passwords_are_12_to_128_characters():
    assert "password_too_short" in _problems("Kx7!mQ2#vL9")  # 11
    assert _problems("Kx7!mQ2#vL9@") == []  # 12
    assert _problems("Kx7!mQ2#vL9@" * 10 + "Kx7!mQ2#") == []  # 128
    assert "password_too_long" in _problems("Kx7!mQ2#vL9@" * 10 + "Kx7!mQ2#v")  # 129


def test_common_and_similar_passwords_are_refused(db):
    assert "password_too_common" in _problems("password1234")
    user = get_user_model()(username="margarethe.schulz", email="margarethe@example.org")
    assert "password_too_similar" in _problems("margarethe.schulz", user)


def test_no_rule_forces_rotation_or_composition():
    # A long passphrase of lower-case words (or digits only) is fine: length, not composition.
    assert _problems("granite lantern orchard velvet") == []
    assert _problems("402817395561284") == []


def test_the_set_password_form_shows_the_rules(adam_client, practice_a, client):
    response = adam_client.post("/accounts/new/", {"username": "dora", "role": "physician"})
    match = re.search(rb"http://testserver(/set-password/[^<\"]+)", response.content)
    assert match
    link = match.group(1)
    page = client.get(link.decode(), follow=True).content
    assert b"at least 12 characters" in page
    assert b"at most 128 characters" in page
    assert b"commonly used password" in page
    short = client.post(
        client.get(link.decode(), follow=True).redirect_chain[-1][0],
        {"new_password1": "Short-pw-1", "new_password2": "Short-pw-1"},
    )
    assert b"too short" in short.content


def test_the_demo_and_test_passwords_satisfy_the_rules(db):
    for username, first, last, _role in DEMO_USERS:
        user = get_user_model()(username=username, first_name=first, last_name=last)
        assert _problems(DEMO_PASSWORD, user) == []
    assert _problems(PASSWORD, get_user_model()(username="alice", first_name="Alice")) == []
