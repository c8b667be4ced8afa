"""Settings for every deployment, read from the environment.

With no environment variables at all this is the *embedded default*: SQLite (WAL) under
``$SEED_DATA_DIR``, an in-memory channel layer, a local-memory cache and a filesystem Celery
broker, so ``make run`` needs no server. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and
Redis for a scaled deployment (several Seed servers sharing one database and one Redis).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from seedproject.schedules import LiveInterval

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
    if not 0 <= value < float("inf"):
        raise ImproperlyConfigured(f"{name} must be a number of seconds (0 or more), got {raw!r}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DATA_DIR = Path(env_str("SEED_DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
# The embedded default is "one machine, zero servers"; anything with DATABASE_URL is a deployment.
SEED_EMBEDDED = not DATABASE_URL

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not SEED_EMBEDDED:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DATABASE_URL is set")
    SECRET_KEY = "embedded-default-not-secret-" + str(DATA_DIR)

# Anonymous API access exists only on the embedded default, and only from loopback addresses.
SEED_ALLOW_LOCAL_ANONYMOUS = env_bool("SEED_ALLOW_LOCAL_ANONYMOUS", SEED_EMBEDDED)
# The cluster's shared secret for registering employees and instances (Authorization: Bearer ...).
SEED_ENROLLMENT_TOKEN = env_str("SEED_ENROLLMENT_TOKEN")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# No "daphne" app: it only swaps `runserver` for daphne's, and importing it loads Twisted (~40 MB) into
# every process - gunicorn's HTTP workers, the Celery worker, beat. `runseed` starts daphne itself.
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
    "channels",
    "instances",
    "collaboration",
]

MIDDLEWARE = [
    "seedproject.middleware.PayloadLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, dashboard) served by the app itself: no build step, no separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "seedproject.urls"
WSGI_APPLICATION = "seedproject.wsgi.application"
ASGI_APPLICATION = "seedproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["seedproject.template_filters"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Connections each server process keeps to PostgreSQL, shared by its threads (psycopg's pool); 0 = one
# persistent connection per thread instead. A server runs SEED_HTTP_PROCESSES x SEED_HTTP_THREADS request
# threads: per-thread connections would need that many (64 on 2 cores) per server, and PostgreSQL's
# default max_connections is 100 for the whole cluster.
SEED_DB_POOL_SIZE = env_int("SEED_DB_POOL_SIZE", 8)
if DATABASE_URL and SEED_DB_POOL_SIZE > 0:
    # Reused connections: a fresh PostgreSQL handshake per request costs 5-11x (ARCHITECTURE.md). Seed's
    # backend checks a connection that sat idle as it hands it out (instead of Django's health checks,
    # which check every one), so a connection PostgreSQL dropped is replaced instead of failing a request.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=False)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "seedproject.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": SEED_DB_POOL_SIZE,
        "timeout": env_int("SEED_DB_POOL_TIMEOUT", 10),  # seconds a request waits for a free connection
    }
elif DATABASE_URL:
    # Persistent connections: a fresh PostgreSQL handshake per request costs 5-11x (ARCHITECTURE.md).
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("SEED_CONN_MAX_AGE", 600), conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "seed.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes SQLite's write lock at BEGIN, so two processes that lease messages
                # serialise instead of both reading the same queued rows.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_PREFIX = env_str("SEED_REDIS_PREFIX", "seed")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's Redis backend with a reused client and one-round-trip counters (seedproject/cache.py).
            "BACKEND": "seedproject.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8's default socket timeout equals the layer's blocking read timeout, which
                # drops idle sockets every few seconds (channels_redis#422): keep it above that.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
                "prefix": f"{REDIS_PREFIX}:channels",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
else:
    BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "processed_folder": str(BROKER_DIR),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["seedproject.api.NestingSafeJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "seedproject.auth.SeedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every route says who may call it; anything that forgets is closed to all but operators.
    "DEFAULT_PERMISSION_CLASSES": ["seedproject.permissions.Operator"],
    "DEFAULT_THROTTLE_CLASSES": ["seedproject.auth.PrincipalRateThrottle"],
    "EXCEPTION_HANDLER": "seedproject.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CyberCorp Seed API",
    "DESCRIPTION": "Multi-instance management and collaboration for fleets of AI employees.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs page works offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Seed ---------------------------------------------------------------------------------------
# Cluster defaults; `cluster/config` and the admin override them live (stored in the database).
SEED_HEARTBEAT_INTERVAL = env_int("SEED_HEARTBEAT_INTERVAL", 10)
SEED_INSTANCE_TIMEOUT = env_int("SEED_INSTANCE_TIMEOUT", 30)
SEED_LOAD_BALANCE_STRATEGY = env_str("SEED_LOAD_BALANCE_STRATEGY", "round_robin")
# Extra strategies: {"name": "dotted.path.ToClass"}, the class having select_instance(self, instances).
SEED_CUSTOM_STRATEGIES = {
    name.strip(): path.strip()
    for name, _, path in (item.partition("=") for item in env_list("SEED_CUSTOM_STRATEGIES", []))
}
SEED_PROBE_TIMEOUT = env_float("SEED_PROBE_TIMEOUT", 2.0)
# Health probes (and so registrations) may only reach these networks: loopback and private ranges.
SEED_PROBE_ALLOWED_NETWORKS = env_list(
    "SEED_PROBE_ALLOWED_NETWORKS",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
# A courtesy limit per token (or per address for anonymous callers), not a security boundary.
# DRF rate syntax ("6000/min"); empty disables it.
SEED_THROTTLE_RATE = env_str("SEED_THROTTLE_RATE", "6000/min")
# Largest WebSocket message a client may send (monitor frames are tiny).
SEED_WS_MAX_MESSAGE_BYTES = env_int("SEED_WS_MAX_MESSAGE_BYTES", 64 * 1024)
SEED_MAX_PAYLOAD_BYTES = env_int("SEED_MAX_PAYLOAD_BYTES", 256 * 1024)
SEED_MAX_METADATA_BYTES = env_int("SEED_MAX_METADATA_BYTES", 16 * 1024)
# How runseed serves its port. "gunicorn": threaded WSGI workers for HTTP, each WebSocket upgrade handed
# over to daphne (seedproject.handoff). "daphne": one ASGI server for both, HTTP through a thread pool.
# Default: gunicorn when Redis is configured; daphne on the embedded default, whose in-memory channel layer
# must live in the one process that also serves HTTP (events from a request reach the sockets there).
SEED_HTTP_SERVER = env_str("SEED_HTTP_SERVER").lower()
# Threads per HTTP process (long-polling receives hold one each while they wait).
SEED_HTTP_THREADS = env_int("SEED_HTTP_THREADS", 32)
# Seconds a request thread waits on its kept-alive connection for the client's next request, serving it
# itself instead of handing the connection back to gunicorn's main thread (seedproject.gworker); 0 = off.
SEED_HTTP_KEEPALIVE_LINGER = env_float("SEED_HTTP_KEEPALIVE_LINGER", 0.05)
# Seconds a process gathers heartbeats' connection figures before sending them to the least-connections
# set in one Redis call (instances.load_reports); 0 = each heartbeat sends its own, before it answers.
SEED_LEAST_LOADED_REPORT_DELAY = env_float("SEED_LEAST_LOADED_REPORT_DELAY", 0.05)
# HTTP processes sharing the server's port; 0 = one per core. Needs Redis (else always 1).
SEED_HTTP_PROCESSES = env_int("SEED_HTTP_PROCESSES", 0)
# daphne processes holding the WebSockets when gunicorn serves HTTP (idle sockets cost memory, not CPU).
SEED_WS_PROCESSES = env_int("SEED_WS_PROCESSES", 1)

SEED_MESSAGE_QUEUE_MAX_SIZE = env_int("SEED_MESSAGE_QUEUE_MAX_SIZE", 1000)
SEED_DEFAULT_TTL_SECONDS = env_int("SEED_DEFAULT_TTL_SECONDS", 300)
SEED_MAX_TTL_SECONDS = env_int("SEED_MAX_TTL_SECONDS", 7 * 24 * 3600)
SEED_LEASE_SECONDS = env_int("SEED_LEASE_SECONDS", 60)
SEED_MAX_DELIVERIES = env_int("SEED_MAX_DELIVERIES", 5)
SEED_EXPIRY_INTERVAL = env_int("SEED_EXPIRY_INTERVAL", 5)
# Connections the TTL sweep uses at once on PostgreSQL, each over its own share of the receivers
# (collaboration.services._sweep_batches). 1: leaves the database server's other cores to the requests.
SEED_EXPIRY_WORKERS = env_int("SEED_EXPIRY_WORKERS", 1)
SEED_CONNECTION_STALE_SECONDS = env_int("SEED_CONNECTION_STALE_SECONDS", 24 * 3600)
SEED_MAX_RECEIVE_WAIT = env_int("SEED_MAX_RECEIVE_WAIT", 30)
SEED_EXTRA_MESSAGE_TYPES = env_list("SEED_EXTRA_MESSAGE_TYPES", [])
# How "receiver_id": "role:<role>" picks one employee: least_connections (fewest live messages),
# round_robin or random.
SEED_ROLE_ROUTING_STRATEGY = env_str("SEED_ROLE_ROUTING_STRATEGY", "least_connections")
# Empty: any well-formed role name is accepted; otherwise the built-in roles plus these.
SEED_EXTRA_ROLES = env_list("SEED_EXTRA_ROLES", [])

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
# Serve straight from the app and template folders, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("SEED_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Beat runs once per cluster (see `manage.py runbeat`). Intervals are read live: operators change
# heartbeat_interval through `cluster/config` or the admin and the next check follows it.
CELERY_BEAT_SCHEDULE = {
    "check-instances": {
        "task": "instances.tasks.check_instances",
        "schedule": LiveInterval("instances.selectors.heartbeat_interval_seconds"),
        "options": {"expires": 60},
    },
    "expire-messages": {
        "task": "collaboration.tasks.expire_messages",
        "schedule": float(SEED_EXPIRY_INTERVAL),
        "options": {"expires": 60},
    },
    "prune-connections": {
        "task": "collaboration.tasks.prune_connections",
        "schedule": 3600.0,
        "options": {"expires": 600},
    },
}
