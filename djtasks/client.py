"""Enqueue: write the task row inside the caller's transaction; publishing follows the commit."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from django.db import router
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
from django.tasks.signals import task_enqueued

from . import sql
from .convert import to_task_result
from .exceptions import ImproperlyDeclared
from .models import TaskRecord
from .options import ExecutionOptions

if TYPE_CHECKING:
    from .declaration import Task


def check_json(task: Task, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise TypeError naming the first argument that JSON cannot carry."""
    named = [(f"args[{i}]", value) for i, value in enumerate(args)]
    named += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    for name, value in named:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(
                f"Argument {name} of task {task.name} is not JSON-serializable ({exc}); "
                "pass plain data such as ids, strings and numbers. Nothing was enqueued."
            ) from None


def enqueue(task: Task, args: list[Any], kwargs: dict[str, Any], options: ExecutionOptions) -> TaskRecord:
    """Insert the row (state PENDING) in the current transaction and return it."""
    check_json(task, args, kwargs)
    priority = task.priority if options.priority is None else options.priority
    if type(priority) is not int or not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY:
        raise ImproperlyDeclared(
            f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}."
        )
    record = TaskRecord(
        id=options.task_id or str(uuid.uuid4()),
        task_name=task.name,
        queue=options.queue or task.queue_name,
        priority=priority,
        backend=task.backend,
        args=args,
        kwargs=kwargs,
        eta=options.eta or task.run_after,
        ignore_result=task.ignore_result,
    )
    # post_save (publisher.on_task_saved) registers the publish on this database's commit.
    sql.insert(record, router.db_for_write(TaskRecord))
    if task_enqueued.has_listeners():
        task_enqueued.send(type(task.get_backend()), task_result=to_task_result(record, task))
    return record
