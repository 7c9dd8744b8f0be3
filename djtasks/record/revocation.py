"""The row changes of a revoke: by request (whatever holds the task), or at a start after its expiry."""

from __future__ import annotations

from datetime import datetime

from djtasks.core.states import REVOKED
from djtasks.record.models import TaskRecord

REVOKED_TYPE = "djtasks.exceptions.TaskRevoked"


def revoke(db: str, task_id: str, reason: str, now: datetime) -> None:
    """Record a task as REVOKED, whatever holds it; the caller has locked its unready row."""
    TaskRecord.objects.using(db).filter(pk=task_id).update(
        state=REVOKED,
        finished_at=now,
        exception_type=REVOKED_TYPE,
        exception_message=reason,
    )


def revoke_expired(db: str, record: TaskRecord, reason: str, now: datetime) -> bool:
    """Record a task picked up after its expiry as REVOKED; say whether the row was still unready."""
    return bool(
        TaskRecord.objects.using(db)
        .filter(pk=record.pk)
        .unready()
        .update(
            state=REVOKED,
            finished_at=now,
            exception_type=REVOKED_TYPE,
            exception_message=reason,
            lease_expires_at=None,
        )
    )
