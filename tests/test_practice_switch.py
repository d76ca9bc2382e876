from checklist.models import AuditEvent
from tests.conftest import logged_in


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
