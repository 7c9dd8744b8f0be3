"""The settings a worker runs with: DJTASKS and taskworker's options, checked as `manage.py check` checks them.

problems() is the one check of the DJTASKS setting: the system checks report its problems, and a
Worker refuses to be built while there is one, with the same messages and hints.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.tasks import DEFAULT_TASK_QUEUE_NAME

from djtasks.core import registry
from djtasks.core.conf import Settings, configured, get_settings
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
    """Report what is wrong with DJTASKS (and the Celery settings read as its keys), with the given options
    (None: not given) in place of their keys."""
    raw, labels = configured()
    given = {key: value for key, value in (options or {}).items() if value is not None}
    if isinstance(raw, dict):
        raw = {**raw, **given}
    found = schema_problems(raw, Settings, {**labels, **{key: OPTIONS[key] for key in given}})
    if isinstance(raw, dict) and isinstance(raw.get("BEAT_SCHEDULE"), dict):
        found += schedule_problems(raw["BEAT_SCHEDULE"], labels.get("BEAT_SCHEDULE"))
    for queue in queues or []:
        if error := queue_name_error(queue):
            found.append(Problem("djtasks.E010", f"-Q names {queue!r}: {error}.", "-Q default,hipri"))
    if isinstance(raw, dict) and not found:
        found += queue_problems(raw, labels, queues or [])
    return found


def queue_problems(raw: dict[str, Any], labels: Mapping[str, str], queues: list[str]) -> list[Problem]:
    """With QUEUES declared, report the routes, tasks, default queue and -Q queues that name another queue."""
    declared = set(raw.get("QUEUES") or ())
    if not declared:
        return []
    name = lambda key: labels.get(key) or label(key)  # noqa: E731
    hint = f"Declare it in {name('QUEUES')}, or use one of: {', '.join(sorted(declared))}."
    found = []
    default = raw.get("DEFAULT_QUEUE", "default")
    if default not in declared:
        found.append(Problem("djtasks.E017", f"{name('DEFAULT_QUEUE')} {default!r} is not a declared queue.", hint))
    for pattern, target in (raw.get("ROUTES") or {}).items():
        queue = target.get("queue") if isinstance(target, dict) else target
        if queue not in declared:
            message = f"{name('ROUTES')}[{pattern!r}] routes to {queue!r}, which is not a declared queue."
            found.append(Problem("djtasks.E017", message, hint))
    for task_name in registry.names():
        queue = getattr(registry.get(task_name), "queue_name", None)
        if queue not in declared and queue != DEFAULT_TASK_QUEUE_NAME:  # that one goes to DEFAULT_QUEUE
            message = f"Task {task_name!r} is declared on queue {queue!r}, which is not a declared queue."
            found.append(Problem("djtasks.E018", message, hint))
    for queue in queues:
        if queue not in declared:
            found.append(Problem("djtasks.E019", f"-Q names {queue!r}, which is not a declared queue.", hint))
    return found


def schedule_problems(entries: dict[Any, Any], where: str | None = None) -> list[Problem]:
    """Report BEAT_SCHEDULE entries of the wrong shape, with a bad schedule, or naming an unknown task.

    where: the setting they came from when it is not DJTASKS['BEAT_SCHEDULE'] (CELERY_BEAT_SCHEDULE).
    """
    found: list[Problem] = []
    for name, raw in entries.items():
        try:
            entry = parse_entry(name, raw)
        except ScheduleError as exc:
            message = str(exc).replace(label("BEAT_SCHEDULE"), where) if where else str(exc)
            found.append(Problem(exc.check_id, message, exc.hint or "See docs/topics/periodic.md."))
            continue
        if registry.get(entry.task) is None:
            close = difflib.get_close_matches(entry.task, registry.names(), n=1)
            found.append(
                Problem(
                    "djtasks.E072",
                    f"{where or label('BEAT_SCHEDULE')}[{name!r}] names task {entry.task!r}, which is not registered.",
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
