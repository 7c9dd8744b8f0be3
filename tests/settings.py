"""Settings for the test suite: SQLite by default, PostgreSQL when DJTASKS_TEST_DB=postgres.

Worker subprocesses started by the tests use these settings too; DJTASKS_DB_NAME points them
at the test database and REDIS_URL at the suite's own redis-server.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
VAR.mkdir(exist_ok=True)
env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

if os.environ.get("DJTASKS_TEST_DB", "sqlite") == "postgres":
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR / "tests.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not :memory:, so worker processes share the test database.
            "TEST": {"NAME": str(VAR / f"test-{os.environ.get('DJTASKS_TEST_RUN', 'db')}.sqlite3")},
        }
    }
if os.environ.get("DJTASKS_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DJTASKS_DB_NAME"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djtasks",
    "tests.testapp",
    "tests.djangoapp",
    "tests.celeryapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {"default": {"BACKEND": "djtasks.backend.RedisBackend"}}
DJTASKS = {
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:1/0"),
    "PREFIX": "djtasks-test",
    "LEASE_SECONDS": 6.0,
    "REAP_INTERVAL": 1.0,
    "SWEEP_INTERVAL": 0.5,
    "SWEEP_GRACE": 0.5,
    "SHUTDOWN_GRACE": 10.0,
    "SOCKET_TIMEOUT": 3.0,
    "SOCKET_CONNECT_TIMEOUT": 1.0,
    "PUBLISH_BACKOFF": 0.2,
    "DB_RETRY_WINDOW": 60.0,
    "RESULT_EXPIRES": float(os.environ.get("DJTASKS_RESULT_EXPIRES", 86400)),
    "ROUTES": {"tests.testapp.tasks.routed_*": "routed", "tests.testapp.tasks.routed_exact": {"queue": "exact"}},
    # Worker subprocesses of a test may be started with these switched.
    "ENABLE_EVENTS": os.environ.get("DJTASKS_ENABLE_EVENTS", "1") == "1",
    "EVENTS_MAXLEN": int(os.environ.get("DJTASKS_EVENTS_MAXLEN", "10000")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"leveled": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "leveled": {"class": "logging.StreamHandler", "formatter": "leveled"},
    },
    "loggers": {
        "djtasks": {"handlers": ["console"], "level": "INFO"},
        # Django's task lifecycle lines: the django.tasks contract tests read them in workers' logs.
        # Off for the worker-output tests, which read djtasks' own lines (its values redacted) alone.
        "django.tasks": {
            "handlers": ["leveled"],
            "level": "CRITICAL" if os.environ.get("DJTASKS_TEST_QUIET_DJANGO_LOG") else "INFO",
            "propagate": False,
        },
    },
}

# Worker subprocesses of the periodic-task tests get their BEAT_SCHEDULE from the environment:
# {"name": {"task": ..., "schedule": seconds or a five-field crontab line, "args": [...]}}.
if os.environ.get("DJTASKS_TEST_BEAT"):
    import json

    from djtasks.schedules import crontab

    DJTASKS["BEAT_SCHEDULE"] = {
        name: {**entry, "schedule": crontab.parse(s) if isinstance(s := entry["schedule"], str) else s}
        for name, entry in json.loads(os.environ["DJTASKS_TEST_BEAT"]).items()
    }

# Worker subprocesses of the settings tests get extra DJTASKS values (JSON) from the environment.
if os.environ.get("DJTASKS_TEST_SETTINGS"):
    import json

    DJTASKS.update(json.loads(os.environ["DJTASKS_TEST_SETTINGS"]))

# Worker subprocesses of the Celery-settings tests get top-level settings (JSON) from the environment,
# e.g. {"CELERY_TASK_DEFAULT_QUEUE": "celery"}.
if os.environ.get("DJTASKS_TEST_DJANGO_SETTINGS"):
    import json

    globals().update(json.loads(os.environ["DJTASKS_TEST_DJANGO_SETTINGS"]))
