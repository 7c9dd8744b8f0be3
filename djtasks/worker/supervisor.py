"""The worker process model: a parent that supervises N forked children.

The parent spawns and replaces children, keeps the leases of their running tasks alive, hands
back the tasks of children that die, runs the maintenance duties, and turns signals into warm
(first SIGTERM/SIGINT) or cold (second signal, or the grace period running out) shutdowns.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from django.db import DatabaseError, connections, router
from django.utils import timezone

from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.periodic.beat import Beat
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Claim, close_broker, get_broker
from djtasks.worker import maintenance
from djtasks.worker.child import ChildLimits, child_main, decode_claim, request_early_stop
from djtasks.worker.executor import db_lease, hand_back, settle_killed
from djtasks.worker.remote import Remote

logger = logging.getLogger("djtasks")
TICK_SECONDS = 0.5
# How often a busy parent (woken by every child event) looks for control commands in Redis.
CONTROL_POLL_SECONDS = 0.1


@dataclass
class Slot:
    index: int
    process: BaseProcess
    reader: Connection
    running: dict[str, Claim] = field(default_factory=dict)
    processed: int = 0
    # The task the child is executing now: (id, monotonic start, hard time limit or None).
    executing: tuple[str, float, float | None] | None = None
    # Why the parent killed this child: (task id, exception class path, message).
    killed: tuple[str, str, str] | None = None


@dataclass
class Timers:
    control: float = 0.0
    heartbeat: float = 0.0
    reap: float = 0.0
    sweep: float = 0.0
    expire: float = 0.0


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
        self.config = get_settings()
        self.queues = queues or [self.config.DEFAULT_QUEUE]
        self.concurrency = concurrency or self.config.CONCURRENCY
        self.limits = ChildLimits(
            max_tasks=max_tasks_per_child or self.config.MAX_TASKS_PER_CHILD,
            max_memory_kib=max_memory_per_child or self.config.MAX_MEMORY_PER_CHILD,
            soft_time_limit=soft_time_limit or self.config.SOFT_TIME_LIMIT,
            time_limit=time_limit or self.config.TIME_LIMIT,
        )
        self.grace = self.config.SHUTDOWN_GRACE if shutdown_grace is None else shutdown_grace
        self.worker_id = f"{self.config.WORKER_NAME}.{os.getpid()}"
        self.slots: dict[int, Slot] = {}
        self.context = multiprocessing.get_context("fork")
        self.stop_requested_at: float | None = None
        self.cold = False
        self.timers = Timers()
        self.started_at = timezone.now()
        self.db = router.db_for_write(TaskRecord)
        self.full_sweep_pending = True
        self.remote = Remote(self)
        self.beat = Beat(self.worker_id, self.db)

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
                    _signal(slot.process, signal.SIGTERM)
                if self.cold or time.monotonic() - self.stop_requested_at > self.grace:
                    self._terminate_children()
                    break
            self._duties()
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
                _signal(slot.process, signal.SIGTERM)
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
            target=_child_entry,
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
                self._read(readers[ready])
        for slot in list(self.slots.values()):
            if not slot.process.is_alive():
                self._reap_child(slot)

    def _read(self, slot: Slot) -> None:
        try:
            while slot.reader.poll():
                event = json.loads(slot.reader.recv_bytes())
                if event["event"] == "start":
                    for data in event["claims"]:
                        claim = decode_claim(data)
                        slot.running[claim.id] = claim
                elif event["event"] == "exec":
                    slot.executing = (event["id"], time.monotonic(), event["hard"])
                elif event["event"] == "done":
                    for task_id in event["ids"]:
                        slot.running.pop(task_id, None)
                        if slot.executing and slot.executing[0] == task_id:
                            slot.executing = None
                    slot.processed += len(event["ids"])
        except (EOFError, OSError):
            slot.reader.close()

    def _reap_child(self, slot: Slot) -> None:
        if not slot.reader.closed:
            self._read(slot)
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
                    slot.index, slot.process.pid, code, claim.id,
                )
                hand_back(self.db, get_broker(), claim, forgive=self.cold)
            else:
                hand_back(self.db, get_broker(), claim, forgive=True)
        slot.reader.close()
        del self.slots[slot.index]
        if slot.index in self.remote.retiring:
            self.remote.retiring.discard(slot.index)
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
                _signal(slot.process, signal.SIGKILL)

    def _obey(self, command: dict[str, object]) -> None:
        """Act on a control command addressed to this worker."""
        if command.get("cmd") != "revoke":
            self.remote.answer(command)
            return
        task_id = str(command.get("id"))
        for slot in self.slots.values():
            if task_id not in slot.running:
                continue
            if slot.executing and slot.executing[0] == task_id:
                if command.get("terminate") and slot.killed is None:
                    logger.warning("Task id=%s revoked with terminate: killing child %d", task_id, slot.index)
                    slot.killed = (task_id, "djtasks.exceptions.Terminated", "revoked with terminate=True")
                    _signal(slot.process, signal.SIGKILL)
            else:
                try:
                    slot.reader.send_bytes(json.dumps({"skip": [task_id]}).encode())
                except OSError:
                    pass

    def _terminate_children(self) -> None:
        for slot in self.slots.values():
            _signal(slot.process, signal.SIGKILL)
        for slot in list(self.slots.values()):
            slot.process.join(timeout=5)
            if not slot.reader.closed:
                self._read(slot)
            for claim in slot.running.values():
                logger.warning("Cold shutdown: handing back task id=%s", claim.id)
                hand_back(self.db, get_broker(), claim, forgive=True)
            slot.running.clear()
            slot.reader.close()
        self.slots.clear()

    # Duties -------------------------------------------------------------------------------

    def _duties(self) -> None:
        now = time.monotonic()
        config = self.config
        self._enforce_time_limits()
        try:
            if now >= self.timers.control:
                # Not on every wake-up: under load the parent wakes per child event, and this
                # round trip was 13% of the worker's samples in the benchmark's profile.
                self.timers.control = now + CONTROL_POLL_SECONDS
                for command in get_broker().pop_control(self.worker_id):
                    self._obey(command)
            if now >= self.timers.heartbeat:
                self.timers.heartbeat = now + max(config.LEASE_SECONDS / 6, 0.2)
                self._heartbeat()
            if now >= self.timers.reap:
                self.timers.reap = now + config.REAP_INTERVAL
                maintenance.reap(get_broker(), self.queues)
            if now >= self.timers.sweep and self.stop_requested_at is None:
                self.timers.sweep = now + config.SWEEP_INTERVAL
                self._sweep()
            if now >= self.timers.expire and self.stop_requested_at is None and config.RESULT_EXPIRES:
                # result_expires: one worker per interval deletes old finished rows.
                interval = min(60.0, max(1.0, config.RESULT_EXPIRES / 4))
                self.timers.expire = now + interval
                if get_broker().acquire("expire", self.worker_id, int(interval * 1000)):
                    maintenance.expire_results(config)
        except BrokerUnavailable as exc:
            logger.warning("Worker %s: Redis unavailable during maintenance (%s)", self.worker_id, exc)
        except DatabaseError as exc:
            logger.warning("Worker %s: database unavailable during maintenance (%s)", self.worker_id, exc)
            connections[self.db].close_if_unusable_or_obsolete()
        if self.stop_requested_at is None:
            self.beat.tick()  # periodic tasks; handles its own Redis and database errors

    def _heartbeat(self) -> None:
        broker = get_broker()
        for slot in self.slots.values():
            if not slot.reader.closed:
                self._read(slot)  # settle "done" reports first, so finished tasks are not extended
        running = [claim for slot in self.slots.values() for claim in slot.running.values()]
        info = {
            "id": self.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "concurrency": self.concurrency,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": timezone.now().isoformat(),
            "processed": sum(slot.processed for slot in self.slots.values()),
            "active": [claim.id for claim in running],
        }
        broker.heartbeat(self.worker_id, json.dumps(info), ttl_s=int(self.config.LEASE_SECONDS))
        self.remote.beat(info)
        if not running:
            return
        lost = broker.extend(running, int(self.config.LEASE_SECONDS * 1000))
        if lost:
            logger.info("Leases no longer held for task(s) %s; their results are fenced off", lost)
        tokens = [claim.token for claim in running if claim.id not in lost]
        TaskRecord.objects.using(self.db).filter(lease_token__in=tokens, lease_expires_at__isnull=False).update(
            lease_expires_at=timezone.now() + db_lease(self.config)
        )

    def _sweep(self) -> None:
        broker = get_broker()
        if not broker.acquire("sweep", self.worker_id, int(self.config.SWEEP_INTERVAL * 3000)):
            return
        if broker.ensure_epoch(uuid.uuid4().hex):
            self.full_sweep_pending = True
        full, self.full_sweep_pending = self.full_sweep_pending, False
        maintenance.sweep(broker, self.config, full=full)

    def _finish(self) -> None:
        try:
            get_broker().forget_worker(self.worker_id)
        except BrokerUnavailable:
            pass
        self.remote.offline()
        connections.close_all()


def _signal(process: BaseProcess, signum: int) -> None:
    if process.pid is not None:
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass


def _child_entry(index: int, worker_id: str, queues: list[str], pipe: Connection, limits: ChildLimits) -> None:
    # The fork copied the parent's handlers; a child must never run them (they signal "children").
    signal.signal(signal.SIGTERM, request_early_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    try:
        child_main(index, worker_id, queues, pipe, limits)
    finally:
        connections.close_all()



