"""Settings for the hitl project, read from the environment (12-factor)."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only for a local first look: a DEBUG server never holds real data.
    SECRET_KEY = "insecure-dev-only-key-do-not-use-in-production"  # noqa: S105

# Production hardening: on unless DEBUG (a first look on http://127.0.0.1 needs none of it).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "simple_history",
    "policies",
    # evaluation comes before reviews so its seed_demo (which extends the reviews one with
    # a demo dataset) is the one manage.py runs; without evaluation, reviews' runs alone.
    "evaluation",
    "reviews",
]

MIDDLEWARE = [
    # First, so its process_exception runs for any view and its answer is what goes out.
    "hitl.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "hitl.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "hitl.urls"

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

WSGI_APPLICATION = "hitl.wsgi.application"

# SQLite file by default for a first look; DATABASE_URL=postgres://... for production and CI.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once when the worker and the
    # web server write at the same moment.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DB_PREPARED_STATEMENTS", default=True
):
    # The hot path's statements are prepared (hitl.internals.prepared_cursor) and planned
    # once, not again on every run as PostgreSQL's "auto" mode kept doing for them; the
    # ORM's own statements are never prepared, so neither setting touches them. psycopg
    # prepares only what asks (prepare_threshold); left at Django's None, nothing is
    # prepared: DB_PREPARED_STATEMENTS=0 behind a PgBouncer, which also refuses `options`.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("options", "-c plan_cache_mode=force_generic_plan")
    options.setdefault("prepare_threshold", 1_000_000)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep each worker's connection between requests: a new one per request costs PostgreSQL a
# backend process each time and halved the proposals per second (bench B1). Health checks
# replace a connection the server dropped.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="hitl@localhost")
# The address people open: links in reminder and notification emails and chat messages.
HITL_BASE_URL = env("HITL_BASE_URL", default="http://127.0.0.1:8000")

# Reverting a review to an old version would move its state behind the state machine's
# back; the admin also refuses the POST (see reviews.admin).
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True


def q_cluster(*, redis_url: str, workers: int, timeout: int, retry: int, max_attempts: int) -> dict:
    """django-q2's settings: the ORM broker on this database by default, Redis when
    REDIS_URL is set. Both deliver at least once (ours re-queues what a dead cluster had
    taken, see hitl.redis_broker), so a task not acknowledged `retry` seconds after it was
    taken runs again: `retry` must exceed `timeout`, the longest a task may run, or a slow
    task would run twice at once. A failed task is not acknowledged (ack_failures off), so
    it is retried the same way, at most `max_attempts` times in all."""
    if timeout < 1 or retry <= timeout:
        raise ImproperlyConfigured(
            f"Q_RETRY ({retry} s) must be greater than Q_TIMEOUT ({timeout} s), which "
            "must be at least 1 s: a task still running when its retry comes runs twice."
        )
    if max_attempts < 1:
        raise ImproperlyConfigured(f"Q_MAX_ATTEMPTS must be at least 1, not {max_attempts}.")
    config = {
        "name": "hitl",
        "workers": workers,
        "timeout": timeout,
        "retry": retry,
        "max_attempts": max_attempts,
        "ack_failures": False,
        "catch_up": False,
    }
    if not redis_url:
        return {**config, "orm": "default"}
    # Few tasks taken ahead per cluster: whatever a cluster holds waits for it, and would
    # wait `retry` seconds more if it died.
    return {
        **config,
        "redis": redis_url,
        "broker_class": "hitl.redis_broker.ReliableRedis",
        "queue_limit": workers * 2,
        "bulk": 1,
    }


# Q_WORKERS processes per qcluster; Q_TIMEOUT the longest a task may run (seconds);
# Q_RETRY when a task taken but not acknowledged runs again; Q_MAX_ATTEMPTS in all.
Q_CLUSTER = q_cluster(
    redis_url=env("REDIS_URL", default=""),
    workers=env.int("Q_WORKERS", default=2),
    timeout=env.int("Q_TIMEOUT", default=60),
    retry=env.int("Q_RETRY", default=120),
    max_attempts=env.int("Q_MAX_ATTEMPTS", default=5),
)
# The worker's execution when an action's trusted facts cannot be read: attempts in all,
# and the first delay, doubled each time (see reviews.services.execution_retry).
HITL_EXECUTION_ATTEMPTS = env.int("HITL_EXECUTION_ATTEMPTS", default=5)
HITL_EXECUTION_RETRY_SECONDS = env.int("HITL_EXECUTION_RETRY_SECONDS", default=30)
# When the reconcile sweep takes over an execution left claimed (or never started) by a
# worker that died: longer than any executor runs, or a slow one would be run again.
HITL_EXECUTION_STALE_SECONDS = env.int("HITL_EXECUTION_STALE_SECONDS", default=300)
# How POST /api/v1/actions/ logs its policy decisions: "sync" inserts every one in the
# request; "deferred" hands the auto-executed reads to the worker in batches (every
# HITL_DECISION_LOG_SECONDS or HITL_DECISION_LOG_BATCH rows; see policies.decision_log).
HITL_DECISION_LOG = env("HITL_DECISION_LOG", default="sync")
if HITL_DECISION_LOG not in ("sync", "deferred"):
    raise ImproperlyConfigured(
        f"HITL_DECISION_LOG must be 'sync' or 'deferred', not {HITL_DECISION_LOG!r}."
    )
HITL_DECISION_LOG_SECONDS = env.float("HITL_DECISION_LOG_SECONDS", default=1.0)
HITL_DECISION_LOG_BATCH = env.int("HITL_DECISION_LOG_BATCH", default=500)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reviews.api.authentication.AgentKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["reviews.api.errors.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["reviews.api.throttling.AgentRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"agent": env("HITL_AGENT_RATE", default="600/min")},
    "EXCEPTION_HANDLER": "reviews.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "hitl API",
    "DESCRIPTION": "Agents propose actions, wait for people to decide, and resume.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the app itself: the docs work without reaching a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ReviewStateEnum": "reviews.models.ReviewState"},
}

# The API's rate limits (hitl.ratelimit): in Redis, so that every web process counts
# the same requests; without it, each process counts its own.
HITL_RATE_LIMIT_REDIS_URL = env("REDIS_URL", default="")

HITL_MAX_BODY_BYTES = env.int("HITL_MAX_BODY_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = HITL_MAX_BODY_BYTES

# Reviews: defaults a queue falls back to when it sets nothing of its own.
HITL_DEFAULT_SLA_MINUTES = env.int("HITL_DEFAULT_SLA_MINUTES", default=240)
HITL_DEFAULT_EXPIRY_MINUTES = env.int("HITL_DEFAULT_EXPIRY_MINUTES", default=72 * 60)
# A case a person took over: reminded at half this time, handed to the queue owner after it.
HITL_TAKEOVER_TIMEOUT = env.int("HITL_TAKEOVER_TIMEOUT_MINUTES", default=24 * 60)
# Retention: {"<target>": days or null, "tenants": {"<slug>": {...}}} as JSON (see
# reviews/services/retention.py for the targets and defaults); archives go to the folder.
HITL_RETENTION = env.json("HITL_RETENTION", default={})
HITL_ARCHIVE_DIR = env("HITL_ARCHIVE_DIR", default=str(BASE_DIR / "archive"))

# Notifications: a queue's chat webhook must be https; plain http to 127.0.0.1 only where
# this allows it (a local relay, the tests). HITL_NOTIFY_SYNC sends arrival and escalation
# notices in the request instead of a worker task (demos without a worker).
HITL_CHAT_ALLOW_LOOPBACK_HTTP = env.bool("HITL_CHAT_ALLOW_LOOPBACK_HTTP", default=DEBUG)
HITL_NOTIFY_SYNC = env.bool("HITL_NOTIFY_SYNC", default=False)

# Evaluation capture: approvals sampled for balance, the time a reviewer must have spent
# for a case to count as informed, and when two cases count as near-duplicates.
HITL_EVAL_APPROVAL_SAMPLE = env.float("HITL_EVAL_APPROVAL_SAMPLE", default=0.1)
HITL_EVAL_MIN_SECONDS = env.float("HITL_EVAL_MIN_SECONDS", default=15)
HITL_EVAL_DUPLICATE_SIMILARITY = env.float("HITL_EVAL_DUPLICATE_SIMILARITY", default=0.95)
HITL_EVAL_CAPTURE_SYNC = env.bool("HITL_EVAL_CAPTURE_SYNC", default=False)

# What an API client is told to wait when the database is unreachable (503 Retry-After).
HITL_DB_RETRY_AFTER_SECONDS = env.int("HITL_DB_RETRY_AFTER_SECONDS", default=5)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors_one_line": {"()": "hitl.middleware.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "presidio-analyzer": {"level": "WARNING"},
        # 4xx responses (permission denied above all) as one line, without a traceback.
        "django.request": {"filters": ["client_errors_one_line"]},
    },
}
