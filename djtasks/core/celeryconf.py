"""Celery's settings in a Django project: read as DJTASKS keys where they mean the same, reported otherwise.

Celery reads Django settings through `app.config_from_object('django.conf:settings',
namespace='CELERY')`: its setting `task_routes` is CELERY_TASK_ROUTES there, and older projects
use the pre-4.0 names (CELERY_ROUTES, CELERYD_CONCURRENCY, BROKER_URL...). The settings of
ALIASES are read as their DJTASKS key (a DJTASKS key that is set wins; a new name wins over an old
one). Every other Celery setting found is reported by the system checks, with what djtasks does
instead (REPLACED), so that none is silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings

from djtasks.core.schema import Problem, shown

# Celery's setting -> the DJTASKS key it is read as.
ALIASES = {
    "broker_url": "REDIS_URL",
    "broker_connection_timeout": "SOCKET_CONNECT_TIMEOUT",
    "task_default_queue": "DEFAULT_QUEUE",
    "task_queues": "QUEUES",
    "task_routes": "ROUTES",
    "task_track_started": "TRACK_STARTED",
    "task_soft_time_limit": "SOFT_TIME_LIMIT",
    "task_time_limit": "TIME_LIMIT",
    "task_always_eager": "TASK_ALWAYS_EAGER",
    "task_eager_propagates": "TASK_EAGER_PROPAGATES",
    "result_expires": "RESULT_EXPIRES",
    "beat_schedule": "BEAT_SCHEDULE",
    "worker_concurrency": "CONCURRENCY",
    "worker_prefetch_multiplier": "PREFETCH",
    "worker_max_tasks_per_child": "MAX_TASKS_PER_CHILD",
    "worker_max_memory_per_child": "MAX_MEMORY_PER_CHILD",
    "worker_send_task_events": "ENABLE_EVENTS",
}
# Pre-4.0 Django setting names -> Celery's setting (Celery's own table of old names).
OLD_NAMES = {
    "BROKER_URL": "broker_url",
    "BROKER_CONNECTION_TIMEOUT": "broker_connection_timeout",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_QUEUES": "task_queues",
    "CELERY_ROUTES": "task_routes",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERYD_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_EAGER_PROPAGATES": "task_eager_propagates",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_MAX_MEMORY_PER_CHILD": "worker_max_memory_per_child",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ANNOTATIONS": "task_annotations",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "CELERY_CREATE_MISSING_QUEUES": "task_create_missing_queues",
    "CELERYD_POOL": "worker_pool",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
}
_JSON = "djtasks carries JSON only"
_LOGGING = "Configure logging with Django's LOGGING (the 'djtasks' logger); taskworker -l sets its level."
# Celery's settings djtasks does not read -> what djtasks does instead.
REPLACED = {
    "result_backend": "Every result is kept in the database, in the task's row: remove it.",
    "task_serializer": _JSON,
    "result_serializer": _JSON,
    "event_serializer": _JSON,
    "accept_content": _JSON,
    "result_accept_content": _JSON,
    "task_annotations": "Declare options on @task(...); change rate and time limits at run time with "
    "`taskctl rate_limit` / `taskctl time_limit` (djtasks.control).",
    "task_acks_late": "djtasks acknowledges a task once its outcome is recorded, always; a lease keeps a running "
    "task (DJTASKS['LEASE_SECONDS']).",
    "task_reject_on_worker_lost": "A task whose worker died is handed back and runs again, at most "
    "DJTASKS['MAX_DELIVERIES'] times; then it is dead-lettered.",
    "task_ignore_result": "Per task: @task(ignore_result=True).",
    "task_default_priority": "Per task: @task(priority=...) on Django's scale, -100..100.",
    "task_default_rate_limit": "Per task: @task(rate_limit=...).",
    "task_create_missing_queues": "Any queue name works unless DJTASKS['QUEUES'] declares the list.",
    "timezone": "djtasks uses Django's TIME_ZONE (crontab(tz=...) for one schedule).",
    "enable_utc": "djtasks uses Django's USE_TZ.",
    "imports": "djtasks imports the tasks.py of every installed app.",
    "include": "djtasks imports the tasks.py of every installed app.",
    "beat_scheduler": "Every taskworker runs the beat; schedules live in the PeriodicTask table.",
    "broker_transport_options": "The lease (visibility) is DJTASKS['LEASE_SECONDS']; keys are under DJTASKS['PREFIX'].",
    "worker_pool": "djtasks runs forked child processes (prefork) only.",
    "worker_hijack_root_logger": _LOGGING,
    "worker_log_format": _LOGGING,
    "worker_task_log_format": _LOGGING,
    "worker_redirect_stdouts": _LOGGING,
    "result_extended": "Every row keeps the task's name, arguments, worker, queue and retries already.",
    "task_publish_retry": "Publishing after commit never blocks; the outbox sweep publishes what Redis missed.",
    "task_publish_retry_policy": "Publishing after commit never blocks; the outbox sweep publishes what Redis missed.",
}
_CELERY = ("CELERY_", "CELERYD_", "CELERYBEAT_", "CELERYMON_")


def setting_name(django_name: str) -> str | None:
    """Celery's name of a Django setting (CELERY_TASK_ROUTES -> task_routes), or None if it is not Celery's."""
    if django_name in OLD_NAMES:
        return OLD_NAMES[django_name]
    for prefix, group in (("CELERY_", ""), ("CELERYD_", "worker_"), ("CELERYBEAT_", "beat_")):
        if django_name.startswith(prefix):  # CELERYD_POOL_RESTARTS is worker_pool_restarts
            return group + django_name.removeprefix(prefix).lower()
    return None


def found() -> dict[str, tuple[str, Any]]:
    """The Celery settings of this project: Django name -> (Celery's name, value)."""
    names = [n for n in dir(settings) if n.isupper() and (n.startswith(_CELERY) or n in OLD_NAMES)]
    return {n: (setting_name(n) or n.lower(), getattr(settings, n)) for n in names}


def read(djtasks: Iterable[str], known: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values the aliases give DJTASKS keys not set in DJTASKS (nor unknown here), and their Django names."""
    given, keys = set(djtasks), set(known)
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    # New names first: an old name never overrides the new one.
    for django_name, (name, value) in sorted(found().items(), key=lambda item: item[0] in OLD_NAMES):
        key = ALIASES.get(name)
        if key is None or key in given or key not in keys or key in values:
            continue
        values[key], labels[key] = convert(name, value), django_name
    return values, labels


def convert(name: str, value: Any) -> Any:
    """Celery's form of a value as the DJTASKS key takes it (a value that cannot be is left for the checks)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if name == "task_routes" and isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value):
        merged: dict[str, Any] = {}
        for routes in value:  # Celery tries the routers in order: the first match wins
            merged.update({k: v for k, v in routes.items() if k not in merged})
        return merged
    if name == "task_queues":
        if isinstance(value, dict):
            return tuple(value)
        if isinstance(value, list | tuple | set | frozenset):  # names, or kombu Queue objects
            return tuple(getattr(queue, "name", queue) for queue in value)
    return value


def problems(djtasks: Iterable[str], known: Iterable[str]) -> list[Problem]:
    """Report the Celery settings djtasks does not read, and aliases another setting overrides."""
    given, keys = set(djtasks), set(known)
    report: list[Problem] = []
    seen: dict[str, str] = {}
    for django_name, (name, value) in sorted(found().items(), key=lambda item: item[0] in OLD_NAMES):
        key = ALIASES.get(name)
        if key is not None and key in keys:
            if key in given or key in seen:
                winner = f"DJTASKS[{key!r}]" if key in given else seen[key]
                report.append(
                    Problem("djtasks.W021", f"{django_name} is not read: {winner} is set too.", "Keep one of them.")
                )
            seen.setdefault(key, django_name)
        elif key is not None:
            report.append(
                Problem("djtasks.W020", f"{django_name} is not read: this djtasks has no {key} setting.", None)
            )
        elif REPLACED.get(name) == _JSON:
            if not _is_json(value):
                report.append(Problem("djtasks.E020", f"{django_name} is {shown(value)}: {_JSON}.", "Remove it."))
        elif name == "worker_pool" and value == "prefork":
            continue
        else:
            hint = REPLACED.get(name, "See docs/guides/coming-from-celery.md for what djtasks does instead.")
            report.append(
                Problem("djtasks.W020", f"{django_name} is Celery's {name}, which djtasks does not read.", hint)
            )
    return report


def _is_json(value: Any) -> bool:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple | set) else [None]
    return all(n in {"json", "application/json"} for n in names)
