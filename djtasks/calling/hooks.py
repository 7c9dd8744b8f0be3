"""Celery's task hooks: before_start, on_success, on_retry, on_failure and after_return, with Celery's arguments.

The worker (worker/execute.py) and apply() call them around an attempt. A hook that raises is
logged with its traceback and changes nothing: the outcome stands as the task made it.
"""

from __future__ import annotations

import logging
import traceback as tb
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from djtasks.core.states import FAILURE, RETRY, SUCCESS

logger = logging.getLogger("djtasks")
HOOKS = ("before_start", "on_success", "on_retry", "on_failure", "after_return")


class TaskHooks:
    """The hooks a Task subclass (or a base= class) overrides; each does nothing here."""

    __slots__ = ()

    def before_start(self, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Called before the task runs."""

    def on_success(self, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Called once the task returned retval."""

    def on_retry(self, exc: BaseException, task_id: str, args: list[Any], kwargs: dict[str, Any], einfo: Any) -> None:
        """Called when the task is to be retried because of exc."""

    def on_failure(self, exc: BaseException, task_id: str, args: list[Any], kwargs: dict[str, Any], einfo: Any) -> None:
        """Called when the task failed with exc."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        """Called after on_success, on_retry or on_failure, with the state and the value or exception."""


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """What Celery's hooks receive as einfo (billiard's ExceptionInfo): the error, its class and traceback."""

    exception: BaseException
    type: type[BaseException]
    tb: TracebackType | None
    traceback: str

    @classmethod
    def of(cls, exc: BaseException) -> ExceptionInfo:
        try:
            text = "".join(tb.format_exception(exc))
        except Exception:  # noqa: BLE001 - an exception whose str() raises still gets its hooks called
            text = f"{type(exc).__qualname__}\n"
        return cls(exception=exc, type=type(exc), tb=exc.__traceback__, traceback=text)

    def __str__(self) -> str:
        return self.traceback


def call_hook(task: Any, hook: str, task_id: str, *args: Any) -> None:
    """Call one of the task's hooks; whatever it raises is logged, never raised."""
    try:
        getattr(task, hook)(*args)
    except BaseException:  # noqa: BLE001 - a hook must not change the outcome, nor stop the worker
        logger.exception("Task %s[%s]: its %s() hook raised; the outcome stands", task.registered_name, task_id, hook)


def before_start(task: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    call_hook(task, "before_start", task_id, task_id, args, kwargs)


def after_attempt(
    task: Any,
    state: str,
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    value: Any = None,
    error: BaseException | None = None,
) -> None:
    """Call on_success, on_retry or on_failure for how the attempt ended, then after_return (as Celery's trace)."""
    einfo = ExceptionInfo.of(error) if error is not None else None
    if state == SUCCESS:
        call_hook(task, "on_success", task_id, value, task_id, args, kwargs)
    elif state == RETRY and error is not None:
        call_hook(task, "on_retry", task_id, error, task_id, args, kwargs, einfo)
    elif state == FAILURE and error is not None:
        call_hook(task, "on_failure", task_id, error, task_id, args, kwargs, einfo)
    retval = value if state == SUCCESS else error
    call_hook(task, "after_return", task_id, state, retval, task_id, args, kwargs, einfo)
