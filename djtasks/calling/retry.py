"""Retries: self.request, self.retry(), autoretry_for with backoff, and the context of takes_context tasks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.utils import timezone
from django.utils.crypto import get_random_string

from djtasks.core.context import current
from djtasks.core.exceptions import MaxRetriesExceededError, Retry
from djtasks.core.options import aware
from djtasks.core.spec import RetryPolicy


@dataclass(frozen=True, slots=True)
class Request:
    """Celery's task.request: the invocation that is running now."""

    id: str | None = None
    task: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    attempt: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    queue: str = ""
    hostname: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    parent_id: str = ""
    root_id: str = ""
    group: str = ""
    called_directly: bool = True
    is_eager: bool = False  # run by apply(), in the caller's process, with no row

    @property
    def delivery_info(self) -> dict[str, Any]:
        return {"routing_key": self.queue, "queue": self.queue}


_applied: ContextVar[Request | None] = ContextVar("djtasks_applied", default=None)


@contextmanager
def applying(request: Request) -> Iterator[None]:
    """Make `request` the running invocation of its task while apply() runs it."""
    token = _applied.set(request)
    try:
        yield
    finally:
        _applied.reset(token)


def current_request(task_name: str) -> Request:
    """Build the request of the attempt running in this thread (an empty one when called inline)."""
    applied = _applied.get()
    if applied is not None and applied.task == task_name:
        return applied
    running = current()
    record = getattr(running, "record", None)
    if running is None or record is None or running.task_name != task_name:
        return Request(task=task_name)
    return request_of(record, attempt=running.attempt, queue=running.queue, hostname=running.worker_id)


def request_of(record: Any, *, attempt: int, queue: str, hostname: str) -> Request:
    """Celery's request of a task row's attempt (in the worker: self.request, and the signals' request)."""
    return Request(
        id=record.id,
        task=record.task_name,
        args=list(record.args),
        kwargs=dict(record.kwargs),
        retries=record.retries,
        attempt=attempt,
        eta=record.eta,
        expires=record.expires_at,
        queue=queue,
        hostname=hostname,
        headers=dict(record.headers or {}),
        parent_id=record.parent_id,
        root_id=record.root_id,
        group=record.group_id,
        called_directly=False,
    )


def request_retry(
    task: RetryPolicy,
    *,
    exc: BaseException | None = None,
    countdown: float | None = None,
    eta: Any = None,
    max_retries: int | None = None,
) -> NoReturn:
    """Raise Retry for the executor to reschedule, or the final error once retries ran out."""
    request = current_request(task.registered_name)
    if request.called_directly:
        # Inline calls have nowhere to be retried from: the error is the outcome, as in Celery.
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(f"{task.registered_name} was called directly and cannot be retried.")
    limit = task.max_retries if max_retries is None else max_retries
    if limit is not None and request.retries >= limit:
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(
            f"Can't retry {task.registered_name}[{request.id}] args:{request.args} kwargs:{request.kwargs}: "
            f"max_retries={limit} reached."
        )
    if eta is not None:
        when = aware(eta, "eta")
    else:
        when = timezone.now() + timedelta(seconds=float(task.default_retry_delay if countdown is None else countdown))
    raise Retry(exc=exc, when=when)


def backoff_seconds(task: RetryPolicy, retries: int) -> float:
    """Celery's autoretry delay: exponential when retry_backoff is set, with full jitter."""
    if not task.retry_backoff:
        return float(task.default_retry_delay)
    base = 1.0 if task.retry_backoff is True else float(task.retry_backoff)
    delay = min(float(task.retry_backoff_max), base * 2**retries)
    return random.uniform(0, delay) if task.retry_jitter else delay


def plan(task: RetryPolicy, retries: int, exc: BaseException) -> tuple[datetime, BaseException] | None:
    """Decide whether an error is retried: (eta, error to record) or None for a final failure."""
    if isinstance(exc, Retry):
        return exc.when, exc.exc or exc  # type: ignore[return-value]
    if task.autoretry_for and isinstance(exc, task.autoretry_for):
        # retry_kwargs, as Celery's autoretry passes them to retry(): its max_retries and countdown win.
        given = task.retry_kwargs or {}
        limit = given.get("max_retries", task.max_retries)
        if limit is not None and retries >= limit:
            return None
        delay = (
            backoff_seconds(task, retries) if task.retry_backoff else given.get("countdown", task.default_retry_delay)
        )
        return timezone.now() + timedelta(seconds=float(delay)), exc
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Context(TaskContext):  # type: ignore[misc]
    """The context of a takes_context task, with Celery's request and retry() on it."""

    task: Any = None

    @property
    def request(self) -> Request:
        return current_request(self.task.registered_name)

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: Any = None,
        max_retries: int | None = None,
    ) -> NoReturn:
        request_retry(self.task, exc=exc, countdown=countdown, eta=eta, max_retries=max_retries)


def inline_result(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskResult:
    """The TaskResult a takes_context task sees when it is called inline (no row: a made-up id)."""
    now = timezone.now()
    return TaskResult(
        task=task,
        id=get_random_string(32),
        status=TaskResultStatus.RUNNING,
        enqueued_at=now,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=list(args),
        kwargs=dict(kwargs),
        backend=task.backend,
        errors=[],
        worker_ids=["inline"],
    )
