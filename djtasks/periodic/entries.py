"""BEAT_SCHEDULE entries in Celery's shape: validated into an Entry, their schedule into a Schedule."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY

from djtasks.periodic.schedules import Schedule, ScheduleError, interval, once

ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "enabled", "description"})
OPTION_KEYS = frozenset({"queue", "priority"})


def to_schedule(value: Any) -> Schedule:
    """Turn a settings value (seconds, timedelta, datetime or a Schedule) into a valid Schedule."""
    if isinstance(value, Schedule):
        schedule = value
    elif isinstance(value, timedelta):
        schedule = interval(value.total_seconds())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        schedule = interval(float(value))
    elif isinstance(value, datetime):
        schedule = once(value)
    else:
        raise ScheduleError(
            f"A schedule must be seconds, a timedelta, a datetime, crontab(...) or interval(...), "
            f"not {type(value).__name__}.",
            hint="e.g. 'schedule': 30.0 or 'schedule': crontab(hour=3, minute=0).",
            check_id="djtasks.E073",
        )
    schedule.validate()
    return schedule


@dataclass(frozen=True, slots=True)
class Entry:
    """One validated BEAT_SCHEDULE entry."""

    name: str
    task: str
    schedule: Schedule
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int | None
    enabled: bool
    description: str


def parse_entry(name: Any, raw: Any) -> Entry:
    """Validate one BEAT_SCHEDULE item in Celery's shape; raise ScheduleError saying what is wrong."""
    where = f"DJTASKS['BEAT_SCHEDULE'][{name!r}]"
    example = "{'task': 'myapp.tasks.cleanup', 'schedule': 30.0, 'args': (), 'kwargs': {}}"
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise ScheduleError(f"{where}: the name must be a string of 1 to 200 characters.", hint=example)
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where} must be a dict, not {type(raw).__name__}.", hint=example)
    unknown = sorted(set(raw) - ENTRY_KEYS, key=str)
    if unknown:
        raise ScheduleError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}.",
            hint=f"Known keys: {', '.join(sorted(ENTRY_KEYS))}.",
        )
    if not isinstance(raw.get("task"), str) or not raw["task"]:
        raise ScheduleError(f"{where} needs 'task', the registered name of a task.", hint=example)
    if "schedule" not in raw:
        raise ScheduleError(f"{where} needs 'schedule'.", hint=example, check_id="djtasks.E073")
    try:
        schedule = to_schedule(raw["schedule"])
    except ScheduleError as exc:
        raise ScheduleError(f"{where}: {exc}", hint=exc.hint, check_id=exc.check_id) from None
    args, kwargs, options = raw.get("args", ()), raw.get("kwargs", {}), raw.get("options", {})
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict) or not isinstance(options, dict):
        raise ScheduleError(f"{where}: 'args' must be a list or tuple, 'kwargs' and 'options' dicts.", hint=example)
    if set(options) - OPTION_KEYS:
        raise ScheduleError(
            f"{where}['options'] has unknown key(s) {', '.join(map(repr, sorted(set(options) - OPTION_KEYS)))}.",
            hint="Periodic runs accept the options 'queue' and 'priority'.",
        )
    priority = options.get("priority")
    if priority is not None and (type(priority) is not int or not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY):
        raise ScheduleError(
            f"{where}['options']['priority'] must be a whole number between {TASK_MIN_PRIORITY} and "
            f"{TASK_MAX_PRIORITY}."
        )
    try:
        json.dumps([list(args), kwargs], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(
            f"{where}: 'args' and 'kwargs' must be JSON-serializable ({exc}).",
            hint="Pass plain data such as ids, strings and numbers.",
        ) from None
    return Entry(
        name=name,
        task=raw["task"],
        schedule=schedule,
        args=list(args),
        kwargs=dict(kwargs),
        queue=str(options.get("queue") or ""),
        priority=priority,
        enabled=bool(raw.get("enabled", True)),
        description=str(raw.get("description", "")),
    )
