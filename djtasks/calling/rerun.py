"""Run a recorded task again: a new row with the same call, linked to the original as its child."""

from __future__ import annotations

from typing import cast

from django.db import router, transaction

from djtasks.calling.enqueue import enqueue
from djtasks.core import registry
from djtasks.core.options import ExecutionOptions
from djtasks.core.spec import TaskDefaults
from djtasks.record.models import TaskRecord


def rerun(original: TaskRecord) -> TaskRecord:
    """Enqueue a PENDING copy of the call (published after commit); raise NotRegistered for unknown tasks."""
    task = cast("TaskDefaults", registry.lookup(original.task_name))  # only djtasks Tasks register
    kept = original.options if isinstance(original.options, dict) else {}
    options = ExecutionOptions(
        queue=original.queue,
        priority=original.priority,
        ignore_result=original.ignore_result,
        time_limit=kept.get("time_limit"),  # the call's own limits and shadow= name go with it
        soft_time_limit=kept.get("soft_time_limit"),
        shadow=kept.get("shadow"),
        parent_id=original.id,
        root_id=original.root_id or original.id,
    )
    with transaction.atomic(using=router.db_for_write(TaskRecord)):
        return enqueue(task, original.args, original.kwargs, options)
