"""The worker process model: a parent that supervises N forked children.

The parent spawns and replaces children, keeps the leases of their running tasks alive, hands
back the tasks of children that die, runs the maintenance duties, and turns signals into warm
(first SIGTERM/SIGINT) or cold (second signal, or the grace period running out) shutdowns.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import wait
from typing import Any

from django.db import connections, router
from django.utils import timezone

from djtasks.calling import signals
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Claim, get_broker
from djtasks.worker import startup
from djtasks.worker.config import child_limits, worker_settings
from djtasks.worker.duties import Duties
from djtasks.worker.entry import child_main, thread_main
from djtasks.worker.guard import Guard
from djtasks.worker.naming import node_name
from djtasks.worker.pools import SoloPool, make_pool
from djtasks.worker.recording import hand_back, settle_killed
from djtasks.worker.remote import Remote
from djtasks.worker.slot import Slot
from djtasks.worker.steering import Steering

logger = logging.getLogger("djtasks")
TICK_SECONDS = 0.5
# Once woken by a child's report, the parent reads the reports again only this much later. Each is
# in the pipe before its child goes on, and a child's death is heard at once (its pipe is then read
# to the end before its claims are settled): the wait loses no report, only wake-ups (three a task).
REPORT_INTERVAL = 0.02


class Worker(Steering):
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
        hostname: str | None = None,
        pool: str = "prefork",
        autoscale: tuple[int, int] | None = None,
        events: bool | None = None,
        autoscale_cooldown: float = 30.0,
    ):
        # The options override their settings; a bad value of either raises ImproperlyConfigured.
        if autoscale is not None:
            concurrency = autoscale[1]  # autoscaling starts at its minimum
        options = {
            "CONCURRENCY": 1 if pool == "solo" and concurrency is None else concurrency,
            "MAX_TASKS_PER_CHILD": max_tasks_per_child,
            "MAX_MEMORY_PER_CHILD": max_memory_per_child,
            "SOFT_TIME_LIMIT": soft_time_limit,
            "TIME_LIMIT": time_limit,
            "SHUTDOWN_GRACE": shutdown_grace,
            "WORKER_NAME": hostname,
            "ENABLE_EVENTS": events,
        }
        self.config = worker_settings(options, queues, pool, autoscale)
        self.queues = queues or [self.config.DEFAULT_QUEUE]
        self.concurrency = self.config.CONCURRENCY
        self.limits = child_limits(self.config)
        self.grace = self.config.SHUTDOWN_GRACE
        # The worker's name, as -n (or WORKER_NAME) gives it: unique among live workers (startup.py).
        self.worker_id = node_name(self.config.WORKER_NAME)
        self.slots: dict[int, Slot] = {}
        self.context = multiprocessing.get_context("fork")
        self.pool = make_pool(pool, self.context)
        self.autoscale = autoscale
        self.autoscale_cooldown = autoscale_cooldown
        self.reload_requested = False
        self.stop_requested_at: float | None = None
        self.cold = False
        self.started_at = timezone.now()
        self.db = router.db_for_write(TaskRecord)
        # Children asked to stop by pool_shrink: they are not replaced when they exit.
        self.retiring: set[int] = set()
        self.remote = Remote(self)
        self.duties = Duties(self, self.remote)
        self.guard = Guard(f"Worker {self.worker_id}")
        # Indexes of children that died and are not replaced yet (spawning can fail too).
        self.vacant: set[int] = set()
        self.on_started: Callable[[], object] = lambda: None
        self.quiet_until = 0.0  # woken by a report: until then, only a child's death wakes the parent

    # Lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        signals.worker_init.emit(sender=self)
        logger.info(
            "Worker %s starting: queues=%s concurrency=%d pool=%s",
            self.worker_id,
            ",".join(self.queues),
            self.concurrency,
            self.pool.kind,
        )
        startup.prepare(self)  # refuses to start (StartupFailure) on what retrying cannot fix
        self.on_started()  # taskworker writes its pid file here: a pid file names a worker that started
        if isinstance(self.pool, SoloPool):
            return startup.run_solo(self, self.pool, self._supervise_all)
        return self._supervise_all()

    def _supervise_all(self) -> int:
        try:
            for index in range(self.concurrency):
                if self.stop_requested_at is not None:
                    break  # a stop during start-up: spawn no more
                self._spawn(index)
            self.remote.online()
            signals.worker_ready.emit(sender=self)
            self._loop()
        except BaseException:
            # Never leave children running unsupervised (no lease extension, no time limits),
            # nor an exit that waits for them.
            for slot in list(self.slots.values()):
                slot.signal(signal.SIGKILL)
            raise
        self._finish()
        logger.info("Worker %s stopped (%s shutdown)", self.worker_id, "cold" if self.cold else "warm")
        return 1 if self.cold else 3 if self.reload_requested else 0

    def _loop(self) -> None:
        """Supervise until stopped. Each step of a turn is guarded: an unexpected error in one is
        logged and the others still run, so leases stay extended and time limits enforced."""
        while True:
            if not self.guard.run("supervising children", self._supervise):
                time.sleep(0.1)  # an error that repeats at once must not spin the loop
            self.guard.run("replacing children", self._fill_vacancies)
            if self.stop_requested_at is not None and self._stopped():
                return
            self.guard.run("enforcing time limits", self._enforce_time_limits)
            self.guard.run("duties", self.duties.run)

    def _stopped(self) -> bool:
        """While stopping: True once every child is gone (killed, past the grace or when cold)."""
        try:
            if not self._alive():
                return True
            # A child forked after the signal, or caught before its handler was installed,
            # hears it again; asking twice is harmless (it only sets a flag).
            for slot in self.slots.values():
                slot.signal(signal.SIGTERM)
            if self.cold or time.monotonic() - (self.stop_requested_at or 0.0) > self.grace:
                self._terminate_children()
                return True
        except Exception:
            self.guard.failed("stopping")
            if self.cold:  # a second signal stops the worker whatever went wrong
                for slot in list(self.slots.values()):
                    slot.signal(signal.SIGKILL)
                return True
        return False

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Worker(...).run() from a thread (tests): the caller stops it with request_warm_stop
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGQUIT, self._on_cold_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            logger.info("Warm shutdown: finishing running tasks (grace %.0fs); signal again to stop now", self.grace)
            for slot in list(self.slots.values()):
                slot.signal(signal.SIGTERM)
        else:
            self._on_cold_signal(signum, frame)

    def _on_cold_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.cold = True

    # Children -----------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        ours, theirs = self.pool.pipe()
        args = (index, self.worker_id, self.queues, theirs, self.limits, self.config)
        target = child_main if self.pool.kind == "prefork" else thread_main
        self.slots[index] = Slot(index=index, process=self.pool.spawn(index, target, args, theirs), reader=ours)

    def _alive(self) -> bool:
        return any(slot.process.is_alive() for slot in self.slots.values())

    def _supervise(self) -> None:
        quiet = self.quiet_until - time.monotonic()
        readers = [] if quiet > 0 else [slot.reader for slot in self.slots.values() if not slot.reader.closed]
        sentinels = [slot.process.sentinel for slot in self.slots.values()]
        woken = wait([*readers, *sentinels], timeout=quiet if quiet > 0 else TICK_SECONDS)
        if quiet > 0:
            self.collect()
        elif any(ready in readers for ready in woken):
            self.collect()
            self.quiet_until = time.monotonic() + REPORT_INTERVAL
        for slot in list(self.slots.values()):
            if not slot.process.is_alive():
                self._reap_child(slot)

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        self.collect()  # the reports not read yet: which child holds the task, and whether it runs it now
        super().revoke(task_id, terminate=terminate)

    def _reap_child(self, slot: Slot) -> None:
        """Settle what a dead child held, one claim at a time, then replace it (whatever failed)."""
        del self.slots[slot.index]
        self.guard.run("reading a dead child's reports", slot.read)
        slot.process.join(timeout=0)
        code = slot.process.exitcode
        for claim in list(slot.running.values()):
            self.guard.run(f"handing back task id={claim.id!r}", partial(self._settle, slot, claim, code))
        slot.reader.close()
        if slot.index in self.retiring:
            self.retiring.discard(slot.index)
            logger.info("Child %d stopped (pool_shrink)", slot.index)
        elif self.stop_requested_at is None:
            if not slot.running and code != 0 and not slot.killed:
                logger.warning("Child %d exited with code %s; replacing it", slot.index, code)
            self.vacant.add(slot.index)
            self._fill_vacancies()

    def _settle(self, slot: Slot, claim: Claim, code: int | None) -> None:
        """Settle one claim of a dead child: record a kill, or hand the task back."""
        if slot.killed and claim.id == slot.killed[0]:
            settle_killed(self.db, get_broker(), claim, slot.killed[1], slot.killed[2], self.config)
        elif slot.executing and claim.id == slot.executing[0]:
            # The task in hand may be what killed its child: this delivery counts towards
            # MAX_DELIVERIES, after which the message is dead-lettered as poison.
            died = f"child {slot.index} (pid {slot.process.pid}) died (exit code {code}) while running it"
            logger.error("Task id=%s: %s; handing it back", claim.id, died)
            hand_back(self.db, get_broker(), claim, forgive=self.cold)
        else:
            hand_back(self.db, get_broker(), claim, forgive=True)

    def _fill_vacancies(self) -> None:
        """Spawn the children that died and are not replaced yet (not while stopping)."""
        while self.vacant and self.stop_requested_at is None:
            index = min(self.vacant)
            self._spawn(index)
            self.vacant.discard(index)

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
            slot.process.join(timeout=5 if slot.process.killable else 0)
            self.guard.run("reading a killed child's reports", slot.read)
            for claim in slot.running.values():
                logger.warning("Cold shutdown: handing back task id=%s", claim.id)
                self.guard.run("handing back", partial(hand_back, self.db, get_broker(), claim, forgive=True))
            slot.running.clear()
            slot.reader.close()
        self.slots.clear()

    def _finish(self) -> None:
        signals.worker_shutdown.emit(sender=self)
        try:
            get_broker().forget_worker(self.worker_id)
        except BrokerUnavailable:
            pass
        self.remote.offline()
        startup.release(self)
        connections.close_all()
