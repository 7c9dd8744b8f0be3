"""Run a recorded task again: a new row with the same call, linked to the original as its child."""

from __future__ import annotations

import uuid

from django.db import router, transaction
from django.tasks.signals import task_enqueued

from . import registry, sql
from .convert import to_task_result
from .models import TaskRecord


def rerun(original: TaskRecord) -> TaskRecord:
    """Insert a PENDING copy of the call (published after commit); raise NotRegistered for unknown tasks."""
    task = registry.lookup(original.task_name)
    record = TaskRecord(
        id=str(uuid.uuid4()),
        task_name=original.task_name,
        queue=original.queue,
        priority=original.priority,
        backend=original.backend,
        args=original.args,
        kwargs=original.kwargs,
        ignore_result=original.ignore_result,
        parent_id=original.id,
        root_id=original.root_id or original.id,
        group_id="",
    )
    using = router.db_for_write(TaskRecord)
    with transaction.atomic(using=using):
        sql.insert(record, using)
    if task_enqueued.has_listeners():
        task_enqueued.send(type(task.get_backend()), task_result=to_task_result(record, task))
    return record
