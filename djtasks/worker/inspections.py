"""What `inspect` answers (Celery's active, reserved, scheduled, registered, stats, queues), from pool and record."""

from __future__ import annotations

import os
import resource
import socket
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from djtasks.core import registry
from djtasks.core.states import READY_STATES, RETRY
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.pool import Pool

# The states that end an attempt: once its row shows one, the task is no longer executing.
ENDED_ATTEMPT = READY_STATES | {RETRY}


def active(pool: Pool) -> list[dict[str, Any]]:
    executing = {child.executing: child for child in pool.children() if child.executing is not None}
    # A child records an outcome, then tells its parent: a row that shows the attempt's end is
    # not executing, even while that report is still in the pipe (a caller's get() can return
    # before the parent reads it).
    rows = _rows(pool.db, list(executing), ended=ENDED_ATTEMPT)
    return [
        {
            **(rows.get(task_id) or {"id": task_id}),
            "child": child.index,
            "pid": child.pid,
            "running_s": round(child.running_s, 3),
        }
        for task_id, child in executing.items()
        if rows.get(task_id, True) is not None
    ]


def reserved(pool: Pool) -> list[dict[str, Any]]:
    held = {claim.id: child for child in pool.children() for claim in child.held if claim.id != child.executing}
    rows = _rows(pool.db, list(held), ended=READY_STATES)
    return [
        {**(rows.get(task_id) or {"id": task_id}), "child": child.index}
        for task_id, child in held.items()
        if rows.get(task_id, True) is not None
    ]


def scheduled(pool: Pool) -> list[dict[str, Any]]:
    broker = get_broker()
    due = {task_id: (queue, at) for queue in pool.queues for task_id, at in broker.scheduled(queue)}
    rows = _rows(pool.db, list(due))
    return [
        {
            **(rows.get(task_id) or {"id": task_id}),
            "queue": queue,
            "eta": datetime.fromtimestamp(at, tz=UTC).isoformat(),
        }
        for task_id, (queue, at) in sorted(due.items(), key=lambda item: item[1][1])
    ]


def registered(pool: Pool) -> list[str]:
    return registry.names()


def stats(pool: Pool) -> dict[str, Any]:
    children = pool.children()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    descendants = resource.getrusage(resource.RUSAGE_CHILDREN)
    limits = pool.limits
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "uptime_s": round((timezone.now() - pool.started_at).total_seconds(), 1),
        "concurrency": pool.concurrency,
        "queues": pool.queues,
        "pool_kind": pool.pool_kind,
        "events": pool.config.ENABLE_EVENTS,
        "processed": sum(child.processed for child in children),
        "pool": [
            {"child": c.index, "pid": c.pid, "processed": c.processed, "held": len(c.held), "retiring": c.retiring}
            for c in sorted(children, key=lambda c: c.index)
        ],
        "limits": {
            "soft_time_limit": limits.soft_time_limit,
            "time_limit": limits.time_limit,
            "max_tasks_per_child": limits.max_tasks,
            "max_memory_per_child": limits.max_memory_kib,
        },
        "prefetch": pool.config.PREFETCH,
        "rusage": {
            "utime_s": round(usage.ru_utime + descendants.ru_utime, 3),
            "stime_s": round(usage.ru_stime + descendants.ru_stime, 3),
            "parent_maxrss_kib": usage.ru_maxrss,
        },
    }


def queues(pool: Pool) -> list[dict[str, Any]]:
    depths = get_broker().queue_stats()
    empty = {"ready": 0, "scheduled": 0, "reserved": 0}
    return [{"name": queue, **depths.get(queue, empty)} for queue in pool.queues]


def _rows(db: str, ids: list[str], *, ended: frozenset[str] = frozenset()) -> dict[str, dict[str, Any] | None]:
    """Read what the record says about these tasks, by id: name, queue, times, and the call's shape.

    Replies travel through Redis to whoever sent the command: they carry no argument values, only
    how many positional arguments there are and the names of the keyword arguments. A task whose
    state is in ended maps to None: the child is done with it, though the parent has not heard yet.
    """
    if not ids:
        return {}
    fields = ("id", "task_name", "queue", "args", "kwargs", "attempts", "started_at", "state")
    rows = TaskRecord.objects.using(db).filter(pk__in=ids).values(*fields)
    return {
        row["id"]: None
        if row.pop("state") in ended
        else {**row, "args": _count(row["args"]), "kwargs": _names(row["kwargs"])}
        for row in rows
    }


def _count(args: Any) -> int:
    return len(args) if isinstance(args, list) else 0


def _names(kwargs: Any) -> list[str]:
    return sorted(str(name) for name in kwargs) if isinstance(kwargs, dict) else []
