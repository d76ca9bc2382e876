"""The audit trail refuses TRUNCATE; the chains' advisory-lock key gets a name.

Issue 11: as the table owner, `TRUNCATE checklist_auditevent` emptied the trail (the
append-only guard of 0001 covers UPDATE and DELETE only, and TRUNCATE fires no row or
DELETE triggers). A statement-level trigger now refuses it, for every role and also when the
TRUNCATE cascades from another table. `AuditEvent` is unmanaged (0002), so the test runner's
flush and `manage.py flush` do not list the table and leave the trail alone.

Only a superuser who switches triggers off (`session_replication_role = replica`) gets past
the guard; the signed checkpoints of the audit heads are what reveal that.

Issue 12: `audit_append_rows` is 0001's function with its lock key named and explained; the
reverse puts 0001's text back.
"""

from django.db import migrations

TRUNCATE_GUARD = """
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON checklist_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""
TRUNCATE_GUARD_REVERSE = "DROP TRIGGER IF EXISTS audit_no_truncate ON checklist_auditevent;"

# The chains' lock key, declared in audit_append_rows.
LOCK_CLASS = """    -- The first key of the chains' advisory locks: 0x41554954, the ASCII bytes 'AUIT' (short
    -- for "audit"), so that these locks keep to their own class should anything else on the
    -- database take two-key advisory locks. pg_advisory_xact_lock has a one-bigint and a
    -- two-integer form, no bigint pair: the practice id is the second key, cast to integer.
    -- A practice id above 2^31-1 makes that cast raise ("integer out of range"); it never
    -- wraps onto another practice's lock.
    c_lock_class CONSTANT integer := 1096108372;
"""

APPEND_ROWS = (
    r"""
-- Appends events to the chains of their practices (practice 0: events of no practice).
-- p_ctx is who acts, where and in which request; NULL takes `audit.context`, which the
-- application sets at the start of each writing transaction (checklist/audit.py), so it ends
-- with the transaction; unset or empty: no actor. Practices are locked in ascending order with
-- a transaction-scoped advisory lock; the primary key (practice_id, seq) is the fork guard.
-- SECURITY DEFINER: the application's role needs no INSERT privilege on the trail.
CREATE OR REPLACE FUNCTION audit_append_rows(
    p_kind text, p_table text, p_op text, p_ctx jsonb, p_practice bigint[], p_row text[],
    p_case bigint[], p_old jsonb[], p_new jsonb[], p_detail jsonb[]
) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
"""
    + LOCK_CLASS
    + r"""    v_ctx jsonb := p_ctx;
    v_ts timestamptz := clock_timestamp();
    v_ts_us bigint := (extract(epoch FROM v_ts) * 1000000)::bigint;
    v_practices bigint[];
    v_practice bigint;
    v_head_seq bigint;
    v_head_hash text;
BEGIN
    IF coalesce(cardinality(p_practice), 0) = 0 THEN
        RETURN;
    END IF;
    IF v_ctx IS NULL THEN
        v_ctx := coalesce(nullif(current_setting('audit.context', true), '')::jsonb, '{}');
    END IF;
    SELECT array_agg(DISTINCT coalesce(p, 0) ORDER BY coalesce(p, 0)) INTO v_practices
    FROM unnest(p_practice) AS p;

    FOREACH v_practice IN ARRAY v_practices LOOP
        PERFORM pg_advisory_xact_lock(c_lock_class, v_practice::integer);
    END LOOP;

    FOREACH v_practice IN ARRAY v_practices LOOP
        SELECT seq, hash INTO v_head_seq, v_head_hash
        FROM checklist_auditevent WHERE practice_id = v_practice ORDER BY seq DESC LIMIT 1;
        IF NOT FOUND THEN
            v_head_seq := 0;
            v_head_hash := repeat('0', 64);
        END IF;

        INSERT INTO checklist_auditevent (
            practice_id, seq, prev_hash, hash, ts, kind, table_name, op, row_id, case_id,
            actor_id, actor_name, path, request_id, old_values, new_values, detail)
        SELECT v_practice, c.seq, c.link[1], c.link[2], v_ts, p_kind, p_table, p_op, c.row_id,
               c.case_id, c.actor_id, c.actor_name, c.path, c.request_id, c.old_values,
               c.new_values, c.detail
        FROM (
            SELECT n.*, audit_chain(v_head_hash, audit_canonical(
                       v_practice, n.seq, v_ts_us, p_kind, p_table, p_op, n.row_id, n.case_id,
                       n.actor_id, n.actor_name, n.path, n.request_id, n.old_values,
                       n.new_values, n.detail
                   )) OVER (ORDER BY n.seq) AS link
            FROM (
                SELECT v_head_seq + row_number() OVER (ORDER BY t.ord) AS seq,
                       t.row_id,
                       t.case_id,
                       (v_ctx->>'user_id')::bigint AS actor_id,
                       v_ctx->>'user_name' AS actor_name,
                       v_ctx->>'path' AS path,
                       v_ctx->>'request_id' AS request_id,
                       t.old_values, t.new_values, t.detail
                FROM unnest(p_practice, p_row, p_case, p_old, p_new, p_detail)
                     WITH ORDINALITY AS t(practice_id, row_id, case_id, old_values, new_values,
                                         detail, ord)
                WHERE coalesce(t.practice_id, 0) = v_practice
            ) AS n
        ) AS c;
    END LOOP;
END
$$;
"""
)
# 0001's definition: the literal key, no declaration.
APPEND_ROWS_REVERSE = APPEND_ROWS.replace(LOCK_CLASS, "").replace("(c_lock_class,", "(1096108372,")


class Migration(migrations.Migration):
    dependencies = [
        ("checklist", "0002_alter_auditevent_options"),
    ]

    operations = [
        migrations.RunSQL(TRUNCATE_GUARD, TRUNCATE_GUARD_REVERSE),
        migrations.RunSQL(APPEND_ROWS, APPEND_ROWS_REVERSE),
    ]
