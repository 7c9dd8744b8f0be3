"""Revoke a task: a queued or delayed row becomes REVOKED, so a worker refuses to start it.

Minimal version: terminating a task that is already running is not supported yet and is
reported as such (RevokeOutcome.RUNNING), never pretended.
"""

from __future__ import annotations

import enum
import logging

from django.db import router
from django.db.models import Q
from django.utils import timezone

from .models import TaskRecord
from .states import PENDING, RETRY, REVOKED, STARTED

logger = logging.getLogger("djtasks")


class RevokeOutcome(enum.StrEnum):
    REVOKED = "revoked"
    RUNNING = "running"
    FINISHED = "finished"
    NOT_FOUND = "not found"


def revoke(task_id: str, terminate: bool = False) -> RevokeOutcome:
    """Mark a waiting task REVOKED; tell what happened instead when it runs, finished or is unknown."""
    now = timezone.now()
    using = router.db_for_write(TaskRecord)
    waiting = Q(state__in=[PENDING, RETRY]) & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    changed = TaskRecord.objects.using(using).filter(waiting, id=task_id).update(
        state=REVOKED, finished_at=now, lease_token="", lease_expires_at=None
    )
    if changed:
        logger.info("Task id=%s revoked", task_id)
        return RevokeOutcome.REVOKED
    row = TaskRecord.objects.using(using).filter(id=task_id).only("state", "lease_expires_at").first()
    if row is None:
        return RevokeOutcome.NOT_FOUND
    if row.state in (PENDING, RETRY, STARTED):
        # terminate=True would need the worker to kill the child; not implemented in this version.
        return RevokeOutcome.RUNNING
    return RevokeOutcome.FINISHED
