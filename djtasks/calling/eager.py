"""Task.apply(): run a task in the caller's process, as Celery does, and return an EagerResult.

No row is written and nothing is published. The arguments and the return value are checked as
a worker would (JSON that reads back as it was), the task's hooks are called, retries run again
at once (as Celery's apply() does; countdowns are not waited), and links are sent with apply_async.
"""

from __future__ import annotations

import socket
import traceback as tb
import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from djtasks.calling import hooks, retry
from djtasks.calling.canvas import signature
from djtasks.calling.enqueue import check_json
from djtasks.core.conf import get_settings
from djtasks.core.context import current
from djtasks.core.exceptions import TaskRevoked
from djtasks.core.options import ExecutionOptions
from djtasks.core.states import FAILURE, READY_STATES, RETRY, REVOKED, SUCCESS
from djtasks.core.values import Unstorable, plain


class EagerResult[R]:
    """The result of a task run by apply(): ready at once, with AsyncResult's reading API."""

    def __init__(self, id: str, value: Any, state: str, traceback: str | None = None, **call: Any):  # noqa: A002
        self.id = id
        self._value = value
        self._state = state
        self._traceback = traceback
        self.name: str | None = call.get("name")
        self.args: list[Any] = call.get("args", [])
        self.kwargs: dict[str, Any] = call.get("kwargs", {})
        self.retries: int = call.get("retries", 0)
        self.date_done: datetime | None = call.get("date_done")
        self.parent = None
        self.children: list[Any] = []

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    state = property(lambda self: self._state)
    status = state
    result = property(lambda self: self._value, doc="The return value, or the exception of a failed task.")
    info = result
    traceback = property(lambda self: self._traceback)

    def ready(self) -> bool:
        return self._state in READY_STATES

    def successful(self) -> bool:
        return self._state == SUCCESS

    def failed(self) -> bool:
        return self._state == FAILURE

    def get(self, timeout: float | None = None, propagate: bool = True, disable_sync_subtasks: bool = True) -> R:
        """The return value; the task's exception is raised (or returned with propagate=False)."""
        if self._state == SUCCESS or not propagate:
            return self._value  # type: ignore[no-any-return]
        raise self._value

    wait = get

    def forget(self) -> None:
        """Nothing is stored for an eager run: there is nothing to forget (as in Celery)."""

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        """Mark the result REVOKED (the task already ran: nothing is cancelled), as Celery 5.7 does."""
        self._state, self._value, self._traceback = REVOKED, TaskRevoked("revoked"), None

    def as_tuple(self) -> tuple[Any, Any]:
        return (self.id, None), None


def apply(
    task: Any,
    args: Any = None,
    kwargs: dict[str, Any] | None = None,
    *,
    link: Any = None,
    link_error: Any = None,
    task_id: str | None = None,
    retries: int | None = None,
    throw: bool | None = None,
    logfile: Any = None,
    loglevel: Any = None,
    headers: dict[str, Any] | None = None,
    **options: Any,
) -> EagerResult[Any]:
    """Run the task here until it succeeds or fails (retries included); raise its error if throw says so."""
    checked = ExecutionOptions.build(task_id=task_id, link=link, link_error=link_error, headers=headers, **options)
    positional, named = check_json(task.registered_name, list(args or ()), dict(kwargs or {}))
    task_id = checked.task_id or str(uuid.uuid4())
    running = current()
    parent_id = running.id if running is not None else ""
    root_id = (getattr(running.record, "root_id", "") or running.id) if running is not None else task_id
    count = retries or 0
    while True:
        request = retry.Request(
            id=task_id,
            task=task.registered_name,
            args=positional,
            kwargs=named,
            retries=count,
            headers=dict(checked.headers),
            parent_id=parent_id,
            root_id=root_id,
            hostname=socket.gethostname(),
            called_directly=False,
            is_eager=True,
        )
        with retry.applying(request):
            state, value, error = attempt(task, task_id, positional, named, count)
        if state != RETRY:
            break
        count += 1
    follow = {"parent_id": task_id, "root_id": root_id}
    for sig in checked.link if state == SUCCESS else checked.link_error:
        signature(sig).apply_async((value,) if state == SUCCESS else (task_id,), **follow)
    if state == FAILURE and (get_settings().TASK_EAGER_PROPAGATES if throw is None else throw):
        raise value
    trace = "".join(tb.format_exception(error)) if error is not None else None
    call = {
        "name": task.registered_name,
        "args": positional,
        "kwargs": named,
        "retries": count,
        "date_done": timezone.now(),
    }
    return EagerResult(task_id, value, state, trace, **call)


def attempt(task: Any, task_id: str, args: list[Any], kwargs: dict[str, Any], retries: int) -> tuple[str, Any, Any]:
    """One attempt with its hooks: (state, return value or exception, the exception or None)."""
    hooks.before_start(task, task_id, args, kwargs)
    error: BaseException
    try:
        value = plain(task(*args, **kwargs), "result")
    except Unstorable as exc:
        state, error = (
            FAILURE,
            TypeError(f"return value of {task.registered_name} cannot be stored: {exc.path} {exc.problem}"),
        )
    except Exception as exc:  # noqa: BLE001 - a task's error is its outcome (BaseExceptions propagate, as Celery's)
        planned = retry.plan(task, retries, exc)
        state, error = (RETRY, planned[1]) if planned is not None else (FAILURE, exc)
    else:
        hooks.after_attempt(task, SUCCESS, task_id, args, kwargs, value=value)
        return SUCCESS, value, None
    hooks.after_attempt(task, state, task_id, args, kwargs, error=error)
    return state, error, error
