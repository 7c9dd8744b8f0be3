"""djtasks settings: the DJTASKS dict, read lazily, reset when settings change.

Settings is the schema: each field declares a key's default, the types the system checks accept
and the rules they apply (see core.schema).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from djtasks.core.schema import NUMBER, EachItem, NoneType, Rule, at_least, between, positive, setting

_REDACT_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
    "credential",
)


def _routes_to_a_queue(pattern: Any, target: Any) -> bool:
    queue = target.get("queue") if isinstance(target, dict) else target
    return isinstance(pattern, str) and isinstance(queue, str) and bool(queue)


_REDIS_URL = Rule(
    lambda url: url.startswith(("redis://", "rediss://", "unix://")),
    "djtasks.E004",
    "DJTASKS[{key!r}] {value!r} is not a Redis URL.",
    "Use redis://host:port/db, rediss:// for TLS, or unix:///path/to/socket.",
)
_ROUTES = EachItem(
    _routes_to_a_queue,
    "djtasks.E007",
    "DJTASKS[{key!r}][{name!r}] must map a task name or glob to a queue name, not {value!r}.",
    'ROUTES = {"myapp.tasks.send_*": "mail", "myapp.tasks.resize": {"queue": "images"}}',
)
_LEASE = between(
    5, 55, "djtasks.E006", "Dead workers' tasks return after LEASE_SECONDS + REAP_INTERVAL, promised under 60 s."
)
_EVENTS_MAXLEN = at_least(100, "djtasks.E081", "The events stream keeps about this many entries; 10000 is the default.")
_METRICS_TOKEN = Rule(
    lambda token: len(token) >= 16,
    "djtasks.E082",
    "DJTASKS[{key!r}] is shorter than 16 characters.",
    "Use a long random secret, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
)
_REDACT = Rule(
    lambda keys: all(isinstance(k, str) and k for k in keys),
    "djtasks.E008",
    "DJTASKS[{key!r}] must be a list of non-empty strings.",
    f"Default: {list(_REDACT_KEYS)!r}.",
)
_POSITIVE = positive("djtasks.E005")


@dataclass(frozen=True, slots=True)
class Settings:
    REDIS_URL: str = setting(str, _REDIS_URL, default="redis://127.0.0.1:6379/0")
    # Every key lives under "{PREFIX}:" with PREFIX as a Redis Cluster hash tag.
    PREFIX: str = setting(str, default="djtasks")
    SOCKET_TIMEOUT: float = setting(NUMBER, _POSITIVE, default=5.0)
    SOCKET_CONNECT_TIMEOUT: float = setting(NUMBER, default=2.0)
    # After a failed publish, enqueues skip Redis for this long and leave rows to the sweeper.
    PUBLISH_BACKOFF: float = setting(NUMBER, default=2.0)
    DEFAULT_QUEUE: str = setting(str, default="default")
    TRACK_STARTED: bool = setting(bool, default=False)
    # Redis lease of a reserved task; the worker extends it while the task runs.
    LEASE_SECONDS: float = setting(NUMBER, _POSITIVE, _LEASE, default=30.0)
    # How often workers return expired leases to their queues and sweep the outbox.
    REAP_INTERVAL: float = setting(NUMBER, _POSITIVE, default=5.0)
    SWEEP_INTERVAL: float = setting(NUMBER, _POSITIVE, default=2.0)
    # Rows this old and still unpublished are published by the sweeper.
    SWEEP_GRACE: float = setting(NUMBER, default=2.0)
    # A message delivered more often than this without finishing is dead-lettered.
    MAX_DELIVERIES: int = setting(int, default=5)
    # Most messages a child reserves in one round trip; more than one only when the queue is deep.
    PREFETCH: int = setting(int, default=8)
    SHUTDOWN_GRACE: float = setting(NUMBER, _POSITIVE, default=30.0)
    # Defaults for tasks that declare no limits of their own (seconds; None for no limit).
    SOFT_TIME_LIMIT: float | None = setting((*NUMBER, NoneType))
    TIME_LIMIT: float | None = setting((*NUMBER, NoneType))
    # Replace a child after it ran this many tasks / once its resident memory exceeds this (KiB).
    MAX_TASKS_PER_CHILD: int | None = setting((int, NoneType))
    MAX_MEMORY_PER_CHILD: int | None = setting((int, NoneType))
    # How long a finished task keeps retrying its database write while the database is down.
    DB_RETRY_WINDOW: float = setting(NUMBER, default=300.0)
    # Periodic tasks in Celery's shape: {"name": {"task": ..., "schedule": 30.0 | crontab(...), ...}},
    # checked entry by entry in checks.py (the entries name tasks and schedules, above core).
    # Not part of equality or the hash: a dict is neither, and Settings serves as a cache key.
    BEAT_SCHEDULE: dict[str, Any] = setting(dict, factory=dict, compare=False)
    # A periodic run this late (seconds) is a missed one: missed runs collapse into one, for the latest slot.
    BEAT_MISFIRE_GRACE: float = setting(NUMBER, _POSITIVE, default=5.0)
    # Task name (or glob pattern) -> queue, consulted when apply_async names no queue.
    ROUTES: dict[str, Any] = setting(dict, _ROUTES, factory=dict, compare=False)
    # Finished rows older than this many seconds are deleted by the workers (None: keep forever).
    RESULT_EXPIRES: float | None = setting((*NUMBER, NoneType), default=86400.0)
    # Task and worker events go to a Redis stream trimmed to about EVENTS_MAXLEN entries.
    ENABLE_EVENTS: bool = setting(bool, default=True)
    EVENTS_MAXLEN: int = setting(int, _EVENTS_MAXLEN, default=10000)
    # A bearer token that may read the metrics view (besides staff users); None: staff only.
    METRICS_TOKEN: str | None = setting((str, NoneType), _METRICS_TOKEN)
    WORKER_NAME: str = setting(str, factory=lambda: f"djtasks@{socket.gethostname()}")
    CONCURRENCY: int = setting(int, factory=lambda: os.cpu_count() or 1)
    # The admin shows argument, result and progress values under keys containing one of these
    # (case-insensitive) as "********" to users without the view_task_arguments permission.
    REDACT_KEYS: tuple[str, ...] = setting((list, tuple), _REDACT, default=_REDACT_KEYS)

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))


def raw_settings() -> dict[str, Any]:
    value = getattr(settings, "DJTASKS", {})
    return value if isinstance(value, dict) else {}


@cache
def get_settings() -> Settings:
    """Return the effective settings; unknown keys are reported by the system checks."""
    known = Settings.names()
    return Settings(**{k: v for k, v in raw_settings().items() if k in known})


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"DJTASKS", "TASKS"}:
        get_settings.cache_clear()
