"""send_task: enqueue a task by name, declared in this process or only in the workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from djtasks.calling.enqueue import Defaults, djtasks_backend_alias, enqueue
from djtasks.calling.result import AsyncResult
from djtasks.core import registry
from djtasks.core.exceptions import InvalidCall
from djtasks.core.options import ExecutionOptions
from djtasks.core.spec import TaskDefaults


def send_task(name: str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> AsyncResult:
    """Enqueue a task by name; it need not be importable here, only registered in the workers.

    A task declared here gives its defaults (queue, priority...); as in Celery, the arguments are
    not checked against its signature. Raises InvalidCall naming an option or argument that cannot
    be stored (or a name that cannot).
    """
    declared = registry.get(name) if isinstance(name, str) else None
    try:
        execution = ExecutionOptions.build(**options)
        positional, named = list(args or ()), dict(kwargs or {})
    except (TypeError, ValueError) as exc:  # an unknown option, args that are not a sequence...
        raise InvalidCall(f"send_task({name!r}): {exc}") from None
    task = cast("TaskDefaults", declared) if hasattr(declared, "apply_async") else None
    defaults = Defaults(registered_name=name, backend=djtasks_backend_alias())
    record = enqueue(task or defaults, positional, named, execution)
    return AsyncResult.enqueued(record.id, name)
