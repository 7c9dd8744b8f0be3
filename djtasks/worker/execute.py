"""Call a started task's function: its context, its soft time limit, its hooks, and the Outcome of the call.

The task's hooks (calling/hooks.py) run in this process around the call, before the outcome is
written: before_start, then on_success, on_retry or on_failure, then after_return. A call's own
time limits (apply_async(time_limit=..., soft_time_limit=...), on the row) win over the others.

Every error becomes an Outcome (a RETRY one when the task asks for, or is set to, retry); none escapes:
not KeyboardInterrupt, SystemExit, GeneratorExit or any other BaseException the task raises, nor
an error of the machinery around the call (a signal receiver, a refused dead letter), except a
database outage, which the child's loops wait out while the lease keeps the task. A return value
is stored only if it reads back as it was (core/values.py); otherwise the task is a FAILURE that says why.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.db import InterfaceError, OperationalError
from django.tasks import TaskResult
from django.tasks.signals import task_started
from django.utils import timezone

from djtasks.calling import hooks, retry
from djtasks.calling.declaration import Task
from djtasks.calling.replace import Replaced, rewrite
from djtasks.core.context import Current, activate, deactivate
from djtasks.core.exceptions import SoftTimeLimitExceeded
from djtasks.core.states import FAILURE, RETRY, SUCCESS
from djtasks.core.values import Unstorable, plain
from djtasks.record import transitions
from djtasks.record.convert import to_task_result
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.worker import signalling
from djtasks.worker.limits import soft_time_limit
from djtasks.worker.outcome import Outcome, Started, class_path, describe, storable
from djtasks.worker.overrides import TimeLimitOverrides
from djtasks.worker.recording import Recording

logger = logging.getLogger("djtasks")
# A task whose last run took longer (seconds) has its started event written before it runs.
SLOW_TASK = 0.05


@cache
def signature_of(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


class Runner:
    """Run started tasks in this process, within their time limits (the worker's, a task's, or an override)."""

    def __init__(
        self, recording: Recording, worker_id: str, *, soft_time_limit: float | None, time_limit: float | None
    ):
        self.recording = recording
        self.worker_id = worker_id
        self.soft_time_limit = soft_time_limit
        self.time_limit = time_limit
        self.overrides = TimeLimitOverrides(recording.broker)
        self.last_runtimes: dict[str, float] = {}

    def execute(self, started: Started) -> Outcome:
        """Run the task function; every error becomes an Outcome, none escapes."""
        recorder = self.recording.recorder
        started.started_at = started.record.started_at = timezone.now()
        recorder.started(started)
        name = started.task.registered_name
        if self.last_runtimes.get(name, SLOW_TASK) >= SLOW_TASK:
            # Worth a round trip so a watcher sees it begin; a fast task's event rides with its ack.
            recorder.flush()
        outcome = self._execute(started)
        outcome.finished_at = timezone.now()
        self.last_runtimes[name] = (outcome.finished_at - started.started_at).total_seconds()
        return outcome

    def _execute(self, started: Started) -> Outcome:
        try:
            return attempt(
                started,
                worker_id=self.worker_id,
                db=self.recording.db,
                soft_limit=self.soft_limit(started.task, started.record),
                retrying=self.recording.with_db_retry,
            )
        except (OperationalError, InterfaceError):
            raise  # an outage: the child waits for the database; the lease keeps the task
        except BaseException as exc:  # noqa: BLE001 - any error around the call is this attempt's failure
            return describe(exc)

    def soft_limit(self, task: Task, record: TaskRecord | None = None) -> float | None:
        """This call's soft limit: its own (apply_async), an override (taskctl), the task's, the worker's."""
        override = self.overrides.get(task.registered_name)
        return call_limit(record, "soft_time_limit") or (
            override[0] if override else task.soft_time_limit or self.soft_time_limit
        )

    def hard_limit(self, task: Task, record: TaskRecord | None = None) -> float | None:
        override = self.overrides.get(task.registered_name)
        return call_limit(record, "time_limit") or (override[1] if override else task.time_limit or self.time_limit)


def call_limit(record: TaskRecord | None, name: str) -> float | None:
    """The time limit the call itself set with apply_async(time_limit=..., soft_time_limit=...), if any."""
    value = (record.options or {}).get(name) if record is not None and isinstance(record.options, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def attempt(
    started: Started, *, worker_id: str, db: str, soft_limit: float | None, retrying: Callable[[Callable[[], Any]], Any]
) -> Outcome:
    """Run a started attempt in this process: its start signal, its hooks, the call; return its Outcome."""
    task, record = started.task, started.record
    if task.effective_track_started:
        retrying(lambda: transitions.mark_started(db, record, started.token))
    listening = signalling.started_listens()  # Django's receiver logs at INFO; built for nothing when that is off
    task_result = to_task_result(record, task) if listening or task.takes_context else None
    if listening:
        task_started.send(type(task.get_backend()), task_result=task_result)
    args = arguments(task, record, task_result)
    mismatch = mismatched(started, args, db, retrying)
    if mismatch is not None:
        return mismatch
    running = Current(
        id=record.pk,
        token=started.token,
        task_name=task.registered_name,
        attempt=record.attempts,
        worker_id=worker_id,
        queue=started.claim.queue,
        db=db,
        record=record,
    )
    token = activate(running)
    try:
        signalling.prerun(started, args)  # Celery's task_prerun, before before_start as in Celery
        hooks.before_start(task, record.pk, record.args, record.kwargs)
        try:
            value = call(task, args, record.kwargs, soft_limit)
        except BaseException as exc:  # noqa: BLE001 - whatever a task raises is its outcome, never fatal
            outcome = failed(task, record, exc)
        else:
            outcome = returned(task, record, value)
        if outcome.rewrite is None:  # a replaced task ends without its hooks, as in Celery
            hooks.after_attempt(
                task, outcome.state, record.pk, record.args, record.kwargs, value=outcome.returned, error=outcome.error
            )
    finally:
        deactivate(token)
    return outcome


def arguments(task: Task, record: TaskRecord, task_result: TaskResult | None) -> list[Any]:
    """The positional arguments of the call: the row's, after the task and its context if asked for."""
    args = list(record.args)
    if task.takes_context and task_result is not None:
        args.insert(0, retry.Context(task_result=task_result, task=task))
    if task.bind:
        args.insert(0, task)
    return args


def mismatched(
    started: Started, args: list[Any], db: str, retrying: Callable[[Callable[[], Any]], Any]
) -> Outcome | None:
    """Dead-letter a call whose arguments the function cannot take, and fail it; None if they fit."""
    task, record = started.task, started.record
    try:
        signature_of(task.func).bind(*args, **record.kwargs)
    except TypeError as exc:
        reason = storable(f"arguments do not match {task.registered_name}{signature_of(task.func)}: {exc}")
        letter = DeadLetter(
            task_id=record.pk,
            task_name=task.registered_name,
            queue=started.claim.queue,
            reason=reason,
            raw=storable(json.dumps({"args": record.args, "kwargs": record.kwargs}))[:65536],
        )
        retrying(lambda: letter.save(using=db, force_insert=True))
        return Outcome(state=FAILURE, exception_type="builtins.TypeError", message=reason)
    return None


def call(task: Task, args: list[Any], kwargs: dict[str, Any], soft_limit: float | None) -> Any:
    """Call the task's function within its soft time limit.

    A coroutine function runs in its own event loop (async_to_sync, as Django's Task.call does),
    where SIGALRM cannot reach it: its soft limit cancels it at its next await instead, so it
    never runs on after its attempt ended.
    """
    if iscoroutinefunction(task.func):
        return async_to_sync(within(task.func, soft_limit))(*args, **kwargs)
    with soft_time_limit(soft_limit):
        return task.call(*args, **kwargs)


def within(func: Callable[..., Awaitable[Any]], seconds: float | None) -> Callable[..., Awaitable[Any]]:
    """Wrap a coroutine function so it is cancelled after `seconds`, raising SoftTimeLimitExceeded."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        if not seconds:
            return await func(*args, **kwargs)
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await func(*args, **kwargs)
        except TimeoutError:
            if limit.expired():
                raise SoftTimeLimitExceeded(f"soft time limit ({seconds:g} s) exceeded") from None
            raise

    return run


def returned(task: Task, record: TaskRecord, value: Any) -> Outcome:
    """Describe a returned value: SUCCESS, or FAILURE if it would not read back as it is."""
    try:
        value = plain(value, "result")
    except Unstorable as exc:
        why = "is not JSON serializable" if exc.wrong_type else "cannot be stored"  # Django's words
        error = raised(TypeError(f"return value of {task.registered_name} {why}: {exc.path} {exc.problem}"))
        return with_error(describe(error), error)  # with a traceback, as an error the task raised
    ignored = task.ignore_result or record.ignore_result
    return Outcome(state=SUCCESS, result=None if ignored else value, returned=value)


def raised(exc: BaseException) -> BaseException:
    """Raise and catch exc, so that its FAILURE carries a traceback, as an error a task raised does."""
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - it is the one just raised
        return caught


def failed(task: Task, record: TaskRecord, exc: BaseException) -> Outcome:
    """Describe a task's error: a RETRY outcome if it asked for (or is set to) retry, or was replaced."""
    try:
        if isinstance(exc, Replaced):
            outcome = Outcome(state=RETRY, exception_type=class_path(Replaced), message=storable(str(exc)))
            outcome.rewrite = rewrite(record, exc.sig)
            outcome.eta = outcome.rewrite.pop("eta")
            return outcome
        planned = retry.plan(task, record.retries, exc)
    except BaseException as bad:  # noqa: BLE001 - a bad retry or replace request is the task's failure
        return with_error(describe(bad), bad)
    if planned is None:
        outcome = with_error(describe(exc), exc)
        if task.throws and isinstance(exc, task.throws):
            outcome.expected = True
            logger.info(
                "Task %s[%s] raised expected: %s: %s",
                task.registered_name,
                record.pk,
                outcome.exception_type,
                outcome.message,
            )
        return outcome
    eta, error = planned
    outcome = with_error(describe(error), error)
    outcome.state, outcome.eta = RETRY, eta
    return outcome


def with_error(outcome: Outcome, error: BaseException) -> Outcome:
    outcome.error = error
    return outcome
