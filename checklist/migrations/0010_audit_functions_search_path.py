"""The audit trail's SECURITY DEFINER functions resolve names in pg_catalog and the app's schema
only, never first in the caller's temporary schema.

`SET search_path FROM CURRENT` stored `"$user", public`, and PostgreSQL searches `pg_temp`
before any schema that list does not name: a caller with TEMPORARY could create its own
`checklist_auditevent` and have the triggers write its changes there instead of the trail.
Naming `pg_temp` last closes that (and `db_roles` no longer grants TEMPORARY)."""

from django.db import migrations

FUNCTIONS = """
SELECT p.oid::regprocedure
FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
"""

SAFE_PATH = f"""
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN {FUNCTIONS} LOOP
        EXECUTE format(
            'ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp', f, current_schema()
        );
    END LOOP;
END $$;
"""

PREVIOUS_PATH = f"""
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN {FUNCTIONS} LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = "$user", %I', f, current_schema());
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("checklist", "0009_auditcheckpoint")]

    operations = [migrations.RunSQL(SAFE_PATH, PREVIOUS_PATH)]
