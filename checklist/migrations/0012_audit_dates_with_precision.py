"""The trail records a date and its precision together: an update that changes either lists
both, so that the audit pages show a month as a month ("2021-02"), never the first day it is
stored as. Same function otherwise; the search path stays the safe one of 0010."""

from django.db import migrations

SAFE_PATH = """
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION audit_capture_update() SET search_path = pg_catalog, %I, pg_temp',
        current_schema()
    );
END $$;
"""

WITH_PRECISION = r"""
CREATE OR REPLACE FUNCTION audit_capture_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_columns text[];
    v_conds text[];
    v_probe text;
    v_changed boolean[];
    v_old text;
    v_new text;
BEGIN
    -- A date and its `<date>_precision` sibling are recorded together: a change of either
    -- lists both, so that the trail shows "2021-02" and never a month's padded first day.
    WITH cols AS (
        SELECT a.attnum, a.attname::text AS name,
               (SELECT b.attname::text FROM pg_attribute b
                WHERE b.attrelid = TG_RELID AND b.attnum > 0 AND NOT b.attisdropped
                  AND (b.attname::text = a.attname::text || '_precision'
                       OR a.attname::text = b.attname::text || '_precision')
                LIMIT 1) AS partner
        FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
    ), conds AS (
        SELECT attnum, name,
               CASE WHEN partner IS NULL THEN format('o.%1$I IS DISTINCT FROM n.%1$I', name)
                    ELSE format('(o.%1$I IS DISTINCT FROM n.%1$I'
                                ' OR o.%2$I IS DISTINCT FROM n.%2$I)', name, partner)
               END AS cond
        FROM cols
    )
    SELECT array_agg(name ORDER BY attnum), array_agg(cond ORDER BY attnum),
           string_agg(format('bool_or(%s)', cond), ', ' ORDER BY attnum)
    INTO v_columns, v_conds, v_probe
    FROM conds;

    -- First pass: which columns changed in any row. A bulk update usually changes one or two,
    -- and only those are compared per row below (comparing every column of every row as jsonb
    -- costs several times more).
    EXECUTE format('SELECT ARRAY[%s] FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id',
                   v_probe)
    INTO v_changed;
    SELECT string_agg(format('CASE WHEN %2$s'
                             ' THEN jsonb_build_object(%1$L, o.%1$I) ELSE ''{}''::jsonb END',
                             c.name, c.cond), ' || '),
           string_agg(format('CASE WHEN %2$s'
                             ' THEN jsonb_build_object(%1$L, n.%1$I) ELSE ''{}''::jsonb END',
                             c.name, c.cond), ' || ')
    INTO v_old, v_new
    FROM unnest(v_columns, v_conds, v_changed) AS c(name, cond, changed)
    WHERE c.changed;
    IF v_old IS NULL THEN
        RETURN NULL;  -- no row changed: nothing to record
    END IF;

    EXECUTE format(
        'SELECT audit_append_rows(''change'', %L, ''UPDATE'', NULL, array_agg(n.practice_id),'
        ' array_agg(n.id::text), array_agg(%s), array_agg(d.o), array_agg(d.n),'
        ' array_agg(NULL::jsonb))'
        ' FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id'
        ' CROSS JOIN LATERAL (SELECT %s AS o, %s AS n) AS d'
        ' WHERE d.n <> ''{}''::jsonb',
        TG_TABLE_NAME, audit_case_expression(TG_RELID, 'n'), v_old, v_new);
    RETURN NULL;
END
$$;
""" + SAFE_PATH

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION audit_capture_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_columns text[];
    v_probe text;
    v_changed boolean[];
    v_old text;
    v_new text;
BEGIN
    SELECT array_agg(attname::text ORDER BY attnum),
           string_agg(format('bool_or(o.%1$I IS DISTINCT FROM n.%1$I)', attname), ', '
                      ORDER BY attnum)
    INTO v_columns, v_probe
    FROM pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped;

    -- First pass: which columns changed in any row. A bulk update usually changes one or two,
    -- and only those are compared per row below (comparing every column of every row as jsonb
    -- costs several times more).
    EXECUTE format('SELECT ARRAY[%s] FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id',
                   v_probe)
    INTO v_changed;
    SELECT string_agg(format('CASE WHEN o.%1$I IS DISTINCT FROM n.%1$I'
                             ' THEN jsonb_build_object(%1$L, o.%1$I) ELSE ''{}''::jsonb END',
                             c.name), ' || '),
           string_agg(format('CASE WHEN o.%1$I IS DISTINCT FROM n.%1$I'
                             ' THEN jsonb_build_object(%1$L, n.%1$I) ELSE ''{}''::jsonb END',
                             c.name), ' || ')
    INTO v_old, v_new
    FROM unnest(v_columns, v_changed) AS c(name, changed)
    WHERE c.changed;
    IF v_old IS NULL THEN
        RETURN NULL;  -- no row changed: nothing to record
    END IF;

    EXECUTE format(
        'SELECT audit_append_rows(''change'', %L, ''UPDATE'', NULL, array_agg(n.practice_id),'
        ' array_agg(n.id::text), array_agg(%s), array_agg(d.o), array_agg(d.n),'
        ' array_agg(NULL::jsonb))'
        ' FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id'
        ' CROSS JOIN LATERAL (SELECT %s AS o, %s AS n) AS d'
        ' WHERE d.n <> ''{}''::jsonb',
        TG_TABLE_NAME, audit_case_expression(TG_RELID, 'n'), v_old, v_new);
    RETURN NULL;
END
$$;
""" + SAFE_PATH


class Migration(migrations.Migration):
    dependencies = [("checklist", "0011_dates_with_precision")]

    operations = [migrations.RunSQL(WITH_PRECISION, PREVIOUS)]
