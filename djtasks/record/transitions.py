"""Every change of a task row's state, and of its lease as part of an attempt: one function each.

An attempt's writes after its start are fenced: they match its lease token and a runnable state,
so a revoke or a newer attempt wins over a late writer. The writes on the hot path (a batch's
start, its outcomes, the STARTED write) take record/sql.py's fast path; the rare ones the ORM.
Revocations are in record/revocation.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.utils import timezone

from djtasks.core.states import FAILURE, PENDING, RETRY, RUNNABLE, RUNNABLE_STATES, STARTED, SUCCESS
from djtasks.record import many, sql
from djtasks.record.models import TaskRecord

CLAIMED = ("attempts", "worker", "worker_ids", "lease_token", "lease_expires_at", "started_at")
_ENDED = (
    "state",
    "result",
    "started_at",
    "finished_at",
    "lease_expires_at",
    "exception_type",
    "exception_message",
    "traceback",
)
_FENCE = ("id", "lease_token", "state")


class Attempt(Protocol):
    """An attempt at a row: the row as the attempt holds it, its lease token, and when it began."""

    @property
    def record(self) -> TaskRecord: ...

    @property
    def token(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...


class Ending(Protocol):
    """How an attempt ended: the state to write and what goes with it (eta: when a RETRY runs again)."""

    @property
    def state(self) -> str: ...

    @property
    def result(self) -> Any: ...

    @property
    def exception_type(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def traceback(self) -> str: ...

    @property
    def finished_at(self) -> datetime | None: ...

    @property
    def eta(self) -> datetime | None: ...


def error_entry(attempt: int, exception_type: str, message: str, traceback: str, at: datetime) -> dict[str, Any]:
    """Build the entry a failed attempt adds to the row's errors."""
    return {
        "attempt": attempt,
        "exception_type": exception_type,
        "message": message,
        "traceback": traceback,
        "at": at.isoformat(),
    }


# Starting -----------------------------------------------------------------------------------


def claim_attempt(record: TaskRecord, *, worker: str, token: str, now: datetime, lease: timedelta) -> None:
    """Make the row (in memory) this attempt's: count it, name its worker, take its lease."""
    record.attempts += 1
    record.worker = worker
    record.worker_ids = [*record.worker_ids, worker]
    record.lease_token = token
    record.lease_expires_at = now + lease
    record.started_at = now


def write_claimed(db: str, records: Sequence[TaskRecord]) -> None:
    """Write the rows claim_attempt() took in one statement; the caller holds their row locks.

    One row (an idle worker's claim) is a plain UPDATE: psycopg runs an executemany in its
    pipeline, which costs more than the one round trip it would save.
    """
    rows = [(r.attempts, r.worker, r.worker_ids, r.lease_token, r.lease_expires_at, r.started_at) for r in records]
    if len(rows) == 1:
        sql.update(db, dict(zip(CLAIMED, rows[0], strict=True)), id=records[0].pk)
    else:
        many.update_many(db, CLAIMED, ("id",), [(*row, r.pk) for row, r in zip(rows, records, strict=True)])


def mark_started(db: str, record: TaskRecord, token: str) -> None:
    """Write STARTED (a task that tracks its start), fenced by the attempt's token."""
    record.state = STARTED
    sql.update(db, {"state": STARTED, "started_at": record.started_at}, id=record.pk, lease_token=token, state=RUNNABLE)


def fail_unstarted(db: str, record: TaskRecord, exception_type: str, reason: str, now: datetime) -> bool:
    """Record a claim that never runs (poison, unregistered) as FAILURE; say whether the row was unready."""
    return bool(
        TaskRecord.objects.using(db)
        .filter(pk=record.pk)
        .unready()
        .update(
            state=FAILURE,
            finished_at=now,
            exception_type=exception_type,
            exception_message=reason,
            errors=[*record.errors, error_entry(record.attempts, exception_type, reason, "", now)],
            lease_expires_at=None,
        )
    )


# Ending -------------------------------------------------------------------------------------


def write_successes(db: str, done: Sequence[tuple[Attempt, Ending]], now: datetime) -> list[bool]:
    """Write plain successes in one executemany, each fenced by its token; say which were written."""
    rows = []
    for attempt, ending in done:
        record = attempt.record
        record.state, record.result = SUCCESS, ending.result
        record.finished_at, record.lease_expires_at = ending.finished_at or now, None
        record.exception_type = record.exception_message = record.traceback = ""
        rows.append(
            (
                SUCCESS,
                ending.result,
                attempt.started_at,
                record.finished_at,
                None,
                "",
                "",
                "",
                record.pk,
                attempt.token,
                RUNNABLE,
            )
        )
    changed = many.update_many(db, _ENDED, _FENCE, rows)
    if changed == len(rows):
        return [True] * len(rows)
    # Some fence held (a revoke, a lost lease): the rows that now carry our token and SUCCESS are ours.
    ours = set(
        TaskRecord.objects.using(db)
        .filter(pk__in=[attempt.record.pk for attempt, _ in done])
        .succeeded()
        .values_list("pk", "lease_token")
    )
    return [(attempt.record.pk, attempt.token) in ours for attempt, _ in done]


def write_outcome(db: str, attempt: Attempt, ending: Ending, now: datetime) -> bool:
    """Write one attempt's outcome (a RETRY with its eta), fenced by its token; say whether it was written."""
    record = attempt.record
    now = ending.finished_at or now
    record.state = ending.state
    record.result = ending.result
    record.finished_at = now
    record.lease_expires_at = None
    record.exception_type = ending.exception_type
    record.exception_message = ending.message
    record.traceback = ending.traceback
    fields = {
        "state": ending.state,
        "result": ending.result,
        "started_at": attempt.started_at,
        "finished_at": now,
        "lease_expires_at": None,
        "exception_type": ending.exception_type,
        "exception_message": ending.message,
        "traceback": ending.traceback,
    }
    if ending.state in (FAILURE, RETRY):
        entry = error_entry(record.attempts, ending.exception_type, ending.message, ending.traceback, now)
        record.errors = fields["errors"] = [*record.errors, entry]
    if ending.state == RETRY:
        record.retries += 1
        record.eta, record.finished_at = ending.eta, None
        fields.update(eta=ending.eta, retries=record.retries, finished_at=None)
        rewrite = getattr(ending, "rewrite", None)
        if rewrite:  # replace(): the row becomes the replacement's call (task, arguments, queue...)
            for name, value in rewrite.items():
                setattr(record, name, value)
            fields.update(rewrite)
    # The fence: this attempt's token, and a row nobody revoked meanwhile.
    return bool(sql.update(db, fields, id=record.pk, lease_token=attempt.token, state=RUNNABLE))


def fail_killed(
    db: str, task_id: str, token: str, exception_type: str, message: str, now: datetime
) -> TaskRecord | None:
    """Record the end of an attempt whose child was killed; return its row as it was before, if it holds it.

    The row becomes FAILURE unless it is final already (a revoke with terminate keeps REVOKED).
    """
    record = TaskRecord.objects.using(db).filter(pk=task_id, lease_token=token).first()
    if record is not None:
        values: dict[str, Any] = {
            "finished_at": now,
            "lease_expires_at": None,
            "exception_type": exception_type,
            "exception_message": message,
            "errors": [*record.errors, error_entry(record.attempts, exception_type, message, "", now)],
        }
        if record.state in RUNNABLE_STATES:
            values["state"] = FAILURE
        sql.update(db, values, id=task_id, lease_token=token)
    return record


def create_failed(
    db: str,
    task_id: str,
    *,
    task_name: str,
    queue: str,
    args: list[Any],
    kwargs: dict[str, Any],
    error: tuple[str, str, str],
    parent: TaskRecord,
) -> tuple[TaskRecord, bool]:
    """Create the row of a task that can never run (after its parent failed) as FAILURE, so its waiters wake.

    Return the row and whether this call created it: a row that exists already keeps what it says.
    """
    exc_type, message, traceback = error
    return TaskRecord.objects.using(db).get_or_create(
        id=task_id,
        defaults={
            "task_name": task_name,
            "queue": queue,
            "state": FAILURE,
            "args": args,
            "kwargs": kwargs,
            "exception_type": exc_type,
            "exception_message": message,
            "traceback": traceback,
            "finished_at": timezone.now(),
            "parent_id": parent.id,
            "root_id": parent.root_id or parent.id,
        },
    )


# Requeueing ---------------------------------------------------------------------------------


def reset_to_pending(db: str, record: TaskRecord) -> None:
    """Make a row PENDING again, with no lease and no finish time (a requeued dead letter)."""
    record.state = PENDING
    record.finished_at = None
    record.lease_expires_at = None
    record.save(using=db, update_fields=["state", "finished_at", "lease_expires_at"])


# Leases -------------------------------------------------------------------------------------


def drop_lease(db: str, task_id: str, token: str) -> int:
    """Clear the row's lease if this attempt still holds it, so the next delivery may start it at once."""
    return sql.update(db, {"lease_expires_at": None}, id=task_id, lease_token=token)


def give_back(db: str, record: TaskRecord, token: str) -> int:
    """Clear the lease of an attempt that never began and uncount it, if this attempt still holds the row."""
    record.attempts, record.worker_ids = record.attempts - 1, record.worker_ids[:-1]
    values = {"lease_expires_at": None, "attempts": record.attempts, "worker_ids": record.worker_ids}
    return sql.update(db, values, id=record.pk, lease_token=token, state=RUNNABLE)


def extend_leases(db: str, tokens: list[str], until: datetime) -> None:
    """Extend the leases the attempts with these tokens hold (rows still leased) to `until`."""
    TaskRecord.objects.using(db).filter(lease_token__in=tokens, lease_expires_at__isnull=False).update(
        lease_expires_at=until
    )
