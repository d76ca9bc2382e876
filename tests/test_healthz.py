from unittest import mock

import pytest
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


def test_it_reports_no_replica_when_none_is_configured(client, db, settings):
    if "replica" in settings.DATABASES:
        pytest.skip("a replica is configured (tests/test_routers.py covers it)")
    assert "replica" not in client.get("/healthz").json()


def test_a_replica_that_is_away_is_reported_but_keeps_the_server_in(client, db, monkeypatch):
    from checklist import routers
    from checklist.views import system

    class Away:
        def cursor(self):
            raise OperationalError("replica down")

    monkeypatch.setattr(routers, "replica_configured", lambda: True)
    monkeypatch.setattr(system, "replica_configured", lambda: True)
    monkeypatch.setattr(system, "connections", {"replica": Away()})
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "replica": {"status": "unavailable"}}


def test_ping_answers_without_the_database_even_when_logged_in(
    alice_client, django_assert_num_queries
):
    # No query at all: not the session, not the user, not the practice.
    with django_assert_num_queries(0):
        response = alice_client.get("/ping")
    assert response.status_code == 200
    assert response.content == b"pong"


def test_healthz_reads_nothing_but_the_database_check_when_logged_in(
    alice_client, django_assert_num_queries
):
    # One query: SELECT 1 (no session, user or practice).
    with django_assert_num_queries(1):
        assert alice_client.get("/healthz").status_code == 200
