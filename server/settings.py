"""Django settings of the reference job server, read once from the environment.

Environment (``mlworker-server`` sets the first two from its flags):

- ``MLWORKER_SERVER_DATA_DIR``: where the SQLite database, the media files and the secret
  key live (default ``./mlworker-data``).
- ``MLWORKER_SERVER_LEASE_GRACE``: seconds a claimed job may outlive its time limit before
  it is handed out again (default 60).
- ``DATABASE_URL``: a dj-database-url URL (e.g. ``postgres://...``, needing the ``postgres``
  extra's psycopg) replacing SQLite.
- ``MLWORKER_SERVER_LONG_POLL_MAX``: the most seconds a job request may be held (default
  60); ``MLWORKER_SERVER_LONG_POLL_CHECK``: seconds between fallback checks while requests
  are held (default 0.5 on SQLite, 5 on PostgreSQL).
- ``MLWORKER_SERVER_ALLOWED_HOSTS``, ``MLWORKER_SERVER_CSRF_TRUSTED_ORIGINS``: comma-separated
  additions for deployments reached under another name than loopback.
- ``MLWORKER_SERVER_BEHIND_HTTPS_PROXY``: ``1`` behind a TLS-terminating reverse proxy:
  ``Secure`` cookies, HSTS, and the proxy's ``X-Forwarded-Proto`` and ``X-Forwarded-For``.
- ``MLWORKER_SERVER_MAX_PENDING_JOBS``: jobs a student may have waiting or running (default
  20; 0 for no limit).
- ``MLWORKER_SERVER_LOGIN_FAILURES``, ``MLWORKER_SERVER_LOGIN_COOLOFF``: failed logins per
  account, and per address, before logins are refused for the cool-off (default 10, 300 s).
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from server.datadir import make_private, make_private_sqlite


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_int(name: str, default: int) -> int:
    """A whole number of 0 or more from the environment, or a clear ``ImproperlyConfigured``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ImproperlyConfigured(f"{name} is {text!r}: it must be a whole number, 0 or more")
    return int(text)


def _secret_key(path: Path) -> str:
    """Read the secret key, creating it once.

    The key is written to a private temporary file and linked into place, so concurrent
    first starts agree on one key and nobody reads a half-written file.
    """
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text(encoding="ascii").strip()


SQLITE_ENGINE = "django.db.backends.sqlite3"
POSTGRESQL_ENGINE = "django.db.backends.postgresql"
# WAL lets readers run beside the one writer; IMMEDIATE takes the write lock when a
# transaction starts, so two claims never both read the same pending job first.
# synchronous stays FULL: an accepted result must survive a power cut, since the worker
# deletes its own copy once the server has answered.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}


def _database_from_url(url: str) -> dict[str, Any]:
    """``DATABASE_URL`` as Django settings, or a clear ``ImproperlyConfigured``.

    The messages never repeat the URL: it may hold a password.
    """
    try:
        database = dict(dj_database_url.parse(url))
    except ValueError as error:  # an unknown scheme
        scheme = url.partition("://")[0] if "://" in url else "(none)"
        raise ImproperlyConfigured(
            f"DATABASE_URL has the scheme {scheme!r}, which is not a database we support: "
            "use postgres://USER:PASSWORD@HOST:PORT/NAME (or sqlite:////PATH)"
        ) from error
    if database["ENGINE"] == POSTGRESQL_ENGINE and not any(
        importlib.util.find_spec(driver) for driver in ("psycopg", "psycopg2")
    ):
        raise ImproperlyConfigured(
            "DATABASE_URL names PostgreSQL, but its driver is not installed: "
            "pip install 'mlworker[server,postgres]'"
        )
    return database


def _databases(data_dir: Path) -> dict[str, dict[str, Any]]:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        database = _database_from_url(url)
    else:
        database = {"ENGINE": SQLITE_ENGINE, "NAME": data_dir / "db.sqlite3"}
    if database["ENGINE"] == SQLITE_ENGINE:  # also for a sqlite:// DATABASE_URL
        database["OPTIONS"] = {**SQLITE_OPTIONS, **database.get("OPTIONS", {})}
    # Kept open by the one thread that serves a process's requests (server/asgi.py);
    # a server that can restart under us is asked whether it still answers first.
    database["CONN_MAX_AGE"] = None
    database["CONN_HEALTH_CHECKS"] = database["ENGINE"] != SQLITE_ENGINE
    return {"default": database}


DATA_DIR = Path(os.environ.get("MLWORKER_SERVER_DATA_DIR") or "mlworker-data").resolve()
make_private(DATA_DIR)

SECRET_KEY = _secret_key(DATA_DIR / "secret_key")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", *_env_list("MLWORKER_SERVER_ALLOWED_HOSTS")]
CSRF_TRUSTED_ORIGINS = _env_list("MLWORKER_SERVER_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "server.apps.ServerConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a throttled login into our 429
]

ROOT_URLCONF = "server.urls"
WSGI_APPLICATION = "server.wsgi.application"
# Served as ASGI (server/asgi.py): sync code runs on one thread per process, which keeps its
# database connection (CONN_MAX_AGE None); long polls share another (server/wakeup.py).
ASGI_APPLICATION = "server.asgi.application"
CSRF_FAILURE_VIEW = "server.views.errors.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# "default": one memory cache per process, for values keyed by what they are computed from
# (a dataset's set sizes by its version, server.wire), so no process ever needs to tell
# another. "sessions": files in the data directory, shared by the server's processes.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": DATA_DIR / "sessions",
        "OPTIONS": {"MAX_ENTRIES": 10_000},
    },
}
# Every request reads its session; only a login or a logout writes it. Django's cached_db
# reads the cache first and writes through to the database, which stays the record: a
# logout in one process deletes the cached copy for all of them.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"

DATABASES = _databases(DATA_DIR)
if DATABASES["default"]["ENGINE"] == SQLITE_ENGINE:
    make_private_sqlite(DATABASES["default"]["NAME"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Relative, so Django prefixes them with the script name when served under a path prefix.
STATIC_URL = "static/"
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"

# Result labels of a large dataset arrive as form fields: allow a generous body. A picture
# may be 5 MiB: pictures are checked by the upload view, which answers 413 itself.
PICTURE_MAX_BYTES = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = PICTURE_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
FILE_UPLOAD_HANDLERS = [
    "server.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Job leases: a claim lasts the job's time limit (or the default) plus the grace.
JOB_DEFAULT_TIME_LIMIT = 300
JOB_MAX_TIME_LIMIT = 7 * 24 * 3600
JOB_MAX_ATTEMPTS = 3
JOB_LEASE_GRACE = int(os.environ.get("MLWORKER_SERVER_LEASE_GRACE") or 60)
# Long polls: the most seconds a `jobs/request/` may be held (keep it under a proxy's
# read timeout, see docs/deploy.md).
LONG_POLL_MAX = int(os.environ.get("MLWORKER_SERVER_LONG_POLL_MAX") or 60)
# Seconds between the fallback checks for claimable jobs while long polls wait; 0: 0.5 s on
# SQLite (how a submit reaches another process), 5 s on PostgreSQL (NOTIFY does it).
LONG_POLL_CHECK = float(os.environ.get("MLWORKER_SERVER_LONG_POLL_CHECK") or 0)

# Students are untrusted (docs/security.md): what one may send and queue is bounded.
JOB_PARAMS_MAX_BYTES = 64 * 1024
JOB_PARAMS_MAX_DEPTH = 8
JOB_MAX_PENDING_PER_USER = _env_int("MLWORKER_SERVER_MAX_PENDING_JOBS", 20)
JOB_QUOTA_RETRY_AFTER = 60

# Login throttling (django-axes): failures are counted per account and, separately, per
# address in the database, so every server process sees them; a throttled login gets a
# JSON 429 with Retry-After (server.throttle). Retrying during the cool-off restarts it.
# server.backends.ModelBackend is Django's, reading each request's user by prepared SQL;
# Django's own stays for sessions made before (a session names its backend).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "server.backends.ModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = max(1, _env_int("MLWORKER_SERVER_LOGIN_FAILURES", 10))
AXES_COOLOFF_TIME = datetime.timedelta(
    seconds=max(1, _env_int("MLWORKER_SERVER_LOGIN_COOLOFF", 300))
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = False  # True would let a login to your own account clear the count
AXES_DISABLE_ACCESS_LOG = True  # successful logins need no table row each
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "server.throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "server.throttle.client_address"

# Behind a TLS-terminating proxy (docs/server.md): the proxy must set X-Forwarded-Proto and
# append the client's address to X-Forwarded-For; the app itself stays on plain HTTP.
BEHIND_HTTPS_PROXY = _env_int("MLWORKER_SERVER_BEHIND_HTTPS_PROXY", 0) == 1
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"server": {"level": "INFO"}},
}
