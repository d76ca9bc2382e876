import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "x7" * 30 + "-production-secret-key-for-the-check",
    "DJANGO_ALLOWED_HOSTS": "onko.example.org",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_BEHIND_PROXY": "true",
    "DJANGO_TRUSTED_PROXIES": "127.0.0.1,::1",
    "DATABASE_URL": "postgres://app@127.0.0.1:1/unused",
}


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_values():
    result = _run(
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('check', '--deploy', '--fail-level', 'WARNING')",
        PRODUCTION_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_with_development_values():
    result = _run(
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('check', '--deploy', '--fail-level', 'WARNING')",
        {"DJANGO_SECURE_COOKIES": "false", "DJANGO_HSTS_SECONDS": "0"},
    )
    assert result.returncode != 0


def test_importing_settings_starts_no_database(tmp_path):
    # A fresh data folder: if importing settings (as mypy's plugin does) started the embedded
    # server, it would initialise this folder.
    pgdata = tmp_path / "pgdata"
    result = _run(
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.DATABASES['default']['ENGINE'])",
        {"EMBEDDED_PGDATA": str(pgdata), "DATABASE_URL": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "config.db_backend" in result.stdout
    assert not pgdata.exists()


def test_debug_is_off_unless_asked():
    result = _run(
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        {"DJANGO_DEBUG": ""},
    )
    assert result.stdout.strip() == "False"


_DATABASES = (
    "import django, json; django.setup(); from django.conf import settings;"
    "print(json.dumps({a: {'age': d['CONN_MAX_AGE'], 'pool': d['OPTIONS'].get('pool'),"
    " 'mirror': d.get('TEST', {}).get('MIRROR')} for a, d in settings.DATABASES.items()}))"
)


def test_connections_are_pooled_with_conn_max_age_zero():
    import json

    result = _run(_DATABASES, {"DATABASE_URL": "postgres://app@127.0.0.1:1/x"})
    default = json.loads(result.stdout)["default"]
    assert default["age"] == 0  # Django's pool refuses persistent connections
    assert default["pool"]["max_size"] >= 1 and default["pool"]["timeout"] > 0


def test_without_the_pool_a_connection_is_kept_conn_max_age():
    import json

    env = {"DATABASE_URL": "postgres://app@127.0.0.1:1/x", "DJANGO_DB_POOL": "false"}
    default = json.loads(_run(_DATABASES, env).stdout)["default"]
    assert default == {"age": 60, "pool": None, "mirror": None}


def test_a_replica_url_adds_a_pooled_replica_that_mirrors_default_in_tests():
    import json

    env = {
        "DATABASE_URL": "postgres://app@127.0.0.1:1/x",
        "DATABASE_REPLICA_URL": "postgres://app@127.0.0.1:2/x",
    }
    replica = json.loads(_run(_DATABASES, env).stdout)["replica"]
    assert replica["mirror"] == "default"
    assert replica["age"] == 0 and replica["pool"]


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="the operator's server has its own settings"
)
def test_the_embedded_server_logs_no_statement_or_row_values(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('log_min_error_statement')")
        assert cursor.fetchone()[0] == "panic"
        cursor.execute("SELECT current_setting('log_error_verbosity')")
        assert cursor.fetchone()[0] == "terse"
