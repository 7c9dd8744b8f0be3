"""djtasks settings: the DJTASKS dict, read lazily, reset when settings change.

Settings is the schema: each field declares a key's default, the types the system checks accept
and the rules they apply, ranges and relations to other keys (see core.schema); the worker refuses
to start on a value they refuse (worker/config.py).
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

from djtasks.core import celeryconf
from djtasks.core.names import MAX_QUEUE_NAME, MAX_WORKER_NAME, prefix_ok, queue_name_error, worker_name_error
from djtasks.core.redis_url import masked, options_error, options_fit_url, url_error
from djtasks.core.schema import NUMBER, EachItem, Explained, NoneType, Relation, Rule, between, positive, setting, shown

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
    return isinstance(pattern, str) and bool(pattern) and queue_name_error(queue) is None


# REDIS_URL and REDIS_OPTIONS (issue 17: Sentinel and Cluster) ------------------------------------
_REDIS_URL = Explained(
    lambda url: f"{shown(masked(url))} {error}" if (error := url_error(url)) else None,
    "djtasks.E004",
    "Use redis://host:port/db (a server, or any node of a Redis Cluster), rediss:// for TLS, unix:///path, "
    "or sentinel://h1:26379;sentinel://h2:26379/0 with REDIS_OPTIONS['master_name'].",
    "a redis://, rediss://, unix:// or sentinel:// URL",
)
_REDIS_OPTIONS = Explained(
    options_error,
    "djtasks.E017",
    "Connection options such as password or ssl_ca_certs; with a sentinel:// URL also master_name, "
    "sentinel_kwargs (the sentinels' own connection options) and min_other_sentinels. "
    "Timeouts are SOCKET_TIMEOUT and SOCKET_CONNECT_TIMEOUT.",
)
_OPTIONS_FIT_URL = Relation(
    "REDIS_URL",
    lambda options, url: options_fit_url(url, options),
    "djtasks.E018",
    "{key} does not fit {other}: a sentinel:// URL needs 'master_name', which only a sentinel:// URL takes "
    "(as do 'sentinel_kwargs' and 'min_other_sentinels').",
    'REDIS_URL = "sentinel://h1:26379;sentinel://h2:26379/0" with REDIS_OPTIONS = {"master_name": "mymaster"}.',
    "master_name with a sentinel:// URL",
)
# ----------------------------------------------------------------------------------------------------
_PREFIX = Rule(
    prefix_ok,
    "djtasks.E009",
    "{key} {value} cannot be a Redis Cluster hash tag.",
    "1 to 100 printable characters without spaces, braces or colons (every key is under {PREFIX}:).",
    "of 1 to 100 characters, no spaces, braces or colons",
)
_QUEUE = Rule(
    lambda name: queue_name_error(name) is None,
    "djtasks.E010",
    "{key} {value} is not a queue name.",
    None,
    f"of 1 to {MAX_QUEUE_NAME} printable characters, no commas, no surrounding spaces",
)
_WORKER_NAME = Rule(
    lambda name: worker_name_error(name) is None,
    "djtasks.E016",
    "{key} {value} is not a worker name.",
    "The worker id is WORKER_NAME (or taskworker -n) expanded, e.g. djtasks@%h; taskctl --destination takes a "
    "comma-separated list of them.",
    f"of 1 to {MAX_WORKER_NAME} printable characters, no spaces or commas",
)
_ROUTES = EachItem(
    _routes_to_a_queue,
    "djtasks.E007",
    "{key}[{name}] must map a task name or glob to a queue name, not {value}.",
    'ROUTES = {"myapp.tasks.send_*": "mail", "myapp.tasks.resize": {"queue": "images"}}',
    "of task name or glob -> queue name",
)
_QUEUES = Rule(
    lambda names: all(queue_name_error(name) is None for name in names),
    "djtasks.E010",
    "{key} {value} holds something that is not a queue name.",
    "QUEUES = ['default', 'emails']",
    f"of queue names (1 to {MAX_QUEUE_NAME} printable characters, no commas)",
)
_LEASE = between(
    5, 55, "djtasks.E006", why="Dead workers' tasks return after LEASE_SECONDS + REAP_INTERVAL, promised under 60 s."
)
_EVENTS_MAXLEN = between(100, 10**8, "djtasks.E081", why="The events stream keeps about this many entries.")
_METRICS_TOKEN = Rule(
    lambda token: 16 <= len(token) <= 1000 and token.isprintable() and not any(c.isspace() for c in token),
    "djtasks.E082",
    "{key} must be 16 to 1000 printable characters without spaces.",
    "Use a long random secret, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
    "of 16 to 1000 characters, no spaces",
)
_REDACT = Rule(
    lambda keys: all(isinstance(k, str) and k for k in keys),
    "djtasks.E008",
    "{key} must be a list of non-empty strings.",
    None,
    "of non-empty strings",
)
_SOFT_BELOW_HARD = Relation(
    "TIME_LIMIT",
    lambda soft, hard: soft < hard,
    "djtasks.E011",
    "{key} is {value}; it must be below {other} ({other_value}).",
    "The soft limit raises SoftTimeLimitExceeded so the task can clean up before the hard one kills it.",
    "below TIME_LIMIT",
)
_REAP_BELOW_LEASE = Relation(
    "LEASE_SECONDS",
    lambda reap, lease: reap < lease,
    "djtasks.E012",
    "{key} is {value}; it must be below {other} ({other_value}).",
    "Reapers must look more often than a lease lasts.",
    "below LEASE_SECONDS",
)
_RECOVERY = Relation(
    "LEASE_SECONDS",
    lambda reap, lease: reap + lease <= 60,
    "djtasks.E013",
    "{key} is {value}: with {other} {other_value}, dead workers' tasks would return after more than 60 s.",
    "LEASE_SECONDS + REAP_INTERVAL is at most 60 (the recovery djtasks promises).",
    "LEASE_SECONDS + REAP_INTERVAL at most 60",
)


def _within_half_lease(timeout: float, lease: float) -> bool:
    return timeout <= lease / 2


_HALF_LEASE = Relation(
    "LEASE_SECONDS",
    _within_half_lease,
    "djtasks.E014",
    "{key} is {value}; it must be at most half {other} ({other_value}).",
    "A Redis call may wait this long: longer, and a stalled call outlasts the leases it should extend.",
    "at most LEASE_SECONDS / 2",
)
_WITHIN_MAX = Relation(
    "MAX_CONCURRENCY",
    lambda concurrency, most: concurrency <= most,
    "djtasks.E015",
    "{key} is {value}; it must be at most {other} ({other_value}).",
    "Raise MAX_CONCURRENCY to run more children; pool_grow stops there too.",
    "at most MAX_CONCURRENCY",
)
DAY = 86400.0
_E = "djtasks.E005"  # a number out of its range


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Settings:
    REDIS_URL: str = setting(str, _REDIS_URL, default="redis://127.0.0.1:6379/0")
    # Options of the Redis connections; with a sentinel:// URL, Celery's master_name and sentinel_kwargs.
    # Not part of equality or the hash (a dict is neither): transport.broker keys its cache on it too.
    REDIS_OPTIONS: dict[str, Any] = setting(dict, _REDIS_OPTIONS, _OPTIONS_FIT_URL, factory=dict, compare=False)
    # Keys are "{PREFIX}:..." (coordination) and "{PREFIX:<queue>}:..." (each queue's): Redis Cluster hash tags.
    PREFIX: str = setting(str, _PREFIX, default="djtasks")
    # Children wait for work in 1 s blocking calls: the socket timeout must outlast them.
    SOCKET_TIMEOUT: float = setting(NUMBER, between(1.5, 300, _E), _HALF_LEASE, default=5.0)
    SOCKET_CONNECT_TIMEOUT: float = setting(NUMBER, positive(_E, 300), _HALF_LEASE, default=2.0)
    # After a failed publish, enqueues skip Redis for this long and leave rows to the sweeper (0: no pause).
    PUBLISH_BACKOFF: float = setting(NUMBER, between(0, 3600, _E), default=2.0)
    DEFAULT_QUEUE: str = setting(str, _QUEUE, default="default")
    TRACK_STARTED: bool = setting(bool, default=False)
    # Eager mode, for tests (Celery's task_always_eager): a call runs in the caller's process when its
    # transaction commits, recorded on its row as a worker would; nothing is published to Redis.
    TASK_ALWAYS_EAGER: bool = setting(bool, default=False)
    # In eager mode (and for apply()), a task's error is raised to the caller (task_eager_propagates).
    TASK_EAGER_PROPAGATES: bool = setting(bool, default=False)
    # Redis lease of a reserved task; the worker extends it while the task runs.
    LEASE_SECONDS: float = setting(NUMBER, _LEASE, default=30.0)
    # How often workers return expired leases to their queues and sweep the outbox.
    REAP_INTERVAL: float = setting(NUMBER, between(0.1, 55, _E), _REAP_BELOW_LEASE, _RECOVERY, default=5.0)
    SWEEP_INTERVAL: float = setting(NUMBER, between(0.1, 60, _E), default=2.0)
    # Rows this old and still unpublished are published by the sweeper (0: at once; duplicates are dropped).
    SWEEP_GRACE: float = setting(NUMBER, between(0, 3600, _E), default=2.0)
    # A message delivered more often than this without finishing is dead-lettered.
    MAX_DELIVERIES: int = setting(int, between(1, 1000, _E), default=5)
    # Most messages a child reserves in one round trip; more than one only when the queue is deep.
    PREFETCH: int = setting(int, between(1, 1000, _E), default=16)
    SHUTDOWN_GRACE: float = setting(NUMBER, positive(_E, DAY), default=30.0)
    # Defaults for tasks that declare no limits of their own (seconds; None for no limit).
    SOFT_TIME_LIMIT: float | None = setting((*NUMBER, NoneType), positive(_E, 30 * DAY), _SOFT_BELOW_HARD)
    TIME_LIMIT: float | None = setting((*NUMBER, NoneType), positive(_E, 30 * DAY))
    # Replace a child after it ran this many tasks / once its resident memory exceeds this (KiB).
    MAX_TASKS_PER_CHILD: int | None = setting((int, NoneType), between(1, 10**9, _E))
    MAX_MEMORY_PER_CHILD: int | None = setting((int, NoneType), between(1, 2**40, _E))
    # How long a finished task keeps retrying its database write while the database is down.
    DB_RETRY_WINDOW: float = setting(NUMBER, positive(_E, 7 * DAY), default=300.0)
    # Periodic tasks in Celery's shape: {"name": {"task": ..., "schedule": 30.0 | crontab(...), ...}},
    # checked entry by entry in worker/config.py (the entries name tasks and schedules, above core).
    # Not part of equality or the hash: a dict is neither, and Settings serves as a cache key.
    BEAT_SCHEDULE: dict[str, Any] = setting(dict, factory=dict, compare=False)
    # A periodic run this late (seconds) is a missed one: missed runs collapse into one, for the latest slot.
    BEAT_MISFIRE_GRACE: float = setting(NUMBER, positive(_E, DAY), default=5.0)
    # Task name (or glob pattern) -> queue, consulted when apply_async names no queue.
    ROUTES: dict[str, Any] = setting(dict, _ROUTES, factory=dict, compare=False)
    # Finished rows older than this many seconds are deleted by the workers (None or 0: keep forever).
    RESULT_EXPIRES: float | None = setting((*NUMBER, NoneType), between(0, 3650 * DAY, _E), default=DAY)
    # Task and worker events go to a Redis stream trimmed to about EVENTS_MAXLEN entries.
    ENABLE_EVENTS: bool = setting(bool, default=True)
    EVENTS_MAXLEN: int = setting(int, _EVENTS_MAXLEN, default=10000)
    # A bearer token that may read the metrics view (besides staff users); None: staff only.
    METRICS_TOKEN: str | None = setting((str, NoneType), _METRICS_TOKEN)
    WORKER_NAME: str = setting(str, _WORKER_NAME, factory=lambda: f"djtasks@{socket.gethostname()}")
    CONCURRENCY: int = setting(int, between(1, 1024, _E), _WITHIN_MAX, factory=_cores)
    # The most children a worker runs: CONCURRENCY and pool_grow stop there.
    MAX_CONCURRENCY: int = setting(int, between(1, 1024, _E), factory=lambda: max(64, 4 * _cores()))
    # The admin shows argument, result and progress values under keys containing one of these
    # (case-insensitive) as "********" to users without the view_task_arguments permission.
    REDACT_KEYS: tuple[str, ...] = setting((list, tuple), _REDACT, default=_REDACT_KEYS)
    # Issue 15, Celery names: the queues tasks may use (Celery's task_queues); empty: any queue name.
    # When set, the checks refuse a route, a task's queue, DEFAULT_QUEUE or a -Q naming another.
    QUEUES: tuple[str, ...] = setting((list, tuple), _QUEUES, default=())

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))


def raw_settings() -> dict[str, Any]:
    value = getattr(settings, "DJTASKS", {})
    return value if isinstance(value, dict) else {}


def configured() -> tuple[Any, dict[str, str]]:
    """The DJTASKS value with the keys Celery's settings give it (core/celeryconf.py), and their Django names.

    A key set in DJTASKS wins over its Celery alias. A DJTASKS value that is not a dict is returned
    as it is, for the checks to report.
    """
    raw = getattr(settings, "DJTASKS", {})
    if not isinstance(raw, dict):
        return raw, {}
    values, labels = celeryconf.read(raw, Settings.names())
    return {**values, **raw}, labels


@cache
def get_settings() -> Settings:
    """Return the effective settings; unknown keys are reported by the system checks."""
    known = Settings.names()
    raw, _ = configured()
    return Settings(**{k: v for k, v in (raw if isinstance(raw, dict) else {}).items() if k in known})


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"DJTASKS", "TASKS"} or celeryconf.setting_name(setting) or setting.startswith("CELERY"):
        get_settings.cache_clear()
