"""The trail cannot be emptied unnoticed: TRUNCATE is refused, flushes leave the trail alone,
and verification checks every practice, so one with records and no events is BROKEN.

Issue 11, section 2. The trail outlives flushes, so every test here reads its own practice.
"""

import pytest
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import DataError, InternalError, ProgrammingError, connection, transaction

from checklist import audit
from checklist.models import AuditEvent, AuditVerification, Case, Practice


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _truncate_bypassing_triggers():
    """What only a superuser can do: skip the triggers and empty the trail."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute("TRUNCATE checklist_auditevent")
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def practice_with_cases(db):
    practice = Practice.objects.create(name="Truncate practice")
    Case.objects.bulk_create(
        [Case(practice=practice, label=f"t{i}", **Case.MINIMAL) for i in range(3)]
    )
    return practice


def test_it_refuses_truncate_of_the_trail(practice_with_cases):
    before = AuditEvent.objects.filter(practice_id=practice_with_cases.pk).count()
    assert before == 3
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending foreign-key checks
    for statement in (
        "TRUNCATE checklist_auditevent",
        "TRUNCATE checklist_auditevent RESTART IDENTITY CASCADE",
        "TRUNCATE checklist_case, checklist_auditevent CASCADE",
    ):
        with (
            pytest.raises((InternalError, ProgrammingError), match="append-only"),
            transaction.atomic(),
        ):
            _sql(statement)
    assert AuditEvent.objects.filter(practice_id=practice_with_cases.pk).count() == before


def test_no_table_references_the_trail_so_no_cascade_reaches_it(practice_with_cases):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint"
            " WHERE confrelid = 'checklist_auditevent'::regclass AND contype = 'f'"
        )
        assert cursor.fetchall() == []
    # The widest cascade there is: every practice and all that hangs off it.
    with transaction.atomic():
        _sql("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending foreign-key checks
        _sql("TRUNCATE checklist_practice CASCADE")
        assert not Case.objects.exists()
        assert AuditEvent.objects.filter(practice_id=practice_with_cases.pk).count() == 3
        transaction.set_rollback(True)


def test_no_flush_lists_the_trail(db):
    """The test runner's flush (TransactionTestCase, transactional_db, live_server) and
    `manage.py flush` truncate the tables that Django lists as its own: the trail is not one."""
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    assert "checklist_case" in tables
    assert "checklist_auditevent" not in tables
    statements = sql_flush(no_style(), connection, reset_sequences=True, allow_cascade=True)
    assert statements and not any("checklist_auditevent" in s for s in statements)


@pytest.mark.django_db(transaction=True)
def test_manage_py_flush_works_and_leaves_the_trail():
    old = Practice.objects.create(name="Before the flush")
    Case.objects.create(practice=old, label="kept in the trail", **Case.MINIMAL)
    call_command("flush", interactive=False, verbosity=0)  # restarts the id sequences too
    assert not Practice.objects.exists()
    assert AuditEvent.objects.filter(practice_id=old.pk).count() == 1
    # A new practice does not take over the old practice's id, and with it its chain.
    new = Practice.objects.create(name="After the flush")
    assert new.pk > old.pk
    assert audit.verify_chain(old.pk).ok and audit.verify_chain(new.pk).events == 0


def test_audit_verify_reports_an_emptied_chain_as_broken(practice_with_cases, capsys):
    call_command("audit_verify", practice=practice_with_cases.pk, allow_no_checkpoint=True)
    assert "audit trail OK" in capsys.readouterr().out
    _truncate_bypassing_triggers()
    with pytest.raises(CommandError):
        call_command("audit_verify", allow_no_checkpoint=True)
    out = capsys.readouterr().out
    assert f"practice {practice_with_cases.pk}: BROKEN at seq 1 ({audit.EMPTY_CHAIN})" in out
    assert "audit trail OK" not in out
    run = AuditVerification.objects.filter(chain=practice_with_cases.pk).latest("ran_at")
    assert not run.ok and run.broken_at == 1


@pytest.mark.parametrize("table", ["membership", "catalogue"])
def test_any_practice_record_makes_an_empty_chain_broken(practice_a, alice, table):
    """Not only cases: memberships and the catalogue are practice records too."""
    if table == "membership":  # alice's membership is the practice's only record
        _sql("DELETE FROM checklist_category WHERE practice_id = %s", [practice_a.pk])
        _sql("DELETE FROM checklist_catalogueversion WHERE practice_id = %s", [practice_a.pk])
    else:  # the seeded catalogue is
        _sql("DELETE FROM checklist_membership WHERE practice_id = %s", [practice_a.pk])
    _truncate_bypassing_triggers()
    result = audit.verify_chain(practice_a.pk)
    assert (result.ok, result.broken_at, result.reason) == (False, 1, audit.EMPTY_CHAIN)


def test_a_practice_without_records_and_events_verifies(db):
    practice = Practice.objects.create(name="Nothing here yet")
    result = audit.verify_chain(practice.pk)
    assert result.ok and result.events == 0


def test_the_output_says_what_was_verified(practice_with_cases, capsys):
    other = Practice.objects.create(name="No chain yet")
    call_command("audit_verify", allow_no_checkpoint=True)
    out = capsys.readouterr().out
    assert f"practice {practice_with_cases.pk}: OK (3 events, head seq 3)" in out
    assert f"practice {other.pk}: OK (0 events, head seq 0)" in out  # listed though chainless
    assert "verified " in out and " practice(s), " in out
    assert "cannot be detected" in out and "audit_checkpoint" in out


def test_the_verification_page_shows_the_emptied_chain_as_broken(adam_client, practice_a):
    # The practice has its catalogue and adam's membership, and after this no events.
    _truncate_bypassing_triggers()
    adam_client.post("/audit/chain/")
    run = AuditVerification.objects.get(chain=practice_a.pk)
    assert (run.ok, run.broken_at, run.reason) == (False, 1, audit.EMPTY_CHAIN)
    html = adam_client.get("/audit/chain/").content.decode()
    assert f"broken at event 1 ({audit.EMPTY_CHAIN})" in html


# --- the chains' advisory-lock key (migration 0003) ---------------------------------------


def test_the_lock_key_is_named_in_the_sql(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'audit_append_rows'")
        [(source,)] = cursor.fetchall()
    assert "c_lock_class CONSTANT integer := 1096108372" in source
    assert "pg_advisory_xact_lock(c_lock_class, v_practice::integer)" in source
    assert (1096108372).to_bytes(4, "big") == b"AUIT"  # where the number comes from


def test_a_practice_id_beyond_the_integer_range_raises_rather_than_sharing_a_lock(db):
    with pytest.raises(DataError, match="out of range"), transaction.atomic():
        _sql(
            "SELECT audit_access(%s, '', 'probe', NULL, NULL, '{}'::jsonb, '{}'::jsonb)",
            [2**31],
        )
