"""send_task: enqueue a task by name, declared in this process or only in the workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from djtasks.calling.enqueue import Defaults, djtasks_backend_alias, enqueue
from djtasks.calling.result import AsyncResult
from djtasks.core import registry
from djtasks.core.options import ExecutionOptions


def send_task(name: str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> AsyncResult:
    """Enqueue a task by name; it need not be importable here, only registered in the workers."""
    task = registry.get(name)
    if task is not None and hasattr(task, "apply_async"):
        return task.apply_async(list(args or ()), dict(kwargs or {}), **options)
    record = enqueue(
        Defaults(name=name, backend=djtasks_backend_alias()),
        list(args or ()),
        dict(kwargs or {}),
        ExecutionOptions.build(**options),
    )
    return AsyncResult(record.id, task_name=name)
