"""Settle reserved messages: start rows by compare-and-set, call tasks, record outcomes, ack.

No Redis loop lives here: the worker hands in Claims. Work is batched where the guarantees
allow it: one transaction starts a batch of claims, one transaction records a batch of
outcomes (each row still fenced by its own lease token), one round trip acks them.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router, transaction
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from djtasks.calling import retry
from djtasks.calling.declaration import Task
from djtasks.core import registry
from djtasks.core.conf import Settings, get_settings
from djtasks.core.context import Current, activate, deactivate
from djtasks.core.exceptions import BrokerUnavailable, MessageRejected
from djtasks.core.message import Message
from djtasks.core.states import FAILURE, READY_STATES, RETRY, RUNNABLE, RUNNABLE_STATES, STARTED, SUCCESS
from djtasks.record import sql
from djtasks.record.convert import to_task_result
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.transport.broker import Broker, Claim
from djtasks.transport.telemetry import Recorder
from djtasks.worker import workflow
from djtasks.worker.limits import soft_time_limit
from djtasks.worker.overrides import TimeLimitOverrides
from djtasks.worker.ratelimit import Limiter
from djtasks.worker.telemetry import TaskRecorder

logger = logging.getLogger("djtasks")
# A task whose last run took longer (seconds) has its started event written before it runs.
SLOW_TASK = 0.05


@dataclass
class Outcome:
    state: str
    result: Any = None
    exception_type: str = ""
    message: str = ""
    traceback: str = ""
    finished_at: datetime | None = None
    eta: datetime | None = None  # when a RETRY outcome runs again
    returned: Any = None  # the return value even under ignore_result, for links and chains


@dataclass
class Started:
    """A claim whose row this attempt now holds: the row as read at the start, and its task."""

    claim: Claim
    record: TaskRecord
    task: Task
    started_at: datetime


@cache
def signature_of(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def db_lease(config: Settings) -> timedelta:
    """The database lease: a little shorter than the Redis lease, both extended together."""
    return timedelta(seconds=max(config.LEASE_SECONDS - 5.0, config.LEASE_SECONDS * 0.8))


def describe(exc: BaseException) -> Outcome:
    cls = type(exc)
    return Outcome(
        state=FAILURE,
        exception_type=f"{cls.__module__}.{cls.__qualname__}",
        message=storable(str(exc)),
        traceback=storable("".join(tb.format_exception(exc))),
    )


def storable(text: str) -> str:
    """Make untrusted text storable in any database: PostgreSQL refuses NUL characters."""
    return text.replace("\x00", "\\x00")


def error_entry(attempt: int, outcome: Outcome, at: datetime) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "exception_type": outcome.exception_type,
        "message": outcome.message,
        "traceback": outcome.traceback,
        "at": at.isoformat(),
    }


class Executor:
    def __init__(self, broker: Broker, config: Settings, worker_id: str):
        self.broker = broker
        self.config = config
        self.worker_id = worker_id
        self.db = router.db_for_write(TaskRecord)
        self.soft_time_limit = config.SOFT_TIME_LIMIT
        self.time_limit = config.TIME_LIMIT
        self.overrides = TimeLimitOverrides(broker)
        # Events and counters ride along with the next ack (see settle).
        self.recorder = TaskRecorder(broker, config, worker_id)
        self.last_runtimes: dict[str, float] = {}
        self.limiter = Limiter(broker)

    # Starting -----------------------------------------------------------------------------

    def start(self, claims: list[Claim], finished: list[tuple[Started, Outcome]] | None = None) -> list[Started]:
        """Compare-and-set the claims' rows to this attempt in one transaction.

        Outcomes of tasks that finished since the last commit are written in the same
        transaction (one commit for both). Claims that must not run are settled here: malformed
        or poison messages are set aside, duplicates of finished tasks are dropped, and claims
        whose row another live attempt holds are released until its lease lapses. Returns the
        claims to execute, in order.
        """
        finished = finished or []
        valid: list[tuple[Claim, Message]] = []
        letters: list[tuple[Claim, DeadLetter]] = []
        for claim in claims:
            try:
                valid.append((claim, Message.decode(claim.envelope, expected_id=claim.id, queue=claim.queue)))
            except MessageRejected as exc:
                letters.append((claim, self.letter(claim, str(exc), raw=claim.envelope)))
        drops: list[Claim] = []
        expired: list[Claim] = []
        started: list[Started] = []
        now = timezone.now()
        with transaction.atomic(using=self.db):
            written = self._write_outcomes(finished, now)
            ids = [claim.id for claim, _ in valid]
            rows = sql.read_rows(self.db, ids, lock=True)
            for claim, message in valid:
                record = rows.get(claim.id)
                task = registry.get(record.task_name) if record else None
                if record is None:
                    reason = "no task row has this id (forged, or its transaction rolled back)"
                    letters.append((claim, self.letter(claim, reason)))
                elif record.state not in RUNNABLE_STATES:
                    logger.info("Task id=%s is already %s: duplicate delivery dropped", claim.id, record.state)
                    drops.append(claim)
                elif record.lease_expires_at is not None and record.lease_expires_at > now:
                    delay = (record.lease_expires_at - now).total_seconds() + 1.0
                    logger.info("Task id=%s is held by a live lease; redelivery in %.0fs", claim.id, delay)
                    self.release(claim, message.priority, delay_ms=int(delay * 1000), forgive=True)
                elif record.expires_at is not None and record.expires_at <= now:
                    workflow.revoke_expired(self.db, record, now)
                    expired.append(claim)
                    self.recorder.revoked(claim.id, record.task_name, claim.queue, "expired before it started")
                elif record.eta is not None and (record.eta - now).total_seconds() > 0.5:
                    # Reaped or swept before its time (a retry whose worker died): back to waiting.
                    delay_ms = int((record.eta - now).total_seconds() * 1000)
                    self.release(claim, message.priority, delay_ms=delay_ms, forgive=True)
                elif claim.deliveries > self.config.MAX_DELIVERIES:
                    reason = (
                        f"delivered {claim.deliveries} times without finishing (more than MAX_DELIVERIES="
                        f"{self.config.MAX_DELIVERIES}): its worker process died each time"
                    )
                    self._fail_unstarted(record, "djtasks.exceptions.WorkerLost", reason, now)
                    letters.append((claim, self.letter(claim, reason, raw=claim.envelope, task_name=record.task_name)))
                elif not isinstance(task, Task):
                    reason = f"task {record.task_name!r} is not registered in worker {self.worker_id}"
                    self._fail_unstarted(record, "djtasks.exceptions.NotRegistered", reason, now)
                    letters.append((claim, self.letter(claim, reason, task_name=record.task_name)))
                elif wait_ms := self.limiter.delay_ms(task.name, task.rate_limit):
                    # Over its rate limit: wait in the scheduled set, not in this child.
                    self.release(claim, message.priority, delay_ms=wait_ms, forgive=True)
                else:
                    record.attempts += 1
                    record.worker = self.worker_id
                    record.worker_ids = [*record.worker_ids, self.worker_id]
                    record.lease_token = claim.token
                    record.lease_expires_at = now + db_lease(self.config)
                    record.started_at = now
                    started.append(Started(claim=claim, record=record, task=task, started_at=now))
            sql.update_many(
                self.db,
                ("attempts", "worker", "worker_ids", "lease_token", "lease_expires_at", "started_at"),
                ("id",),
                [
                    (r.attempts, r.worker, r.worker_ids, r.lease_token, r.lease_expires_at, r.started_at, r.pk)
                    for r in (item.record for item in started)
                ],
            )
            # Set aside in the same commit; their messages are acked only after it.
            DeadLetter.objects.using(self.db).bulk_create([letter for _, letter in letters])
        self.recorder.received(started)
        self._after_outcomes(finished, written)
        self.settle(drops, notify=False)
        self.settle([claim for claim, _ in letters])
        self.settle(expired)
        return started

    def _fail_unstarted(self, record: TaskRecord, exc_type: str, reason: str, now: datetime) -> None:
        outcome = Outcome(state=FAILURE, exception_type=exc_type, message=reason)
        if TaskRecord.objects.using(self.db).filter(pk=record.pk, state__in=RUNNABLE_STATES).update(
            state=FAILURE,
            finished_at=now,
            exception_type=exc_type,
            exception_message=reason,
            errors=[*record.errors, error_entry(record.attempts, outcome, now)],
            lease_expires_at=None,
        ):
            workflow.after_final(self.db, record, FAILURE, None, (exc_type, reason, ""))

    # Calling ------------------------------------------------------------------------------

    def execute(self, started: Started) -> Outcome:
        """Run the task function; every error becomes an Outcome, none escapes."""
        started.started_at = started.record.started_at = timezone.now()
        self.recorder.started(started)
        name = started.task.name
        if self.last_runtimes.get(name, SLOW_TASK) >= SLOW_TASK:
            # Worth a round trip so a watcher sees it begin; a fast task's event rides with its ack.
            self.recorder.flush()
        outcome = self._execute(started)
        outcome.finished_at = timezone.now()
        self.last_runtimes[name] = (outcome.finished_at - started.started_at).total_seconds()
        return outcome

    def _execute(self, started: Started) -> Outcome:
        task, record = started.task, started.record
        if task.effective_track_started:
            self._write_started(started)
        task_result = to_task_result(record, task)
        task_started.send(type(task.get_backend()), task_result=task_result)
        args = list(record.args)
        if task.takes_context:
            args.insert(0, retry.Context(task_result=task_result, task=task))
        if task.bind:
            args.insert(0, task)
        try:
            signature_of(task.func).bind(*args, **record.kwargs)
        except TypeError as exc:
            reason = f"arguments do not match {task.name}{signature_of(task.func)}: {exc}"
            DeadLetter.objects.using(self.db).create(
                task_id=record.pk, task_name=task.name, queue=started.claim.queue, reason=reason,
                raw=json.dumps({"args": record.args, "kwargs": record.kwargs})[:65536],
            )
            return Outcome(state=FAILURE, exception_type="builtins.TypeError", message=reason)
        running = Current(
            id=record.pk, token=started.claim.token, task_name=task.name, attempt=record.attempts,
            worker_id=self.worker_id, queue=started.claim.queue, db=self.db, record=record,
        )
        token = activate(running)
        try:
            with soft_time_limit(self.soft_limit(task)):
                value = task.call(*args, **record.kwargs)
        except (Exception, SystemExit) as exc:  # any task error is recorded, never fatal
            return self._failed(task, record, exc)
        finally:
            deactivate(token)
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

    @staticmethod
    def _failed(task: Task, record: TaskRecord, exc: BaseException) -> Outcome:
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

    def soft_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.name)
        return override[0] if override else task.soft_time_limit or self.soft_time_limit

    def hard_limit(self, task: Task) -> float | None:
        override = self.overrides.get(task.name)
        return override[1] if override else task.time_limit or self.time_limit

    def drop_revoked(self, started: Started) -> None:
        """Settle a reserved claim whose row was revoked before it began: write nothing, ack."""
        logger.info("Task id=%s was revoked while reserved; it does not run", started.claim.id)
        claim = started.claim
        self.with_db_retry(
            lambda: sql.update(self.db, {"lease_expires_at": None}, id=claim.id, lease_token=claim.token)
        )
        self.settle([started.claim])

    def _write_started(self, started: Started) -> None:
        record = started.record
        record.state = STARTED
        self.with_db_retry(
            lambda: sql.update(
                self.db, {"state": STARTED, "started_at": record.started_at}, id=record.pk,
                lease_token=started.claim.token, state=RUNNABLE,
            )
        )

    # Recording ----------------------------------------------------------------------------

    def finish(self, done: list[tuple[Started, Outcome]]) -> None:
        """Record outcomes in one transaction, each fenced by its attempt's token; then ack."""
        if not done:
            return
        now = timezone.now()

        def write() -> list[bool]:
            with transaction.atomic(using=self.db):
                return self._write_outcomes(done, now)

        self._after_outcomes(done, self.with_db_retry(write))

    def _write_outcomes(self, done: list[tuple[Started, Outcome]], now: datetime) -> list[bool]:
        """Write outcomes, each fenced by its token: plain successes in one executemany, the rest one by one."""
        plain = [i for i, (started, outcome) in enumerate(done) if outcome.state == SUCCESS
                 and not workflow.has_followers(started.record)]
        batched: dict[int, bool] = {}
        if len(plain) > 1:  # a single row gains nothing from executemany
            batched.update(zip(plain, self._write_successes([done[i] for i in plain], now), strict=True))
        return [batched[i] if i in batched else self._write_outcome(started, outcome, now)
                for i, (started, outcome) in enumerate(done)]

    def _write_successes(self, done: list[tuple[Started, Outcome]], now: datetime) -> list[bool]:
        rows = []
        for started, outcome in done:
            record = started.record
            record.state, record.result = SUCCESS, outcome.result
            record.finished_at, record.lease_expires_at = outcome.finished_at or now, None
            record.exception_type = record.exception_message = record.traceback = ""
            rows.append((SUCCESS, outcome.result, started.started_at, record.finished_at, None, "", "", "",
                         record.pk, started.claim.token, RUNNABLE))
        assigned = ("state", "result", "started_at", "finished_at", "lease_expires_at", "exception_type",
                    "exception_message", "traceback")
        changed = sql.update_many(self.db, assigned, ("id", "lease_token", "state"), rows)
        if changed == len(rows):
            return [True] * len(rows)
        # Some fence held (a revoke, a lost lease): the rows that now carry our token and SUCCESS are ours.
        ours = set(
            TaskRecord.objects.using(self.db)
            .filter(pk__in=[s.record.pk for s, _ in done], state=SUCCESS)
            .values_list("pk", "lease_token")
        )
        return [(s.record.pk, s.claim.token) in ours for s, _ in done]

    def _after_outcomes(self, done: list[tuple[Started, Outcome]], written: list[bool]) -> None:
        """After the commit: ack, wake waiting readers, send task_finished."""
        if not done:
            return
        for (started, outcome), ok in zip(done, written, strict=True):
            if ok:
                self.recorder.finished(started, outcome)
            else:
                logger.warning(
                    "Task id=%s lost its lease before finishing; this attempt's result is discarded",
                    started.claim.id,
                )
        # A retry goes back to the scheduled set only after its RETRY row committed; if this
        # process dies first, the lease lapses, the reaper requeues it, and start() sees the eta.
        retrying = [(s, o) for (s, o), ok in zip(done, written, strict=True) if ok and o.state == RETRY]
        for started, outcome in retrying:
            delay_ms = max(int(((outcome.eta or timezone.now()) - timezone.now()).total_seconds() * 1000), 1)
            self.release(started.claim, started.record.priority, delay_ms=delay_ms, forgive=True)
        released = {id(started) for started, _ in retrying}
        self.settle([started.claim for started, _ in done if id(started) not in released])
        for (started, _), ok in zip(done, written, strict=True):
            if ok and started.record.state != RETRY:
                backend = type(started.task.get_backend())
                task_finished.send(backend, task_result=to_task_result(started.record, started.task))

    def _write_outcome(self, started: Started, outcome: Outcome, now: datetime) -> bool:
        record = started.record
        now = outcome.finished_at or now
        record.state = outcome.state
        record.result = outcome.result
        record.finished_at = now
        record.lease_expires_at = None
        record.exception_type = outcome.exception_type
        record.exception_message = outcome.message
        record.traceback = outcome.traceback
        fields = {
            "state": outcome.state,
            "result": outcome.result,
            "started_at": started.started_at,
            "finished_at": now,
            "lease_expires_at": None,
            "exception_type": outcome.exception_type,
            "exception_message": outcome.message,
            "traceback": outcome.traceback,
        }
        if outcome.state in (FAILURE, RETRY):
            record.errors = fields["errors"] = [*record.errors, error_entry(record.attempts, outcome, now)]
        if outcome.state == RETRY:
            record.retries += 1
            record.eta, record.finished_at = outcome.eta, None
            fields.update(eta=outcome.eta, retries=record.retries, finished_at=None)
        # The fence: this attempt's token, and a row nobody revoked meanwhile.
        written = bool(sql.update(self.db, fields, id=record.pk, lease_token=started.claim.token, state=RUNNABLE))
        if written and outcome.state in READY_STATES:
            error = (outcome.exception_type, outcome.message, outcome.traceback)
            workflow.after_final(self.db, record, outcome.state, outcome.returned, error)
        return written

    def with_db_retry(self, write: Callable[[], Any]) -> Any:
        """Run a database write, retrying with backoff while the database is unavailable."""
        deadline = time.monotonic() + self.config.DB_RETRY_WINDOW
        delay = 0.1
        while True:
            try:
                return write()
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning("Database unavailable while recording (%s); retrying in %.1fs", exc, delay)
                connections[self.db].close_if_unusable_or_obsolete()
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)

    def letter(self, claim: Claim, reason: str, *, raw: bytes | str = b"", task_name: str = "") -> DeadLetter:
        """Build the dead letter of a message that cannot run, with its reason."""
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
        logger.error("Message id=%r dead-lettered: %s", claim.id, reason)
        return DeadLetter(
            task_id=storable(claim.id)[:255], task_name=storable(task_name)[:255], queue=storable(claim.queue)[:100],
            reason=storable(reason), raw=storable(text)[:65536],
        )

    # Redis --------------------------------------------------------------------------------

    def settle(self, claims: list[Claim], *, notify: bool = True) -> None:
        """Ack claims. If Redis is unreachable their leases lapse and redeliveries are dropped."""
        if not claims:
            return
        try:
            self.broker.ack_many(claims, notify=notify, also=self.recorder.drain())
        except BrokerUnavailable as exc:
            logger.warning("Ack of %d task(s) failed (%s); redeliveries will be dropped", len(claims), exc)

    def release(self, claim: Claim, priority: int, *, delay_ms: int = 0, forgive: bool = False) -> None:
        try:
            self.broker.release(claim, priority=priority, delay_ms=delay_ms, forgive=forgive)
        except BrokerUnavailable as exc:
            logger.warning("Release of task id=%s failed (%s); its lease will lapse", claim.id, exc)


def settle_killed(db: str, broker: Broker, claim: Claim, exc_type: str, message: str) -> None:
    """Record the end of an attempt whose child the parent killed (hard time limit, terminate)."""
    now = timezone.now()
    outcome = Outcome(state=FAILURE, exception_type=exc_type, message=message, finished_at=now)
    try:
        record = TaskRecord.objects.using(db).filter(pk=claim.id, lease_token=claim.token).first()
        if record is not None:
            values: dict[str, Any] = {
                "finished_at": now, "lease_expires_at": None, "exception_type": exc_type,
                "exception_message": message, "errors": [*record.errors, error_entry(record.attempts, outcome, now)],
            }
            if record.state in RUNNABLE_STATES:
                values["state"] = FAILURE
            sql.update(db, values, id=claim.id, lease_token=claim.token)
    except DatabaseError as exc:
        logger.warning("Could not record the end of task id=%s (%s); it reruns once its lease lapses", claim.id, exc)
        return
    try:
        broker.ack(claim)
    except BrokerUnavailable as exc:
        logger.warning("Ack of task id=%s failed (%s); its redelivery will be dropped", claim.id, exc)
    if record is not None and record.state in RUNNABLE_STATES:  # a revoke made its own event
        recorder = Recorder(broker, get_settings(), record.worker)
        recorder.done[(record.task_name, claim.queue, FAILURE)] += 1
        recorder.event("task-failed", id=claim.id, name=record.task_name, queue=claim.queue,
                       exception=f"{exc_type}: {message}")
        recorder.flush()


def hand_back(db: str, broker: Broker, claim: Claim, *, forgive: bool) -> None:
    """Return a claim whose process is gone or stopping: drop the row's lease, then requeue."""
    try:
        TaskRecord.objects.using(db).filter(pk=claim.id, lease_token=claim.token).update(lease_expires_at=None)
    except DatabaseError as exc:
        logger.warning("Could not clear the lease of task id=%s (%s); it reruns once the lease lapses", claim.id, exc)
    try:
        message = Message.decode(claim.envelope, expected_id=claim.id, queue=claim.queue)
        broker.release(claim, priority=message.priority, forgive=forgive)
    except (MessageRejected, BrokerUnavailable) as exc:
        logger.warning("Could not hand back task id=%s (%s); its lease will lapse", claim.id, exc)
