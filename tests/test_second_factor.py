"""The second factor (TOTP): who must have one, the code step, enrolment with recovery codes,
re-authentication for exports, and an admin removing another user's lost device.

Named users (tests/conftest.py): alice is a physician and adam the admin of practice A; anna
is a second admin of practice A; bob is a physician and olga the admin of practice B (an
outsider to practice A).
"""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from checklist import audit, services
from checklist.models import AuditEvent, BoardNoteVersion, Membership, NoteState, Practice
from checklist.second_factor import REAUTH_SESSION_KEY
from tests.factories import (
    PASSWORD,
    create_note,
    logged_in,
    make_signable,
    make_user,
    otp_device,
    sign_note,
    totp_code,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def anna(practice_a):
    return make_user("anna", practice_a, Membership.PRACTICE_ADMIN)


@pytest.fixture
def olga(practice_b):
    return make_user("olga", practice_b, Membership.PRACTICE_ADMIN)


def _events(practice, op):
    return list(AuditEvent.objects.filter(practice_id=practice.pk, kind="access", op=op))


# --- who needs a second factor -------------------------------------------------------------


def test_it_sends_an_admin_without_a_device_to_enrolment(adam):
    client = logged_in(adam, verified=False)
    response = client.get("/cases/")
    assert response.status_code == 302
    assert response["Location"] == "/login/enrol/?next=%2Fcases%2F"
    assert client.get("/accounts/").status_code == 302


def test_it_sends_a_physician_of_a_new_practice_to_enrolment(alice, practice_a):
    assert practice_a.second_factor_for_physicians  # on by default for new practices
    response = logged_in(alice, verified=False).get("/cases/")
    assert response["Location"].startswith("/login/enrol/")


def test_it_lets_a_physician_in_without_one_when_the_practice_asks_none(alice, practice_a):
    services.practice_set_second_factor(practice=practice_a, for_physicians=False)
    response = logged_in(alice, verified=False).get("/cases/")
    assert response.status_code == 200


def test_a_page_asks_whether_a_user_without_a_code_step_has_a_device_in_a_query_it_makes_anyway(
    alice, practice_a
):
    """A physician of a practice that asks for no second factor is asked about devices on
    every page: the memberships query answers it (all kinds of device), no query of its own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.practice_set_second_factor(practice=practice_a, for_physicians=False)
    client = logged_in(alice, verified=False)
    client.get("/cases/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/cases/").status_code == 200
    [device_query] = [q["sql"] for q in queries.captured_queries if "otp_" in q["sql"]]
    assert device_query.startswith('SELECT "checklist_membership"."id"')
    assert "otp_totp_totpdevice" in device_query and "otp_static_staticdevice" in device_query
    # With a device the same answer sends the user to the code step.
    TOTPDevice.objects.create(user=alice, name="app", confirmed=True)
    assert client.get("/cases/")["Location"].startswith("/login/code/")


def test_each_kind_of_device_counts(alice):
    from django_otp.plugins.otp_static.models import StaticDevice

    from checklist.second_factor import has_device

    assert not has_device(alice)
    StaticDevice.objects.create(user=alice, name="codes", confirmed=False)
    assert not has_device(alice)  # not confirmed
    StaticDevice.objects.filter(user=alice).update(confirmed=True)
    assert has_device(alice)
    StaticDevice.objects.filter(user=alice).delete()
    TOTPDevice.objects.create(user=alice, name="app", confirmed=True)
    assert has_device(alice)


def test_an_admin_still_needs_one_when_the_practice_asks_none_of_physicians(adam, practice_a):
    services.practice_set_second_factor(practice=practice_a, for_physicians=False)
    response = logged_in(adam, verified=False).get("/cases/")
    assert response["Location"].startswith("/login/enrol/")


def test_an_admin_sets_the_practice_setting_and_a_physician_cannot(
    adam_client, alice_client, practice_a
):
    assert alice_client.post("/practice/second-factor/", {}).status_code == 403
    practice_a.refresh_from_db()
    assert practice_a.second_factor_for_physicians
    response = adam_client.post("/practice/second-factor/", {})  # the box unticked
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert not practice_a.second_factor_for_physicians
    [changed] = _events(practice_a, audit.SECOND_FACTOR_SETTING)
    assert changed.actor_name == "adam"
    assert changed.detail == {"second_factor_for_physicians": False}
    adam_client.post("/practice/second-factor/", {"second_factor_for_physicians": "on"})
    practice_a.refresh_from_db()
    assert practice_a.second_factor_for_physicians
    assert b"Physicians need a second factor" in adam_client.get("/accounts/").content


# --- the code step --------------------------------------------------------------------------


def test_a_user_with_a_device_gives_the_code_before_any_practice_page(alice, practice_a):
    device = otp_device(alice)
    client = logged_in(alice, verified=False)
    response = client.get("/cases/")
    assert response["Location"] == "/login/code/?next=%2Fcases%2F"

    response = client.post("/login/code/", {"code": "000000", "next": "/cases/"})
    assert response.status_code == 200
    assert b"This code is not correct" in response.content
    assert client.get("/cases/").status_code == 302
    [failed] = _events(practice_a, audit.OTP_FAILED)
    assert failed.actor_name == "alice" and failed.detail == {"step": "otp_verify"}

    assert client.get("/account/")["Location"] == "/login/code/?next=%2Faccount%2F"

    response = client.post("/login/code/", {"code": totp_code(device), "next": "/cases/"})
    assert response["Location"] == "/cases/"
    assert client.get("/cases/").status_code == 200
    assert client.get("/account/").status_code == 200


def test_the_code_step_returns_only_to_this_site(alice):
    device = otp_device(alice)
    client = logged_in(alice, verified=False)
    response = client.post(
        "/login/code/", {"code": totp_code(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/cases/"


# --- enrolment ------------------------------------------------------------------------------


def test_enrolment_shows_a_local_qr_code_and_the_key_then_ten_recovery_codes_once(adam, practice_a):
    client = logged_in(adam, verified=False)
    page = client.get("/login/enrol/?next=/accounts/").content.decode()
    assert 'src="data:image/svg+xml' in page  # rendered here: no external QR service
    device = TOTPDevice.objects.get(user=adam, confirmed=False)
    shown = re.search(r'data-testid="otp-secret">([A-Z2-7 ]+)<', page)
    assert shown is not None
    assert shown.group(1).replace(" ", "") in device.config_url
    # Reloading keeps the key the user may have scanned already.
    assert shown.group(1) in client.get("/login/enrol/").content.decode()

    response = client.post("/login/enrol/", {"code": "123456"})
    assert b"This code is not correct" in response.content
    assert len(_events(practice_a, audit.OTP_FAILED)) == 1

    response = client.post("/login/enrol/", {"code": totp_code(device), "next": "/accounts/"})
    assert response.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]+)</li>", response.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert len(_events(practice_a, audit.OTP_ENROLLED)) == 1
    assert client.get("/accounts/").status_code == 200
    # Once enrolled, the enrolment page offers no new key and no codes.
    assert client.get("/login/enrol/")["Location"] == "/cases/"


def test_a_recovery_code_works_once(alice, practice_a):
    device = services.second_factor_pending_device(user=alice)
    code = services.second_factor_confirm(device=device, count=10)[0]
    first = logged_in(alice, verified=False)
    assert first.post("/login/code/", {"code": code})["Location"] == "/cases/"
    assert first.get("/cases/").status_code == 200
    assert len(_events(practice_a, audit.OTP_RECOVERY_USED)) == 1
    assert StaticToken.objects.filter(device__user=alice).count() == 9

    second = logged_in(alice, verified=False)
    response = second.post("/login/code/", {"code": code})
    assert response.status_code == 200
    assert second.get("/cases/").status_code == 302
    assert len(_events(practice_a, audit.OTP_FAILED)) == 1


# --- re-authentication ----------------------------------------------------------------------


def test_an_export_needs_the_password_and_code_again_after_ten_minutes(adam, adam_client):
    assert adam_client.get("/audit/export.csv").status_code == 200  # the login just now
    session = adam_client.session
    session[REAUTH_SESSION_KEY] = time.time() - 11 * 60
    session.save()
    response = adam_client.get("/audit/export.csv")
    assert response["Location"] == "/reauth/?next=%2Faudit%2Fexport.csv"

    page = adam_client.get(response["Location"])
    assert b'name="password"' in page.content and b'name="code"' in page.content
    wrong = adam_client.post(
        "/reauth/", {"password": "wrong", "code": "000000", "next": "/audit/export.csv"}
    )
    assert wrong.status_code == 200
    assert len(_events(adam.memberships.get().practice, audit.REAUTH_REFUSED)) == 1
    response = adam_client.post(
        "/reauth/",
        {"password": PASSWORD, "code": totp_code(otp_device(adam)), "next": "/audit/export.csv"},
    )
    assert response["Location"] == "/audit/export.csv"
    assert adam_client.get("/audit/export.csv").status_code == 200


def test_guessing_the_password_again_counts_towards_the_lockout(adam, adam_client, settings):
    """Someone at an open session cannot guess the password at the re-authentication step
    without limit: wrong passwords there count like failed logins, and once locked even the
    right one is refused."""
    settings.AXES_FAILURE_LIMIT = 3
    before = adam_client.session.get(REAUTH_SESSION_KEY)
    for _ in range(3):
        adam_client.post("/reauth/", {"password": "a-wrong-guess-123", "code": "000000"})
    response = adam_client.post(
        "/reauth/", {"password": PASSWORD, "code": totp_code(otp_device(adam))}
    )
    assert response.status_code == 429  # the lockout page, as at the login
    assert adam_client.session.get(REAUTH_SESSION_KEY) == before


def test_account_management_needs_a_recent_reauthentication(adam, adam_client):
    membership = adam.memberships.get()
    session = adam_client.session
    session[REAUTH_SESSION_KEY] = time.time() - 11 * 60
    session.save()
    assert adam_client.get(f"/accounts/{membership.pk}/")["Location"].startswith("/reauth/")
    assert adam_client.get("/accounts/new/")["Location"].startswith("/reauth/")


def test_signing_asks_for_the_code_too_when_the_last_one_is_older_than_ten_minutes(
    alice, alice_client, case, practice_a
):
    make_signable(alice_client, case)
    note = create_note(alice_client, case)
    page = alice_client.get(f"/notes/{note}/sign/").content.decode()
    assert 'name="code"' not in page  # the code of the login a moment ago counts
    session = alice_client.session
    session[REAUTH_SESSION_KEY] = time.time() - 11 * 60
    session.save()
    page = alice_client.get(f"/notes/{note}/sign/").content.decode()
    assert 'name="code"' in page

    response = sign_note(alice_client, note)  # the password alone
    assert response.status_code == 200
    version = BoardNoteVersion.objects.get(note_id=note)
    assert version.state != NoteState.SIGNED
    data = {
        "password": PASSWORD,
        "revision": version.revision,
        "case_version": version.note.case.version,
    }
    response = alice_client.post(f"/notes/{note}/sign/", {**data, "code": "000000"})
    assert b"This code is not correct" in response.content
    assert len(_events(practice_a, audit.OTP_FAILED)) == 1
    code = totp_code(otp_device(alice))
    response = alice_client.post(f"/notes/{note}/sign/", {**data, "code": code})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.state == NoteState.SIGNED


# --- a lost device --------------------------------------------------------------------------


def test_another_admin_removes_a_users_devices_and_they_enrol_again(adam, anna, alice, practice_a):
    alice_client = logged_in(alice)  # verified with her device
    anna_client = logged_in(anna)
    membership = alice.memberships.get()
    page = anna_client.get(f"/accounts/{membership.pk}/").content.decode()
    assert "Remove the second factor" in page

    response = anna_client.post(f"/accounts/{membership.pk}/second-factor/remove/")
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    [removed] = _events(practice_a, audit.OTP_REMOVED)
    assert removed.actor_name == "anna" and removed.row_id == str(alice.pk)
    # Her session loses the verified state: she enrols again.
    assert alice_client.get("/cases/")["Location"].startswith("/login/enrol/")


def test_an_admin_cannot_remove_their_own_second_factor(adam, practice_a):
    client = logged_in(adam)
    membership = adam.memberships.get()
    assert client.post(f"/accounts/{membership.pk}/second-factor/remove/").status_code == 404
    assert TOTPDevice.objects.filter(user=adam).exists()
    page = client.get(f"/accounts/{membership.pk}/").content.decode()
    assert "Remove the second factor" not in page


def test_an_account_of_another_practice_too_keeps_its_second_factor(anna, carol, practice_a):
    """carol also belongs to practice B, where anna is no admin: anna cannot remove the device
    that guards carol in B (nor through a deactivated membership)."""
    otp_device(carol)
    membership = carol.memberships.get(practice=practice_a)
    client = logged_in(anna)
    response = client.post(f"/accounts/{membership.pk}/second-factor/remove/", follow=True)
    assert "only an admin of each of its practices" in response.content.decode()
    assert TOTPDevice.objects.filter(user=carol).exists()
    assert not _events(practice_a, audit.OTP_REMOVED)
    Membership.objects.filter(user=carol, practice=practice_a).update(active=False)
    assert client.post(f"/accounts/{membership.pk}/second-factor/remove/").status_code == 404
    assert TOTPDevice.objects.filter(user=carol).exists()


def test_an_outsider_admin_gets_404(olga, alice, practice_a):
    otp_device(alice)
    membership = alice.memberships.get()
    response = logged_in(olga).post(f"/accounts/{membership.pk}/second-factor/remove/")
    assert response.status_code == 404
    assert TOTPDevice.objects.filter(user=alice).exists()
    assert not _events(practice_a, audit.OTP_REMOVED)


def test_the_practice_column_is_there_for_new_practices(db):
    practice = Practice.objects.create(name="New practice")
    assert practice.second_factor_for_physicians


def test_the_demo_admin_enrols_and_the_demo_physician_needs_no_second_factor(db, capsys):
    call_command("load_demo")
    assert "sets up a second factor at the first login" in capsys.readouterr().out
    physician = get_user_model().objects.get(username="demo.physician")
    admin = get_user_model().objects.get(username="demo.admin")
    assert logged_in(physician, verified=False).get("/cases/").status_code == 200
    assert logged_in(admin, verified=False).get("/cases/")["Location"].startswith("/login/enrol/")
