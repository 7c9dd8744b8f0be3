"""Durable revoke: a revoked task never starts, whether or not any worker is online."""

from __future__ import annotations

import logging

from django.db import router, transaction
from django.utils import timezone

from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.states import READY_STATES
from djtasks.record import revocation
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.transport.telemetry import Recorder

logger = logging.getLogger("djtasks")


def revoke(task_id: str, terminate: bool = False, reason: str = "revoked") -> str:
    """Revoke a task and say what happened.

    A queued, delayed or reserved task becomes REVOKED at once in the database; the workers'
    compare-and-set refuses to start it, so it never runs, even if every worker was offline.
    A running task keeps running unless terminate=True kills its child process; either way
    its outcome is discarded and the row stays REVOKED.
    """
    db = router.db_for_write(TaskRecord)
    now = timezone.now()
    with transaction.atomic(using=db):
        record = TaskRecord.objects.using(db).select_for_update().filter(pk=task_id).first()
        if record is None:
            return "unknown"
        if record.state in READY_STATES:
            return f"already {record.state}"
        held = record.lease_expires_at is not None and record.lease_expires_at > now
        revocation.revoke(db, task_id, reason + (" (terminate requested)" if held and terminate else ""), now)
        queue, worker, name = record.queue, record.worker, record.task_name
        transaction.on_commit(lambda: _tell_redis(task_id, queue, worker if held else "", terminate), using=db)
        transaction.on_commit(lambda: _record_event(task_id, name, queue, worker if held else "", reason), using=db)
    logger.info("Task id=%s revoked (%s)", task_id, "held by worker " + worker if held else "waiting")
    if not held:
        return "revoked"
    return "revoked; terminating it" if terminate else "revoked; it is running and its result will be discarded"


def _tell_redis(task_id: str, queue: str, worker: str, terminate: bool) -> None:
    """Take a waiting message out of Redis, or tell the worker holding it; the row decides anyway."""
    try:
        if worker:
            get_broker().send_control(worker, {"cmd": "revoke", "id": task_id, "terminate": terminate})
        else:
            get_broker().forget(task_id, queue)
    except BrokerUnavailable as exc:
        logger.warning("Revoke of task id=%s not sent to Redis (%s); the row alone keeps it from running", task_id, exc)


def _record_event(task_id: str, name: str, queue: str, worker: str, reason: str) -> None:
    recorder = Recorder(get_broker(), get_settings(), worker)
    recorder.revoked(task_id, name, queue, reason)
    recorder.flush()
