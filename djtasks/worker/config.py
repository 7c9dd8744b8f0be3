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
from djtasks.worker.naming import name_error, node_name
from djtasks.worker.pools import POOLS
from djtasks.worker.protocol import ChildLimits

# The Settings keys that taskworker's options (and the Worker's arguments) override.
OPTIONS = {
    "CONCURRENCY": "--concurrency",
    "MAX_TASKS_PER_CHILD": "--max-tasks-per-child",
    "MAX_MEMORY_PER_CHILD": "--max-memory-per-child",
    "SOFT_TIME_LIMIT": "--soft-time-limit",
    "TIME_LIMIT": "--time-limit",
    "SHUTDOWN_GRACE": "--shutdown-grace",
    "WORKER_NAME": "--hostname",
    "ENABLE_EVENTS": "--events/--without-events",
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
            found.append(Problem(exc.check_id, str(exc), exc.hint or "See the README's Periodic tasks."))
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


def pool_problems(config: Settings, pool: str, autoscale: tuple[int, int] | None) -> list[Problem]:
    """Report what the chosen pool cannot do, a worker name that expands to no name, a bad --autoscale."""
    found: list[Problem] = []
    if error := name_error(node_name(config.WORKER_NAME)):
        message = f"-n {config.WORKER_NAME!r} expands to no worker name: {error}."
        found.append(Problem("djtasks.E090", message, "-n w1@%h"))
    if pool not in POOLS:
        found.append(Problem("djtasks.E091", f"--pool {pool!r} is not a pool.", f"One of {', '.join(POOLS)}."))
    elif pool != "prefork":
        if config.TIME_LIMIT is not None:
            found.append(
                Problem(
                    "djtasks.E092",
                    f"--pool {pool} cannot enforce a hard time limit (TIME_LIMIT / --time-limit): a thread cannot be "
                    "killed.",
                    "Use --pool prefork, or --soft-time-limit (raised in the task when it next runs Python code).",
                )
            )
        if config.MAX_MEMORY_PER_CHILD is not None:
            found.append(
                Problem(
                    "djtasks.E093",
                    f"--pool {pool} has no child process to recycle (MAX_MEMORY_PER_CHILD / --max-memory-per-child).",
                    "Use --pool prefork.",
                )
            )
    if pool == "solo" and (config.CONCURRENCY != 1 or autoscale):
        found.append(
            Problem("djtasks.E094", "--pool solo runs one task at a time: -c must be 1, without --autoscale.", "-c 1")
        )
    if autoscale is not None:
        most, least = autoscale
        if not 1 <= least <= most <= config.MAX_CONCURRENCY:
            found.append(
                Problem(
                    "djtasks.E095",
                    f"--autoscale {most},{least} must be MAX,MIN with 1 <= MIN <= MAX <= MAX_CONCURRENCY "
                    f"({config.MAX_CONCURRENCY}).",
                    "--autoscale 10,3",
                )
            )
    return found


def worker_settings(
    options: Mapping[str, Any], queues: list[str], pool: str = "prefork", autoscale: tuple[int, int] | None = None
) -> Settings:
    """Return the settings with the options in place; raise ImproperlyConfigured naming every problem."""
    found = problems(options, queues)
    config = get_settings()
    if not found:
        config = dataclasses.replace(config, **{key: value for key, value in options.items() if value is not None})
        found = pool_problems(config, pool, autoscale)
    if found:
        raise ImproperlyConfigured("The worker cannot start:\n" + "\n".join(f"  {problem}" for problem in found))
    return config


def child_limits(config: Settings) -> ChildLimits:
    """Return the limits each child enforces on itself under these settings."""
    return ChildLimits(
        max_tasks=config.MAX_TASKS_PER_CHILD,
        max_memory_kib=config.MAX_MEMORY_PER_CHILD,
        soft_time_limit=config.SOFT_TIME_LIMIT,
        time_limit=config.TIME_LIMIT,
    )
