"""Build django.tasks TaskResult objects from task rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.tasks import TaskResult
from django.tasks.base import TaskError

from djtasks.core import registry
from djtasks.core.states import to_django_status
from djtasks.record.models import TaskRecord

if TYPE_CHECKING:
    from django.tasks import Task


def to_task_result(record: TaskRecord, task: Task | None = None) -> TaskResult:
    task = task or registry.lookup(record.task_name)
    result: TaskResult = TaskResult(
        task=task,
        id=record.id,
        status=to_django_status(record.state, running=record.is_running),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.started_at,
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=[
            TaskError(exception_class_path=e.get("exception_type", ""), traceback=e.get("traceback", ""))
            for e in record.errors
        ],
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.result)
    return result
