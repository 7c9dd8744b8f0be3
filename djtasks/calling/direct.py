"""Enqueue for a caller that needs only the new row's id (apply_async, delay): no model instance when nothing sees it.

enqueue() builds a TaskRecord, sends pre_save and post_save for it and converts its 35 values
(about 15 µs of a bulk() call's 30). When TaskRecord has no receivers but djtasks' own publish
(rows.instance_free), and no before/after_task_publish, task_enqueued (beyond Django's silent
log line) or eager mode would read the instance, the row's parameters are built from the same
values (rows.new_params, the same conversions) and its publish scheduled directly: the row
written and the message published are the same. Anything else takes enqueue()'s path.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import router
from django.tasks import Task as DjangoTask
from django.tasks.signals import log_task_enqueued, task_enqueued

from djtasks.calling import inline, publisher, signals, unique
from djtasks.calling.enqueue import row_values, write
from djtasks.calling.gates import ENQUEUE
from djtasks.core.message import Message
from djtasks.core.options import ExecutionOptions
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
