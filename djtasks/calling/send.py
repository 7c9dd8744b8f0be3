"""send_task: enqueue a task by name, declared in this process or only in the workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from djtasks.calling.enqueue import Defaults, djtasks_backend_alias, enqueue
from djtasks.calling.result import AsyncResult
from djtasks.core import registry
from djtasks.core.exceptions import InvalidCall
from djtasks.core.options import ExecutionOptions


def send_task(name: str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> AsyncResult:
    """Enqueue a task by name; it need not be importable here, only registered in the workers.

    Raises InvalidCall naming an option or argument that cannot be stored (or a name that cannot).
    """
    task = registry.get(name) if isinstance(name, str) else None
    if task is not None and hasattr(task, "apply_async"):
        return task.apply_async(args, kwargs, **options)
    try:
        execution = ExecutionOptions.build(**options)
        positional, named = list(args or ()), dict(kwargs or {})
    except (TypeError, ValueError) as exc:  # an unknown option, args that are not a sequence...
        raise InvalidCall(f"send_task({name!r}): {exc}") from None
    record = enqueue(Defaults(registered_name=name, backend=djtasks_backend_alias()), positional, named, execution)
    return AsyncResult(record.id, task_name=name)
