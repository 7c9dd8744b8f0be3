"""Settings of the djtasks demo project.

Everything that differs between machines comes from the environment, read with
django-environ; a `.env` file at the repository root (bin/demo writes one) fills
in what the environment does not set. Variables already in the environment win
over the file.

    SECRET_KEY       default: an insecure development key
    DEBUG            default: True
    ALLOWED_HOSTS    comma-separated; default: * when DEBUG, else none
    VAR_DIR          runtime files (database, media, mail, logs); default: <repo>/var
    REDIS_URL        default: redis://127.0.0.1:6379/0
    DATABASE_URL     default: sqlite:///<VAR_DIR>/db.sqlite3
    SHUTDOWN_GRACE   seconds a stopping worker lets tasks in flight finish; default: 30
                     (deploy/supervisord.conf's stopwaitsecs must stay above it)
    SITE_URL         the site's address in emails; default: http://127.0.0.1:8000
    FANOUT_CHUNK_SIZE  followers per timeline delivery task; default: 500
"""

from pathlib import Path

import environ

from djtasks.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-djtasks-demo-only-never-use-in-production")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [])

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djtasks",
    "demo_site.social",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "demo_site" / "templates"],
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

WSGI_APPLICATION = "demo_site.wsgi.application"
ASGI_APPLICATION = "demo_site.asgi.application"

# --- Database -----------------------------------------------------------------

_default_sqlite = VAR_DIR / "db.sqlite3"
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{_default_sqlite}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes and the web server write to one SQLite file:
    # WAL lets readers run beside the writer, IMMEDIATE takes the write lock
    # when a transaction starts (no deadlock-prone lock upgrade later), and a
    # 30 s busy timeout makes a writer wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
    if Path(DATABASES["default"]["NAME"]) == _default_sqlite:
        VAR_DIR.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- djtasks --------------------------------------------------------------------

TASKS = {"default": {"BACKEND": "djtasks.backend.RedisBackend"}}
DJTASKS = {
    "REDIS_URL": REDIS_URL,
    "SHUTDOWN_GRACE": env.float("SHUTDOWN_GRACE", default=30.0),
    # The demo's cron job, run by the workers themselves (no beat process): every hour.
    "BEAT_SCHEDULE": {
        "demo-cleanup": {"task": "demo_site.social.tasks.cleanup_demo", "schedule": crontab(minute=0)},
    },
}

# --- Media (avatars) and email ------------------------------------------------------

MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
# Follow notifications are written as files, one per message, instead of being sent.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = "djtasks demo <demo@example.com>"
DEMO_SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# Readers per deliver_post task: a post by someone with 10,000 followers becomes 20 tasks
# that several workers run side by side, each one short.
DEMO_FANOUT_CHUNK_SIZE = env.int("FANOUT_CHUNK_SIZE", default=500)

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "social:login"
LOGIN_REDIRECT_URL = "social:home"
LOGOUT_REDIRECT_URL = "social:home"

# --- Internationalization -----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Logging ------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "console"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "djtasks": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Django's task lifecycle log ("Task id=... state=RUNNING"), printed once.
        "django.tasks": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
