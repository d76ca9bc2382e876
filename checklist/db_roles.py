"""Least privilege: an owner role that owns the schema (migrations, loading data) and a login
role for serving that owns nothing.

The serving role reads and writes the application's tables, has no TRUNCATE, only SELECT on
the audit trail (events are appended by SECURITY DEFINER functions that run as the owner) and
cannot disable triggers (only a table's owner or a superuser can). `ALTER DEFAULT PRIVILEGES`
covers the tables that later migrations create. The same statements are in the README for a
`DATABASE_URL` server. `manage.py db_roles` applies them (idempotent); `make db` runs it.

The embedded server trusts local connections: anyone on the machine can connect as any role.
The split guards against the application's own SQL, not against a local attacker.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

OWNER = "oncoboard_owner"
APP = "oncoboard_app"
# Tables the serving role may only read: the trail (appended by the owner's functions) and the
# copies of the signed checkpoints (written by the checkpoint job).
READ_ONLY_TABLES = ("checklist_auditevent", "checklist_auditcheckpoint")
# The serving role records a verification run (an admin's "verify now") but can never change
# or remove one: a failed run stays on record.
APPEND_ONLY_TABLES = ("checklist_auditverification",)

_CREATE_ROLE = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN
        CREATE ROLE {role} {attributes};
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created by another process
END $$;
"""


def _run(cursor: Any, statement: sql.Composable | str) -> None:
    cursor.execute(statement)


def create_roles(cursor: Any, *, owner: str = OWNER, app: str = APP) -> None:
    """Creates the two roles if missing (needs CREATEROLE). The owner cannot log in: it is
    taken with `SET ROLE` by a member (`-c role=...`, see settings `DJANGO_DB_ROLE`)."""
    for name, attributes in (
        (owner, "NOLOGIN"),
        (app, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"),
    ):
        _run(
            cursor,
            sql.SQL(_CREATE_ROLE).format(
                name=sql.Literal(name), role=sql.Identifier(name), attributes=sql.SQL(attributes)
            ),
        )


def hand_over_to_owner(cursor: Any, *, owner: str = OWNER) -> int:
    """Makes `owner` the owner of the schema's tables, sequences and functions (those created
    before the split, by the bootstrap superuser). Returns how many objects changed hands."""
    cursor.execute(
        """
        SELECT 'TABLE', format('%%I.%%I', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
          AND pg_get_userbyid(c.relowner) <> %(owner)s
        UNION ALL
        SELECT 'SEQUENCE', format('%%I.%%I', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S'
          AND pg_get_userbyid(c.relowner) <> %(owner)s
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
        UNION ALL
        SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE'
                              ELSE 'FUNCTION' END, p.oid::regprocedure::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %(owner)s
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
        """,
        {"owner": owner},
    )
    objects = cursor.fetchall()
    for kind, name in objects:
        _run(cursor, sql.SQL(f"ALTER {kind} {name} OWNER TO {{}}").format(sql.Identifier(owner)))
    return len(objects)


def grant(cursor: Any, *, owner: str = OWNER, app: str = APP) -> None:
    """The serving role's privileges, on what exists now and (default privileges) on what the
    owner creates later. Idempotent."""
    cursor.execute("SELECT current_database()")
    database = cursor.fetchone()[0]
    o, a = sql.Identifier(owner), sql.Identifier(app)
    statements = [
        # No temporary tables: a temporary table could shadow a table a function names.
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), a),
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)),
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}").format(sql.Identifier(database), a),
        sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(o),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(a),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(a),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            a
        ),
        sql.SQL(
            "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {}"
        ).format(a),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(a),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(o, a),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public"
            " GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(o, a),
    ]
    for statement in statements:
        _run(cursor, statement)
    for table in READ_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if cursor.fetchone()[0]:
            _run(cursor, sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), a))
            _run(cursor, sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), a))
    for table in APPEND_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if cursor.fetchone()[0]:
            _run(cursor, sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), a))
            _run(
                cursor,
                sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(table), a),
            )


def apply(cursor: Any, *, owner: str = OWNER, app: str = APP) -> int:
    """Everything `manage.py db_roles` does, as a superuser (the embedded server's bootstrap
    role). Returns the number of objects handed to the owner."""
    create_roles(cursor, owner=owner, app=app)
    moved = hand_over_to_owner(cursor, owner=owner)
    grant(cursor, owner=owner, app=app)
    return moved
