"""Run one reserved message: start the row by compare-and-set, call the task, record, ack.

No Redis loop lives here: the worker hands in a Claim, the executor settles it.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import time
import traceback as tb
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router, transaction
from django.db.models import Q
from django.tasks import TaskContext
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from . import registry
from .broker import Broker, Claim
from .conf import Settings
from .convert import to_task_result
from .exceptions import BrokerUnavailable, MessageRejected
from .message import Message
from .models import DeadLetter, TaskRecord
from .states import FAILURE, RUNNABLE_STATES, STARTED, SUCCESS
from .declaration import Task

logger = logging.getLogger("djtasks")

_START_FIELDS = ("task_name", "state", "args", "kwargs", "attempts", "worker_ids", "errors", "lease_expires_at")


@dataclass
class Outcome:
    state: str
    result: Any = None
    exception_type: str = ""
    message: str = ""
    traceback: str = ""
    extra_errors: list[dict[str, Any]] = field(default_factory=list)


def db_lease(config: Settings) -> timedelta:
    """The database lease: a little shorter than the Redis lease, both extended together."""
    return timedelta(seconds=max(config.LEASE_SECONDS - 5.0, config.LEASE_SECONDS * 0.8))


def describe(exc: BaseException) -> Outcome:
    cls = type(exc)
    return Outcome(
        state=FAILURE,
        exception_type=f"{cls.__module__}.{cls.__qualname__}",
        message=str(exc),
        traceback="".join(tb.format_exception(exc)),
    )


class Executor:
    def __init__(self, broker: Broker, config: Settings, worker_id: str):
        self.broker = broker
        self.config = config
        self.worker_id = worker_id
        self.db = router.db_for_write(TaskRecord)

    def run(self, claim: Claim) -> None:
        """Settle a claim: run it, drop it as a duplicate, or set it aside. Never raises for bad input."""
        try:
            message = Message.decode(claim.envelope, expected_id=claim.id)
        except MessageRejected as exc:
            self.dead_letter(claim, str(exc), raw=claim.envelope)
            return
        if claim.deliveries > self.config.MAX_DELIVERIES:
            reason = (
                f"delivered {claim.deliveries} times without finishing (more than MAX_DELIVERIES="
                f"{self.config.MAX_DELIVERIES}): its worker process died each time"
            )
            self.fail_unstarted(claim, "djtasks.exceptions.WorkerLost", reason)
            self.dead_letter(claim, reason, raw=claim.envelope)
            return
        row = self.start(claim, message)
        if row is None:
            return
        task = registry.get(row["task_name"])
        assert task is not None  # start() fails unregistered tasks before returning a row
        outcome = self.call(task, claim, row)
        self.finish(claim, row, outcome)
        self.settle(claim)

    # Starting -----------------------------------------------------------------------------

    def start(self, claim: Claim, message: Message) -> dict[str, Any] | None:
        """Compare-and-set the row to started under this claim's token; None if it must not run."""
        now = timezone.now()
        with transaction.atomic(using=self.db):
            row = (
                TaskRecord.objects.using(self.db)
                .select_for_update()
                .filter(pk=claim.id)
                .values(*_START_FIELDS)
                .first()
            )
            if row is None:
                self.dead_letter(claim, "no task row has this id (forged, or its transaction rolled back)")
                return None
            if row["state"] not in RUNNABLE_STATES:
                logger.info("Task id=%s is already %s: duplicate delivery dropped", claim.id, row["state"])
                self.settle(claim, notify=False)
                return None
            lease = row["lease_expires_at"]
            if lease is not None and lease > now:
                # Another attempt holds a live lease: try again once it has lapsed.
                delay = (lease - now).total_seconds() + 1.0
                logger.info("Task id=%s is held by a live lease; redelivery in %.0fs", claim.id, delay)
                self.release(claim, message.priority, delay_ms=int(delay * 1000), forgive=True)
                return None
            task = registry.get(row["task_name"])
            if task is None:
                reason = f"task {row['task_name']!r} is not registered in worker {self.worker_id}"
                self._write_unstarted(claim.id, "djtasks.exceptions.NotRegistered", reason, row)
                self.dead_letter(claim, reason, task_name=row["task_name"], settle=False)
                transaction.on_commit(lambda: self.settle(claim), using=self.db)
                return None
            state = STARTED if isinstance(task, Task) and task.effective_track_started else row["state"]
            TaskRecord.objects.using(self.db).filter(pk=claim.id).update(
                state=state,
                attempts=row["attempts"] + 1,
                worker=self.worker_id,
                worker_ids=[*row["worker_ids"], self.worker_id],
                lease_token=claim.token,
                lease_expires_at=now + db_lease(self.config),
                started_at=now,
            )
        row.update(state=state, attempts=row["attempts"] + 1, started_at=now)
        return row

    # Calling ------------------------------------------------------------------------------

    def call(self, task: Any, claim: Claim, row: dict[str, Any]) -> Outcome:
        args, kwargs = row["args"], row["kwargs"]
        record = TaskRecord.objects.using(self.db).get(pk=claim.id)
        task_result = to_task_result(record, task)
        task_started.send(type(task.get_backend()), task_result=task_result)
        call_args = [TaskContext(task_result=task_result), *args] if task.takes_context else list(args)
        try:
            inspect.signature(task.func).bind(*call_args, **kwargs)
        except TypeError as exc:
            return Outcome(
                state=FAILURE,
                exception_type="builtins.TypeError",
                message=f"arguments do not match {task.name}{inspect.signature(task.func)}: {exc}",
            )
        try:
            value = task.call(*call_args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any task error is recorded, never fatal
            return describe(exc)
        except SystemExit as exc:
            return describe(exc)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            return Outcome(
                state=FAILURE,
                exception_type="builtins.TypeError",
                message=f"return value of {task.name} is not JSON-serializable: {exc}",
            )
        return Outcome(state=SUCCESS, result=None if task.ignore_result else value)

    # Recording ----------------------------------------------------------------------------

    def finish(self, claim: Claim, row: dict[str, Any], outcome: Outcome) -> None:
        """Write the outcome, fenced by this attempt's token; keep trying while the database is down."""
        now = timezone.now()
        fields: dict[str, Any] = {
            "state": outcome.state,
            "result": outcome.result,
            "finished_at": now,
            "lease_expires_at": None,
            "exception_type": outcome.exception_type,
            "exception_message": outcome.message,
            "traceback": outcome.traceback,
        }
        if outcome.state == FAILURE:
            fields["errors"] = [*row["errors"], self._error_entry(row["attempts"], outcome, now)]
        written = self._write_with_retry(
            lambda: TaskRecord.objects.using(self.db)
            .filter(pk=claim.id, lease_token=claim.token)
            .update(**fields)
        )
        if not written:
            logger.warning("Task id=%s lost its lease before finishing; this attempt's result is discarded", claim.id)
            return
        record = TaskRecord.objects.using(self.db).filter(pk=claim.id).first()
        if record is not None:
            task_finished.send(type(registry.lookup(record.task_name).get_backend()), task_result=to_task_result(record))

    def _write_with_retry(self, write: Any) -> int:
        deadline = time.monotonic() + self.config.DB_RETRY_WINDOW
        delay = 0.1
        while True:
            try:
                return int(write())
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning("Database unavailable while recording a result (%s); retrying in %.1fs", exc, delay)
                connections[self.db].close_if_unusable_or_obsolete()
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)

    @staticmethod
    def _error_entry(attempt: int, outcome: Outcome, at: Any) -> dict[str, Any]:
        return {
            "attempt": attempt,
            "exception_type": outcome.exception_type,
            "message": outcome.message,
            "traceback": outcome.traceback,
            "at": at.isoformat(),
        }

    def _write_unstarted(self, task_id: str, exc_type: str, reason: str, row: dict[str, Any]) -> None:
        now = timezone.now()
        outcome = Outcome(state=FAILURE, exception_type=exc_type, message=reason)
        TaskRecord.objects.using(self.db).filter(pk=task_id, state__in=RUNNABLE_STATES).update(
            state=FAILURE,
            finished_at=now,
            exception_type=exc_type,
            exception_message=reason,
            errors=[*row["errors"], self._error_entry(row["attempts"], outcome, now)],
            lease_expires_at=None,
        )

    def fail_unstarted(self, claim: Claim, exc_type: str, reason: str) -> None:
        """Fail a row that must not start again (poison), unless a live attempt holds it."""
        now = timezone.now()
        live = Q(lease_expires_at__gt=now)
        row = TaskRecord.objects.using(self.db).filter(pk=claim.id).exclude(live).values(*_START_FIELDS).first()
        if row is not None:
            self._write_unstarted(claim.id, exc_type, reason, row)

    def dead_letter(
        self,
        claim: Claim,
        reason: str,
        *,
        raw: bytes | str = b"",
        task_name: str = "",
        settle: bool = True,
    ) -> None:
        """Set a message aside with its reason (visible in the admin) and take it off the queue."""
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
        logger.error("Message id=%r dead-lettered: %s", claim.id, reason)
        DeadLetter.objects.using(self.db).create(
            task_id=claim.id[:255], task_name=task_name[:255], queue=claim.queue, reason=reason, raw=text[:65536]
        )
        if settle:
            self.settle(claim)

    # Redis --------------------------------------------------------------------------------

    def settle(self, claim: Claim, *, notify: bool = True) -> None:
        """Ack the claim. If Redis is unreachable, the lease lapses and the redelivery is dropped."""
        try:
            self.broker.ack(claim, notify=notify)
        except BrokerUnavailable as exc:
            logger.warning("Ack of task id=%s failed (%s); its redelivery will be dropped", claim.id, exc)

    def release(self, claim: Claim, priority: int, *, delay_ms: int = 0, forgive: bool = False) -> None:
        try:
            self.broker.release(claim, priority=priority, delay_ms=delay_ms, forgive=forgive)
        except BrokerUnavailable as exc:
            logger.warning("Release of task id=%s failed (%s); its lease will lapse", claim.id, exc)


def hand_back(db: str, broker: Broker, claim: Claim, *, forgive: bool) -> None:
    """Return a claim whose process is gone or stopping: drop the row's lease, then requeue."""
    try:
        TaskRecord.objects.using(db).filter(pk=claim.id, lease_token=claim.token).update(lease_expires_at=None)
    except DatabaseError as exc:
        logger.warning("Could not clear the lease of task id=%s (%s); it reruns once the lease lapses", claim.id, exc)
    try:
        message = Message.decode(claim.envelope, expected_id=claim.id)
        broker.release(claim, priority=message.priority, forgive=forgive)
    except (MessageRejected, BrokerUnavailable) as exc:
        logger.warning("Could not hand back task id=%s (%s); its lease will lapse", claim.id, exc)
