"""System checks: bad djtasks settings fail with an exact message and a hint."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections, router

from djtasks.calling.enqueue import BACKEND_PATH
from djtasks.core import registry
from djtasks.core.conf import Settings, raw_settings
from djtasks.periodic.entries import parse_entry
from djtasks.periodic.schedules import ScheduleError
from djtasks.record.models import TaskRecord

_TYPES: dict[str, type | tuple[type, ...]] = {
    "REDIS_URL": str,
    "PREFIX": str,
    "DEFAULT_QUEUE": str,
    "WORKER_NAME": str,
    "TRACK_STARTED": bool,
    "ENABLE_EVENTS": bool,
    "EVENTS_MAXLEN": int,
    "METRICS_TOKEN": (str, type(None)),
    "MAX_DELIVERIES": int,
    "CONCURRENCY": int,
    "PREFETCH": int,
    "SOFT_TIME_LIMIT": (int, float, type(None)),
    "TIME_LIMIT": (int, float, type(None)),
    "MAX_TASKS_PER_CHILD": (int, type(None)),
    "MAX_MEMORY_PER_CHILD": (int, type(None)),
    "BEAT_SCHEDULE": dict,
    "ROUTES": dict,
    "RESULT_EXPIRES": (int, float, type(None)),
    "REDACT_KEYS": (list, tuple),
}


@checks.register("djtasks")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    raw = getattr(settings, "DJTASKS", {})
    if not isinstance(raw, dict):
        return [checks.Error("DJTASKS must be a dict.", hint="DJTASKS = {'REDIS_URL': ...}", id="djtasks.E001")]
    known = Settings.names()
    for key in sorted(set(raw) - known):
        errors.append(
            checks.Error(
                f"DJTASKS has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(known))}.",
                id="djtasks.E002",
            )
        )
    for key, value in raw_settings().items():
        expected = _TYPES.get(key, (int, float) if key in known else None)
        if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            errors.append(
                checks.Error(
                    f"DJTASKS[{key!r}] must be of type {_names(expected)}, not {type(value).__name__}.",
                    hint=f"Default: {getattr(Settings(), key)!r}.",
                    id="djtasks.E003",
                )
            )
    defaults = Settings()
    url = raw.get("REDIS_URL", defaults.REDIS_URL)
    if isinstance(url, str) and not url.startswith(("redis://", "rediss://", "unix://")):
        errors.append(
            checks.Error(
                f"DJTASKS['REDIS_URL'] {url!r} is not a Redis URL.",
                hint="Use redis://host:port/db, rediss:// for TLS, or unix:///path/to/socket.",
                id="djtasks.E004",
            )
        )
    redact = raw.get("REDACT_KEYS", ())
    if isinstance(redact, list | tuple) and not all(isinstance(k, str) and k for k in redact):
        errors.append(
            checks.Error(
                "DJTASKS['REDACT_KEYS'] must be a list of non-empty strings.",
                hint=f"Default: {list(Settings().REDACT_KEYS)!r}.",
                id="djtasks.E008",
            )
        )
    for key in ("LEASE_SECONDS", "REAP_INTERVAL", "SWEEP_INTERVAL", "SOCKET_TIMEOUT", "SHUTDOWN_GRACE",
                "BEAT_MISFIRE_GRACE"):
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            errors.append(checks.Error(f"DJTASKS[{key!r}] must be positive.", id="djtasks.E005"))
    routes = raw.get("ROUTES", {})
    for pattern, target in routes.items() if isinstance(routes, dict) else ():
        queue = target.get("queue") if isinstance(target, dict) else target
        if not isinstance(pattern, str) or not isinstance(queue, str) or not queue:
            errors.append(
                checks.Error(
                    f"DJTASKS['ROUTES'][{pattern!r}] must map a task name or glob to a queue name, not {target!r}.",
                    hint='ROUTES = {"myapp.tasks.send_*": "mail", "myapp.tasks.resize": {"queue": "images"}}',
                    id="djtasks.E007",
                )
            )
    maxlen = raw.get("EVENTS_MAXLEN")
    if isinstance(maxlen, int) and not isinstance(maxlen, bool) and maxlen < 100:
        errors.append(
            checks.Error(
                f"DJTASKS['EVENTS_MAXLEN'] is {maxlen}; it must be at least 100.",
                hint="The events stream keeps about this many entries; 10000 is the default.",
                id="djtasks.E081",
            )
        )
    token = raw.get("METRICS_TOKEN")
    if isinstance(token, str) and len(token) < 16:
        errors.append(
            checks.Error(
                "DJTASKS['METRICS_TOKEN'] is shorter than 16 characters.",
                hint="Use a long random secret, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                id="djtasks.E082",
            )
        )
    lease = raw.get("LEASE_SECONDS", defaults.LEASE_SECONDS)
    if isinstance(lease, int | float) and not 5 <= lease <= 55:
        errors.append(
            checks.Error(
                f"DJTASKS['LEASE_SECONDS'] is {lease}; it must be between 5 and 55.",
                hint="Dead workers' tasks return after LEASE_SECONDS + REAP_INTERVAL, promised under 60 s.",
                id="djtasks.E006",
            )
        )
    if isinstance(raw.get("BEAT_SCHEDULE"), dict):
        errors += check_beat_schedule(raw["BEAT_SCHEDULE"])
    if not any(p.get("BACKEND") == BACKEND_PATH for p in getattr(settings, "TASKS", {}).values()):
        errors.append(
            checks.Warning(
                "No TASKS backend uses djtasks.",
                hint=f'Set TASKS = {{"default": {{"BACKEND": "{BACKEND_PATH}"}}}}.',
                id="djtasks.W001",
            )
        )
    return errors


def check_beat_schedule(entries: dict[Any, Any]) -> list[checks.CheckMessage]:
    """Report BEAT_SCHEDULE entries of the wrong shape, with a bad schedule, or naming an unknown task."""
    errors: list[checks.CheckMessage] = []
    for name, raw in entries.items():
        try:
            entry = parse_entry(name, raw)
        except ScheduleError as exc:
            errors.append(checks.Error(str(exc), hint=exc.hint or None, id=exc.check_id))
            continue
        if registry.get(entry.task) is None:
            close = difflib.get_close_matches(entry.task, registry.names(), n=1)
            errors.append(
                checks.Error(
                    f"DJTASKS['BEAT_SCHEDULE'][{name!r}] names task {entry.task!r}, which is not registered.",
                    hint=f"Did you mean {close[0]!r}?" if close else "Declare it with @task in an app's tasks.py.",
                    id="djtasks.E072",
                )
            )
    return errors


def check_backend(backend: Any) -> list[checks.CheckMessage]:
    alias = router.db_for_write(TaskRecord)
    conn = connections[alias]
    if conn.vendor == "sqlite" and (conn.settings_dict.get("OPTIONS", {}).get("transaction_mode") or "").upper() != (
        "IMMEDIATE"
    ):
        return [
            checks.Warning(
                f"Database {alias!r} is SQLite without transaction_mode IMMEDIATE: "
                "several worker processes writing at once will hit 'database is locked'.",
                hint='OPTIONS = {"transaction_mode": "IMMEDIATE", "timeout": 30, '
                '"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}',
                id="djtasks.W002",
            )
        ]
    return []


def _names(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)
