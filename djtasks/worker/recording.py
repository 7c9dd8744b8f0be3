"""Record how attempts ended and settle their claims: outcome writes, acks, after-commit work.

Outcomes are batched where the guarantees allow it: one transaction records a batch of outcomes
(each row still fenced by its own lease token), one round trip acks them. If the database refuses
the batch because of the data in it (record/refusals.py), it is written again one outcome at a
time, each in a savepoint, and an outcome that is refused becomes a FAILURE that says why: its
neighbours are written as they were, and no task runs again because its outcome was refused.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router, transaction
from django.utils import timezone

from djtasks.calling.publisher import due_ms
from djtasks.core import registry
from djtasks.core.conf import Settings, get_settings
from djtasks.core.exceptions import BrokerUnavailable, MessageRejected
from djtasks.core.message import Message
from djtasks.core.states import FAILURE, READY_STATES, RETRY, RUNNABLE_STATES, SUCCESS
from djtasks.record import transitions
from djtasks.record.models import TaskRecord
from djtasks.record.refusals import REFUSALS
from djtasks.transport.broker import Broker, Claim, Reserved
from djtasks.transport.telemetry import Recorder
from djtasks.worker import signalling, tasklog, workflow
from djtasks.worker.outcome import Outcome, Started, alone, refused
from djtasks.worker.telemetry import TaskRecorder

logger = logging.getLogger("djtasks")
TERMINATED = "djtasks.exceptions.Terminated"  # why the parent killed a child running a task revoked with terminate
Done = list[tuple[Started, Outcome]]


class Recording:
    """A child's end of its attempts: write their outcomes, then ack or release their claims."""

    def __init__(self, broker: Broker, config: Settings, worker_id: str):
        self.broker = broker
        self.config = config
        self.db = router.db_for_write(TaskRecord)
        self.worker_id = worker_id
        # Events and counters ride along with the next ack (see settle).
        self.recorder = TaskRecorder(broker, config, worker_id)
        # Called with the attempts after() settled (worker/caps.py gives back their concurrency slots).
        self.settled: list[Callable[[Done], None]] = []
        # Claims whose outcomes are committed, acked with the next claim or ack (after(defer=True)).
        self.unacked: list[Claim] = []

    def finish(self, done: Done, *, defer: bool = False) -> None:
        """Record outcomes in one transaction, each fenced by its attempt's token; then ack (defer: see after())."""
        if not done:
            return
        now = timezone.now()

        def write(careful: bool) -> list[bool]:
            if not careful and len(done) == 1 and alone(done[0][0].record, self.db):
                return self.write(done, now)  # one UPDATE, its own transaction: no BEGIN or COMMIT round trip
            with transaction.atomic(using=self.db):
                return self.write(done, now, careful=careful)

        try:
            written = self.with_db_retry(lambda: write(False))
        except REFUSALS as exc:
            logger.warning("The database refused %d outcome(s) (%s); writing them one by one", len(done), exc)
            written = self.with_db_retry(lambda: write(True))
        self.after(done, written, defer=defer)

    def write(self, done: Done, now: datetime, *, careful: bool = False) -> list[bool]:
        """Write outcomes in the caller's transaction: plain successes in one executemany, the rest one by one.

        Careful: each in its own savepoint, an outcome the database refuses replaced (in `done`) by
        the FAILURE that says so. Either way the writes can be tried again after a rollback.
        """
        for started, _ in done:
            started.rewind()
        if careful:
            return [self._write_guarded(done, i, now) for i in range(len(done))]
        plain = [
            i
            for i, (started, outcome) in enumerate(done)
            if outcome.state == SUCCESS and not workflow.has_followers(started.record)
        ]
        batched: dict[int, bool] = {}
        if len(plain) > 1:  # a single row gains nothing from executemany
            batched.update(zip(plain, transitions.write_successes(self.db, [done[i] for i in plain], now), strict=True))
        return [
            batched[i] if i in batched else self._write_one(started, outcome, now)
            for i, (started, outcome) in enumerate(done)
        ]

    def _write_one(self, started: Started, outcome: Outcome, now: datetime, *, follow: bool = True) -> bool:
        written = transitions.write_outcome(self.db, started, outcome, now)
        if written and follow and outcome.state in READY_STATES:
            error = (outcome.exception_type, outcome.message, outcome.traceback)
            workflow.after_final(self.db, started.record, outcome.state, outcome.returned, error)
        return written

    def _write_guarded(self, done: Done, index: int, now: datetime) -> bool:
        """Write one outcome in a savepoint; if the database refuses it, write the FAILURE that says why instead."""
        started, outcome = done[index]
        try:
            with transaction.atomic(using=self.db):
                return self._write_one(started, outcome, now)
        except REFUSALS as exc:
            started.rewind()
            failure = refused(outcome, exc)
            done[index] = (started, failure)
            logger.warning(
                "Task id=%s: the database refused its outcome (%s); recording FAILURE", started.claim.id, exc
            )
        for follow in (True, False):  # what follows a failure may be refused too: then the FAILURE alone
            try:
                with transaction.atomic(using=self.db):
                    return self._write_one(started, failure, now, follow=follow)
            except REFUSALS as exc:
                started.rewind()
                logger.error("Task id=%s: the database refused its FAILURE too (%s)", started.claim.id, exc)
        return False

    def after(self, done: Done, written: list[bool], *, defer: bool = False) -> None:
        """After the commit: log, ack, wake waiting readers, send task_finished and Celery's signals.

        defer: the acks (and the wake-ups and events riding with them) go with this child's next
        claim (claim()); till then the ids stay reserved: if the child dies, they are redelivered
        when their lease lapses and dropped as finished (start() reads the row), never run again.
        """
        if not done:
            return
        self._report(done, written)
        # A retry goes back to the scheduled set only after its RETRY row committed; if this
        # process dies first, the lease lapses, the reaper requeues it, and start() sees the eta.
        retrying = [(s, o) for (s, o), ok in zip(done, written, strict=True) if ok and o.state == RETRY]
        # A replacement bound for another queue is published there (_move), not released here.
        moved = [(s, o) for s, o in retrying if o.rewrite and o.rewrite.get("queue", s.claim.queue) != s.claim.queue]
        released = {id(started) for started, _ in retrying}
        moving = {id(started) for started, _ in moved}
        for started, outcome in retrying:
            if id(started) in moving:
                continue
            delay_ms = max(int(((outcome.eta or timezone.now()) - timezone.now()).total_seconds() * 1000), 1)
            self.release(started.claim, started.record.priority, delay_ms=delay_ms, forgive=True)
        self._move(moved)
        self.settle([started.claim for started, _ in done if id(started) not in released], defer=defer)
        for hook in self.settled:
            hook(done)
        for (started, outcome), ok in zip(done, written, strict=True):
            if ok:
                signalling.finished(started, outcome, self.worker_id)

    def _report(self, done: Done, written: list[bool]) -> None:
        """Queue the events of the written outcomes; log the attempts whose result was fenced off."""
        for (started, outcome), ok in zip(done, written, strict=True):
            if ok:
                self.recorder.finished(started, outcome)
                tasklog.finished(started, outcome)
            else:
                logger.warning(
                    "Task id=%s lost its lease before finishing; this attempt's result is discarded",
                    started.claim.id,
                )

    def drop_revoked(self, started: Started) -> None:
        """Settle a reserved claim whose row was revoked before it began: write nothing, ack."""
        logger.info("Task id=%s was revoked while reserved; it does not run", started.claim.id)
        claim = started.claim
        self.with_db_retry(lambda: transitions.drop_lease(self.db, claim.id, claim.token))
        self.settle([started.claim])
        signalling.revoked(started.task, started.record, claim.queue, self.worker_id)

    def with_db_retry(self, write: Callable[[], Any]) -> Any:
        """Run a database write, retrying with backoff while the database is unavailable."""
        deadline = time.monotonic() + self.config.DB_RETRY_WINDOW
        delay = 0.1
        while True:
            try:
                return write()
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning("Database unavailable while recording (%s); retrying in %.1fs", exc, delay)
                connections[self.db].close_if_unusable_or_obsolete()
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)

    def settle(self, claims: list[Claim], *, notify: bool = True, defer: bool = False) -> None:
        """Ack claims (and the deferred ones; defer: keep them for the next claim or ack_deferred()).

        If Redis is unreachable their leases lapse and redeliveries are dropped."""
        if defer:
            self.unacked += claims
            return
        if not claims:
            return
        if notify and self.unacked:
            claims, self.unacked = [*self.unacked, *claims], []
        try:
            self.broker.ack_many(claims, notify=notify, also=self.recorder.drain())
        except BrokerUnavailable as exc:
            logger.warning("Ack of %d task(s) failed (%s); redeliveries will be dropped", len(claims), exc)

    def ack_deferred(self) -> None:
        """Send the deferred acks now (the child stops, or recovers from an error)."""
        acks, self.unacked = self.unacked, []
        self.settle(acks)

    def claim(
        self, queues: list[str], prefix: str, lease_ms: int, *, limit: int, deep: int, wait: float | None = None
    ) -> Reserved:
        """Reserve a batch (broker.reserve), sending the deferred acks and their events in the same round trip.

        wait: first wait this long for a wake-up token, in the same round trip, the events collected
        till then sent before it (retry events, for one, whose claims are released, not acked).
        """
        acks, self.unacked = self.unacked, []
        also = self.recorder.drain() if acks or wait is not None else ()
        try:
            return self.broker.reserve(
                queues, prefix, lease_ms, limit=limit, deep=deep, acks=acks, also=also, wait=wait
            )
        except BrokerUnavailable as exc:
            if acks:
                logger.warning("Ack of %d task(s) failed (%s); redeliveries will be dropped", len(acks), exc)
            raise

    def _move(self, moved: Done) -> None:
        """Send replaced rows whose call goes to another queue there: acked here, published there.

        Released to the queue they were claimed from, a worker of that queue would run the
        replacement. If the publish fails, the row's lapsed lease brings it to the outbox sweep.
        """
        if not moved:
            return
        self.settle([started.claim for started, _ in moved])
        messages = [
            (Message(id=s.claim.id, queue=o.rewrite["queue"], priority=s.record.priority), due_ms(o.eta))  # type: ignore[index]
            for s, o in moved
        ]
        try:
            self.broker.publish(messages)
        except BrokerUnavailable as exc:
            logger.warning("Publish of %d replaced task(s) failed (%s); the outbox sweep sends them", len(moved), exc)

    def release(self, claim: Claim, priority: int, *, delay_ms: int = 0, forgive: bool = False) -> None:
        """Put a claim back in its queue (after delay_ms); if Redis is unreachable its lease lapses."""
        try:
            self.broker.release(claim, priority=priority, delay_ms=delay_ms, forgive=forgive)
        except BrokerUnavailable as exc:
            logger.warning("Release of task id=%s failed (%s); its lease will lapse", claim.id, exc)


def settle_killed(
    db: str, broker: Broker, claim: Claim, exc_type: str, message: str, config: Settings | None = None
) -> None:
    """Record the end of an attempt whose child the parent killed (hard time limit, terminate)."""
    try:
        record = transitions.fail_killed(db, claim.id, claim.token, exc_type, message, timezone.now())
    except DatabaseError as exc:
        logger.warning("Could not record the end of task id=%s (%s); it reruns once its lease lapses", claim.id, exc)
        return
    try:
        broker.ack(claim)
    except BrokerUnavailable as exc:
        logger.warning("Ack of task id=%s failed (%s); its redelivery will be dropped", claim.id, exc)
    if record is not None and exc_type == TERMINATED:
        signalling.terminated(registry.get(record.task_name), record, claim.queue, record.worker)
    if record is not None and record.state in RUNNABLE_STATES:  # a revoke made its own event
        recorder = Recorder(broker, config or get_settings(), record.worker)
        recorder.done[(record.task_name, claim.queue, FAILURE)] += 1
        recorder.event(
            "task-failed", id=claim.id, name=record.task_name, queue=claim.queue, exception=f"{exc_type}: {message}"
        )
        recorder.flush()


def hand_back(db: str, broker: Broker, claim: Claim, *, forgive: bool, unbegun: TaskRecord | None = None) -> None:
    """Return a claim whose process is gone or stopping: drop the row's lease, then requeue.

    unbegun: the row of a claim this child started and never executed; its attempt is uncounted.
    """
    try:
        if unbegun is not None:
            transitions.give_back(db, unbegun, claim.token)
        elif not claim.defect:  # an id that cannot be a row's is never looked up
            transitions.drop_lease(db, claim.id, claim.token)
    except DatabaseError as exc:
        logger.warning("Could not clear the lease of task id=%s (%s); it reruns once the lease lapses", claim.id, exc)
    try:
        message = Message.decode(claim.envelope, expected_id=claim.id, queue=claim.queue)
        broker.release(claim, priority=message.priority, forgive=forgive)
    except (MessageRejected, BrokerUnavailable) as exc:
        logger.warning("Could not hand back task id=%s (%s); its lease will lapse", claim.id, exc)
