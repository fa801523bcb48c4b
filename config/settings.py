"""Tollgate settings, read from the environment (see .env.example).

With no environment at all this is the embedded default of `make run`: SQLite under
var/, in-process cache and queues, console e-mail, Celery eager. DATABASE_URL and
REDIS_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

from config.env import ConfigError, env_bool, env_decimal, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TOLLGATE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    # Embedded default: a random key kept under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "ninja",
    "accounts",
    "billing",
    "gateway",
    "dashboard",
    "testkit",  # the fake upstream of the demo and the tests (no models)
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
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
                "dashboard.context_processors.console",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "tollgate.sqlite3"),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # A file, not shared-cache memory, for the test database: the server under
            # test and its flusher write from other threads, and shared-cache SQLite
            # answers "table is locked" instead of waiting.
            "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and cache ------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tgc",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Tollgate] "
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
# Failed logins are limited per IP and per account (allauth keeps the counters in
# the cache above: Redis in production, so every worker shares them).
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- E-mail ---------------------------------------------------------------------
EMAIL_URL = env_str("EMAIL_HOST")
if EMAIL_URL:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = EMAIL_URL
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Tollgate <noreply@localhost>")

# --- i18n / static --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves from it once collectstatic ran
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Celery ---------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TIMEZONE = "UTC"

# --- Tollgate -------------------------------------------------------------------
# Fernet keys (comma-separated, newest first) that encrypt provider keys at rest.
# Rotation: put a new key first, run `manage.py rotate_secrets`, then drop the old.
TOLLGATE_ENCRYPTION_KEYS = env_list("TOLLGATE_ENCRYPTION_KEYS")
if not TOLLGATE_ENCRYPTION_KEYS and not DEBUG and env_bool("TOLLGATE_PRODUCTION", False):
    raise ConfigError("TOLLGATE_ENCRYPTION_KEYS is required when TOLLGATE_PRODUCTION=true")

TOLLGATE_PRODUCTION = env_bool("TOLLGATE_PRODUCTION", False)
# Served usage waits in a Redis stream until the usage worker writes it: a Redis that
# keeps nothing on disk loses it on a restart. In production Tollgate refuses to
# start without append-only persistence unless this says the loss is accepted.
TOLLGATE_REDIS_VOLATILE_OK = env_bool("TOLLGATE_REDIS_VOLATILE_OK", False)

TOLLGATE_KEY_PREFIX = "sk-tg-"
# How long a worker may serve a key, catalog or group from memory before it checks
# again; explicit invalidation through Redis makes changes visible sooner.
TOLLGATE_CACHE_TTL_SECONDS = env_int("TOLLGATE_CACHE_TTL_SECONDS", 30)
# Streams: response headers go out when the upstream answers, or after this grace
# if it is still silent (so an upstream error can still get its real status); then an
# SSE comment every TOLLGATE_KEEPALIVE_SECONDS while nothing else is sent, so clients
# with idle limits (Node drops a request after 300 s) survive long prefill.
TOLLGATE_STREAM_HEADER_GRACE_MS = env_int("TOLLGATE_STREAM_HEADER_GRACE_MS", 1000)
TOLLGATE_KEEPALIVE_SECONDS = env_float("TOLLGATE_KEEPALIVE_SECONDS", 15.0)
TOLLGATE_UPSTREAM_CONNECT_TIMEOUT = env_int("TOLLGATE_UPSTREAM_CONNECT_TIMEOUT", 10)
TOLLGATE_UPSTREAM_READ_TIMEOUT = env_int("TOLLGATE_UPSTREAM_READ_TIMEOUT", 600)
TOLLGATE_UPSTREAM_MAX_CONNECTIONS = env_int("TOLLGATE_UPSTREAM_MAX_CONNECTIONS", 1000)
TOLLGATE_REDIS_MAX_CONNECTIONS = env_int("TOLLGATE_REDIS_MAX_CONNECTIONS", 200)
# Where usage events are written to the database: "inprocess" (a flusher thread in each
# gateway process; required without Redis) or "external" (a `manage.py usage_worker`
# process consumes the Redis stream; `manage.py serve` starts one and sets this for its
# web workers, so the event loop never shares the GIL with database writes).
# Where credit holds and the usage queue live (gateway.runtime): "redis", shared by
# every worker, or "local", this process's memory (one process only).
TOLLGATE_STATE_BACKEND = env_str("TOLLGATE_STATE_BACKEND", "redis" if REDIS_URL else "local")
if TOLLGATE_STATE_BACKEND not in ("redis", "local"):
    raise ConfigError("TOLLGATE_STATE_BACKEND must be 'redis' or 'local'")
if TOLLGATE_STATE_BACKEND == "redis" and not REDIS_URL:
    raise ConfigError("TOLLGATE_STATE_BACKEND=redis needs REDIS_URL")
TOLLGATE_USAGE_FLUSHER = env_str("TOLLGATE_USAGE_FLUSHER", "inprocess")
if TOLLGATE_USAGE_FLUSHER not in ("inprocess", "external"):
    raise ConfigError("TOLLGATE_USAGE_FLUSHER must be 'inprocess' or 'external'")
if TOLLGATE_USAGE_FLUSHER == "external" and not REDIS_URL:
    raise ConfigError("TOLLGATE_USAGE_FLUSHER=external needs REDIS_URL (the shared queue)")
TOLLGATE_USAGE_BATCH_SIZE = env_int("TOLLGATE_USAGE_BATCH_SIZE", 500)
TOLLGATE_USAGE_FLUSH_MS = env_int("TOLLGATE_USAGE_FLUSH_MS", 200)
TOLLGATE_DEMO_UPSTREAM_URL = env_str("TOLLGATE_DEMO_UPSTREAM_URL", "http://127.0.0.1:8001")

# Billing (amounts in USD; stored internally as integer nano-dollars).
TOLLGATE_TRIAL_CREDIT_USD = env_decimal("TOLLGATE_TRIAL_CREDIT_USD", "3")
TOLLGATE_TOPUP_MIN_USD = env_decimal("TOLLGATE_TOPUP_MIN_USD", "10")
TOLLGATE_TOPUP_FEE_PERCENT = env_decimal("TOLLGATE_TOPUP_FEE_PERCENT", "5")
TOLLGATE_TOPUP_LAUNCH_FEE_PERCENT = env_decimal("TOLLGATE_TOPUP_LAUNCH_FEE_PERCENT", "3")
TOLLGATE_LAUNCH_WINDOW_END = env_str("TOLLGATE_LAUNCH_WINDOW_END", "")  # YYYY-MM-DD
TOLLGATE_BYOK_FEE_PERCENT = env_decimal("TOLLGATE_BYOK_FEE_PERCENT", "1.5")

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_str("STRIPE_API_BASE")  # tests point this at a local fake

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # One INFO line per upstream request is a measurable share of the proxy's CPU.
    "loggers": {
        name: {"level": "WARNING"} for name in ("httpx", "httpcore", "httpx2", "httpcore2")
    },
}
