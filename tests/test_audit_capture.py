"""Change capture by database triggers: through the UI, the ORM's bulk update and raw SQL."""

import pytest
from django.db import connection, transaction
from django.db.utils import InternalError, ProgrammingError

from checklist import audit
from checklist.models import AuditEvent, Case, Membership


def _changes(*practices, table="checklist_case"):
    # The trail outlives flushes (earlier transactional tests' events stay): read the test's
    # own practices only.
    events = AuditEvent.objects.filter(
        practice_id__in=[p.pk for p in practices], kind="change", table_name=table
    )
    return list(events.order_by("seq"))


def test_it_captures_a_change_made_through_the_ui(adam_client, adam, alice, practice_a):
    membership = Membership.objects.get(user=alice)
    adam_client.post(f"/accounts/{membership.pk}/", {"role": "practice_admin", "active": "on"})
    [event] = [e for e in _changes(practice_a, table="checklist_membership") if e.op == "UPDATE"]
    assert (event.practice_id, event.actor_id, event.actor_name) == (
        practice_a.pk,
        adam.pk,
        "adam",
    )
    assert event.old_values == {"role": "physician"}
    assert event.new_values == {"role": "practice_admin"}
    assert event.request_id and event.path == f"/accounts/{membership.pk}/"


def test_it_captures_a_bulk_update_with_user_and_practice(alice, practice_a, practice_b):
    Case.objects.bulk_create(
        [Case(practice=practice_a, label=f"a{i}", **Case.MINIMAL) for i in range(3)]
    )
    Case.objects.create(practice=practice_b, label="b0", **Case.MINIMAL)
    with audit.audit_context(user=alice, path="bulk"):
        Case.objects.all().update(version=7)
    updates = [e for e in _changes(practice_a, practice_b) if e.op == "UPDATE"]
    assert sorted(e.practice_id for e in updates) == [practice_a.pk] * 3 + [practice_b.pk]
    assert {e.actor_name for e in updates} == {"alice"}
    assert all(e.new_values == {"version": 7} for e in updates)


def test_it_captures_raw_sql_and_deletes_with_the_whole_row(alice, practice_a):
    case = Case.objects.create(practice=practice_a, label="raw", **Case.MINIMAL)
    with audit.audit_context(user=alice, path="raw"), connection.cursor() as cursor:
        cursor.execute("UPDATE checklist_case SET label = 'raw2' WHERE id = %s", [case.pk])
        cursor.execute("DELETE FROM checklist_case WHERE id = %s", [case.pk])
    ops = [(e.op, e.actor_name) for e in _changes(practice_a)]
    assert ops == [("INSERT", None), ("UPDATE", "alice"), ("DELETE", "alice")]
    deleted = _changes(practice_a)[-1]
    assert deleted.old_values["label"] == "raw2"
    assert deleted.old_values["practice_id"] == practice_a.pk


def test_the_context_is_reset_after_a_request(alice_client, practice_a):
    alice_client.get("/cases/")
    # The same connection, outside any request: no user may be left on it.
    Case.objects.create(practice=practice_a, label="after", **Case.MINIMAL)
    assert _changes(practice_a)[-1].actor_id is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('audit.context', true)")
        assert cursor.fetchone()[0] in ("", None)


def test_the_trail_refuses_update_and_delete_even_with_pgtrigger_ignore(practice_a):
    Case.objects.create(practice=practice_a, label="x", **Case.MINIMAL)
    before = AuditEvent.objects.count()
    for statement in (
        "UPDATE checklist_auditevent SET op = 'forged'",
        "DELETE FROM checklist_auditevent",
    ):
        with (
            pytest.raises((InternalError, ProgrammingError)),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "SELECT set_config('pgtrigger.ignore',"
                " '{audit_append_only,checklist_auditevent:audit_append_only}', true)"
            )
            cursor.execute(statement)
    assert AuditEvent.objects.filter(op="forged").count() == 0
    assert AuditEvent.objects.count() == before


def test_pgtrigger_ignore_does_not_switch_off_the_capture(practice_a):
    import pgtrigger

    with pgtrigger.ignore("checklist.Case:audit_ins", "checklist.Case:audit_upd"):
        case = Case.objects.create(practice=practice_a, label="ignored?", **Case.MINIMAL)
        case.label = "still audited"
        case.save()
    assert [e.op for e in _changes(practice_a)] == ["INSERT", "UPDATE"]


def test_every_practice_table_has_the_capture_triggers(db):
    """Asks PostgreSQL: each table with a practice_id column (but the trail itself) must have
    the three capture triggers; a model added without them breaks the build."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname,
                   array_agg(DISTINCT p.proname) FILTER (WHERE p.proname LIKE 'audit_capture_%%')
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'practice_id'
                                AND NOT a.attisdropped
            LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
                                   AND t.tgenabled <> 'D'
            LEFT JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE c.relkind IN ('r', 'p') AND c.relname <> 'checklist_auditevent'
            GROUP BY c.relname
            """
        )
        rows = dict(cursor.fetchall())
    assert "checklist_case" in rows and "checklist_membership" in rows
    expected = ["audit_capture_delete", "audit_capture_insert", "audit_capture_update"]
    missing = {table: funcs for table, funcs in rows.items() if sorted(funcs or []) != expected}
    assert not missing, f"tables without audit capture: {missing}"


def test_each_row_of_a_mixed_update_records_exactly_its_own_changes(alice, practice_a):
    a = Case.objects.create(practice=practice_a, label="a", **Case.MINIMAL)
    b = Case.objects.create(practice=practice_a, label="b", **Case.MINIMAL)
    c = Case.objects.create(practice=practice_a, label="c", **Case.MINIMAL)
    with audit.audit_context(user=alice, path="mixed"), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE checklist_case SET label = CASE WHEN id = %s THEN 'a2' ELSE label END,"
            " version = CASE WHEN id = %s THEN 5 ELSE version END,"
            " no_prior_therapy = CASE WHEN id = %s THEN NULL IS NULL ELSE no_prior_therapy END",
            [a.pk, b.pk, a.pk],
        )
    updates = {e.row_id: e for e in _changes(practice_a) if e.op == "UPDATE"}
    assert set(updates) == {str(a.pk), str(b.pk)}  # c did not change: no event
    assert updates[str(a.pk)].old_values == {"label": "a", "no_prior_therapy": False}
    assert updates[str(a.pk)].new_values == {"label": "a2", "no_prior_therapy": True}
    assert updates[str(b.pk)].old_values == {"version": 1}
    assert updates[str(b.pk)].new_values == {"version": 5}
    assert str(c.pk) not in updates


def test_an_update_that_changes_nothing_records_nothing(practice_a):
    Case.objects.create(practice=practice_a, label="same", **Case.MINIMAL)
    before = AuditEvent.objects.count()
    Case.objects.filter(label="same").update(label="same")
    assert AuditEvent.objects.count() == before
