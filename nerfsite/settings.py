"""Settings, read from the environment with embedded defaults.

Defaults run everything on one machine: SQLite, django-q2's ORM broker, the local engine
backend and data under var/. See README.md for the variables.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dj_email_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from pipeline.engine.catalogue import STAGES

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "")
    return Path(value).expanduser().resolve() if value.strip() else default


ENVIRONMENT = os.environ.get("ENVIRONMENT", "development").strip().lower()
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured("ENVIRONMENT must be 'development' or 'production'.")
PRODUCTION = ENVIRONMENT == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("Set SECRET_KEY (a long random string) in production.")
    SECRET_KEY = "development-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
    .split(",")
    if h.strip()
]
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set ALLOWED_HOSTS (comma separated) in production.")
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Its API docs then load Swagger UI from this site's static files, not a CDN with an
    # inline script: the Content-Security-Policy allows neither.
    "ninja",
    # Before django_q: its qcluster command replaces django-q2's (the worker as one unit).
    "nerfsite",
    "django_q",
    "products",
    "pipeline",
    "accounts",
    "notifications",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "nerfsite.security.FrameOriginCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "nerfsite.urls"
WSGI_APPLICATION = "nerfsite.wsgi.application"
ASGI_APPLICATION = "nerfsite.asgi.application"

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
            ],
        },
    },
]

# --- Data on disk -------------------------------------------------------------------
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
UPLOAD_STORAGE_PATH = env_path("UPLOAD_STORAGE_PATH", MEDIA_ROOT / "uploads")
FRAME_STORAGE_PATH = env_path("FRAME_STORAGE_PATH", MEDIA_ROOT / "frames")
# Finished frames are public by their job's random id, so storefronts can embed spins. The
# site serves them itself; a web server or CDN in front of this URL makes them faster.
FRAME_URL = os.environ.get("FRAME_URL", "/frames/")
MODEL_STORAGE_PATH = env_path("MODEL_STORAGE_PATH", VAR_DIR / "models")
NERF_DATA_ROOT = env_path("NERF_DATA_ROOT", VAR_DIR / "nerf-data")

STATIC_URL = "/static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Photos (private) and frames (public): the "photos" and "frames" storages ---------
# On disk by default. A bucket name moves either one to S3-compatible storage (the `s3`
# extra, django-storages); credentials come from boto3's usual places (AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY, or the machine's role). The photos bucket stays private: the
# site streams each photo to its owner (products.views). The frames bucket is public.
S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "").strip()
S3_REGION = os.environ.get("S3_REGION", "").strip()
PHOTOS_S3_BUCKET = os.environ.get("PHOTOS_S3_BUCKET", "").strip()
FRAMES_S3_BUCKET = os.environ.get("FRAMES_S3_BUCKET", "").strip()
FRAMES_S3_CUSTOM_DOMAIN = os.environ.get("FRAMES_S3_CUSTOM_DOMAIN", "").strip()


def s3_storage(backend: str, bucket: str, *, endpoint_url: str, region: str,
               **options) -> dict:
    """A STORAGES entry for a bucket (the tests build theirs with it too)."""
    return {"BACKEND": backend, "OPTIONS": {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,
        "region_name": region or None,
        # Path-style URLs (endpoint/bucket/key) work on every S3-compatible server.
        "addressing_style": "path" if endpoint_url else None,
        **options,
    }}


def photos_s3_storage(bucket: str, *, endpoint_url: str, region: str) -> dict:
    # A photo being streamed or packed is held in memory up to 5 MB, then in a temporary file.
    return s3_storage("storages.backends.s3.S3Storage", bucket, endpoint_url=endpoint_url,
                      region=region, file_overwrite=False, max_memory_size=5 * 1024 * 1024)


def frames_s3_storage(bucket: str, *, endpoint_url: str, region: str,
                      custom_domain: str = "") -> dict:
    # Unsigned, lasting URLs: storefronts embed them. A retried job publishes its frames
    # again under the same names (file_overwrite, the default).
    return s3_storage("pipeline.delivery.s3.FrameS3Storage", bucket, endpoint_url=endpoint_url,
                      region=region, querystring_auth=False,
                      custom_domain=custom_domain or None)


STORAGES["photos"] = photos_s3_storage(
    PHOTOS_S3_BUCKET, endpoint_url=S3_ENDPOINT_URL, region=S3_REGION,
) if PHOTOS_S3_BUCKET else {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": UPLOAD_STORAGE_PATH},
}
STORAGES["frames"] = frames_s3_storage(
    FRAMES_S3_BUCKET, endpoint_url=S3_ENDPOINT_URL, region=S3_REGION,
    custom_domain=FRAMES_S3_CUSTOM_DOMAIN,
) if FRAMES_S3_BUCKET else {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": FRAME_STORAGE_PATH, "base_url": FRAME_URL,
                "allow_overwrite": True},
}

# --- Database -----------------------------------------------------------------------
# SQLite by default. The web process and the worker write at the same time, so WAL lets
# readers run beside the writer, and the busy timeout makes a writer wait for the lock
# instead of failing with "database is locked".
SQLITE_PATH = env_path("SQLITE_PATH", VAR_DIR / "db.sqlite3")
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)  # SQLite does not create folders
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory, so a worker process started by a test sees the same data.
            "TEST": {"NAME": VAR_DIR / "test-db.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Engine and backends ------------------------------------------------------------
MOCK_MODAL = env_bool("MOCK_MODAL")
NERF_BACKEND = "local" if MOCK_MODAL else os.environ.get("NERF_BACKEND", "local").strip().lower()
if NERF_BACKEND not in {"local", "modal"}:
    raise ImproperlyConfigured("NERF_BACKEND must be 'local' or 'modal'.")
GPU_TYPE_DEV = os.environ.get("GPU_TYPE_DEV", "T4")
GPU_TYPE_PROD = os.environ.get("GPU_TYPE_PROD", "A10G")
GPU_TYPE = GPU_TYPE_PROD if PRODUCTION else GPU_TYPE_DEV
MODAL_TOKEN_ID = os.environ.get("MODAL_TOKEN_ID", "")
MODAL_TOKEN_SECRET = os.environ.get("MODAL_TOKEN_SECRET", "")
MODAL_APP_NAME = os.environ.get("MODAL_APP_NAME", "nerf-prod" if PRODUCTION else "nerf-dev")
MODAL_VOLUME_CLEANUP_HOURS = env_int("MODAL_VOLUME_CLEANUP_HOURS", 48)

# --- Jobs (pipeline.jobs.tasks) ----------------------------------------------------------
JOB_MIN_PHOTOS = env_int("JOB_MIN_PHOTOS", 8)
# Seconds each engine stage may run before it is stopped and the job fails.
# JOB_COLMAP_TIME_LIMIT, JOB_TRAIN_TIME_LIMIT, JOB_RENDER_TIME_LIMIT; defaults 1 h, 3 h
# and 90 min, from the stage catalogue.
JOB_STAGE_TIME_LIMITS = {
    stage.name: env_int(f"JOB_{stage.name.upper()}_TIME_LIMIT", stage.time_limit_s)
    for stage in STAGES.values() if stage.time_limit_s is not None
}
# A running job whose worker has not written a heartbeat for this long is stale (the
# worker died): the recovery schedule resumes it ("resume") or fails it ("fail").
JOB_STALE_AFTER_SECONDS = env_int("JOB_STALE_AFTER_SECONDS", 120)
JOB_QUEUED_RESEND_AFTER_SECONDS = env_int("JOB_QUEUED_RESEND_AFTER_SECONDS", 600)
JOB_STALE_ACTION = os.environ.get("JOB_STALE_ACTION", "resume").strip().lower()
if JOB_STALE_ACTION not in {"resume", "fail"}:
    raise ImproperlyConfigured("JOB_STALE_ACTION must be 'resume' or 'fail'.")
# Delete a job's workspace as soon as its frames and model are collected.
CLEANUP_AFTER_COLLECT = env_bool("CLEANUP_AFTER_COLLECT")

# --- Task queue (django-q2) ---------------------------------------------------------
# ORM broker by default (no extra service); Redis when REDIS_URL is set. The timeout must
# outlast the longest stage, and `retry` must be larger than `timeout` so the broker never
# hands a task that is still running to a second worker.
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
Q_BROKER = os.environ.get("Q_BROKER", "redis" if REDIS_URL else "orm").strip().lower()
Q_TASK_TIMEOUT = env_int("Q_TASK_TIMEOUT", 6 * 3600)
# pipeline.checks verifies it outlasts the stage time limits.
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "nerf"),
    "workers": env_int("Q_WORKERS", 2),
    "recycle": 50,
    "timeout": Q_TASK_TIMEOUT,
    "retry": Q_TASK_TIMEOUT + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "label": "Task queue",
    "poll": 1,
}
if Q_BROKER == "redis":
    if not REDIS_URL:
        raise ImproperlyConfigured("Q_BROKER=redis needs REDIS_URL.")
    Q_CLUSTER["redis"] = REDIS_URL
elif Q_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
else:
    raise ImproperlyConfigured("Q_BROKER must be 'orm' or 'redis'.")

# --- Cache --------------------------------------------------------------------------
# One cache for every process (web workers, the worker's processes): django-q2 keeps its
# cluster stats there, so `qinfo` and `qmonitor` see the cluster. Redis when REDIS_URL is
# set, otherwise a database table, which `migrate` creates (nerfsite.apps).
# The rate limits' counters (nerfsite.throttles) have a cache of their own: in Redis under
# their own prefix; in the database in their own table, since a table past MAX_ENTRIES
# culls keys, and one shared with django-q2 would lose its status (or the counters).
if REDIS_URL:
    _REDIS = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    CACHES = {"default": _REDIS, "throttles": {**_REDIS, "KEY_PREFIX": "throttle"}}
else:
    _TABLE = {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
              "OPTIONS": {"MAX_ENTRIES": env_int("CACHE_MAX_ENTRIES", 100_000)}}
    CACHES = {"default": {**_TABLE, "LOCATION": "django_cache"},
              "throttles": {**_TABLE, "LOCATION": "django_cache_throttles"}}

# --- Auth ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "products:list"
LOGOUT_REDIRECT_URL = "login"
# Anyone may make an account at /accounts/signup/ unless this is off.
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", True)
# How long the emailed password-reset and email-verification links work.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# The worker has no request to build absolute URLs from: job emails and webhooks use this.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").strip().rstrip("/")

# --- Email (accounts, notifications) -----------------------------------------------
# EMAIL_URL names the backend: console:// (default: printed by the web process or the
# worker), smtp://user:pass@host:587?tls=1, smtp://…:465?ssl=1, memory://, dummy://.
EMAIL_URL = os.environ.get("EMAIL_URL", "").strip() or "console://"
globals().update({key: value for key, value in dj_email_url.parse(EMAIL_URL).items()
                  if value not in (None, "")})
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)  # a stuck SMTP server must not hold a worker
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "360° spins <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Webhooks (notifications) ------------------------------------------------------
# Webhooks may reach only public addresses; tests and single-network setups turn this on.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# Attempts per event and endpoint; the wait before retry n is BASE × 4^(n-1): 1 min,
# 4 min, 16 min, ~1 h, ~4 h with the defaults.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 60)
# Work one user may put on the shared worker at once (0: no limit): webhook endpoints,
# test events not yet delivered, and turntable videos queued or being made.
WEBHOOK_ENDPOINTS_PER_USER = env_int("WEBHOOK_ENDPOINTS_PER_USER", 10)
WEBHOOK_TESTS_IN_FLIGHT_PER_USER = env_int("WEBHOOK_TESTS_IN_FLIGHT_PER_USER", 1)
VIDEOS_IN_FLIGHT_PER_USER = env_int("VIDEOS_IN_FLIGHT_PER_USER", 3)
# django-axes first: it refuses a locked-out sign-in before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Abuse limits (nerfsite/throttles.py; README "Limits") ---------------------------
# Proxies in front of the site that append the caller to X-Forwarded-For; 0 means the
# caller is REMOTE_ADDR and the header, which anyone can forge, is ignored.
NUM_PROXIES = env_int("NUM_PROXIES", 0)
NINJA_NUM_PROXIES = NUM_PROXIES
# Failed sign-ins (the login page and the admin's), counted by django-axes per username
# and per address apart: either one past the limit is locked out for the cool-off.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"  # a page saying why and for how long
AXES_CLIENT_IP_CALLABLE = "nerfsite.throttles.client_address"
# Rates are "N/period" (s, min, h, d; "20/10min"); empty turns that limit off.
API_RATE_PER_TOKEN = os.environ.get("API_RATE_PER_TOKEN", "600/min")
API_RATE_PER_ADDRESS = os.environ.get("API_RATE_PER_ADDRESS", "1200/min")
API_AUTH_FAILURES_PER_ADDRESS = os.environ.get("API_AUTH_FAILURES_PER_ADDRESS", "20/10min")
# Sign-ups, password resets and confirmation resends, which each send an email: per
# calling address, and per email address asked for.
ACCOUNT_EMAILS_PER_ADDRESS = os.environ.get("ACCOUNT_EMAILS_PER_ADDRESS", "20/h")
ACCOUNT_EMAILS_PER_RECIPIENT = os.environ.get("ACCOUNT_EMAILS_PER_RECIPIENT", "5/h")
# Seconds one upload request may spend checking and storing photos (products.services);
# below gunicorn's 120 s request limit, which threaded workers do not enforce themselves.
UPLOAD_TIME_LIMIT_SECONDS = env_int("UPLOAD_TIME_LIMIT_SECONDS", 90)
# Photo files no row points at (an upload killed before saving its rows) are deleted once
# they are this old (products.services.orphan_uploads_delete, an hourly schedule).
UPLOAD_ORPHAN_HOURS = env_int("UPLOAD_ORPHAN_HOURS", 24)
# Files (photos or .zips) one user may upload per hour, on the pages and the API together.
UPLOADS_PER_HOUR = env_int("UPLOADS_PER_HOUR", 1000)  # 0 turns the limit off

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production) ----------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"


# --- Content-Security-Policy (django-csp), on every response ---------------------------
# Scripts only from this site's files: no inline script, handler or eval. Inline styles
# are allowed: the viewer injects its own stylesheet (one file to embed on a storefront)
# and the admin uses style attributes; a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        # nerfsite.security adds the frames' origin when they come from a bucket or CDN.
        "img-src": [SELF, "data:", "blob:"],
        "media-src": [SELF],  # turntable videos, beside the frames (nerfsite.security)
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Photo uploads (products/validation.py) -----------------------------------------
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 25 * 1024 * 1024)
PHOTO_MIN_SHORT_SIDE = env_int("PHOTO_MIN_SHORT_SIDE", 640)
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 50_000_000)
PHOTOS_PER_PRODUCT_MAX = env_int("PHOTOS_PER_PRODUCT_MAX", 300)
ZIP_MAX_BYTES = env_int("ZIP_MAX_BYTES", 2 * 1024**3)
ZIP_MAX_ENTRIES = env_int("ZIP_MAX_ENTRIES", 400)
ZIP_MAX_UNCOMPRESSED_BYTES = env_int("ZIP_MAX_UNCOMPRESSED_BYTES", 3 * 1024**3)
# One request may carry as many files as a product may hold.
DATA_UPLOAD_MAX_NUMBER_FILES = PHOTOS_PER_PRODUCT_MAX

# --- Logging: one structured line per record on the console -------------------------
# Error reports hide cookies, sessions, CSRF tokens and credential-named variables too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "nerfsite.logging.SafeReporterFilter"
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"()": "nerfsite.logging.KeyValueFormatter"},
    },
    # No credential in the log, whoever wrote the record (nerfsite.logging.RedactSecrets).
    "filters": {"redact": {"()": "nerfsite.logging.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured",
                    "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
