"""The audit context is set per transaction: a connection that dies after a save committed does
not turn the save into an error page, and no request leaves its user on a pooled connection.

Issue 11, section 5. The trail outlives flushes, so every test here reads its own practice.
"""

import inspect
import re

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from checklist import services
from checklist.models import AuditEvent, Case
from tests.factories import logged_in, set_metastasis_status, verify_session


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _context_on_the_connection() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('audit.context', true)")
        return cursor.fetchone()[0]


def _metastasis_status_events(case):
    return AuditEvent.objects.filter(
        practice_id=case.practice_id,
        table_name="checklist_case",
        row_id=str(case.pk),
        op="UPDATE",
        new_values__has_key="metastasis_status",
    ).order_by("seq")


@pytest.mark.django_db(transaction=True)
def test_a_save_committed_before_the_connection_dies_gets_its_redirect(
    alice_client, case, monkeypatch
):
    alice_client.get("/cases/")  # the first request stores the active practice in the session
    victim = _backend_pid()
    saves = services.case_update

    def save_then_lose_the_connection(**kwargs):
        saved = saves(**kwargs)  # committed
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:  # waits until the backend is gone
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [victim])
        finally:
            other.close()
        return saved

    monkeypatch.setattr(services, "case_update", save_then_lose_the_connection)
    response = set_metastasis_status(alice_client, case, "not_assessed")
    assert response.status_code == 302
    assert response["Location"] == f"/cases/{case.pk}/"

    connection.close()  # the dead one; the next query opens a new connection
    assert _backend_pid() != victim
    case.refresh_from_db()
    assert case.metastasis_status == "not_assessed"
    [event] = _metastasis_status_events(case)
    assert event.actor_name == "alice" and event.path == f"/cases/{case.pk}/metastasis-status/"


@pytest.mark.django_db(transaction=True)
def test_no_request_sees_another_requests_context_on_one_pooled_connection(
    case, alice, carol, monkeypatch
):
    # A persistent connection, kept across requests (the test client never closes it either).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    alice_client, carol_client = logged_in(alice), logged_in(carol)
    carol_client.get("/cases/")  # carol's first request picks Practice A, as alice's does
    pid = _backend_pid()

    set_metastasis_status(alice_client, case, "not_assessed")
    assert _backend_pid() == pid
    assert _context_on_the_connection() in (None, "")  # nothing of alice's request is left
    # A write outside any request on the same connection: no actor.
    Case.objects.filter(pk=case.pk).update(metastasis_status="not_applicable")
    set_metastasis_status(carol_client, case, "present")
    assert _backend_pid() == pid
    assert _context_on_the_connection() in (None, "")

    events = list(_metastasis_status_events(case))
    assert [(e.new_values["metastasis_status"], e.actor_name) for e in events] == [
        ("not_assessed", "alice"),
        ("not_applicable", None),
        ("present", "carol"),
    ]
    assert events[0].request_id != events[2].request_id


@pytest.mark.django_db(transaction=True)
def test_no_request_sees_another_requests_context_through_a_one_connection_pool(
    case, alice, carol, monkeypatch
):
    """Django's psycopg pool (settings: `pool` in OPTIONS), shrunk to one connection: every
    request and every query between them takes the same server process."""
    connection.close()
    connection.close_pool()  # type: ignore[attr-defined]
    options = {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1}}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    try:
        alice_client, carol_client = logged_in(alice), logged_in(carol)
        carol_client.get("/cases/")
        pid = _backend_pid()
        connection.close()  # back to the pool, as at the end of a request
        pool = connection.pool  # type: ignore[attr-defined]
        assert pool is not None and pool.max_size == 1

        set_metastasis_status(alice_client, case, "not_assessed")
        assert _backend_pid() == pid  # the pool's one connection
        assert _context_on_the_connection() in (None, "")
        connection.close()
        set_metastasis_status(carol_client, case, "present")
        assert _backend_pid() == pid
        assert _context_on_the_connection() in (None, "")
        connection.close()

        events = list(_metastasis_status_events(case))
        assert [(e.new_values["metastasis_status"], e.actor_name) for e in events] == [
            ("not_assessed", "alice"),
            ("present", "carol"),
        ]
        assert events[0].request_id != events[1].request_id
    finally:
        connection.close()
        connection.close_pool()  # type: ignore[attr-defined]  # the configured pool again


def test_a_request_that_only_reads_sets_no_audit_context(alice_client, case):
    alice_client.get("/cases/")
    with CaptureQueriesContext(connection) as queries:
        assert alice_client.get(f"/cases/{case.pk}/").status_code == 200
    assert queries.captured_queries  # the page was read from the database
    assert not [q for q in queries.captured_queries if "audit.context" in q["sql"]]


def test_a_write_sets_the_context_once_for_its_own_transaction(alice_client, case):
    alice_client.get("/cases/")
    with CaptureQueriesContext(connection) as queries:
        set_metastasis_status(alice_client, case, "not_assessed")
    settings = [q["sql"] for q in queries.captured_queries if "audit.context" in q["sql"]]
    assert len(settings) == 1
    assert "alice" in settings[0] and settings[0].endswith("true)")  # transaction-local


def test_every_service_opens_its_transaction_through_audit_atomic():
    """A service on plain `transaction.atomic` would write with no actor."""
    source = inspect.getsource(services)
    assert "@audit.atomic" in source
    assert not re.search(r"@transaction\.atomic|transaction\.atomic\(", source)


# --- the error page ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "says"),
    [
        ("en", "check it before saving again"),
        ("de", "prüfen Sie ihn, bevor Sie erneut speichern"),
    ],
)
def test_the_error_page_never_claims_that_nothing_was_saved(
    alice, case, monkeypatch, language, says
):
    def fails(**kwargs):
        raise RuntimeError("after the commit, for all the server knows")

    monkeypatch.setattr(services, "case_update", fails)
    client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    verify_session(client, alice)
    response = set_metastasis_status(client, case, "not_assessed")
    assert response.status_code == 500
    html = response.content.decode()
    assert says in html
    assert "Nothing was saved" not in html and "nichts gespeichert" not in html.lower()
