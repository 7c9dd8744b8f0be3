"""Settings every benchmark project shares: the database and Redis the harness started, from the environment.

BENCH_DB is "sqlite" (BENCH_SQLITE_PATH names the file) or "postgres" (BENCH_PG_URL, a
postgres://user@host:port/name URL; BENCH_PGBOUNCER=1 when it is PgBouncer); BENCH_REDIS_URL is
the harness's redis-server.
"""

import os
from urllib.parse import urlsplit

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def databases() -> dict:
    kind = os.environ.get("BENCH_DB", "sqlite")
    if kind == "postgres":
        url = urlsplit(os.environ["BENCH_PG_URL"])
        return {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.path.lstrip("/"),
                "USER": url.username or "postgres",
                "PASSWORD": url.password or "",
                "HOST": url.hostname or "127.0.0.1",
                "PORT": str(url.port or 5432),
                # Behind PgBouncer (benchmarks/run --pgbouncer): no cursor outlives its transaction.
                "DISABLE_SERVER_SIDE_CURSORS": os.environ.get("BENCH_PGBOUNCER") == "1",
            }
        }
    # The embedded default as the djtasks test suite runs it: WAL, IMMEDIATE transactions.
    return {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["BENCH_SQLITE_PATH"],
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }


BASE = {
    "SECRET_KEY": "benchmark-only-not-secret",
    "DEBUG": False,
    "USE_TZ": True,
    "TIME_ZONE": "UTC",
    "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
    "DATABASES": databases(),
    "LOGGING": {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": "WARNING"},
    },
}
