from unittest import mock

from django.db import OperationalError


def test_it_answers_ok_after_a_database_round_trip(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_answers_503_when_the_database_is_down(client, db):
    down = OperationalError("down")
    with mock.patch("checklist.views.system.connection.cursor", side_effect=down):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "database unavailable"


def test_it_needs_no_login(client, db):
    assert client.get("/healthz").status_code == 200
