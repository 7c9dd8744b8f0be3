"""Enqueue for a caller that needs only the new row's id (apply_async, delay): no model instance when nothing sees it.

enqueue() builds a TaskRecord, sends pre_save and post_save for it and converts its 35 values
(about 15 µs of a bulk() call's 30). When TaskRecord has no receivers but djtasks' own publish
(rows.instance_free), and no before/after_task_publish, task_enqueued (beyond Django's silent
log line) or eager mode would read the instance, the row's parameters are built from the same
values (rows.new_params, the same conversions) and its publish scheduled directly: the row
written and the message published are the same. Anything else takes enqueue()'s path.

A call with no options outside a running task (delay(), the usual call in a bulk() block)
differs from the task's other such calls only in its id, its arguments and its time: its row
starts from a copy of one made once per task, settings and connection (_Plan), by the same
row_values() and rows.new_params() as any call.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, NamedTuple

from django.db import connections, router
from django.tasks import Task as DjangoTask
from django.tasks.signals import log_task_enqueued, task_enqueued

from djtasks.calling import inline, publisher, signals, unique
from djtasks.calling.enqueue import row_values, write
from djtasks.calling.gates import ENQUEUE
from djtasks.core.conf import get_settings
from djtasks.core.context import current
from djtasks.core.ids import new_id
from djtasks.core.message import Message
from djtasks.core.options import NO_OPTIONS, ExecutionOptions
from djtasks.core.spec import TaskDefaults
from djtasks.record import inserts, rows
from djtasks.record.models import TaskRecord


def unobserved(task: TaskDefaults) -> bool:
    """Whether nothing would see the instance of this task's new row (see the module's text)."""
    return not (
        signals.before_task_publish.listening()
        or signals.after_task_publish.listening()
        or (isinstance(task, DjangoTask) and signals.django_listens(task_enqueued, log_task_enqueued, logging.DEBUG))
        or inline.eager()
        or not rows.instance_free(publisher.on_task_saved)
    )


def enqueue_id(
    task: TaskDefaults,
    args: list[Any],
    kwargs: dict[str, Any],
    options: ExecutionOptions,
    once: unique.UniqueCall | None = None,
    *,
    checked: bool = False,
) -> str:
    """enqueue(), returning the new row's id (for a unique task, the id of the row holding its key)."""
    if options is NO_OPTIONS and once is None and checked and task.expires is None and task.run_after is None:
        plan = _plan(task) if current() is None else None
        if plan is not None and ENQUEUE.get(plan.name) is None and unobserved(task):
            task_id, connection = new_id(), plan.connection()
            own = rows.call_values(plan.shape.row, task_id, args, kwargs, connection)
            inserts.insert_row(own, connection, True, plan.shape)
            publisher.schedule_id(task_id, plan.queue, plan.priority, plan.db, connection)
            return task_id
    name, values = row_values(task, args, kwargs, options, checked=checked)
    if once is not None or ENQUEUE.get(name) is not None or not unobserved(task):
        return write(task, name, values, options, once).id
    if options.chain:
        unique.check_chain(options)  # a unique step ends a chain: refused unless it is the last
    db = router.db_for_write(TaskRecord)
    inserts.insert_values(values, db, deferrable=True)
    message = Message(id=values["id"], queue=values["queue"], priority=values["priority"])
    publisher.schedule_item((message, publisher.due_ms(values["eta"])), options.publish_retry, db)
    return values["id"]  # type: ignore[no-any-return]


class _Plan(NamedTuple):
    """A task's row for a call with no options and no arguments, under one settings object and connection."""

    task: TaskDefaults
    conf: Any
    db: str
    connection: weakref.ReferenceType[Any]  # not kept alive by the plan: it belongs to its thread
    name: str
    queue: str
    priority: int
    shape: inserts.Shape  # rows.new_params() of that call; call_values() gives each call its id, arguments, time


_PLANS: dict[int, _Plan] = {}  # by id(task); the plan holds the task, so its id is not reused meanwhile


def _plan(task: TaskDefaults) -> _Plan:
    """The task's plan for the database a new row goes to now, made again when the settings or connection change."""
    db = router.db_for_write(TaskRecord)
    connection, conf = inserts.block_connection(db) or connections[db], get_settings()
    plan = _PLANS.get(id(task))
    if plan is None or plan.task is not task or plan.conf is not conf or plan.connection() is not connection:
        name, values = row_values(task, [], {}, NO_OPTIONS, checked=True)  # raises InvalidCall as a call would
        row = rows.new_params(values, connection, text_json=connection.vendor == "postgresql")
        shape = inserts.Shape(row, rows.call_columns(connection))
        plan = _Plan(task, conf, db, weakref.ref(connection), name, values["queue"], values["priority"], shape)
        if len(_PLANS) >= 1000:  # tasks are declared once, but copies (Task.using()) are new objects
            _PLANS.clear()
        _PLANS[id(task)] = plan
    return plan
