"""The executor of eager mode (calling/inline.py): run one row to its end in this process, as a worker would.

It takes the row as an attempt (a lease token, the attempt counted, worker "eager"), runs it with
the worker's own executor (hooks, update_state, the soft time limit, the outcome checks), and
writes the outcome fenced by its token with what follows it (links, the chain's next step, chord
counting) in one transaction. A retry runs again at once, as Celery's eager mode does: countdowns
are not waited for. Nothing touches Redis. The hard time limit is not enforced: no parent process
watches this one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.tasks.signals import task_finished
from django.utils import timezone

from djtasks.calling.declaration import Task
from djtasks.core import registry
from djtasks.core.exceptions import NotRegistered
from djtasks.core.states import FAILURE, READY_STATES, RETRY, REVOKED, RUNNABLE_STATES
from djtasks.record import revocation, sql, transitions
from djtasks.record.convert import to_task_result
from djtasks.transport.broker import Claim
from djtasks.worker import workflow
from djtasks.worker.execute import attempt, call_limit
from djtasks.worker.outcome import Outcome, Started, describe

logger = logging.getLogger("djtasks")
WORKER = "eager"
# Nobody extends an eager attempt's lease; long enough that no sweep hands the row to a worker meanwhile.
LEASE = timedelta(hours=1)


def run(task_id: str, db: str) -> BaseException | None:
    """Run the row with this id until it is final; return the error of a FAILURE (for TASK_EAGER_PROPAGATES)."""
    while True:
        started = start(task_id, db)
        if started is None or isinstance(started, BaseException):
            return started
        outcome = attempt(
            started,
            worker_id=WORKER,
            db=db,
            soft_limit=call_limit(started.record, "soft_time_limit") or started.task.soft_time_limit,
            retrying=lambda write: write(),
        )
        outcome.finished_at = timezone.now()
        if not finish(started, outcome, db) or outcome.state != RETRY:
            # A BaseException the task raised (SystemExit...) is recorded, as by a worker, not raised at the caller.
            return outcome.error if outcome.state == FAILURE and isinstance(outcome.error, Exception) else None
        logger.info(
            "Task %s[%s] retried eagerly (its countdown is not waited for)", started.task.registered_name, task_id
        )


def start(task_id: str, db: str) -> Started | BaseException | None:
    """Take the row as this process's attempt; None if it must not run (final, revoked, rolled back)."""
    now = timezone.now()
    with transaction.atomic(using=db):
        record = sql.read_rows(db, [task_id], lock=True).get(task_id)
        if record is None or record.state not in RUNNABLE_STATES:
            return None
        if record.expires_at is not None and record.expires_at <= now:
            reason = f"expired at {record.expires_at.isoformat()} before it started"
            if revocation.revoke_expired(db, record, reason, now):
                workflow.after_final(db, record, REVOKED, None, (revocation.REVOKED_TYPE, reason, ""))
            return None
        task = registry.get(record.task_name)
        if not isinstance(task, Task):
            error = NotRegistered(f"task {record.task_name!r} is not registered in this process")
            failure = describe(error)
            if transitions.fail_unstarted(db, record, failure.exception_type, failure.message, now):
                workflow.after_final(db, record, FAILURE, None, (failure.exception_type, failure.message, ""))
            return error
        token = f"{WORKER}.{uuid.uuid4().hex}"
        transitions.claim_attempt(record, worker=WORKER, token=token, now=now, lease=LEASE)
        transitions.write_claimed(db, [record])
    claim = Claim(id=task_id, envelope=b"", deliveries=record.attempts, token=token, queue=record.queue)
    return Started(claim=claim, record=record, task=task, started_at=now)


def finish(started: Started, outcome: Outcome, db: str) -> bool:
    """Write the outcome, fenced by the attempt's token, and what follows it; say whether it was written."""
    with transaction.atomic(using=db):
        written = transitions.write_outcome(db, started, outcome, timezone.now())
        if written and outcome.state in READY_STATES:
            error = (outcome.exception_type, outcome.message, outcome.traceback)
            workflow.after_final(db, started.record, outcome.state, outcome.returned, error)
    if written and outcome.state != RETRY:
        task = started.task
        task_finished.send(type(task.get_backend()), task_result=to_task_result(started.record, task))
    elif not written:
        logger.warning("Task id=%s was revoked while it ran eagerly; its outcome is discarded", started.claim.id)
    return written
