"""The hash chain: verification names tampering; parallel writers leave no gap or fork."""

import random
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from checklist import audit
from checklist.models import AuditEvent, Case, Practice


def _as_superuser_bypassing_triggers(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def chain(db):
    # A practice made directly, without the catalogue seeding: the chain holds just 6 events.
    practice_a = Practice.objects.create(name="Chain practice")
    Case.objects.bulk_create(
        [Case(practice=practice_a, label=f"c{i}", **Case.MINIMAL) for i in range(6)]
    )
    assert audit.verify_chain(practice_a.pk).ok
    return practice_a.pk


def test_a_fresh_chain_verifies(chain, capsys):
    call_command("audit_verify", allow_no_checkpoint=True)
    assert "audit trail OK" in capsys.readouterr().out
    result = audit.verify_chain(chain)
    assert (result.events, result.head_seq) == (6, 6)


def test_it_names_a_modified_row(chain):
    _as_superuser_bypassing_triggers(
        "UPDATE checklist_auditevent SET new_values = jsonb_set(new_values, '{label}', '\"x\"')"
        " WHERE practice_id = %s AND seq = 3",
        [chain],
    )
    result = audit.verify_chain(chain)
    assert (result.broken_at, result.reason) == (3, "content changed")
    with pytest.raises(CommandError):
        call_command("audit_verify", allow_no_checkpoint=True)


def test_it_names_a_deleted_row(chain):
    _as_superuser_bypassing_triggers(
        "DELETE FROM checklist_auditevent WHERE practice_id = %s AND seq = 4", [chain]
    )
    assert audit.verify_chain(chain).broken_at == 4


def test_it_names_two_swapped_rows(chain):
    # Swap the contents (and hashes) of seq 2 and 5, keeping the sequence numbers.
    _as_superuser_bypassing_triggers(
        """
        UPDATE checklist_auditevent a SET
            prev_hash = b.prev_hash, hash = b.hash, row_id = b.row_id, new_values = b.new_values
        FROM checklist_auditevent b
        WHERE a.practice_id = %s AND b.practice_id = a.practice_id
          AND ((a.seq = 2 AND b.seq = 5) OR (a.seq = 5 AND b.seq = 2))
        """,
        [chain],
    )
    assert audit.verify_chain(chain).broken_at == 2


def test_timestamps_hash_the_same_in_any_session_time_zone(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/New_York'")
        try:
            assert audit.verify_chain(chain).ok
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")


def _pk(practice: Practice) -> int:
    return practice.pk


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_with_rollbacks_leave_no_gap_or_fork():
    practices = [Practice.objects.create(name=f"P{i}") for i in range(2)]
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for round_ in range(15):
                try:
                    with transaction.atomic():
                        # Several practices in one transaction: ascending order, as the
                        # advisory locks require.
                        chosen = sorted(rng.sample(practices, k=rng.randint(1, 2)), key=_pk)
                        for practice in chosen:
                            label = f"w{seed}-{round_}-{practice.pk}"
                            Case.objects.create(practice=practice, label=label, **Case.MINIMAL)
                        if rng.random() < 0.3:
                            raise RuntimeError("rollback")
                except RuntimeError:
                    pass
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for practice in practices:
        result = audit.verify_chain(practice.pk)
        assert result.ok, result
        seqs = list(
            AuditEvent.objects.filter(practice_id=practice.pk).values_list("seq", flat=True)
        )
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
        cases = Case.objects.filter(practice=practice).count()
        assert len(seqs) == cases > 0
