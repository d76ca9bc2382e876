from django.db.models import Max, Q

from checklist.models import AuditEvent, Membership
from tests.conftest import PASSWORD


def test_it_logs_a_physician_in_to_the_case_list(client, alice):
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
