"""Unique and debounced enqueues: one active row per task name and key, decided by the database.

Unique (unique_for): while a row holding the key is unfinished (waiting, scheduled, retrying or
running) and its window has not passed, another enqueue writes nothing and returns that row. A
finished row (SUCCESS, FAILURE, REVOKED) or one whose window passed gives the key up to the next
enqueue. Debounced (debounce): while the row holding the key has not been started by a worker,
another enqueue gives it its arguments and moves its start to `debounce` seconds from now, in the
database and then in Redis. A row's keys for rate limits and caps are computed here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks.calling import publisher
from djtasks.calling.gates import ENQUEUE, Gate, arguments_key, key_text, lock_digest, seconds
from djtasks.core.exceptions import BrokerUnavailable, ImproperlyDeclared, InvalidCall
from djtasks.core.logs import escape
from djtasks.core.options import ExecutionOptions
from djtasks.core.states import PENDING, RUNNABLE_STATES
from djtasks.record import locks
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker

logger = logging.getLogger("djtasks")
# A key handed over between two enqueues at once may be taken again under our feet; never loop forever.
ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class UniqueCall:
    """A call's own unique_key and unique_for (apply_async), checked."""

    key: str | None = None
    window: float | None = None


def pop_call(options: dict[str, Any]) -> UniqueCall | None:
    """Take unique_key and unique_for out of apply_async's options; InvalidCall if they cannot be used."""
    if "unique_key" not in options and "unique_for" not in options:
        return None
    key, window = options.pop("unique_key", None), options.pop("unique_for", None)
    try:
        checked = seconds("unique_for", window, "")
    except ImproperlyDeclared as exc:
        raise InvalidCall(str(exc)) from None
    return UniqueCall(key=None if key is None else key_text(key, "unique_key"), window=checked)


def prepare(
    name: str, gate: Gate | None, call: UniqueCall | None, record: TaskRecord, options: ExecutionOptions
) -> None:
    """Fill in the row's keys and unique lock for its gate and the call's own options."""
    keys: dict[str, Any] = {}
    if gate is not None:
        for option, function in (("rate_limit", gate.rate_key), ("concurrency", gate.concurrency_key)):
            if function is not None:
                keys[option] = function.compute(name, record.args, record.kwargs)
    if (gate is not None and gate.locks) or call is not None:
        _lock(name, gate, call or UniqueCall(), record, options, keys)
    record.keys = keys or None


def _lock(
    name: str, gate: Gate | None, call: UniqueCall, record: TaskRecord, options: ExecutionOptions, keys: Any
) -> None:
    declared = gate.unique_key if gate is not None else None
    key = call.key or (declared.compute(name, record.args, record.kwargs) if declared is not None else None)
    if any((options.link, options.link_error, options.chain, options.chord)):
        raise InvalidCall(
            f"A unique or debounced call of {escape(name)} cannot carry link, link_error, a chain or a chord: "
            "a duplicate returns the existing task, which would not carry them. Nothing was enqueued."
        )
    debounce = gate.debounce if gate is not None else None
    if debounce is not None:
        if call.window is not None:
            raise InvalidCall(f"{escape(name)} is debounced: a call cannot pass unique_for.")
        if record.eta is not None:
            raise InvalidCall(
                f"{escape(name)} is debounced: it starts {debounce:g} s after its latest call, "
                "so a call cannot pass countdown or eta."
            )
        record.eta = record.enqueued_at + timedelta(seconds=debounce)
        keys["debounce"] = {"key": key or "", "seconds": debounce}
        record.unique_lock = lock_digest(name, "debounce", key or "")
        return
    window = call.window if call.window is not None else gate.unique_for if gate is not None else None
    if window is None:
        raise InvalidCall(
            f"unique_key needs a window: pass unique_for= with it, or declare @task(unique_for=...) on {escape(name)}."
        )
    key = key or arguments_key(record.args, record.kwargs)
    keys["unique"] = {"key": key, "until": (record.enqueued_at + timedelta(seconds=window)).isoformat()}
    record.unique_lock = lock_digest(name, "unique", key)


def check_chain(options: ExecutionOptions) -> None:
    """Refuse a chain whose later steps (but the last) are unique or debounced: a duplicate would end it there."""
    for step in options.chain[:-1]:
        gate = ENQUEUE.get(step.get("task", "")) if isinstance(step, dict) else None
        if gate is not None and gate.locks:
            raise InvalidCall(
                f"{escape(str(step.get('task')))} is unique or debounced, so it can only be the last step of a chain."
            )


def active(record: TaskRecord) -> bool:
    """Whether a unique row still holds its key: unfinished, and inside its window."""
    if record.state not in RUNNABLE_STATES:
        return False
    unique = record.keys.get("unique") if isinstance(record.keys, dict) else None
    until = unique.get("until") if isinstance(unique, dict) else None
    try:
        deadline = parse_datetime(until) if isinstance(until, str) else None
    except ValueError:  # well formed, but not a date: the key is not held rightly
        deadline = None
    return deadline is not None and timezone.is_aware(deadline) and deadline > timezone.now()


def waiting(record: TaskRecord) -> bool:
    """Whether a debounced row still waits: PENDING, and no worker has started it."""
    return record.state == PENDING and record.started_at is None


def take(record: TaskRecord, db: str, *, debounced: bool) -> TaskRecord:
    """Insert the row, or return the row that holds its key (updated, if debounced); in one transaction.

    A unique key held by a committed, active row is answered by one read, without a transaction
    (no write lock on SQLite, no commit on PostgreSQL): the locked path below would return the
    same row, since nothing takes a key from an active row.
    """
    lock = record.unique_lock
    assert lock is not None
    if not debounced and (found := locks.holder(db, lock)) is not None and active(found):
        return _duplicate(record, found)
    with transaction.atomic(using=db):
        for _ in range(ATTEMPTS):
            if locks.insert_unless_held(record, db):
                return record
            found = locks.holder(db, lock)
            if found is None:
                continue  # the holder gave the key up meanwhile: try again
            if debounced and waiting(found) and locks.replace_waiting(db, found, record):
                transaction.on_commit(partial(_move, found.queue, found.pk, found.eta), using=db, robust=True)
                logger.info("Task id=%s debounced: a new call replaced its arguments", found.pk)
                return found
            if not debounced and active(found):
                return _duplicate(record, found)
            locks.give_up(db, found.pk, lock)
    raise InvalidCall(
        f"The unique key of {escape(record.task_name)} changed hands {ATTEMPTS} times during this enqueue; "
        "nothing was enqueued. Try again."
    )


def _duplicate(record: TaskRecord, found: TaskRecord) -> TaskRecord:
    """Answer a duplicate enqueue with the row holding its key; count it in Redis for the admin (if Redis answers)."""
    logger.info("Task %s: a duplicate enqueue returned id=%s", record.task_name, found.pk)
    try:
        get_broker().note_duplicate(found.pk)
    except BrokerUnavailable:
        pass  # only the admin's count misses it
    return found


def _move(queue: str, task_id: str, due: Any) -> None:
    """After the commit: move the debounced task's entry in Redis to its new start (the row decides anyway)."""
    publisher.flush()  # its first publish may still be on its way, on another connection
    try:
        get_broker().reschedule(queue, task_id, int(due.timestamp() * 1000))
    except BrokerUnavailable as exc:
        logger.warning("Task id=%s: its new start was not moved in Redis (%s); the row holds it", task_id, exc)
