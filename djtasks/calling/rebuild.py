"""Rebuild a task's stored exception in the reading process, without importing what stored data names."""

from __future__ import annotations

import builtins
import inspect
import sys
from typing import Any

from djtasks.core import exceptions
from djtasks.core.exceptions import TaskFailed, TaskRevoked
from djtasks.core.states import REVOKED
from djtasks.record.models import TaskRecord


def rebuild_exception(exc_type: str, message: str, traceback: str) -> BaseException:
    """Rebuild a task's exception without importing anything named by stored data.

    Builtin exceptions and exception classes from modules this process has already imported are
    re-created; anything else becomes TaskFailed carrying the class path, message and traceback.
    """
    module_name, _, qualname = exc_type.rpartition(".")
    candidate: Any = None
    if module_name == "builtins":
        candidate = getattr(builtins, qualname, None)
    elif module_name == exceptions.PUBLIC_MODULE:
        candidate = getattr(exceptions, qualname, None)
    elif module_name in sys.modules and "." not in qualname:
        candidate = getattr(sys.modules[module_name], qualname, None)
    exc: BaseException | None = None
    if inspect.isclass(candidate) and issubclass(candidate, Exception):
        try:
            exc = candidate(message)
        except Exception:  # noqa: BLE001 - a constructor with another signature: fall back
            exc = None
    if exc is None:
        exc = TaskFailed(exc_type, message, traceback)
    if traceback:
        exc.add_note(f"Remote traceback:\n{traceback}")
    return exc


def stored_exception(record: TaskRecord) -> BaseException:
    """The exception a FAILURE, REVOKED or RETRY row records, rebuilt."""
    if record.state == REVOKED:
        return TaskRevoked(record.exception_message or f"Task {record.id} was revoked.")
    return rebuild_exception(record.exception_type, record.exception_message, record.traceback)
