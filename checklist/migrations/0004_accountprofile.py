"""The account's title (issue 14), and its audit capture.

`AccountProfile` belongs to a person, not to one practice, so it has no practice_id and the
statement-level capture of 0001 (which files each row under its practice_id) does not fit it.
A row trigger of its own records each change, like the other captures as a change event with
the changed columns, in the chain of every practice the user is a member of (practice 0 when
none). It does not consult `pgtrigger.ignore` either.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CAPTURE = r"""
CREATE FUNCTION audit_capture_account_profile() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_user bigint;
    v_old jsonb;
    v_new jsonb;
    v_old_changed jsonb;
    v_new_changed jsonb;
    v_practices bigint[];
    v_n integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_user := OLD.user_id;
    ELSE
        v_user := NEW.user_id;
        v_new := to_jsonb(NEW);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := to_jsonb(OLD);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Only the changed columns, as the statement-level capture records them.
        SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, v_new -> o.key)
        INTO v_old_changed, v_new_changed
        FROM jsonb_each(v_old) AS o
        WHERE o.value IS DISTINCT FROM v_new -> o.key;
        IF v_old_changed IS NULL THEN
            RETURN NULL;  -- nothing changed: nothing to record
        END IF;
        v_old := v_old_changed;
        v_new := v_new_changed;
    END IF;
    SELECT array_agg(DISTINCT m.practice_id) INTO v_practices
    FROM checklist_membership AS m WHERE m.user_id = v_user;
    v_practices := coalesce(v_practices, ARRAY[0]::bigint[]);
    v_n := cardinality(v_practices);
    PERFORM audit_append_rows(
        'change', TG_TABLE_NAME, TG_OP, NULL, v_practices,
        array_fill(v_user::text, ARRAY[v_n]), array_fill(NULL::bigint, ARRAY[v_n]),
        array_fill(v_old, ARRAY[v_n]), array_fill(v_new, ARRAY[v_n]),
        array_fill(NULL::jsonb, ARRAY[v_n]));
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_account_profile
    AFTER INSERT OR UPDATE OR DELETE ON checklist_accountprofile
    FOR EACH ROW EXECUTE FUNCTION audit_capture_account_profile();
"""

CAPTURE_REVERSE = """
DROP TRIGGER IF EXISTS audit_account_profile ON checklist_accountprofile;
DROP FUNCTION IF EXISTS audit_capture_account_profile();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("checklist", "0003_audit_truncate_guard"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccountProfile",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="account_profile",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
                (
                    "title",
                    models.CharField(
                        blank=True,
                        help_text="Shown before the name, for example “Dr.” or “Prof. Dr.”.",
                        max_length=40,
                        verbose_name="title",
                    ),
                ),
            ],
            options={"verbose_name": "account profile"},
        ),
        migrations.RunSQL(CAPTURE, CAPTURE_REVERSE),
    ]
