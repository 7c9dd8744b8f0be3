"""Start a batch of claims: decide what each claim's row allows, then take the runnable rows in one transaction.

Claims that must not run are settled here: malformed or poison messages are set aside, duplicates
of finished tasks are dropped, expired ones revoked, and claims whose row another live attempt
holds (or whose time has not come) go back to wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from djtasks.calling.declaration import Task
from djtasks.calling.gates import START
from djtasks.core import registry
from djtasks.core.conf import Settings
from djtasks.core.exceptions import MessageRejected, NotRegistered
from djtasks.core.message import Message
from djtasks.core.states import FAILURE, REVOKED, RUNNABLE_STATES
from djtasks.record import claiming, revocation, sql, transitions
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.record.refusals import REFUSALS
from djtasks.transport.broker import Claim
from djtasks.transport.decode import escaped
from djtasks.worker import signalling, tasklog, workflow
from djtasks.worker.caps import Caps
from djtasks.worker.outcome import REFUSED_TYPE, Outcome, Started, db_lease, safe_str, storable
from djtasks.worker.ratelimit import Limiter
from djtasks.worker.recording import Recording
from djtasks.worker.verdicts import Drop, Expire, Parked, Run, SetAside, Verdict, Wait

logger = logging.getLogger("djtasks")
NO_ROW = "no task row has this id (forged, or its transaction rolled back)"
NOT_REGISTERED = "djtasks.exceptions.NotRegistered"


@dataclass
class Batch:
    """What starting a batch decided, settled after its commit."""

    started: list[Started] = field(default_factory=list)
    letters: list[tuple[Claim, DeadLetter]] = field(default_factory=list)
    drops: list[Claim] = field(default_factory=list)
    expired: list[Claim] = field(default_factory=list)


class Starter:
    """Start claims in this child: one compare-and-set transaction per batch."""

    def __init__(self, recording: Recording, config: Settings, worker_id: str):
        self.recording = recording
        self.config = config
        self.worker_id = worker_id
        self.limiter = Limiter(recording.broker)
        # Capped and keyed tasks (issue 21): slots are taken here and given back when the outcome is settled.
        self.caps = Caps(recording.broker, config, self.limiter)
        recording.settled.append(self.caps.release)

    def start(self, claims: list[Claim], finished: list[tuple[Started, Outcome]] | None = None) -> list[Started]:
        """Compare-and-set the claims' rows to this attempt in one transaction.

        Outcomes of tasks that finished since the last commit are written in the same
        transaction (one commit for both). Returns the claims to execute, in order. If the
        database refuses the transaction because of its data, the outcomes are written on their
        own and the claims started one at a time: a claim refused alone is failed and set aside.
        """
        finished = finished or []
        try:
            return self._start(claims, finished)
        except REFUSALS as exc:
            refusal = exc
        if finished:  # perhaps theirs: written on their own (outcome by outcome if need be)
            self.recording.finish(finished)
            return self.start(claims)
        if len(claims) > 1:
            logger.warning(
                "The database refused to start %d tasks (%s); starting them one by one", len(claims), refusal
            )
            return [started for claim in claims for started in self.start([claim])]
        self.refuse_start(claims[0], refusal)
        return []

    def _start(self, claims: list[Claim], finished: list[tuple[Started, Outcome]]) -> list[Started]:
        if not finished and len(claims) == 1 and (alone := self._start_alone(claims[0])) is not None:
            return alone
        batch = Batch()
        valid = self._decode(claims, batch)
        now = timezone.now()
        db, recording = self.recording.db, self.recording
        with transaction.atomic(using=db):
            written = recording.write(finished, now)
            rows = sql.read_rows(db, [claim.id for claim, _ in valid], lock=True)
            for claim, message in valid:
                record = rows.get(claim.id)
                if record is None:
                    batch.letters.append((claim, dead_letter(claim, NO_ROW)))
                else:
                    self._apply(self.decide(claim, record, now), claim, message, record, batch, now)
            transitions.write_claimed(db, [item.record for item in batch.started])
            # Set aside in the same commit; their messages are acked only after it.
            DeadLetter.objects.using(db).bulk_create([letter for _, letter in batch.letters])
        self._received(batch.started)
        recording.after(finished, written, defer=True)  # acked with the next claim (child.py)
        recording.settle(batch.drops, notify=False)
        recording.settle([claim for claim, _ in batch.letters])
        recording.settle(batch.expired)
        return batch.started

    def _start_alone(self, claim: Claim) -> list[Started] | None:
        """Start one claim that is to run with two statements in autocommit: an unlocked read, then a
        compare-and-set UPDATE (claiming.write_claimed_if_unchanged). None: the locked path decides.

        An idle worker's start: BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT were four round trips.
        Only a plain Run takes it (no gate, no rate limit: they take slots that a retry would take twice;
        no unique or debounce key: see the check below).
        """
        db = self.recording.db
        if claim.defect or connections[db].in_atomic_block:
            return None
        try:
            Message.decode(claim.envelope, expected_id=claim.id, queue=claim.queue)
        except MessageRejected:
            return None  # the locked path sets it aside
        record = sql.read_rows(db, [claim.id]).get(claim.id)
        if record is None or record.unique_lock is not None:
            # A row holding a unique or debounce key: a debounced call may rewrite its arguments
            # and start time (locks.replace_waiting), which the compare-and-set does not compare.
            return None
        task = registry.get(record.task_name)
        if not isinstance(task, Task) or START.get(task.registered_name):
            return None
        if self.limiter.limits(task.registered_name, task.rate_limit):
            return None
        now = timezone.now()
        if not isinstance(self.decide(claim, record, now), Run):
            return None
        seen = (record.state, record.attempts, record.lease_token, record.lease_expires_at)
        transitions.claim_attempt(
            record, worker=self.worker_id, token=claim.token, now=now, lease=db_lease(self.config)
        )
        if not claiming.write_claimed_if_unchanged(db, record, seen):
            return None  # written meanwhile: read again, locked
        started = [Started(claim=claim, record=record, task=task, started_at=now)]
        self._received(started)
        return started

    def _received(self, started: list[Started]) -> None:
        """Tell the counters, the task log and task_received's receivers of the tasks just started."""
        self.recording.recorder.received(started)
        tasklog.received(started)
        signalling.received(started, self.worker_id)

    def refuse_start(self, claim: Claim, exc: BaseException) -> None:
        """Fail and set aside a claim whose start the database refused for its data (its id, its row): it never runs."""
        reason = storable(f"the database refused to start this task: {type(exc).__qualname__}: {safe_str(exc)}")[:4096]
        db, name = self.recording.db, ""
        try:
            with transaction.atomic(using=db):
                # The read is refused too if the id is.
                record = sql.read_rows(db, [claim.id], lock=True).get(claim.id)
                if record is not None:
                    name = record.task_name
                    if transitions.fail_unstarted(db, record, REFUSED_TYPE, reason, timezone.now()):
                        workflow.after_final(db, record, FAILURE, None, (REFUSED_TYPE, reason, ""))
        except REFUSALS as again:
            logger.warning("Task id=%r: its row cannot be failed either (%s)", claim.id, again)
        try:
            dead_letter(claim, reason, raw=claim.envelope, task_name=name).save(using=db, force_insert=True)
        except REFUSALS as again:  # acked all the same: handing it back would only be refused again
            logger.error("Message id=%r dropped: its dead letter was refused too (%s)", claim.id, again)
        self.recording.settle([claim])

    def set_aside(self, claim: Claim, reason: str) -> None:
        """Set one claim aside outside a batch: fail its row (if it has one), dead-letter it, ack it."""
        db, now, exc_type = self.recording.db, timezone.now(), "djtasks.exceptions.MessageRejected"
        with transaction.atomic(using=db):
            record = None if claim.defect else TaskRecord.objects.using(db).filter(pk=claim.id).first()
            if record is not None and transitions.fail_unstarted(db, record, exc_type, reason, now):
                workflow.after_final(db, record, FAILURE, None, (exc_type, reason, ""))
            name = record.task_name if record is not None else ""
            dead_letter(claim, reason, raw=claim.envelope, task_name=name).save(using=db)
        self.recording.settle([claim])

    def _decode(self, claims: list[Claim], batch: Batch) -> list[tuple[Claim, Message]]:
        """Decode the claims' messages; set aside the malformed ones, and ids that cannot be a row's."""
        valid: list[tuple[Claim, Message]] = []
        for claim in claims:
            if claim.defect:
                # Never looked up: the database would refuse the id (or cannot hold such a row).
                batch.letters.append((claim, dead_letter(claim, f"{claim.defect}: {claim.id}", raw=claim.envelope)))
                continue
            try:
                valid.append((claim, Message.decode(claim.envelope, expected_id=claim.id, queue=claim.queue)))
            except MessageRejected as exc:
                batch.letters.append((claim, dead_letter(claim, str(exc), raw=claim.envelope)))
                signalling.rejected(claim.envelope, exc)
        return valid

    def decide(self, claim: Claim, record: TaskRecord, now: datetime) -> Verdict:
        """Say what to do with a claim, given its locked row: the first check that holds decides."""
        if record.state not in RUNNABLE_STATES:
            return Drop(record.state)
        if record.lease_expires_at is not None and record.lease_expires_at > now:
            delay = (record.lease_expires_at - now).total_seconds() + 1.0
            return Wait(int(delay * 1000), f"is held by a live lease; redelivery in {delay:.0f}s")
        if record.expires_at is not None and record.expires_at <= now:
            return Expire()
        if record.eta is not None and (record.eta - now).total_seconds() > 0.5:
            # Reaped or swept before its time (a retry whose worker died): back to waiting.
            return Wait(int((record.eta - now).total_seconds() * 1000))
        if claim.deliveries > self.config.MAX_DELIVERIES:
            reason = (
                f"delivered {claim.deliveries} times without finishing (more than MAX_DELIVERIES="
                f"{self.config.MAX_DELIVERIES}): its worker process died each time"
            )
            return SetAside(reason, "djtasks.exceptions.WorkerLost", raw=True)
        task = registry.get(record.task_name)
        if not isinstance(task, Task):
            reason = f"task {record.task_name!r} is not registered in worker {self.worker_id}"
            return SetAside(reason, NOT_REGISTERED)
        gate = START.get(task.registered_name)
        if gate is not None:  # a keyed rate limit or a concurrency cap (worker/caps.py)
            return self.caps.decide(task, gate, claim, record)
        if wait_ms := self.limiter.delay_ms(task.registered_name, task.rate_limit):
            # Over its rate limit: wait in the scheduled set, not in this child.
            return Wait(wait_ms)
        if self.limiter.limits(task.registered_name, task.rate_limit):
            return Run(task, at=timezone.now())  # its slot was granted just now
        return Run(task)

    def _apply(
        self, verdict: Verdict, claim: Claim, message: Message, record: TaskRecord, batch: Batch, now: datetime
    ) -> None:
        """Carry out a verdict inside the batch's transaction (settling its claim waits for the commit)."""
        match verdict:
            case Run(task=task, at=at):
                at = at or now
                transitions.claim_attempt(
                    record, worker=self.worker_id, token=claim.token, now=at, lease=db_lease(self.config)
                )
                batch.started.append(Started(claim=claim, record=record, task=task, started_at=at))
            case Drop(state=state):
                logger.info("Task id=%s is already %s: duplicate delivery dropped", claim.id, state)
                batch.drops.append(claim)
                if state == REVOKED:  # a revoked task met by a worker, as Celery says
                    signalling.revoked(registry.get(record.task_name), record, claim.queue, self.worker_id)
            case Wait(delay_ms=delay_ms, why=why):
                if why:
                    logger.info("Task id=%s %s", claim.id, why)
                self.recording.release(claim, message.priority, delay_ms=delay_ms, forgive=True)
            case Parked(why=why):
                logger.info("Task id=%s %s", claim.id, why)
            case Expire():
                self._expire(claim, record, now)
                batch.expired.append(claim)
            case SetAside(reason=reason, exc_type=exc_type, raw=raw):
                if exc_type == NOT_REGISTERED:
                    signalling.unknown(record.task_name, claim.id, claim.envelope, NotRegistered(record.task_name))
                if transitions.fail_unstarted(self.recording.db, record, exc_type, reason, now):
                    workflow.after_final(self.recording.db, record, FAILURE, None, (exc_type, reason, ""))
                letter = dead_letter(claim, reason, raw=claim.envelope if raw else b"", task_name=record.task_name)
                batch.letters.append((claim, letter))

    def _expire(self, claim: Claim, record: TaskRecord, now: datetime) -> None:
        """Record a task picked up after its expiry as REVOKED with the reason; it does not run."""
        db = self.recording.db
        reason = f"expired at {record.expires_at.isoformat() if record.expires_at else '?'} before a worker started it"
        logger.info("Task id=%s %s: revoked", record.pk, reason)
        if revocation.revoke_expired(db, record, reason, now):
            workflow.after_final(db, record, REVOKED, None, (revocation.REVOKED_TYPE, reason, ""))
        self.recording.recorder.revoked(claim.id, record.task_name, claim.queue, "expired before it started")
        signalling.revoked(registry.get(record.task_name), record, claim.queue, self.worker_id, expired=True)


def dead_letter(claim: Claim, reason: str, *, raw: bytes = b"", task_name: str = "") -> DeadLetter:
    """Build the dead letter of a message that cannot run, with its reason and its raw bytes, escaped."""
    logger.error("Message id=%r dead-lettered: %s", claim.id, reason)
    return DeadLetter(
        task_id=storable(claim.id)[:255],
        task_name=storable(task_name)[:255],
        queue=storable(claim.queue)[:100],
        reason=storable(reason)[:65536],
        raw=escaped(raw, limit=65536) if raw else "",
    )
