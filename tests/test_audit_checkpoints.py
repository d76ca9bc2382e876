"""Signed checkpoints: a chain shortened or re-hashed by a superuser with the triggers off
verifies on its own, but not against the newest signed checkpoint in the external store."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from checklist import audit, checkpoints
from checklist.models import AuditCheckpoint, Case, Practice


def _as_superuser_bypassing_triggers(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def keys(tmp_path, settings):
    """A key pair: the private key in a file for the job, the public key in settings; the
    store is a directory of this test."""
    pem, public = checkpoints.new_key_pair()
    key_file = tmp_path / "checkpoint_key.pem"
    key_file.write_bytes(pem)
    settings.AUDIT_CHECKPOINT_PUBLIC_KEY = public
    settings.AUDIT_CHECKPOINT_STORE = str(tmp_path / "store")
    return key_file


@pytest.fixture
def chain(db):
    practice = Practice.objects.create(name="Checkpoint practice")
    Case.objects.bulk_create(
        [Case(practice=practice, label=f"c{i}", **Case.MINIMAL) for i in range(6)]
    )
    return practice.pk


def _verify(capsys, **options):
    """audit_verify's output, and whether it failed."""
    try:
        call_command("audit_verify", **options)
        failed = False
    except CommandError:
        failed = True
    return capsys.readouterr().out, failed


def test_a_signed_line_per_chain_goes_to_the_store_and_the_display_table(keys, chain, tmp_path):
    call_command("audit_checkpoint", key_file=keys)
    (written,) = (tmp_path / "store").glob("checkpoints-*.jsonl")
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    mine = next(line for line in lines if line["practice"] == chain)
    assert (mine["seq"], mine["hash"]) == (6, audit.chain_heads()[chain][1])
    assert mine["sig"] and "at" in mine
    shown = AuditCheckpoint.objects.get(chain=chain)
    assert (shown.seq, shown.hash) == (6, mine["hash"])
    assert not any(f.name == "practice_id" for f in AuditCheckpoint._meta.concrete_fields)


def test_the_private_key_comes_from_the_command_line_or_the_environment(keys, chain, monkeypatch):
    monkeypatch.delenv(checkpoints.PRIVATE_KEY_ENV, raising=False)
    with pytest.raises(CommandError, match="no private key"):
        call_command("audit_checkpoint")
    monkeypatch.setenv(checkpoints.PRIVATE_KEY_ENV, str(keys))
    call_command("audit_checkpoint")
    assert AuditCheckpoint.objects.filter(chain=chain).exists()


def test_an_intact_chain_holds_its_checkpoint(keys, chain, capsys):
    call_command("audit_checkpoint", key_file=keys)
    Case.objects.create(practice_id=chain, label="later", **Case.MINIMAL)  # grows past it
    out, failed = _verify(capsys)
    assert not failed and "audit trail OK" in out
    assert f"practice {chain}: holds the checkpoint" in out


def test_a_trail_shortened_by_a_superuser_is_broken(keys, chain, capsys):
    call_command("audit_checkpoint", key_file=keys)
    _as_superuser_bypassing_triggers(
        "DELETE FROM checklist_auditevent WHERE practice_id = %s AND seq >= 5", [chain]
    )
    assert audit.verify_chain(chain).ok  # the chain alone cannot tell
    out, failed = _verify(capsys)
    assert failed
    assert f"practice {chain}: BROKEN against checkpoint (shortened" in out
    assert "missing seq 5-6" in out


def test_a_truncated_trail_is_broken(keys, chain, capsys):
    call_command("audit_checkpoint", key_file=keys)
    _as_superuser_bypassing_triggers("DELETE FROM checklist_auditevent")
    out, failed = _verify(capsys)
    assert failed and "missing seq 1-6" in out


def test_a_chain_deleted_with_its_practice_is_broken(keys, chain, capsys):
    """The events and the practice row both gone: only the signed store still knows the
    chain, and that is enough."""
    call_command("audit_checkpoint", key_file=keys)
    _as_superuser_bypassing_triggers(
        "DELETE FROM checklist_auditevent WHERE practice_id = %s", [chain]
    )
    _as_superuser_bypassing_triggers("DELETE FROM checklist_case WHERE practice_id = %s", [chain])
    _as_superuser_bypassing_triggers("DELETE FROM checklist_practice WHERE id = %s", [chain])
    out, failed = _verify(capsys)
    assert failed
    assert f"practice {chain}: BROKEN against checkpoint" in out and "missing seq 1-6" in out


def test_a_rehashed_chain_is_broken(keys, chain, capsys):
    """The whole chain recomputed after changing an event: each link verifies, but the head
    is no longer the signed one."""
    call_command("audit_checkpoint", key_file=keys)
    _as_superuser_bypassing_triggers(
        """
        UPDATE checklist_auditevent SET new_values = jsonb_set(new_values, '{label}', '"x"')
        WHERE practice_id = %s AND seq = 2
        """,
        [chain],
    )
    _as_superuser_bypassing_triggers(
        """
        WITH RECURSIVE relinked AS (
            SELECT e.seq, e.prev_hash::text,
                   encode(sha256(convert_to(e.prev_hash || audit_canonical(
                e.practice_id, e.seq, (extract(epoch FROM e.ts) * 1000000)::bigint, e.kind,
                e.table_name, e.op, e.row_id, e.case_id, e.actor_id, e.actor_name, e.path,
                e.request_id, e.old_values, e.new_values, e.detail), 'UTF8')), 'hex') AS hash
            FROM checklist_auditevent e WHERE e.practice_id = %(p)s AND e.seq = 1
            UNION ALL
            SELECT e.seq, r.hash, encode(sha256(convert_to(r.hash || audit_canonical(
                e.practice_id, e.seq, (extract(epoch FROM e.ts) * 1000000)::bigint, e.kind,
                e.table_name, e.op, e.row_id, e.case_id, e.actor_id, e.actor_name, e.path,
                e.request_id, e.old_values, e.new_values, e.detail), 'UTF8')), 'hex')
            FROM relinked r JOIN checklist_auditevent e
              ON e.practice_id = %(p)s AND e.seq = r.seq + 1
        )
        UPDATE checklist_auditevent a SET prev_hash = r.prev_hash, hash = r.hash
        FROM relinked r WHERE a.practice_id = %(p)s AND a.seq = r.seq
        """,
        {"p": chain},
    )
    assert audit.verify_chain(chain).ok  # the recomputed chain verifies on its own
    out, failed = _verify(capsys)
    assert failed and f"practice {chain}: BROKEN against checkpoint (re-hashed" in out


def test_a_forged_checkpoint_is_rejected(keys, chain, capsys, settings, tmp_path):
    """A line signed with another key (say, by someone who shortened the chain and wants a
    checkpoint that matches it) is rejected and does not count as a checkpoint."""
    call_command("audit_checkpoint", key_file=keys)
    _as_superuser_bypassing_triggers(
        "DELETE FROM checklist_auditevent WHERE practice_id = %s AND seq = 6", [chain]
    )
    forger_pem, _ = checkpoints.new_key_pair()
    forger_file = tmp_path / "forger.pem"
    forger_file.write_bytes(forger_pem)
    forged = checkpoints.sign(
        checkpoints.load_private_key(forger_file),
        chain,
        5,
        audit.chain_heads()[chain][1],
        timezone.now(),
    )
    store = tmp_path / "store"
    (store / "checkpoints-9999-12-31.jsonl").write_text(forged.line() + "\n")
    out, failed = _verify(capsys)
    assert failed
    assert "1 checkpoint line(s)" in out and "rejected" in out
    assert "missing seq 6" in out  # still checked against the genuine checkpoint


def test_without_a_checkpoint_it_says_so_and_fails_unless_allowed(keys, chain, capsys):
    out, failed = _verify(capsys)
    assert failed and f"no checkpoint for chain(s) {chain}" in out
    out, failed = _verify(capsys, allow_no_checkpoint=True)
    assert not failed and "no checkpoint for chain(s)" in out and "audit trail OK" in out


def test_without_a_public_key_there_is_no_checkpoint(chain, capsys, settings):
    settings.AUDIT_CHECKPOINT_PUBLIC_KEY = ""
    out, failed = _verify(capsys)
    assert failed and "no AUDIT_CHECKPOINT_PUBLIC_KEY configured" in out


def test_the_chain_page_shows_the_last_checkpoint(keys, adam_client, practice_a):
    call_command("audit_checkpoint", key_file=keys)
    head_seq = audit.chain_heads()[practice_a.pk][0]
    page = adam_client.get("/audit/chain/").content.decode()
    assert 'data-testid="last-checkpoint"' in page
    assert f"event {head_seq}" in page
