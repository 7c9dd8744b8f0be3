"""What a worker tells receivers about its tasks: Celery's signals (calling/signals.py) and Django's task_finished.

Each function returns at once when nothing listens (one attribute test); receivers that raise are
logged by the signals themselves and never change what was recorded. Django's task_started and
task_finished always have one receiver, Django's own log line: when nothing else listens and that
line's level is off, no TaskResult is built and nothing is sent (per task, a TaskResult, a send
and a log record that nobody would see).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from django.tasks import TaskResultStatus
from django.tasks.signals import log_task_finished, log_task_started, task_finished, task_started

from djtasks.calling import retry, signals
from djtasks.calling.retry import Request
from djtasks.calling.signals import django_listens
from djtasks.core.states import FAILURE, RETRY, SUCCESS, to_django_status
from djtasks.record.convert import to_task_result
from djtasks.record.models import TaskRecord

if TYPE_CHECKING:
    from djtasks.worker.outcome import Outcome, Started

_FINISHED = (signals.task_success, signals.task_failure, signals.task_retry, signals.task_postrun)


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """Celery's einfo: what a task raised, with its traceback as text (`traceback`) and as an object (`tb`)."""

    exception: BaseException | None
    traceback: str
    type: type[BaseException] | None = None
    tb: TracebackType | None = None

    def __str__(self) -> str:
        return self.traceback


def started_listens() -> bool:
    """Whether Django's task_started has anything to do (its own receiver logs at INFO)."""
    return django_listens(task_started, log_task_started, logging.INFO)


def request_of(record: TaskRecord, queue: str, worker_id: str) -> Request:
    """Celery's request of a task row's current attempt, as the worker knows it."""
    return retry.request_of(record, attempt=record.attempts, queue=queue, hostname=worker_id)


def received(items: list[Started], worker_id: str) -> None:
    if signals.task_received.listening():
        for item in items:
            signals.task_received.emit(request=request_of(item.record, item.claim.queue, worker_id))


def prerun(started: Started, args: list[Any]) -> None:
    """task_prerun, just before the function runs (the attempt is current: task.request works)."""
    if signals.task_prerun.listening():
        record, task = started.record, started.task
        signals.task_prerun.emit(sender=task, task_id=record.id, task=task, args=args, kwargs=record.kwargs)


def finished(started: Started, outcome: Outcome, worker_id: str) -> None:
    """After the outcome's commit: Django's task_finished (not for a retry), then Celery's signals."""
    exc = outcome.error
    failed = outcome.state != RETRY and to_django_status(outcome.state) == TaskResultStatus.FAILED
    if outcome.state != RETRY and django_listens(
        task_finished, log_task_finished, logging.ERROR if failed else logging.INFO
    ):
        backend = type(started.task.get_backend())
        result = to_task_result(started.record, started.task)
        if outcome.state == FAILURE and exc is not None and not outcome.expected:
            # Django's receiver logs the error with sys.exc_info(): give it the task's exception
            # (not an expected one, throws=: Celery logs those without a traceback).
            try:
                raise exc
            except BaseException:  # noqa: BLE001 - re-raised only to be the current exception
                task_finished.send(backend, task_result=result)
        else:
            task_finished.send(backend, task_result=result)
    if any(s.receivers for s in _FINISHED):
        _celery_finished(started, outcome, worker_id)


def _celery_finished(started: Started, outcome: Outcome, worker_id: str) -> None:
    record, task, exc = started.record, started.task, outcome.error
    einfo = ExceptionInfo(exc, outcome.traceback, type(exc) if exc else None, exc.__traceback__ if exc else None)
    if outcome.state == SUCCESS:
        signals.task_success.emit(sender=task, result=outcome.returned)
        retval: Any = outcome.returned
    elif outcome.rewrite is not None:  # replace(): Celery ends the task with Ignore, no retry or failure
        retval = None
    elif outcome.state == RETRY:
        request = dataclasses.replace(request_of(record, started.claim.queue, worker_id), retries=started.retries)
        signals.task_retry.emit(sender=task, request=request, reason=exc, einfo=einfo)
        retval = exc
    else:
        signals.task_failure.emit(
            sender=task,
            task_id=record.id,
            exception=exc,
            args=record.args,
            kwargs=record.kwargs,
            traceback=einfo.tb,
            einfo=einfo,
        )
        retval = exc
    signals.task_postrun.emit(
        sender=task,
        task_id=record.id,
        task=task,
        args=record.args,
        kwargs=record.kwargs,
        retval=retval,
        state=outcome.state,
    )


def revoked(task: Any, record: TaskRecord, queue: str, worker_id: str, *, expired: bool = False) -> None:
    """task_revoked for a revoked or expired task a child met (it does not run)."""
    if signals.task_revoked.listening():
        request = request_of(record, queue, worker_id)
        signals.task_revoked.emit(sender=task, request=request, terminated=False, signum=None, expired=expired)


def terminated(task: Any, record: TaskRecord, queue: str, worker_id: str) -> None:
    """task_revoked for a task whose child the parent killed because it was revoked with terminate."""
    if signals.task_revoked.listening():
        request = request_of(record, queue, worker_id)
        signals.task_revoked.emit(sender=task, request=request, terminated=True, signum=signal.SIGKILL, expired=False)


def unknown(name: str, task_id: str, message: Any, exc: BaseException) -> None:
    if signals.task_unknown.listening():
        signals.task_unknown.emit(name=name, id=task_id, message=message, exc=exc)


def rejected(message: Any, exc: BaseException) -> None:
    if signals.task_rejected.listening():
        signals.task_rejected.emit(message=message, exc=exc)
