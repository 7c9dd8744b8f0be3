"""The worker process model: a parent that supervises N forked children.

The parent spawns and replaces children, keeps the leases of their running tasks alive, hands
back the tasks of children that die, runs the maintenance duties, and turns signals into warm
(first SIGTERM/SIGINT) or cold (second signal, or the grace period running out) shutdowns.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Any

from django.db import connections, router
from django.utils import timezone

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import close_broker, get_broker
from djtasks.worker.child import child_main
from djtasks.worker.config import worker_settings
from djtasks.worker.duties import Duties
from djtasks.worker.pool import ChildView
from djtasks.worker.protocol import ChildLimits, Consume, Skip
from djtasks.worker.recording import hand_back, settle_killed
from djtasks.worker.remote import Remote
from djtasks.worker.slot import Slot

logger = logging.getLogger("djtasks")
TICK_SECONDS = 0.5


class Worker:
    def __init__(
        self,
        *,
        queues: list[str],
        concurrency: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        shutdown_grace: float | None = None,
    ):
        # The options override their settings; a bad value of either raises ImproperlyConfigured.
        options = {
            "CONCURRENCY": concurrency,
            "MAX_TASKS_PER_CHILD": max_tasks_per_child,
            "MAX_MEMORY_PER_CHILD": max_memory_per_child,
            "SOFT_TIME_LIMIT": soft_time_limit,
            "TIME_LIMIT": time_limit,
            "SHUTDOWN_GRACE": shutdown_grace,
        }
        self.config = worker_settings(options, queues)
        self.queues = queues or [self.config.DEFAULT_QUEUE]
        self.concurrency = self.config.CONCURRENCY
        self.limits = ChildLimits(
            max_tasks=self.config.MAX_TASKS_PER_CHILD,
            max_memory_kib=self.config.MAX_MEMORY_PER_CHILD,
            soft_time_limit=self.config.SOFT_TIME_LIMIT,
            time_limit=self.config.TIME_LIMIT,
        )
        self.grace = self.config.SHUTDOWN_GRACE
        self.worker_id = f"{self.config.WORKER_NAME}.{os.getpid()}"
        self.slots: dict[int, Slot] = {}
        self.context = multiprocessing.get_context("fork")
        self.stop_requested_at: float | None = None
        self.cold = False
        self.started_at = timezone.now()
        self.db = router.db_for_write(TaskRecord)
        # Children asked to stop by pool_shrink: they are not replaced when they exit.
        self.retiring: set[int] = set()
        self.remote = Remote(self)
        self.duties = Duties(self, self.remote)

    # Lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        logger.info(
            "Worker %s starting: queues=%s concurrency=%d", self.worker_id, ",".join(self.queues), self.concurrency
        )
        for index in range(self.concurrency):
            if self.stop_requested_at is not None:
                break  # a stop during start-up: spawn no more
            self._spawn(index)
        self.remote.online()
        while True:
            self._supervise()
            if self.stop_requested_at is not None:
                if not self._alive():
                    break
                # A child forked after the signal, or caught before its handler was installed,
                # hears it again; asking twice is harmless (it only sets a flag).
                for slot in self.slots.values():
                    slot.signal(signal.SIGTERM)
                if self.cold or time.monotonic() - self.stop_requested_at > self.grace:
                    self._terminate_children()
                    break
            self._enforce_time_limits()
            self.duties.run()
        self._finish()
        logger.info("Worker %s stopped (%s shutdown)", self.worker_id, "cold" if self.cold else "warm")
        return 1 if self.cold else 0

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGQUIT, self._on_cold_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            logger.info("Warm shutdown: finishing running tasks (grace %.0fs); signal again to stop now", self.grace)
            for slot in self.slots.values():
                slot.signal(signal.SIGTERM)
        else:
            self._on_cold_signal(signum, frame)

    def _on_cold_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.cold = True

    # Children -----------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        # A forked child must not share the parent's database or Redis sockets.
        connections.close_all()
        close_broker()
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=child_main,
            args=(index, self.worker_id, self.queues, theirs, self.limits),
            name=f"djtasks-child-{index}",
        )
        process.start()
        theirs.close()
        self.slots[index] = Slot(index=index, process=process, reader=ours)

    def _alive(self) -> bool:
        return any(slot.process.is_alive() for slot in self.slots.values())

    def _supervise(self) -> None:
        readers = {slot.reader: slot for slot in self.slots.values() if not slot.reader.closed}
        sentinels = {slot.process.sentinel: slot for slot in self.slots.values()}
        for ready in wait([*readers, *sentinels], timeout=TICK_SECONDS):
            if ready in readers:
                readers[ready].read()
        for slot in list(self.slots.values()):
            if not slot.process.is_alive():
                self._reap_child(slot)

    def _reap_child(self, slot: Slot) -> None:
        if not slot.reader.closed:
            slot.read()
        slot.process.join(timeout=0)
        code = slot.process.exitcode
        executing = slot.executing[0] if slot.executing else None
        for claim in list(slot.running.values()):
            if slot.killed and claim.id == slot.killed[0]:
                settle_killed(self.db, get_broker(), claim, slot.killed[1], slot.killed[2])
            elif claim.id == executing:
                # The task in hand may be what killed its child: this delivery counts towards
                # MAX_DELIVERIES, after which the message is dead-lettered as poison.
                logger.error(
                    "Child %d (pid %s) died (exit code %s) while running task id=%s; handing it back",
                    slot.index,
                    slot.process.pid,
                    code,
                    claim.id,
                )
                hand_back(self.db, get_broker(), claim, forgive=self.cold)
            else:
                hand_back(self.db, get_broker(), claim, forgive=True)
        slot.reader.close()
        del self.slots[slot.index]
        if slot.index in self.retiring:
            self.retiring.discard(slot.index)
            logger.info("Child %d stopped (pool_shrink)", slot.index)
        elif self.stop_requested_at is None:
            if not slot.running and code != 0 and not slot.killed:
                logger.warning("Child %d exited with code %s; replacing it", slot.index, code)
            self._spawn(slot.index)

    def _enforce_time_limits(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.executing is None or slot.killed is not None:
                continue
            task_id, began, hard = slot.executing
            if hard is not None and now - began > hard:
                message = f"hard time limit ({hard:g} s) exceeded; its child process was killed and replaced"
                logger.error("Task id=%s: %s", task_id, message)
                slot.killed = (task_id, "djtasks.exceptions.TimeLimitExceeded", message)
                slot.signal(signal.SIGKILL)

    def _terminate_children(self) -> None:
        for slot in self.slots.values():
            slot.signal(signal.SIGKILL)
        for slot in list(self.slots.values()):
            slot.process.join(timeout=5)
            if not slot.reader.closed:
                slot.read()
            for claim in slot.running.values():
                logger.warning("Cold shutdown: handing back task id=%s", claim.id)
                hand_back(self.db, get_broker(), claim, forgive=True)
            slot.running.clear()
            slot.reader.close()
        self.slots.clear()

    def _finish(self) -> None:
        try:
            get_broker().forget_worker(self.worker_id)
        except BrokerUnavailable:
            pass
        self.remote.offline()
        connections.close_all()

    # The pool, as remote control and the duties see it (worker/pool.py) -------------------

    @property
    def stopping(self) -> bool:
        return self.stop_requested_at is not None

    def children(self) -> list[ChildView]:
        now = time.monotonic()
        return [slot.view(now, retiring=slot.index in self.retiring) for slot in self.slots.values()]

    def collect(self) -> None:
        for slot in self.slots.values():
            if not slot.reader.closed:
                slot.read()

    def grow(self, n: int) -> None:
        for _ in range(n):
            self._spawn(max([*self.slots, *self.retiring], default=-1) + 1)
        self.concurrency += n

    def retire(self, indexes: list[int]) -> None:
        for index in indexes:
            self.retiring.add(index)
            pid = self.slots[index].process.pid
            if pid is not None:
                os.kill(pid, signal.SIGTERM)  # warm: it finishes its task, hands back the rest
        self.concurrency -= len(indexes)

    def set_queues(self, queues: list[str]) -> None:
        self.queues = queues
        for slot in self.slots.values():
            slot.tell(Consume(tuple(queues)))

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        for slot in self.slots.values():
            if task_id not in slot.running:
                continue
            if slot.executing and slot.executing[0] == task_id:
                if terminate and slot.killed is None:
                    logger.warning("Task id=%s revoked with terminate: killing child %d", task_id, slot.index)
                    slot.killed = (task_id, "djtasks.exceptions.Terminated", "revoked with terminate=True")
                    slot.signal(signal.SIGKILL)
            else:
                slot.tell(Skip((task_id,)))

    def request_warm_stop(self) -> None:
        self._on_stop_signal(signal.SIGTERM, None)
