"""djtasks settings: the DJTASKS dict, read lazily, reset when settings change."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, slots=True)
class Settings:
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    # Every key lives under "{PREFIX}:" with PREFIX as a Redis Cluster hash tag.
    PREFIX: str = "djtasks"
    SOCKET_TIMEOUT: float = 5.0
    SOCKET_CONNECT_TIMEOUT: float = 2.0
    # After a failed publish, enqueues skip Redis for this long and leave rows to the sweeper.
    PUBLISH_BACKOFF: float = 2.0
    DEFAULT_QUEUE: str = "default"
    TRACK_STARTED: bool = False
    # Redis lease of a reserved task; the worker extends it while the task runs.
    LEASE_SECONDS: float = 30.0
    # How often workers return expired leases to their queues and sweep the outbox.
    REAP_INTERVAL: float = 5.0
    SWEEP_INTERVAL: float = 2.0
    # Rows this old and still unpublished are published by the sweeper.
    SWEEP_GRACE: float = 2.0
    # A message delivered more often than this without finishing is dead-lettered.
    MAX_DELIVERIES: int = 5
    # Most messages a child reserves in one round trip; more than one only when the queue is deep.
    PREFETCH: int = 8
    SHUTDOWN_GRACE: float = 30.0
    # Defaults for tasks that declare no limits of their own (seconds; None for no limit).
    SOFT_TIME_LIMIT: float | None = None
    TIME_LIMIT: float | None = None
    # Replace a child after it ran this many tasks / once its resident memory exceeds this (KiB).
    MAX_TASKS_PER_CHILD: int | None = None
    MAX_MEMORY_PER_CHILD: int | None = None
    # How long a finished task keeps retrying its database write while the database is down.
    DB_RETRY_WINDOW: float = 300.0
    # Periodic tasks in Celery's shape: {"name": {"task": ..., "schedule": 30.0 | crontab(...), ...}}.
    # Not part of equality or the hash: a dict is neither, and Settings serves as a cache key.
    BEAT_SCHEDULE: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # A periodic run this late (seconds) is a missed one: missed runs collapse into one, for the latest slot.
    BEAT_MISFIRE_GRACE: float = 5.0
    # Task name (or glob pattern) -> queue, consulted when apply_async names no queue.
    ROUTES: dict[str, Any] = field(default_factory=dict, compare=False)
    # Finished rows older than this many seconds are deleted by the workers (None: keep forever).
    RESULT_EXPIRES: float | None = 86400.0
    # Task and worker events go to a Redis stream trimmed to about EVENTS_MAXLEN entries.
    ENABLE_EVENTS: bool = True
    EVENTS_MAXLEN: int = 10000
    # A bearer token that may read the metrics view (besides staff users); None: staff only.
    METRICS_TOKEN: str | None = None
    WORKER_NAME: str = field(default_factory=lambda: f"djtasks@{socket.gethostname()}")
    CONCURRENCY: int = field(default_factory=lambda: os.cpu_count() or 1)
    # The admin shows argument, result and progress values under keys containing one of these
    # (case-insensitive) as "********" to users without the view_task_arguments permission.
    REDACT_KEYS: tuple[str, ...] = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization",
                                    "cookie", "session", "private_key", "credential")

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
