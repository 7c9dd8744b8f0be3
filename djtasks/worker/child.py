"""A worker child process: reserve messages, run them, record outcomes, repeat.

A child claims a batch (one message unless the queue is deep) and starts it in one transaction,
which also writes the outcomes held from the batch before (acked with the next claim), so a busy
child pays about one commit and one round trip per batch; outcomes are recorded on their own when
the queue was shallow, after FLUSH_AFTER, or when tasks are slow. Until an outcome is committed
and acked the parent keeps extending its lease.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.states import RETRY
from djtasks.transport.broker import Claim, get_broker
from djtasks.worker.execute import Runner
from djtasks.worker.guard import Backoff, Guard
from djtasks.worker.limits import resident_kib, unenforced
from djtasks.worker.outcome import Outcome, Started
from djtasks.worker.protocol import ChildLimits, Reporter
from djtasks.worker.recording import Recording, hand_back
from djtasks.worker.start import Starter

logger = logging.getLogger("djtasks")
WAIT_SECONDS = 1.0
# Outcomes wait at most this long for the next batch's transaction; slower tasks flush at once.
FLUSH_AFTER = 0.02


class Child:
    def __init__(
        self,
        index: int,
        worker_id: str,
        queues: list[str],
        pipe: Connection,
        limits: ChildLimits,
        config: Settings,
        stop: threading.Event | None = None,
    ):
        self.index = index
        self.worker_id = worker_id
        self.queues = queues
        self.max_tasks = limits.max_tasks
        self.max_memory = limits.max_memory_kib
        self.config = config
        # In a thread (the threads and solo pools) the parent asks for a stop through this event,
        # and nothing can kill the child: hard time limits are not reported (see worker/pools.py).
        self.stop_event = stop
        self.killable = stop is None
        # A forked child outlives a SIGKILLed parent: then nobody renews its leases, so it stops.
        self.parent_pid = os.getppid() if self.killable else None
        self._stopping = False
        self.broker = get_broker()
        self.recording = Recording(self.broker, self.config, worker_id)
        self.starter = Starter(self.recording, self.config, worker_id)
        self.runner = Runner(
            self.recording, worker_id, soft_time_limit=limits.soft_time_limit, time_limit=limits.time_limit
        )
        self.skip: set[str] = set()
        self.reporter = Reporter(pipe)
        self.pending: list[tuple[Started, Outcome]] = []
        self.prefix = f"{worker_id}.{index}.{os.getpid()}"
        self.last_fast = self.retried = False
        self.waited: float | None = None  # the next claim first waits this long for a wake-up token
        self.lease_ms = int(self.config.LEASE_SECONDS * 1000)
        self.guard = Guard(f"Worker {worker_id} child {index}")

    @property
    def stopping(self) -> bool:
        if self.parent_pid is not None and (self.reporter.parent_gone or os.getppid() != self.parent_pid):
            if not self._stopping:
                logger.warning("Child %d: its parent (pid %d) is gone; stopping", self.index, self.parent_pid)
            self._stopping = True
        return self._stopping or (self.stop_event is not None and self.stop_event.is_set())

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> None:
        if self.killable:  # a process of its own (prefork): its signals are its own
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
            self.stopping = self.stopping or _early_stop["requested"]
        backoff = Backoff()
        executed = rounds = 0
        try:
            while not self.stopping and (self.max_tasks is None or executed < self.max_tasks):
                rounds += 1
                try:
                    executed += self._round(rounds, executed, backoff)
                except Exception:
                    # Whatever a round met, the child goes on: what it holds goes back.
                    self.guard.failed("a round of claiming and running")
                    self._recover()
                    backoff.sleep()
        finally:
            self.flush()
            self.recording.ack_deferred()
            self.recording.recorder.flush()

    def _round(self, rounds: int, executed: int, backoff: Backoff) -> int:
        """Claim a batch and run it; return how many tasks were executed."""
        self._read_orders()
        limit = self._batch_size(executed)
        claims, idle = self._claim(rounds, limit, backoff)
        if not claims:
            return 0
        backoff.reset()
        self.retried = False
        ran = self._run_batch(claims, backoff)
        if len(claims) < limit or idle is not None:
            more = not self.stopping and (self.max_tasks is None or executed + ran < self.max_tasks)
            # Nothing ready, nothing put back (no token comes for a retry): wait with the next claim, acking these.
            if idle is not None and ran == len(claims) and not self.retried and more:
                self.waited = min(idle, WAIT_SECONDS)
            self.flush(defer=self.waited is not None)  # shallow: record now, not after another (likely empty) claim
        return ran

    def _recover(self) -> None:
        """After an unexpected error: record what was executed, hand back (or set aside) the rest."""
        if not self.guard.run("recording outcomes", self.flush):
            self.pending = []
        self.guard.run("acking recorded outcomes", self.recording.ack_deferred)
        for claim in list(self.reporter.held.values()):
            self.guard.run(f"handing back task id={claim.id!r}", partial(self._give_back, claim))
        self.reporter.done(list(self.reporter.held))

    def _give_back(self, claim: Claim) -> None:
        """Hand back a claim held when a round failed; counted, so one that always fails is set aside."""
        if claim.deliveries < self.config.MAX_DELIVERIES:
            return hand_back(self.recording.db, self.broker, claim, forgive=False)
        self.starter.set_aside(claim, f"an unexpected error in the worker on each of its {claim.deliveries} deliveries")

    def _batch_size(self, executed: int) -> int:
        # Prefetch only while tasks are fast: a slow task must not hold others behind it.
        limit = self.config.PREFETCH if self.last_fast else 1
        if self.max_tasks is not None:
            limit = min(limit, self.max_tasks - executed)
        return limit

    def _claim(self, rounds: int, limit: int, backoff: Backoff) -> tuple[list[Claim], float | None]:
        """Reserve a batch (and whether it left nothing ready), first waiting for a wake-up token if idle."""
        wait, self.waited = self.waited, None
        try:
            reserved = self.recording.claim(  # with the last batch's acks
                self.queues, f"{self.prefix}.{rounds}", self.lease_ms, limit=limit, deep=self.config.PREFETCH, wait=wait
            )
        except BrokerUnavailable as exc:
            self.flush()
            logger.warning("Worker %s child %d cannot reach Redis (%s); retrying", self.worker_id, self.index, exc)
            backoff.sleep()
            return [], None
        claims = reserved.claims
        if wait is not None:  # what came during the wait (a stop, a queue no longer consumed): its claims go back
            self._read_orders()
            back = [c for c in claims if self.stopping or c.queue not in self.queues]
            for claim in back:
                hand_back(self.recording.db, self.broker, claim, forgive=True)
            claims = [c for c in claims if c not in back]
        if not claims:
            self.flush()
            self.waited = WAIT_SECONDS if reserved.idle_s is None else min(reserved.idle_s, WAIT_SECONDS)
        return claims, reserved.idle_s

    def _read_orders(self) -> None:
        self.skip |= self.reporter.orders()
        if self.reporter.events is not None:
            self.recording.recorder.events_on, self.reporter.events = self.reporter.events, None
        if self.reporter.queues is not None:
            logger.info(
                "Worker %s child %d now consumes %s", self.worker_id, self.index, ",".join(self.reporter.queues)
            )
            self.queues, self.reporter.queues = self.reporter.queues, None

    def flush(self, *, defer: bool = False) -> None:
        """Record the held outcomes now (retrying while the database is down); defer: ack with the next claim."""
        pending, self.pending = self.pending, []
        if pending:
            self.recording.finish(pending, defer=defer)
            self.reporter.done([started.claim.id for started, _ in pending])

    def _run_batch(self, claims: list[Claim], backoff: Backoff) -> int:
        started = self._start(claims, backoff)
        if started is None:
            return 0
        executed = self._execute(started)
        if self._over_memory():
            logger.info("Child %d uses %d KiB, over --max-memory-per-child; recycling it", self.index, resident_kib())
            self.stopping = True
        return executed

    def _start(self, claims: list[Claim], backoff: Backoff) -> list[Started] | None:
        """Start the claims, writing the held outcomes in the same transaction; None if the database failed."""
        self.reporter.started(claims)
        # The held outcomes stay in self.pending until written: if start() fails unexpectedly,
        # _recover() still records them rather than hand back tasks that already ran.
        finished = self.pending
        try:
            started = self.starter.start(claims, finished)
        except DatabaseError as exc:
            self.pending = []
            # An outage is nobody's fault; any other database error counts towards the poison
            # limit, so a message that always breaks the transaction ends up dead-lettered.
            outage = isinstance(exc, OperationalError | InterfaceError)
            logger.warning("Database error when starting %d task(s) (%s); handing them back", len(claims), exc)
            for conn in connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
            for claim in claims:
                hand_back(self.recording.db, self.broker, claim, forgive=outage)
            self.reporter.done([c.id for c in claims])
            self.pending = finished
            self.flush()  # the outcomes are kept and written once the database answers
            backoff.sleep()
            return None
        self.pending = []
        self.reporter.done([started.claim.id for started, _ in finished])
        running = {s.claim.id for s in started}
        self.reporter.done([c.id for c in claims if c.id not in running])
        return started

    def _execute(self, started: list[Started]) -> int:
        """Execute the started tasks in order, until a stop, a slow task or recycling sends the rest back."""
        executed = 0
        for position, item in enumerate(started):
            if position > 0 and (self.stopping or self._over_memory()):
                # Warm shutdown or recycling: finish the task in hand, hand back the ones not begun.
                self._hand_back(started[position:])
                break
            self._read_orders()
            if item.claim.id in self.skip:
                self.skip.discard(item.claim.id)
                self.recording.drop_revoked(item)
                self.reporter.done([item.claim.id])
                continue
            self._execute_one(item)
            executed += 1
            if not self.last_fast and position + 1 < len(started):
                # A slow task: the rest of the batch goes back to the queue for idle children.
                self._hand_back(started[position + 1 :])
                break
        return executed

    def _execute_one(self, item: Started) -> None:
        hard = self.runner.hard_limit(item.task, item.record)
        if hard is not None and not self.killable:
            unenforced(item.task.registered_name, hard)
            hard = None
        self.reporter.executing(item.claim.id, hard)
        began = time.monotonic()
        outcome = self.runner.execute(item)
        _reset_connections()
        self.pending.append((item, outcome))
        self.retried = self.retried or outcome.state == RETRY
        self.last_fast = time.monotonic() - began <= FLUSH_AFTER
        oldest = self.pending[0][1].finished_at  # the outcome held longest
        if not self.last_fast or (oldest is not None and (timezone.now() - oldest).total_seconds() > FLUSH_AFTER):
            self.flush()

    def _hand_back(self, items: list[Started]) -> None:
        """Send claims not begun back to their queue, for other children."""
        for item in items:
            hand_back(self.recording.db, self.broker, item.claim, forgive=True, unbegun=item.record)
        self.reporter.done([item.claim.id for item in items])

    def _over_memory(self) -> bool:
        return bool(self.max_memory) and resident_kib() > (self.max_memory or 0)


_early_stop = {"requested": False}


def request_early_stop(signum: int, frame: Any) -> None:
    """SIGTERM handler of a child that has not built its Child yet."""
    _early_stop["requested"] = True


def _reset_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:  # a task left a transaction open: never carry it over
            conn.rollback()
            conn.set_autocommit(True)
        if conn.errors_occurred and not conn.is_usable():
            conn.close()
