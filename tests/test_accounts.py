"""Accounts: logging in and out, the language, switching the active practice, and the practice
admin's account pages (create with a set-password link, roles, deactivation)."""

import re

from django.contrib.auth import get_user_model
from django.db.models import Max, Q

from checklist.models import AuditEvent, Membership
from tests.factories import PASSWORD, logged_in

# --- logging in and out -------------------------------------------------------------------


def test_it_logs_a_physician_in_to_the_case_list(client, alice, practice_a):
    # The password alone: this practice asks no second factor of its physicians
    # (tests/test_second_factor.py has the logins with one).
    practice_a.second_factor_for_physicians = False
    practice_a.save()
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/cases/"
    assert b"Practice A" in response.content
    assert b"This practice has no cases yet." in response.content


def test_it_shows_a_clear_error_for_a_wrong_password(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"The user name or password is not correct" in response.content
    assert "_auth_user_id" not in client.session


def test_it_refuses_a_deactivated_account(client, alice):
    alice.is_active = False
    alice.save()
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_shows_a_clear_page_to_a_user_without_active_membership(client, alice):
    Membership.objects.filter(user=alice).update(active=False)
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.status_code == 403
    assert b"no active membership" in response.content


def test_it_logs_out_with_post(alice_client):
    response = alice_client.post("/logout/")
    assert response.status_code == 302
    assert alice_client.get("/cases/").status_code == 302


def test_it_records_login_success_failure_and_logout(client, alice, practice_a):
    # The trail outlives flushes: the chain of no practice may hold earlier tests' events.
    system_head = AuditEvent.objects.filter(practice_id=0).aggregate(m=Max("seq"))["m"] or 0
    client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "nobody", "password": "wrong"})
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    client.post("/logout/")
    events = list(
        AuditEvent.objects.filter(kind="access")
        .filter(Q(practice_id=practice_a.pk) | Q(practice_id=0, seq__gt=system_head))
        .order_by("ts")
    )
    ops = [(e.practice_id, e.op) for e in events]
    assert ops == [
        (practice_a.pk, "login_failure"),
        (0, "login_failure"),  # an unknown user name goes to the chain of no practice
        (practice_a.pk, "login_success"),
        (practice_a.pk, "logout"),
    ]
    assert events[1].detail == {"username": "nobody"}
    assert all("wrong" not in str(e.detail) for e in events)  # never a password
    assert events[2].actor_name == "alice"


def test_it_shows_german_when_asked(alice_client):
    alice_client.post("/i18n/setlang/", {"language": "de", "next": "/cases/"})
    response = alice_client.get("/cases/")
    assert "Fälle".encode() in response.content
    assert response["Content-Language"] == "de"


# --- the active practice ------------------------------------------------------------------


def test_it_switches_the_active_practice(carol, practice_a, practice_b):
    client = logged_in(carol)
    assert b"Practice A</small>" in client.get("/cases/").content
    response = client.post("/practice/switch/", {"practice": practice_b.pk})
    assert response.status_code == 302
    assert b"Practice B</small>" in client.get("/cases/").content


def test_it_refuses_a_practice_that_is_not_yours(alice, practice_a, practice_b):
    client = logged_in(alice)
    response = client.post("/practice/switch/", {"practice": practice_b.pk})
    assert response.status_code == 404
    assert b"Practice A</small>" in client.get("/cases/").content
    assert AuditEvent.objects.filter(op="permission_denied", practice_id=practice_a.pk).exists()


def test_it_ignores_a_forged_practice_in_the_session(alice, practice_a, practice_b):
    client = logged_in(alice)
    session = client.session
    session["active_practice_id"] = practice_b.pk
    session.save()
    assert b"Practice A</small>" in client.get("/cases/").content


def test_it_answers_404_for_garbage(alice_client):
    assert alice_client.post("/practice/switch/", {"practice": "x"}).status_code == 404


# --- the account pages --------------------------------------------------------------------


def test_it_lists_only_the_practice_accounts(adam_client, alice, bob):
    response = adam_client.get("/accounts/")
    assert response.status_code == 200
    assert b"alice" in response.content
    # Whole words only: a random CSRF token may contain the letters "bob".
    assert not re.search(rb"\bbob\b", response.content)


def test_it_refuses_the_account_pages_to_a_physician(alice_client, practice_a):
    assert alice_client.get("/accounts/").status_code == 403
    assert alice_client.get("/accounts/new/").status_code == 403
    denials = AuditEvent.objects.filter(practice_id=practice_a.pk, op="permission_denied")
    assert [d.actor_name for d in denials] == ["alice", "alice"]


def test_it_creates_an_account_and_hands_over_a_working_link(adam_client, practice_a, client):
    response = adam_client.post(
        "/accounts/new/", {"username": "dora", "first_name": "Dora", "role": "physician"}
    )
    assert response.status_code == 200
    match = re.search(rb"http://testserver(/set-password/[^<\"]+)", response.content)
    assert match, "the page shows the set-password link"
    link = match.group(1)
    dora = get_user_model().objects.get(username="dora")
    assert not dora.has_usable_password()
    assert Membership.objects.get(user=dora).practice == practice_a

    form_page = client.get(link.decode(), follow=True)
    assert b"new_password1" in form_page.content
    new_password = "a-Long-enough-pass-77"
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
        follow=True,
    )
    assert b"Your password is set" in done.content
    login = client.post("/login/", {"username": "dora", "password": new_password})
    assert login.status_code == 302
    # The link is one-time: after use it no longer works.
    assert b"no longer valid" in client.get(link.decode(), follow=True).content


def test_it_keeps_the_form_and_explains_a_taken_user_name(adam_client, alice):
    response = adam_client.post(
        "/accounts/new/", {"username": "ALICE", "first_name": "Other", "role": "physician"}
    )
    assert response.status_code == 200
    assert b"already taken" in response.content
    assert b'value="Other"' in response.content
    assert get_user_model().objects.filter(username__iexact="alice").count() == 1


def test_it_deactivates_and_never_deletes(adam_client, alice, client):
    membership = Membership.objects.get(user=alice)
    response = adam_client.post(f"/accounts/{membership.pk}/", {"role": "physician"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.active is False
    assert get_user_model().objects.filter(pk=alice.pk).exists()
    change = AuditEvent.objects.filter(
        practice_id=membership.practice_id, table_name="checklist_membership", op="UPDATE"
    ).get()
    assert change.old_values == {"active": True}
    assert change.new_values == {"active": False}
    assert change.actor_name == "adam"
    assert change.path == f"/accounts/{membership.pk}/"


def test_it_sets_roles(adam_client, alice):
    membership = Membership.objects.get(user=alice)
    adam_client.post(f"/accounts/{membership.pk}/", {"role": "practice_admin", "active": "on"})
    membership.refresh_from_db()
    assert membership.role == "practice_admin"


def test_it_keeps_the_last_active_admin(adam_client, adam):
    membership = Membership.objects.get(user=adam)
    response = adam_client.post(f"/accounts/{membership.pk}/", {"role": "physician"})
    assert response.status_code == 200
    assert b"at least one active practice admin" in response.content
    membership.refresh_from_db()
    assert membership.active and membership.role == "practice_admin"


def test_it_answers_404_for_another_practice_membership(adam_client, bob):
    membership = Membership.objects.get(user=bob)
    assert adam_client.get(f"/accounts/{membership.pk}/").status_code == 404
    assert adam_client.post(f"/accounts/{membership.pk}/link/").status_code == 404
    membership.refresh_from_db()
    assert membership.active


def test_the_link_is_also_mailed_when_mail_is_configured(adam_client, settings, mailoutbox):
    settings.EMAIL_CONFIGURED = True
    response = adam_client.post(
        "/accounts/new/",
        {"username": "erin", "email": "erin@example.org", "role": "physician"},
    )
    assert b"It was also sent by email." in response.content
    assert len(mailoutbox) == 1 and "/set-password/" in mailoutbox[0].body
    assert mailoutbox[0].to == ["erin@example.org"]


def test_no_link_for_an_account_that_has_a_password_or_another_practice(adam_client, alice, carol):
    for user in (alice, carol):  # alice has a password; carol is also in practice B
        membership = Membership.objects.get(user=user, practice__name="Practice A")
        response = adam_client.post(f"/accounts/{membership.pk}/link/", follow=True)
        assert b"a set-password link is not issued" in response.content
        assert b"/set-password/" not in response.content
