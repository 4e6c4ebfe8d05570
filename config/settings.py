"""Caravan settings. Every value comes from the environment (see docs/configuration.md)."""

from __future__ import annotations

import os
import pathlib
import re
import socket
from datetime import timedelta
from email.utils import parseaddr
from typing import cast

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    BASE_DIR,
    env_bool,
    env_database,
    env_float,
    env_int,
    env_list,
    env_optional,
    env_str,
    env_url,
    env_url_or_default,
)

CARAVAN_ENV = env_str("CARAVAN_ENV", "development")
if CARAVAN_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"CARAVAN_ENV={CARAVAN_ENV!r}: use 'development' or 'production'")
DEBUG = env_bool("DEBUG", CARAVAN_ENV == "development")

_secret = env_optional("SECRET_KEY")
if _secret is None:
    if CARAVAN_ENV == "production":
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when CARAVAN_ENV=production")
    _secret = "caravan-development-only-insecure-key-never-use-in-production"
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

VAR_DIR = BASE_DIR / "var"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "channels",
    "core",
    "fleet",
    "dicom",
    "telerad",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login refused for lockout into AXES_LOCKOUT_CALLABLE's page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.workspaces",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'caravan.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so read-then-append (the audit chain tail)
    # is serialised; a busy timeout makes concurrent writers wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    # A file, not Django's shared-cache in-memory default: shared cache has table locks that
    # ignore the busy timeout, so concurrent-writer tests would fail for the wrong reason. One
    # file per process, so two test runs on one machine do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-caravan-{os.getpid()}.sqlite3")}
    # SQLite creates the file but not its folder (a fresh clone has no var/).
    pathlib.Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
else:
    # Bounded connections (docs/security.md, "Database connections"). Under ASGI every request
    # runs in a thread of its own and a connection belongs to its thread: CONN_MAX_AGE=60 left
    # idle connections behind until garbage collection, and CONN_MAX_AGE=0 still opens one per
    # request in flight; 200 concurrent requests exhausted max_connections either way (bench
    # dbconn). psycopg's pool holds at most DB_POOL_SIZE per process; a request beyond it waits
    # up to DB_POOL_TIMEOUT seconds for one. 0 turns the pool off (then DB_CONN_MAX_AGE applies).
    # Celery workers drop the pool (config/celery.py): one task at a time needs one connection.
    DB_POOL_SIZE = env_int("DB_POOL_SIZE", 10, minimum=0, maximum=100)
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
    if DB_POOL_SIZE and DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DB_POOL_SIZE and DB_CONN_MAX_AGE exclude each other: pooled connections are returned "
            "to the pool after each request; set DB_CONN_MAX_AGE=0 or DB_POOL_SIZE=0"
        )
    # Our queries are short OLTP lookups: JIT compilation and parallel workers cost more to
    # start (milliseconds) than they save, and made the worklist's p95 miss its 30 ms target.
    DATABASES["default"]["OPTIONS"] = {
        "options": env_str("DB_SESSION_OPTIONS", "-c jit=off -c max_parallel_workers_per_gather=0")
    }
    if DB_POOL_SIZE:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_SIZE,
            "timeout": env_float("DB_POOL_TIMEOUT", 30.0, minimum=1.0, maximum=600.0),
            # An idle connection above min_size is closed after this long (one per period).
            "max_idle": env_float("DB_POOL_MAX_IDLE", 60.0, minimum=1.0, maximum=3600.0),
        }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache (or embedded fallbacks) -----------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # No read timeout on the channel layer's sockets. redis-py wraps every read in
            # asyncio.timeout() when one is set (redis-py 8 sets 5 s by default), and on this
            # Python (3.11.2) a cancel that lands there is lost about one time in four: the
            # command is retried, the task goes on, and a websocket's fan-out never stops
            # (tests/test_redis_cancellation.py). channels-redis's receive blocks 5 s in
            # BZPOPMIN by itself; TCP keepalive finds a dead Redis host in about a minute.
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "socket_keepalive": True,
                        "socket_keepalive_options": {
                            socket.TCP_KEEPIDLE: 30,
                            socket.TCP_KEEPINTVL: 10,
                            socket.TCP_KEEPCNT: 3,
                        },
                    }
                ],
                "prefix": env_str("CHANNEL_PREFIX", "caravan"),
            },
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Added to the Celery worker's nice value at start (0-19; 0 leaves it): ingest, QC and sweeps
# give way to Orthanc receiving a van's images when they share a host.
WORKER_NICE = env_int("WORKER_NICE", 10, minimum=0, maximum=19)
# The reconciler is the safety net under the Orthanc plugin's nudges: it walks /changes from a
# stored cursor every few seconds (and once when a worker starts, see config/celery.py).
RECONCILE_INTERVAL = env_int("RECONCILE_INTERVAL", 5, minimum=1)
# The reconciler's recovery scan (dicom/services/receiving.py): at most every this many seconds
# it compares Orthanc's studies of the last RECONCILE_RECOVERY_DAYS study dates with the mirror.
RECONCILE_RECOVERY_INTERVAL = env_int("RECONCILE_RECOVERY_INTERVAL", 60, minimum=1)
RECONCILE_RECOVERY_DAYS = env_int("RECONCILE_RECOVERY_DAYS", 2, minimum=1, maximum=31)
CELERY_BEAT_SCHEDULE: dict = {
    "reconcile-orthanc-changes": {
        "task": "dicom.tasks.reconcile_orthanc_changes",
        "schedule": float(RECONCILE_INTERVAL),
    },
    # Tele-reading sweeps: expired claims back to the worklist, SLA warnings/breaches,
    # critical-result escalation to the next hospital contact.
    "expire-reading-claims": {"task": "telerad.tasks.claims.expire_claims", "schedule": 15.0},
    "sla-sweep": {"task": "telerad.tasks.claims.sla_sweep", "schedule": 30.0},
    "escalate-critical-results": {
        "task": "telerad.tasks.critical.escalate_critical_results",
        "schedule": 30.0,
    },
    # Telemetry retention: thin old GPS fixes, drop those past the retention period (nightly).
    "telemetry-thin": {"task": "fleet.tasks.telemetry_thin_task", "schedule": crontab(hour=3, minute=30)},
}
# Stalled studies (docs/ingest.md "Retries and the stalled-study sweep"): QC pending, or
# routable without a reading task, for more than STALLED_STUDY_MINUTES. The sweep queues them
# again every STALLED_SWEEP_INTERVAL seconds and alerts after STALLED_STUDY_ALERT_TRIES sweeps.
STALLED_STUDY_MINUTES = env_int("STALLED_STUDY_MINUTES", 10, minimum=1, maximum=24 * 60)
STALLED_STUDY_ALERT_TRIES = env_int("STALLED_STUDY_ALERT_TRIES", 3, minimum=1, maximum=1000)
STALLED_SWEEP_INTERVAL = env_int("STALLED_SWEEP_INTERVAL", 120, minimum=10, maximum=24 * 3600)
# /api/health/ always reports the stalled count; from this many on it also answers 503
# (0: never, the count is reported only).
HEALTH_STALLED_STUDIES_503 = env_int("HEALTH_STALLED_STUDIES_503", 0, minimum=0)
CELERY_BEAT_SCHEDULE["sweep-stalled-studies"] = {
    "task": "dicom.tasks.sweep_stalled_studies",
    "schedule": float(STALLED_SWEEP_INTERVAL),
}

# --- Orthanc --------------------------------------------------------------------------------
ORTHANC_URL = env_url_or_default("ORTHANC_URL", "http://127.0.0.1:8042", schemes=("http", "https"))
ORTHANC_USERNAME = env_str("ORTHANC_USERNAME", "caravan")
ORTHANC_PASSWORD = env_str("ORTHANC_PASSWORD", "caravan-orthanc-dev")
ORTHANC_DICOM_PORT = env_int("ORTHANC_DICOM_PORT", 4242, minimum=1, maximum=65535)
ORTHANC_AET = env_str("ORTHANC_AET", "CARAVAN")
ORTHANC_TIMEOUT = env_int("ORTHANC_TIMEOUT", 10, minimum=1)
# Shared secret the Orthanc plugin presents when it calls back into the platform.
ORTHANC_PLUGIN_SECRET = env_str("ORTHANC_PLUGIN_SECRET", "caravan-plugin-dev-secret")
# The URL the plugin POSTs STABLE_STUDY nudges to.
PLATFORM_URL = env_url_or_default("PLATFORM_URL", "http://127.0.0.1:8000", schemes=("http", "https"))
# Where `manage.py orthanc` renders its config and keeps storage, index, log and PID.
ORTHANC_RUN_DIR = BASE_DIR / env_str("ORTHANC_RUN_DIR", "var/orthanc")
# The only DICOM peers Orthanc accepts, as "AET@host:port" (see docs/orthanc.md).
ORTHANC_ALLOWED_MODALITIES = env_list("ORTHANC_ALLOWED_MODALITIES", [])
# Seconds without a new instance before Orthanc calls a study stable and nudges the platform.
ORTHANC_STABLE_AGE = env_int("ORTHANC_STABLE_AGE", 60, minimum=1)

# Complete DICOM headers QC reads per series (first, last, evenly between); every instance is
# still listed with the tags Orthanc indexes. 0 reads every header (~0.8 ms of Orthanc CPU each).
QC_HEADERS_PER_SERIES = env_int("QC_HEADERS_PER_SERIES", 5, minimum=0, maximum=10000)

# --- auth, API ------------------------------------------------------------------------------
AUTH_USER_MODEL = "core.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login lockout (django-axes; docs/security.md "Authentication"): this many wrong passwords for
# one username from one address lock that username at that address for AUTH_LOCKOUT_MINUTES
# after the last failure. Keyed on the pair so nobody can lock a colleague out from elsewhere.
AUTH_LOCKOUT_FAILURES = env_int("AUTH_LOCKOUT_FAILURES", 50, minimum=1, maximum=1000)
AUTH_LOCKOUT_MINUTES = env_int("AUTH_LOCKOUT_MINUTES", 30, minimum=1, maximum=7 * 24 * 60)
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = AUTH_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=AUTH_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Attempts while locked are refused without being counted, so the lock ends on time.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.http.client_ip"  # the audit log's address (TRUST_X_FORWARDED_FOR)
AXES_LOCKOUT_CALLABLE = "core.views.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit log already
AXES_VERBOSE = False

# API tokens (django-rest-knox): stored hashed, shown once, valid API_TOKEN_TTL_HOURS from issue.
API_TOKEN_TTL_HOURS = env_int("API_TOKEN_TTL_HOURS", 12, minimum=1, maximum=24 * 90)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=API_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}


# DRF throttles ("<count>/<second|minute|hour|day>"), in the cache (Redis when REDIS_URL is set).
# The token endpoint counts per client address; telemetry per device token.
def _throttle_rate(name: str, default: str) -> str:
    rate = env_str(name, default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", rate):
        raise ImproperlyConfigured(f"{name}={rate!r}: use '<count>/<second|minute|hour|day>', e.g. '30/min'")
    return rate


AUTH_THROTTLE_RATE = _throttle_rate("AUTH_THROTTLE_RATE", "30/min")
TELEMETRY_THROTTLE_RATE = _throttle_rate("TELEMETRY_THROTTLE_RATE", "600/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # A token first: its WWW-Authenticate header makes missing or bad credentials a 401.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Caravan API",
    "DESCRIPTION": "Mobile imaging fleet and tele-radiology platform",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui-dist",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui-dist/favicon-32x32.png",
}

# --- i18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "SAMEORIGIN"

# --- logging: never patient data in application logs (see docs/security.md) ------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # pynetdicom logs every DIMSE message at INFO: thousands of lines per study.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pynetdicom": {"level": "WARNING"}},
}
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)

# --- DICOM ----------------------------------------------------------------------------------
# Root of every UID the platform mints (orders' Study Instance UIDs, de-identified copies).
# The default is pydicom's root for unregistered use; an operator with its own root sets it.
DICOM_UID_ROOT = env_str("DICOM_UID_ROOT", "1.2.826.0.1.3680043.8.498.")
if not DICOM_UID_ROOT.endswith(".") or len(DICOM_UID_ROOT) > 40:
    raise ImproperlyConfigured("DICOM_UID_ROOT must end with '.' and leave room for a suffix (<= 40 chars)")

# --- fleet map --------------------------------------------------------------------------------
# Leaflet tile URL template; empty = no tiles, the bundled region outline only (works offline).
MAP_TILE_URL = env_str("MAP_TILE_URL", "")
if MAP_TILE_URL and (
    not MAP_TILE_URL.startswith(("http://", "https://"))
    or not all(k in MAP_TILE_URL for k in ("{z}", "{x}", "{y}"))
):
    raise ImproperlyConfigured(
        f"MAP_TILE_URL={MAP_TILE_URL!r}: an http(s) tile template with {{z}}, {{x}} and {{y}}, or empty"
    )
MAP_TILE_ATTRIBUTION = env_str("MAP_TILE_ATTRIBUTION", "")

# --- telemetry (docs/telemetry.md) ------------------------------------------------------------
# Planner: the OR-Tools time limit of automatic re-plans (breakdowns, cancellations, incidents).
PLANNER_REPLAN_TIME_LIMIT_S = env_float("PLANNER_REPLAN_TIME_LIMIT_S", 5.0, minimum=1, maximum=120)
TELEMETRY_MAX_BATCH = env_int("TELEMETRY_MAX_BATCH", 1000, minimum=1, maximum=10000)
TELEMETRY_CLOCK_SKEW_S = env_int("TELEMETRY_CLOCK_SKEW_S", 120, minimum=0, maximum=3600)
TELEMETRY_MAX_FIX_AGE_DAYS = env_int("TELEMETRY_MAX_FIX_AGE_DAYS", 7, minimum=1, maximum=90)
TELEMETRY_MAX_REPORTED_SPEED_MPS = env_float("TELEMETRY_MAX_REPORTED_SPEED_MPS", 70.0, minimum=1, maximum=400)
TELEMETRY_TELEPORT_SPEED_MPS = env_float("TELEMETRY_TELEPORT_SPEED_MPS", 50.0, minimum=1, maximum=400)
TELEMETRY_GEOFENCE_EXIT_FACTOR = env_float("TELEMETRY_GEOFENCE_EXIT_FACTOR", 1.5, minimum=1, maximum=10)
TELEMETRY_GEOFENCE_EXIT_MARGIN_M = env_float(
    "TELEMETRY_GEOFENCE_EXIT_MARGIN_M", 50.0, minimum=0, maximum=5000
)
TELEMETRY_THIN_AFTER_DAYS = env_int("TELEMETRY_THIN_AFTER_DAYS", 30, minimum=1)
TELEMETRY_THIN_KEEP_EVERY_S = env_int("TELEMETRY_THIN_KEEP_EVERY_S", 60, minimum=1)
TELEMETRY_RETENTION_DAYS = env_int("TELEMETRY_RETENTION_DAYS", 365, minimum=1)
TELEMETRY_THIN_WINDOW_DAYS = env_int("TELEMETRY_THIN_WINDOW_DAYS", 7, minimum=1)
if TELEMETRY_RETENTION_DAYS <= TELEMETRY_THIN_AFTER_DAYS:
    raise ImproperlyConfigured("TELEMETRY_RETENTION_DAYS must be longer than TELEMETRY_THIN_AFTER_DAYS")

# --- tele-reading -----------------------------------------------------------------------------
# A claim's lease: the viewer/report renews it while open; an abandoned claim frees itself.
READING_CLAIM_MINUTES = env_int("READING_CLAIM_MINUTES", 10, minimum=1, maximum=24 * 60)

# Peer review: a signed report is sampled when a hash of this seed and its id, mapped to
# [0, 100), is below its pool's peer_review_percent (deterministic; change it to re-draw).
PEER_REVIEW_SEED = env_str("PEER_REVIEW_SEED", "caravan")

# --- critical results -----------------------------------------------------------------------
# Minutes between notifications of an unacknowledged critical result (next hospital contact).
CRITICAL_ESCALATION_MINUTES = env_int("CRITICAL_ESCALATION_MINUTES", 10, minimum=1, maximum=24 * 60)
# Notifications are copied by email after commit. The console backend prints them (development);
# production points this at an SMTP relay (a third party: EMAIL_HOST, EMAIL_PORT, ... below).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Caravan <caravan@localhost>")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)

# --- reports ----------------------------------------------------------------------------------
# Also store each signed report in Orthanc as an Encapsulated PDF instance of its study.
REPORTS_PDF_TO_ORTHANC = env_bool("REPORTS_PDF_TO_ORTHANC", False)

# --- audit review, nightly chain check and retention (docs/audit.md, docs/retention.md) -------
# One block, on purpose: everything the audit review / retention issue added to settings.
# Who gets mail_admins (the nightly audit chain alert, server errors): "Name <a@b>, c@d".
ADMINS = []
for _admin in env_list("ADMINS", []):
    _name, _address = parseaddr(_admin)
    if "@" not in _address:
        raise ImproperlyConfigured(f"ADMINS: {_admin!r} is not an email address ('Name <a@b>' or 'a@b')")
    ADMINS.append((_name or _address, _address))
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# ATNA export: AuditSourceID (and the optional AuditEnterpriseSiteID) of every message, and the
# SD-ID of the RFC 5424 structured data (name@IANA-enterprise-number; 32473 is for documentation).
AUDIT_SOURCE_ID = env_str("AUDIT_SOURCE_ID", "caravan")
AUDIT_ENTERPRISE_SITE_ID = env_str("AUDIT_ENTERPRISE_SITE_ID", "")
AUDIT_SYSLOG_SD_ID = env_str("AUDIT_SYSLOG_SD_ID", "caravan@32473")
if not AUDIT_SOURCE_ID.strip():
    raise ImproperlyConfigured("AUDIT_SOURCE_ID must not be empty")
if not re.fullmatch(r"[\x21-\x7e]{1,32}", AUDIT_SYSLOG_SD_ID) or not re.fullmatch(
    r'[^=\]" ]+@\d+', AUDIT_SYSLOG_SD_ID
):
    raise ImproperlyConfigured(f"AUDIT_SYSLOG_SD_ID={AUDIT_SYSLOG_SD_ID!r}: use name@<enterprise number>")
# Application logs: console always; also a file per process in LOG_DIR when set, rotated at
# midnight (UTC) and kept LOG_RETENTION_DAYS days (the retention sweep removes leftovers).
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 30, minimum=1, maximum=3650)
_log_dir = env_optional("LOG_DIR")
LOG_DIR = None if _log_dir is None else (BASE_DIR / _log_dir).resolve()
if LOG_DIR is not None:
    try:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"LOG_DIR={LOG_DIR}: cannot create it ({exc})") from exc
    if not os.access(LOG_DIR, os.W_OK):
        raise ImproperlyConfigured(f"LOG_DIR={LOG_DIR} is not writable")
    # One file per process: several daphnes and Celery sharing one rotating file race at midnight.
    cast(dict, LOGGING["handlers"])["file"] = {
        "class": "logging.handlers.TimedRotatingFileHandler",
        "filename": str(LOG_DIR / f"caravan-{os.getpid()}.log"),
        "when": "midnight",
        "utc": True,
        "backupCount": LOG_RETENTION_DAYS,
        "encoding": "utf-8",
        "delay": True,
        "formatter": "plain",
    }
    cast(dict, LOGGING["root"])["handlers"] = ["console", "file"]
# Read notifications (not those about a critical result) and live-worklist replay rows.
NOTIFICATION_RETENTION_DAYS = env_int("NOTIFICATION_RETENTION_DAYS", 180, minimum=1, maximum=3650)
READING_EVENT_RETENTION_DAYS = env_int("READING_EVENT_RETENTION_DAYS", 7, minimum=1, maximum=3650)
CELERY_BEAT_SCHEDULE |= {
    # The audit chain check (stores an AuditCheck; alerts admins and QC officers when broken).
    "audit-verify-nightly": {
        "task": "core.tasks.audit_verify_nightly",
        "schedule": crontab(hour=2, minute=30),
    },
    # Every retention period, telemetry included (it replaces the separate telemetry-thin beat).
    "retention-sweep": {"task": "core.tasks.retention_sweep", "schedule": crontab(hour=3, minute=30)},
}
del CELERY_BEAT_SCHEDULE["telemetry-thin"]
# --- end of audit review and retention block ---------------------------------------------------

# --- audit chain key and checkpoints (issue 14; docs/security.md "Audit log", docs/audit.md) ---
# The chain's HMAC-SHA256 key lives in a file the database never sees. Unset: var/audit-hmac.key,
# created (random, mode 0600) on first use, for development. Production sets it and backs the
# file up apart from the database: without it no keyed entry can be verified again.
if "AUDIT_HMAC_KEY" in os.environ:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY: give the audit key as a file, AUDIT_HMAC_KEY_FILE=/path")
_audit_key_file = env_str("AUDIT_HMAC_KEY_FILE", "")
if CARAVAN_ENV == "production" and not _audit_key_file:
    # A generated key would be per container: web and worker would chain with different keys.
    raise ImproperlyConfigured("AUDIT_HMAC_KEY_FILE must be set when CARAVAN_ENV=production")
AUDIT_HMAC_KEY_GENERATE = not _audit_key_file
AUDIT_HMAC_KEY_FILE = (
    (BASE_DIR / _audit_key_file).resolve() if _audit_key_file else VAR_DIR / "audit-hmac.key"
)
if not AUDIT_HMAC_KEY_GENERATE:
    # Checked here so a configured but missing, empty or short key stops start-up, not the
    # first audited request (core.audit_key reads it again with the same rules).
    try:
        _audit_key_chars = len(AUDIT_HMAC_KEY_FILE.read_text().strip())
    except OSError as exc:
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEY_FILE={AUDIT_HMAC_KEY_FILE}: cannot read the audit key ({exc.strerror})"
        ) from None
    if _audit_key_chars < 32:
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEY_FILE={AUDIT_HMAC_KEY_FILE} "
            f"{'is empty' if not _audit_key_chars else f'holds {_audit_key_chars} characters'}; "
            "the audit key needs at least 32 (e.g. `openssl rand -hex 32`)"
        )
# Signed checkpoints of the chain's head: appended here (one JSON line each), logged on
# caravan.audit.checkpoint, every AUDIT_CHECKPOINT_MINUTES and at every audit_verify.
AUDIT_CHECKPOINT_FILE = (BASE_DIR / env_str("AUDIT_CHECKPOINT_FILE", "var/audit-checkpoints.jsonl")).resolve()
AUDIT_CHECKPOINT_MINUTES = env_int("AUDIT_CHECKPOINT_MINUTES", 5, minimum=1, maximum=24 * 60)
# Where checkpoints are also sent, off the host: /dev/log (the local syslog daemon, which
# forwards), udp://host:port or tcp://host:port. Empty: the application log only.
AUDIT_CHECKPOINT_SYSLOG = env_str("AUDIT_CHECKPOINT_SYSLOG", "")
if AUDIT_CHECKPOINT_SYSLOG:
    _syslog = re.fullmatch(r"(udp|tcp)://([^:/\s]+):(\d{1,5})", AUDIT_CHECKPOINT_SYSLOG)
    if _syslog is None and not AUDIT_CHECKPOINT_SYSLOG.startswith("/"):
        raise ImproperlyConfigured(
            f"AUDIT_CHECKPOINT_SYSLOG={AUDIT_CHECKPOINT_SYSLOG!r}: use /dev/log, udp://host:port or tcp://host:port"
        )
    _syslog_handler: dict = {
        "class": "logging.handlers.SysLogHandler",
        "facility": "authpriv",
        "formatter": "audit_syslog",
    }
    if _syslog is None:
        _syslog_handler["address"] = AUDIT_CHECKPOINT_SYSLOG
    else:
        _syslog_handler["address"] = (_syslog[2], int(_syslog[3]))
        _syslog_handler["socktype"] = socket.SOCK_STREAM if _syslog[1] == "tcp" else socket.SOCK_DGRAM
    cast(dict, LOGGING["formatters"])["audit_syslog"] = {"format": "caravan: %(message)s"}
    cast(dict, LOGGING["handlers"])["audit_syslog"] = _syslog_handler
    cast(dict, LOGGING["loggers"])["caravan.audit.checkpoint"] = {"handlers": ["audit_syslog"]}
# INFO whatever LOG_LEVEL says: checkpoints are the point of this logger (no patient data).
cast(dict, LOGGING["loggers"]).setdefault("caravan.audit.checkpoint", {})["level"] = "INFO"
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "core.tasks.audit_checkpoint",
    "schedule": float(AUDIT_CHECKPOINT_MINUTES * 60),
}
