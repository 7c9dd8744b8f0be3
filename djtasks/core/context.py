"""What the worker is running right now, for code called from inside a task."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Current:
    """The running attempt: its row id, fence token, task name, attempt number and worker."""

    id: str
    token: str
    task_name: str
    attempt: int
    worker_id: str
    queue: str
    db: str
    record: Any = None  # the TaskRecord as read at the start (for Celery's task.request)


_current: ContextVar[Current | None] = ContextVar("djtasks_current", default=None)


def current() -> Current | None:
    """Return the attempt running in this thread, or None outside a worker's task."""
    return _current.get()


def activate(running: Current) -> object:
    return _current.set(running)


def deactivate(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
