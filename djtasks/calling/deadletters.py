"""Put dead-lettered messages back to work once their cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import router, transaction
from django.utils import timezone

from djtasks.calling.publisher import message_of, publish
from djtasks.core.states import READY_STATES
from djtasks.record import transitions
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker


@dataclass(frozen=True)
class Requeued:
    """What requeue() did with one dead letter: `done` if its task will run, and a sentence saying so."""

    done: bool
    text: str


def requeue(letter: DeadLetter, *, run_finished: bool = False) -> Requeued:
    """Reset the task row of a dead letter to PENDING and publish it, unless that would be wrong.

    A task that already finished (SUCCESS, FAILURE or REVOKED) would run again: it is requeued only
    with run_finished=True, which the caller passes after asking. A task held by a live lease is
    running now and is left alone; a letter without a row (a malformed message) has nothing to run.
    """
    name = letter.task_id or "message"
    db = router.db_for_write(TaskRecord)
    with transaction.atomic(using=db):
        record = TaskRecord.objects.using(db).select_for_update().filter(pk=letter.task_id).first()
        if record is None:
            return Requeued(False, f"{name}: not requeued: it has no task row (the message itself was malformed)")
        if record.state in READY_STATES and not run_finished:
            return Requeued(False, f"{name}: not requeued: the task already ended {record.state}")
        if record.lease_expires_at is not None and record.lease_expires_at > timezone.now():
            return Requeued(False, f"{name}: not requeued: it is running now (worker {record.worker})")
        transitions.reset_to_pending(db, record)
        letter.delete()
        # A fresh start: the poison counter of the old message must not count against it.
        transaction.on_commit(lambda: _republish(record), using=db, robust=True)
    return Requeued(True, f"{record.id}: requeued")


def finished_states(letters: list[DeadLetter]) -> dict[str, str]:
    """The state of each letter's task that already ended, by task id (requeueing it runs it again)."""
    ids = [letter.task_id for letter in letters if letter.task_id]
    rows = TaskRecord.objects.filter(pk__in=ids, state__in=READY_STATES).values_list("id", "state")
    return dict(rows)


def _republish(record: TaskRecord) -> None:
    get_broker().forget_message(record.id, record.queue)
    publish([message_of(record)])
