import re

from django.contrib.auth import get_user_model

from checklist.models import AuditEvent, Membership


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
