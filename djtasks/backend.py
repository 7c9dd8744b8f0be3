"""djtasks as a backend of Django's own Tasks framework (django.tasks)."""

from __future__ import annotations

from typing import Any

from django.db import router
from django.tasks import TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils.inspect import is_module_level_function

from djtasks.calling.declaration import Task
from djtasks.calling.enqueue import enqueue
from djtasks.checks import check_backend
from djtasks.core import registry
from djtasks.core.exceptions import NotRegistered
from djtasks.core.options import ExecutionOptions
from djtasks.record.convert import to_task_result
from djtasks.record.models import TaskRecord


class RedisBackend(BaseTaskBackend):
    """Rows in the database, messages in Redis, execution in `manage.py taskworker`."""

    task_class = Task
    supports_defer = True  # run_after waits in a Redis sorted set until due
    supports_async_task = True  # coroutine functions run to completion in the worker
    supports_get_result = True  # results live in the database, readable from any process
    supports_priority = True  # higher priority starts first within a queue

    def __init__(self, alias: str, params: dict[str, Any]):
        super().__init__(alias, params)
        # Unlike Django's default of {"default"}, any queue name is valid unless QUEUES is given.
        self.queues = set(params.get("QUEUES", []))

    def validate_task(self, task: Any) -> None:
        if not is_module_level_function(task.func):
            raise InvalidTask(
                f"Task function must be defined at a module level. {task.func.__qualname__!r} is a lambda, a "
                "nested function, a method or a builtin: move it to the top level of the app's tasks.py."
            )
        super().validate_task(task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        if not isinstance(task, Task):
            raise InvalidTask(f"{task!r} was not built by the djtasks backend; declare it with TASKS pointing here.")
        # The task's queue, priority and run_after are its defaults; ROUTES may re-route it.
        record = enqueue(task, list(args), dict(kwargs), ExecutionOptions())
        return to_task_result(record, task)

    def get_result(self, result_id: str) -> TaskResult:
        record = TaskRecord.objects.using(router.db_for_read(TaskRecord)).filter(pk=result_id).first()
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = registry.lookup(record.task_name)
        except NotRegistered:
            raise TaskResultDoesNotExist(f"{result_id} belongs to unregistered task {record.task_name!r}") from None
        return to_task_result(record, task)

    def check(self, **kwargs: Any) -> list[Any]:
        return check_backend(self)
