"""Put dead-lettered messages back to work once their cause is fixed."""

from __future__ import annotations

from django.db import router, transaction

from djtasks.calling.publisher import message_of, publish
from djtasks.record import transitions
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker


def requeue(letter: DeadLetter) -> str:
    """Reset the task row of a dead letter to PENDING and publish it; return what happened."""
    db = router.db_for_write(TaskRecord)
    with transaction.atomic(using=db):
        record = TaskRecord.objects.using(db).select_for_update().filter(pk=letter.task_id).first()
        if record is None:
            return f"{letter.task_id or 'message'}: no task row to requeue (the message itself was malformed)"
        transitions.reset_to_pending(db, record)
        letter.delete()
        # A fresh start: the poison counter of the old message must not count against it.
        transaction.on_commit(lambda: _republish(record), using=db, robust=True)
    return f"{record.id}: requeued"


def _republish(record: TaskRecord) -> None:
    get_broker().forget_message(record.id)
    publish([message_of(record)])
