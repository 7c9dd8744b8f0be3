"""Publish task rows to Redis after their transaction commits, one round trip per transaction.

A post_save receiver on TaskRecord calls schedule(); rows whose publish never happened (Redis
down, process killed after commit) are found and published by the outbox sweep.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import transaction

from djtasks.calling import publishing, signals
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.message import Message
from djtasks.core.options import PublishRetry
from djtasks.core.states import READY_STATES
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.transport.publishing import Run

logger = logging.getLogger("djtasks")
_local = threading.local()
_breaker = {"open_until": 0.0}


def due_ms(eta: datetime | None) -> int:
    return int(eta.timestamp() * 1000) if eta else 0


def message_of(record: TaskRecord) -> tuple[Message, int]:
    return Message(id=record.id, queue=record.queue, priority=record.priority), due_ms(record.eta)


def publish(
    items: list[tuple[Message, int]],
    *,
    from_sweeper: bool = False,
    retry: PublishRetry | None = None,
    runs: Sequence[Run] = (),
) -> int:
    """Publish now; on a Redis failure log it and leave the rows to the outbox sweep.

    The sweep waits for Redis's answer and returns how many ids were new; callers enqueueing
    send without waiting for it (see Broker.publish_nowait) and get the number sent. With a
    PublishRetry (apply_async's retry=True) a connection error is retried as it says first.
    runs: (queue, priority, ids) of messages due now, published with the items (Broker.publish).
    """
    if not items and not runs:
        return 0
    if retry is None:
        return _publish(items, runs, from_sweeper=from_sweeper)
    for delay in retry.delays():  # attempts the breaker does not skip: the caller asked to wait
        if published := _publish(items, runs, from_sweeper=False, retrying=True):
            return published
        time.sleep(delay)
    return _publish(items, runs, from_sweeper=False, retrying=True, last=True)


def _publish(
    items: list[tuple[Message, int]],
    runs: Sequence[Run],
    *,
    from_sweeper: bool,
    retrying: bool = False,
    last: bool = False,
) -> int:
    if not from_sweeper and not retrying and time.monotonic() < _breaker["open_until"]:
        return 0
    count = len(items) + sum(len(ids) for _, _, ids in runs)
    try:
        if from_sweeper:
            published = get_broker().publish(items, runs)
        else:
            _flush_at_exit()
            get_broker().publish_nowait(items, runs)
            published = count
    except BrokerUnavailable as exc:
        _breaker["open_until"] = time.monotonic() + get_settings().PUBLISH_BACKOFF
        if from_sweeper:
            raise
        if retrying and not last:
            logger.info("Publish of %d task(s) failed (%s); retrying as retry_policy says", count, exc)
            return 0
        logger.warning("Publish of %d task(s) deferred to the outbox sweep: %s", count, exc)
        return 0
    _breaker["open_until"] = 0.0
    return published


def flush() -> None:
    """Wait until Redis has answered every publish this thread sent without waiting."""
    try:
        get_broker().flush_publishes()
    except BrokerUnavailable as exc:
        logger.warning("Publishes not confirmed (%s); the outbox sweep publishes what Redis lacks", exc)


@cache
def _flush_at_exit() -> None:
    """Register, once per process, a flush at interpreter exit (an unread reply must not reset the socket)."""
    atexit.register(flush)


class _Batch:
    """The messages of one transaction (at one savepoint level), published by one on_commit hook.

    Messages due now with no retry policy and no record to report (enqueue's per-task plan, the
    calls of a bulk() block) are kept as runs of ids, one per queue and priority in turn, which
    Redis gets as one group each (no Message built, one script argument an id). A batch keeps
    either runs or items, so its messages arrive in the order they were made: the first item
    turns the runs into items.
    """

    def __init__(self, using: str, savepoints: tuple[Any, ...]):
        self.using = using
        self.savepoints = savepoints
        self.items: list[tuple[Message, int]] = []
        self.runs: list[Run] = []
        self.retry: PublishRetry | None = None  # the most patient retry= of its calls
        self.records: list[TaskRecord] = []  # for after_task_publish, when it has receivers

    def add_id(self, task_id: str, queue: str, priority: int) -> None:
        runs = self.runs
        if self.items:
            self.items.append((Message(id=task_id, queue=queue, priority=priority), 0))
        elif runs and runs[-1][0] == queue and runs[-1][1] == priority:
            runs[-1][2].append(task_id)
        else:
            runs.append((queue, priority, [task_id]))

    def add(self, item: tuple[Message, int], wanted: PublishRetry | None, record: TaskRecord | None) -> None:
        if self.runs:
            runs, self.runs = self.runs, []
            self.items += [(Message(id=i, queue=q, priority=p), 0) for q, p, ids in runs for i in ids]
        self.items.append(item)
        if wanted is not None and (self.retry is None or sum(wanted.delays()) > sum(self.retry.delays())):
            self.retry = wanted
        if record is not None and signals.after_task_publish.listening():
            self.records.append(record)

    def __call__(self) -> None:
        items, self.items = self.items, []
        runs, self.runs = self.runs, []
        records, self.records = self.records, []
        if publish(items, retry=self.retry, runs=runs) and records:
            publishing.after(records)


def schedule(record: TaskRecord, using: str) -> None:
    """Arrange for the row to be published when the transaction holding it commits."""
    schedule_item(message_of(record), record.publish_retry, using, record)


def schedule_item(
    item: tuple[Message, int],
    retry: PublishRetry | None,
    using: str,
    record: TaskRecord | None = None,
    *,
    connection: Any = None,
) -> None:
    """schedule() for a row known by its message (enqueue's instance-free path: record None, after_task_publish off).

    connection: the database connection of `using`, if the caller has it already.
    """
    connection = connection or transaction.get_connection(using)
    if not connection.in_atomic_block:
        if publish([item], retry=retry) and record is not None and signals.after_task_publish.listening():
            publishing.after([record])
        return
    _batch(connection, using).add(item, retry, record)


def schedule_id(task_id: str, queue: str, priority: int, using: str, connection: Any) -> None:
    """schedule_item() of a message due now with no retry policy and no record (enqueue's per-task plan)."""
    if not connection.in_atomic_block:
        publish([(Message(id=task_id, queue=queue, priority=priority), 0)])
        return
    _batch(connection, using).add_id(task_id, queue, priority)


def _batch(connection: Any, using: str) -> _Batch:
    """The batch this transaction's messages at this savepoint level join, its on_commit hook registered."""
    batches: dict[str, _Batch] = _local.__dict__.setdefault("batches", {})
    batch, savepoints = batches.get(using), tuple(connection.savepoint_ids)
    # A batch whose hook was discarded by a rollback, or that belongs to another savepoint
    # level, cannot take more messages: start a new one with its own hook.
    if batch is None or batch.savepoints != savepoints or not _pending(connection, batch):
        batch = batches[using] = _Batch(using, savepoints)
        transaction.on_commit(batch, using=using, robust=True)
    return batch


def _pending(connection: Any, batch: _Batch) -> bool:
    hooks = connection.run_on_commit
    if hooks and hooks[-1][1] is batch:  # the usual case: nothing registered since
        return True
    return any(hook is batch for _, hook, _ in reversed(hooks))


def on_task_saved(sender: type, instance: TaskRecord, created: bool, using: str, **kwargs: Any) -> None:
    # A workflow may record a step as already failed; in eager mode enqueue() runs the row instead.
    if created and instance.state not in READY_STATES and not get_settings().TASK_ALWAYS_EAGER:
        schedule(instance, using)
