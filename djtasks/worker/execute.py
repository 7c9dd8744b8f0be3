"""Call a started task's function: its context, its soft time limit, and the Outcome of the call.

Every error becomes an Outcome (a RETRY one when the task asks for, or is set to, retry); none escapes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from django.tasks import TaskResult
from django.tasks.signals import task_started
from django.utils import timezone

from djtasks.calling import retry
from djtasks.calling.declaration import Task
from djtasks.core.context import Current, activate, deactivate
from djtasks.core.states import FAILURE, RETRY, SUCCESS
from djtasks.record import transitions
from djtasks.record.convert import to_task_result
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.worker.limits import soft_time_limit
from djtasks.worker.outcome import Outcome, Started, describe
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
        name = started.task.name
        if self.last_runtimes.get(name, SLOW_TASK) >= SLOW_TASK:
            # Worth a round trip so a watcher sees it begin; a fast task's event rides with its ack.
            recorder.flush()
        outcome = self._execute(started)
        outcome.finished_at = timezone.now()
        self.last_runtimes[name] = (outcome.finished_at - started.started_at).total_seconds()
        return outcome

    def _execute(self, started: Started) -> Outcome:
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
            task_name=task.name,
            attempt=record.attempts,
            worker_id=self.worker_id,
            queue=started.claim.queue,
            db=self.recording.db,
            record=record,
        )
        token = activate(running)
        try:
            with soft_time_limit(self.soft_limit(task)):
                value = task.call(*args, **record.kwargs)
        except (Exception, SystemExit) as exc:  # any task error is recorded, never fatal
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
            reason = f"arguments do not match {task.name}{signature_of(task.func)}: {exc}"
            DeadLetter.objects.using(self.recording.db).create(
                task_id=record.pk,
                task_name=task.name,
                queue=started.claim.queue,
                reason=reason,
                raw=json.dumps({"args": record.args, "kwargs": record.kwargs})[:65536],
            )
            return Outcome(state=FAILURE, exception_type="builtins.TypeError", message=reason)
        return None

    def soft_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.name)
        return override[0] if override else task.soft_time_limit or self.soft_time_limit

    def hard_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.name)
        return override[1] if override else task.time_limit or self.time_limit


def returned(task: Task, record: TaskRecord, value: Any) -> Outcome:
    """Describe a returned value: SUCCESS, or FAILURE if it cannot be stored as JSON."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(
            state=FAILURE,
            exception_type="builtins.TypeError",
            message=f"return value of {task.name} is not JSON-serializable: {exc}",
        )
    ignored = task.ignore_result or record.ignore_result
    return Outcome(state=SUCCESS, result=None if ignored else value, returned=value)


def failed(task: Task, record: TaskRecord, exc: BaseException) -> Outcome:
    """Describe a task's error: a RETRY outcome if it asked for (or is set to) retry."""
    try:
        planned = retry.plan(task, record.retries, exc)
    except Exception as bad:  # noqa: BLE001 - a bad retry request is the task's failure
        return describe(bad)
    if planned is None:
        return describe(exc)
    eta, error = planned
    outcome = describe(error)
    outcome.state, outcome.eta = RETRY, eta
    return outcome
