"""Read routing (checklist/routers.py): the lag-tolerant pages read from the replica, every
write and every other read stays on the primary, and a browser that has just written stays
on the primary for its next reads.

The first tests need no second database. The rest need both `DATABASE_URL` and
`DATABASE_REPLICA_URL` (`.ci/run` sets both, pointing at one server: in tests the replica
alias mirrors the primary) and are skipped otherwise; `make cluster` exercises a real
streaming replica.
"""

import time

import pytest
from django.db import OperationalError, connections
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from checklist import routers
from checklist.models import AuditEvent, Membership, UserSession
from tests.factories import set_metastasis_status


@pytest.fixture
def replica_named(monkeypatch):
    monkeypatch.setattr(routers, "replica_configured", lambda: True)


def _reads(request) -> bool:
    return routers.reads_may_use_replica(request)


def test_only_the_lag_tolerant_pages_may_read_from_the_replica(replica_named):
    get = RequestFactory().get
    assert _reads(get("/audit/"))
    assert _reads(get("/audit/export.csv"))
    assert _reads(get("/audit/reports/"))
    assert _reads(get("/cases/7/history/"))
    assert not _reads(get("/cases/7/"))  # the case page: the user edits from it
    assert not _reads(get("/cases/"))
    assert not _reads(get("/cases/7/checklist/"))
    assert not _reads(get("/no-such-page/"))


def test_a_write_request_never_reads_from_the_replica(replica_named):
    assert not _reads(RequestFactory().post("/audit/"))


def test_a_browser_that_has_just_written_reads_from_the_primary(replica_named):
    request = RequestFactory().get("/audit/")
    request.COOKIES[routers.STICKY_COOKIE] = f"{time.time() + 5:.0f}"
    assert not _reads(request)
    request.COOKIES[routers.STICKY_COOKIE] = f"{time.time() - 1:.0f}"  # expired
    assert _reads(request)
    request.COOKIES[routers.STICKY_COOKIE] = "garbage"
    assert _reads(request)


def test_without_a_replica_everything_stays_on_the_primary():
    assert not routers.replica_configured() or "replica" in connections.settings
    if not routers.replica_configured():
        assert not _reads(RequestFactory().get("/audit/"))


def test_who_the_user_is_and_what_they_may_see_is_read_on_the_primary():
    router = routers.ReplicaRouter()
    token = routers._replica_reads.set(True)
    try:
        assert router.db_for_read(AuditEvent) == routers.REPLICA
        assert router.db_for_read(Membership) == routers.PRIMARY
        assert router.db_for_read(UserSession) == routers.PRIMARY
        from django.contrib.auth.models import User

        assert router.db_for_read(User) == routers.PRIMARY
        assert router.db_for_write(AuditEvent) == routers.PRIMARY
    finally:
        routers._replica_reads.reset(token)
    assert router.db_for_read(AuditEvent) == routers.PRIMARY  # outside such a request
    assert router.allow_migrate("replica", "checklist") is False
    assert router.allow_migrate("default", "checklist") is True


def test_a_replica_that_is_away_sends_its_pages_to_the_primary_for_a_while(monkeypatch):
    tries = []

    class Away:
        def ensure_connection(self):
            tries.append(1)
            raise OperationalError("replica down")

    monkeypatch.setattr(routers, "connections", {"replica": Away()})
    monkeypatch.setattr(routers, "_replica_down_until", 0.0)
    assert not routers.replica_usable()
    assert not routers.replica_usable()  # not tried again at once
    assert len(tries) == 1
    monkeypatch.setattr(routers, "_replica_down_until", 0.0)  # the retry time has passed
    assert not routers.replica_usable()
    assert len(tries) == 2


# --- with both URLs set -------------------------------------------------------------------

both = pytest.mark.skipif(
    "replica" not in connections.settings,
    reason="needs DATABASE_URL and DATABASE_REPLICA_URL (.ci/run sets both)",
)
on_both = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture(scope="session", autouse=True)
def _replica_pool_closed_before_the_test_database_goes(django_db_setup):
    """Django closes the primary's pool before it drops the test database, not the pool of
    the mirroring replica alias, whose connections would keep the database in use."""
    yield
    if "replica" in connections.settings:
        connections["replica"].close()
        connections["replica"].close_pool()  # type: ignore[attr-defined]


def _sql(context) -> str:
    return "\n".join(q["sql"] for q in context.captured_queries)


@both
@on_both
def test_the_trail_reads_its_events_from_the_replica(adam_client, alice_client, case):
    alice_client.get(f"/cases/{case.pk}/")  # an event to show
    with (
        CaptureQueriesContext(connections["replica"]) as replica,
        CaptureQueriesContext(connections["default"]) as primary,
    ):
        response = adam_client.get("/audit/")
    assert response.status_code == 200
    assert "checklist_auditevent" in _sql(replica)
    assert "checklist_auditevent" not in _sql(primary)
    # The session and the membership are read on the primary.
    assert "checklist_usersession" in _sql(primary)
    assert "checklist_membership" in _sql(primary)
    assert "checklist_usersession" not in _sql(replica)


@both
@on_both
def test_a_write_goes_to_the_primary_and_its_browser_stays_there(alice_client, case):
    with CaptureQueriesContext(connections["replica"]) as replica:
        response = set_metastasis_status(alice_client, case, "not_assessed")
    assert response.status_code == 302
    assert not replica.captured_queries
    assert routers.STICKY_COOKIE in response.cookies
    assert 0 < int(response.cookies[routers.STICKY_COOKIE]["max-age"]) <= 60
    # The page it is redirected to, and the history right after: all on the primary.
    with CaptureQueriesContext(connections["replica"]) as replica:
        assert alice_client.get(f"/cases/{case.pk}/history/").status_code == 200
    assert not replica.captured_queries


@both
@on_both
def test_the_history_reads_from_the_replica_when_nothing_was_written(alice_client, case):
    with CaptureQueriesContext(connections["replica"]) as replica:
        response = alice_client.get(f"/cases/{case.pk}/history/")
    assert response.status_code == 200
    assert "checklist_auditevent" in _sql(replica)
    assert routers.STICKY_COOKIE not in response.cookies


@both
@on_both
def test_the_trail_reads_from_the_primary_while_the_replica_is_away(
    adam_client, alice_client, case, monkeypatch
):
    alice_client.get(f"/cases/{case.pk}/")
    monkeypatch.setattr(routers, "replica_usable", lambda: False)
    with CaptureQueriesContext(connections["default"]) as primary:
        assert adam_client.get("/audit/").status_code == 200
    assert "checklist_auditevent" in _sql(primary)


@both
@on_both
def test_healthz_reports_the_replica(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    # In tests the replica alias is the primary itself: no standby, no lag.
    assert body["replica"]["status"] in ("ok", "not a standby")
    assert body["replica"]["lag_seconds"] >= 0
