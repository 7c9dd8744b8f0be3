"""Call a started task's function: its context, its soft time limit, and the Outcome of the call.

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
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.db import InterfaceError, OperationalError
from django.tasks import TaskResult
from django.tasks.signals import task_started
from django.utils import timezone

from djtasks.calling import retry
from djtasks.calling.declaration import Task
from djtasks.core.context import Current, activate, deactivate
from djtasks.core.exceptions import SoftTimeLimitExceeded
from djtasks.core.states import FAILURE, RETRY, SUCCESS
from djtasks.core.values import Unstorable, plain
from djtasks.record import transitions
from djtasks.record.convert import to_task_result
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.worker import signalling
from djtasks.worker.limits import soft_time_limit
from djtasks.worker.outcome import Outcome, Started, describe, storable
from djtasks.worker.overrides import TimeLimitOverrides
from djtasks.worker.recording import Recording

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
            return self._call(started)
        except (OperationalError, InterfaceError):
            raise  # an outage: the child waits for the database; the lease keeps the task
        except BaseException as exc:  # noqa: BLE001 - any error around the call is this attempt's failure
            return describe(exc)

    def _call(self, started: Started) -> Outcome:
        task, record = started.task, started.record
        if task.effective_track_started:
            db = self.recording.db
            self.recording.with_db_retry(lambda: transitions.mark_started(db, record, started.token))
        task_result = to_task_result(record, task)
        task_started.send(type(task.get_backend()), task_result=task_result)
        args = self._arguments(task, record, task_result)
        mismatch = self._mismatch(started, args)
        if mismatch is not None:
            return mismatch
        running = Current(
            id=record.pk,
            token=started.token,
            task_name=task.registered_name,
            attempt=record.attempts,
            worker_id=self.worker_id,
            queue=started.claim.queue,
            db=self.recording.db,
            record=record,
        )
        token = activate(running)
        try:
            signalling.prerun(started, args)
            value = call(task, args, record.kwargs, self.soft_limit(task))
        except BaseException as exc:  # noqa: BLE001 - whatever a task raises is its outcome, never fatal
            return failed(task, record, exc)
        finally:
            deactivate(token)
        return returned(task, record, value)

    @staticmethod
    def _arguments(task: Task, record: TaskRecord, task_result: TaskResult) -> list[Any]:
        """The positional arguments of the call: the row's, after the task and its context if asked for."""
        args = list(record.args)
        if task.takes_context:
            args.insert(0, retry.Context(task_result=task_result, task=task))
        if task.bind:
            args.insert(0, task)
        return args

    def _mismatch(self, started: Started, args: list[Any]) -> Outcome | None:
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
            self.recording.with_db_retry(lambda: letter.save(using=self.recording.db, force_insert=True))
            return Outcome(state=FAILURE, exception_type="builtins.TypeError", message=reason)
        return None

    def soft_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.registered_name)
        return override[0] if override else task.soft_time_limit or self.soft_time_limit

    def hard_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.registered_name)
        return override[1] if override else task.time_limit or self.time_limit


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
        why = "is not JSON serializable" if exc.wrong_type else "cannot be stored"
        return describe(raised(TypeError(f"return value of {task.registered_name} {why}: {exc.path} {exc.problem}")))
    ignored = task.ignore_result or record.ignore_result
    return Outcome(state=SUCCESS, result=None if ignored else value, returned=value)


def raised(exc: BaseException) -> BaseException:
    """Raise and catch exc, so that its FAILURE carries a traceback, as an error a task raised does."""
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - it is the one just raised
        return caught


def failed(task: Task, record: TaskRecord, exc: BaseException) -> Outcome:
    """Describe a task's error: a RETRY outcome if it asked for (or is set to) retry."""
    try:
        planned = retry.plan(task, record.retries, exc)
    except BaseException as bad:  # noqa: BLE001 - a bad retry request is the task's failure
        return describe(bad)
    if planned is None:
        return describe(exc)
    eta, error = planned
    outcome = describe(error)
    outcome.state, outcome.eta = RETRY, eta
    return outcome
