"""Celery's publish-side signals: before_task_publish (at enqueue) and after_task_publish (after the commit).

Celery sends them around putting the message on the broker. djtasks' message is the row (written
in the caller's transaction) and then the id in Redis (after the commit): before_task_publish goes
out before the row is written, after_task_publish once the ids are handed to Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from djtasks.calling import signals
from djtasks.core.values import Unstorable, plain
from djtasks.record.models import TaskRecord

logger = logging.getLogger("djtasks")


def headers_of(record: TaskRecord) -> dict[str, Any]:
    """The message headers Celery's receivers read (protocol 2), with the call's own headers."""
    return {
        **(record.headers or {}),
        "lang": "py",
        "task": record.task_name,
        "id": record.id,
        "eta": record.eta.isoformat() if record.eta else None,
        "expires": record.expires_at.isoformat() if record.expires_at else None,
        "group": record.group_id or None,
        "retries": record.retries,
        "root_id": record.root_id,
        "parent_id": record.parent_id or None,
        "ignore_result": record.ignore_result,
        "priority": record.priority,
    }


def body_of(record: TaskRecord) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Celery's body: (args, kwargs, embed), embed holding the workflow's callbacks and chain."""
    canvas = record.canvas or {}
    embed = {
        "callbacks": canvas.get("link"),
        "errbacks": canvas.get("link_error"),
        "chain": canvas.get("chain"),
        "chord": canvas.get("chord"),
    }
    return record.args, record.kwargs, embed


def before(record: TaskRecord) -> None:
    """Send before_task_publish; keep the headers receivers added (those that can be stored) in the row."""
    if not signals.before_task_publish.listening():
        return
    headers = headers_of(record)
    standard = set(headers) - set(record.headers or {})
    signals.before_task_publish.emit(
        sender=record.task_name,
        body=body_of(record),
        exchange="",
        routing_key=record.queue,
        headers=headers,
        properties={"correlation_id": record.id, "priority": record.priority},
        declare=[],
        retry_policy=None,
    )
    added = {key: value for key, value in headers.items() if key not in standard}
    if added != (record.headers or {}):
        try:
            record.headers = plain(added, "headers")
        except Unstorable as exc:
            logger.error(
                "Task %s[%s]: headers set by a before_task_publish receiver ignored: %s",
                record.task_name,
                record.id,
                exc,
            )


def after(records: Iterable[TaskRecord]) -> None:
    """Send after_task_publish for rows whose ids were just handed to Redis."""
    for record in records:
        signals.after_task_publish.emit(
            sender=record.task_name, body=body_of(record), exchange="", routing_key=record.queue
        )
