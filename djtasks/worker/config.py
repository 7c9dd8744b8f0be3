"""The settings a worker runs with: DJTASKS and taskworker's options, checked as `manage.py check` checks them.

problems() is the one check of the DJTASKS setting: the system checks report its problems, and a
Worker refuses to be built while there is one, with the same messages and hints.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from djtasks.core import registry
from djtasks.core.conf import Settings, get_settings
from djtasks.core.names import queue_name_error
from djtasks.core.schema import Problem, label
from djtasks.core.schema import problems as schema_problems
from djtasks.periodic.entries import parse_entry
from djtasks.periodic.schedules import ScheduleError
from djtasks.worker.protocol import ChildLimits

# The Settings keys that taskworker's options (and the Worker's arguments) override.
OPTIONS = {
    "CONCURRENCY": "--concurrency",
    "MAX_TASKS_PER_CHILD": "--max-tasks-per-child",
    "MAX_MEMORY_PER_CHILD": "--max-memory-per-child",
    "SOFT_TIME_LIMIT": "--soft-time-limit",
    "TIME_LIMIT": "--time-limit",
    "SHUTDOWN_GRACE": "--shutdown-grace",
}


def problems(options: Mapping[str, Any] | None = None, queues: list[str] | None = None) -> list[Problem]:
    """Report what is wrong with DJTASKS, with the given options (None: not given) in place of their keys."""
    raw = getattr(settings, "DJTASKS", {})
    given = {key: value for key, value in (options or {}).items() if value is not None}
    if isinstance(raw, dict):
        raw = {**raw, **given}
    found = schema_problems(raw, Settings, {key: OPTIONS[key] for key in given})
    if isinstance(raw, dict) and isinstance(raw.get("BEAT_SCHEDULE"), dict):
        found += schedule_problems(raw["BEAT_SCHEDULE"])
    for queue in queues or []:
        if error := queue_name_error(queue):
            found.append(Problem("djtasks.E010", f"-Q names {queue!r}: {error}.", "-Q default,hipri"))
    return found


def schedule_problems(entries: dict[Any, Any]) -> list[Problem]:
    """Report BEAT_SCHEDULE entries of the wrong shape, with a bad schedule, or naming an unknown task."""
    found: list[Problem] = []
    for name, raw in entries.items():
        try:
            entry = parse_entry(name, raw)
        except ScheduleError as exc:
            found.append(Problem(exc.check_id, str(exc), exc.hint or "See docs/topics/periodic.md."))
            continue
        if registry.get(entry.task) is None:
            close = difflib.get_close_matches(entry.task, registry.names(), n=1)
            found.append(
                Problem(
                    "djtasks.E072",
                    f"{label('BEAT_SCHEDULE')}[{name!r}] names task {entry.task!r}, which is not registered.",
                    f"Did you mean {close[0]!r}?" if close else "Declare it with @task in an app's tasks.py.",
                )
            )
    return found


def worker_settings(options: Mapping[str, Any], queues: list[str]) -> Settings:
    """Return the settings with the options in place; raise ImproperlyConfigured naming every problem."""
    found = problems(options, queues)
    if found:
        raise ImproperlyConfigured("The worker cannot start:\n" + "\n".join(f"  {problem}" for problem in found))
    return dataclasses.replace(get_settings(), **{key: value for key, value in options.items() if value is not None})


def child_limits(config: Settings) -> ChildLimits:
    """Return the limits each child enforces on itself under these settings."""
    return ChildLimits(
        max_tasks=config.MAX_TASKS_PER_CHILD,
        max_memory_kib=config.MAX_MEMORY_PER_CHILD,
        soft_time_limit=config.SOFT_TIME_LIMIT,
        time_limit=config.TIME_LIMIT,
    )
