"""Least privilege: the serving role owns nothing, cannot touch the trail beyond reading it,
cannot disable triggers, and still serves every page."""

from __future__ import annotations

import psycopg
import psycopg.conninfo
import pytest
from django.db import connection

from checklist import db_roles
from checklist.models import AuditEvent, Case, Practice
from tests.factories import logged_in
from tests.urls_table import PROTECTED, url_of


def _conninfo(user: str) -> str:
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        dbname=params["dbname"], host=params["host"], port=params["port"], user=user
    )


@pytest.fixture(scope="module")
def roles(django_db_setup, django_db_blocker):
    """The roles as `manage.py db_roles` leaves them, committed in this worker's test database
    (the serving role's own connection must see them)."""
    with django_db_blocker.unblock():
        superuser = connection.get_connection_params()["user"]
        with psycopg.connect(_conninfo(superuser), autocommit=True) as conn:
            db_roles.apply(conn.cursor())


@pytest.fixture
def as_app(roles, transactional_db):
    with psycopg.connect(_conninfo(db_roles.APP)) as conn:
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO checklist_auditevent (practice_id, seq, prev_hash, hash, ts, kind, op)"
        " VALUES (999, 1, '', '', now(), 'change', 'INSERT')",
        "UPDATE checklist_auditevent SET op = 'x'",
        "DELETE FROM checklist_auditevent",
        "TRUNCATE checklist_auditevent",
        "ALTER TABLE checklist_auditevent DISABLE TRIGGER USER",
        "ALTER TABLE checklist_auditevent DISABLE TRIGGER audit_append_only",
        "ALTER TABLE checklist_case DISABLE TRIGGER USER",
        "TRUNCATE checklist_case CASCADE",
        "SET session_replication_role = replica",
        "CREATE TABLE checklist_sneaky (x int)",
        "CREATE TEMP TABLE checklist_auditevent (LIKE public.checklist_auditevent)",
        # A recorded verification run cannot be turned from failed into passed, or removed.
        "UPDATE checklist_auditverification SET ok = true",
        "DELETE FROM checklist_auditverification",
        "TRUNCATE checklist_auditverification",
    ],
)
def test_the_serving_role_is_refused(as_app, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute(statement)


def test_the_serving_role_owns_nothing_and_reads_the_trail(as_app):
    owned = as_app.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles"
        " WHERE rolname = current_user)"
    ).fetchone()
    assert owned == (0,)
    assert (
        as_app.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        is False
    )
    as_app.execute("SELECT count(*) FROM checklist_auditevent")


def test_its_writes_are_audited_through_the_owners_functions(roles, db):
    """A case written as the serving role: the capture triggers append to the
    trail, which the role cannot write itself (SECURITY DEFINER functions of the owner)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {db_roles.APP}")
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (db_roles.APP,)
    try:
        practice = Practice.objects.create(name="Roles")
        case = Case.objects.create(practice=practice, label="R-1", **Case.MINIMAL)
        Case.objects.filter(pk=case.pk).update(label="R-2")
        events = AuditEvent.objects.filter(practice_id=practice.pk).order_by("seq")
        assert [(e.table_name, e.op) for e in events] == [
            ("checklist_case", "INSERT"),
            ("checklist_case", "UPDATE"),
        ]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_new_tables_of_the_owner_are_covered(roles, db):
    """`ALTER DEFAULT PRIVILEGES`: a table the owner creates later is granted to the serving
    role without running db_roles again (rolled back with the test)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {db_roles.OWNER}")
        cursor.execute("CREATE TABLE checklist_later (x int)")
        cursor.execute("RESET ROLE")
        cursor.execute(
            "SELECT has_table_privilege(%s, 'checklist_later', 'INSERT'),"
            " has_table_privilege(%s, 'checklist_later', 'TRUNCATE')",
            [db_roles.APP, db_roles.APP],
        )
        assert cursor.fetchone() == (True, False)


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_every_page_works_as_the_serving_role(roles, practice_a, alice, adam, name):
    url = url_of(name, practice_a, alice)
    clients = [logged_in(alice), logged_in(adam)]
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {db_roles.APP}")
    try:
        for client in clients:
            for method in (client.get, client.post):
                response = method(url)
                assert response.status_code < 500, (name, response.status_code)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_a_temporary_table_cannot_take_the_trails_place(roles, transactional_db):
    """The audit functions name `checklist_auditevent` unqualified. Whoever may create
    temporary tables (here the superuser; the serving role may not) must not be able to shadow
    the trail with one: the change still lands in the real trail."""
    practice = Practice.objects.create(name="Shadow")
    case = Case.objects.create(practice=practice, label="S-1", **Case.MINIMAL)
    before = AuditEvent.objects.filter(practice_id=practice.pk).count()
    superuser = connection.get_connection_params()["user"]
    with psycopg.connect(_conninfo(superuser)) as conn:
        conn.execute("CREATE TEMP TABLE checklist_auditevent (LIKE public.checklist_auditevent)")
        conn.execute("UPDATE checklist_case SET label = 'S-2' WHERE id = %s", [case.pk])
        shadowed = conn.execute("SELECT count(*) FROM pg_temp.checklist_auditevent").fetchone()
        conn.commit()
    assert shadowed == (0,)
    assert AuditEvent.objects.filter(practice_id=practice.pk).count() == before + 1
