"""The parent's periodic duties: control commands, the heartbeat and leases, reaping, sweeping, result expiry, beat.

Each runs when its timer is due, between child events; the cluster-wide ones (sweep, expiry) take
a Redis lock, so one worker does them per interval.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.db import DatabaseError, connections
from django.utils import timezone

from djtasks.calling import signals
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.periodic.beat import Beat
from djtasks.record import transitions
from djtasks.transport.broker import get_broker
from djtasks.worker import checkpoints, maintenance, startup
from djtasks.worker.autoscale import Autoscaler
from djtasks.worker.guard import Guard
from djtasks.worker.outcome import db_lease
from djtasks.worker.pool import Pool
from djtasks.worker.remote import Remote

logger = logging.getLogger("djtasks")
# How often a busy parent (woken by every child event) looks for control commands in Redis.
CONTROL_POLL_SECONDS = 0.1


@dataclass
class Timers:
    """When each duty is due next (time.monotonic())."""

    control: float = 0.0
    heartbeat: float = 0.0
    reap: float = 0.0
    sweep: float = 0.0
    expire: float = 0.0
    checkpoint: float = 0.0


class Duties:
    def __init__(self, pool: Pool, remote: Remote):
        self.pool = pool
        self.remote = remote
        self.timers = Timers()
        self.full_sweep_pending = True
        self.swept = 0  # rows the last sweep read: a long one delays the next (maintenance.next_sweep)
        self.beat = Beat(pool.worker_id, pool.db)
        self.beat_started = False
        self.guard = Guard(f"Worker {pool.worker_id}")
        most, least = pool.autoscale or (0, 0)
        self.autoscaler = Autoscaler(pool, most, least, pool.autoscale_cooldown) if pool.autoscale else None

    def run(self) -> None:
        """Do the duties that are due, each on its own: one that fails waits for its next turn."""
        config, timers, now = self.pool.config, self.timers, time.monotonic()
        if now >= timers.control:
            # Not on every wake-up: under load the parent wakes per child event, and this
            # round trip was 13% of the worker's samples in the benchmark's profile.
            timers.control = now + CONTROL_POLL_SECONDS
            self._do("control", self._control)
        if now >= timers.heartbeat:
            timers.heartbeat = now + max(config.LEASE_SECONDS / 6, 0.2)
            # Leases first, on their own: whatever else fails, running tasks keep their lease.
            self._do("lease extension", self._extend_leases)
            self._do("heartbeat", self._heartbeat)
        if now >= timers.checkpoint:  # SQLite's WAL: here, not in a child's commit (worker/checkpoints.py)
            timers.checkpoint = now + checkpoints.interval(self.pool.db)
            self._do("WAL checkpoint", self._checkpoint)
        if now >= timers.reap:
            timers.reap = now + config.REAP_INTERVAL
            self._do("reaping", lambda: maintenance.reap(get_broker(), self.pool.queues))
        if now >= timers.sweep and not self.pool.stopping:
            self.swept = 0
            self._do("outbox sweep", self._sweep)
            timers.sweep = maintenance.next_sweep(now, self.swept, config.SWEEP_INTERVAL)
        if now >= timers.expire and not self.pool.stopping and config.RESULT_EXPIRES:
            # result_expires: one worker per interval deletes old finished rows.
            interval = min(60.0, max(1.0, config.RESULT_EXPIRES / 4))
            timers.expire = now + interval
            self._do("result expiry", lambda: self._expire(interval))
        if self.autoscaler is not None:
            self._do("autoscale", self.autoscaler.tick)
        if not self.pool.stopping:
            if not self.beat_started:  # every worker runs the beat: once per worker, as it begins
                self.beat_started = True
                signals.beat_init.emit(sender=self.beat)
            self._do("beat", self.beat.tick)  # periodic tasks; handles its own Redis and database errors

    def _do(self, duty: str, action: Callable[[], object]) -> None:
        """Run one duty: an outage is a warning, anything else unexpected is logged; neither stops the parent."""
        try:
            action()
        except BrokerUnavailable as exc:
            logger.warning("Worker %s: Redis unavailable during %s (%s)", self.pool.worker_id, duty, exc)
        except DatabaseError as exc:
            logger.warning("Worker %s: database unavailable during %s (%s)", self.pool.worker_id, duty, exc)
            connections[self.pool.db].close_if_unusable_or_obsolete()
        except Exception:
            self.guard.failed(duty)

    def _checkpoint(self) -> None:
        """Copy SQLite's log, unless a child holds a batch (a deep queue: its commits share their checkpoints)."""
        if not any(len(child.held) > 1 for child in self.pool.children()):
            checkpoints.checkpoint(self.pool.db)

    def _control(self) -> None:
        """Obey the control commands addressed to this worker, each on its own (revoke included)."""
        for message in get_broker().pop_control(self.pool.worker_id):
            self._do(f"control command {message.name[:40]!r}", partial(self.remote.answer, message))

    def _expire(self, interval: float) -> None:
        if get_broker().acquire("expire", self.pool.worker_id, int(interval * 1000)):
            maintenance.expire_results(self.pool.config)

    def _extend_leases(self) -> None:
        """Extend the leases of the tasks the children hold, in Redis and on their rows."""
        pool = self.pool
        pool.collect()  # settle "done" reports first, so finished tasks are not extended
        running = [claim for child in pool.children() for claim in child.held]
        if not running:
            return
        lost = get_broker().extend(running, int(pool.config.LEASE_SECONDS * 1000))
        if lost:
            logger.info("Leases no longer held for task(s) %s; their results are fenced off", lost)
        tokens = [claim.token for claim in running if claim.id not in lost and not claim.defect]
        transitions.extend_leases(pool.db, tokens, timezone.now() + db_lease(pool.config))

    def _heartbeat(self) -> None:
        """Say this worker is alive."""
        broker, pool = get_broker(), self.pool
        children = pool.children()
        running = [claim for child in children for claim in child.held]
        info = {
            "id": pool.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": pool.queues,
            "concurrency": pool.concurrency,
            "started_at": pool.started_at.isoformat(),
            "heartbeat_at": timezone.now().isoformat(),
            "uptime_s": round((timezone.now() - pool.started_at).total_seconds(), 1),  # on this host's clock
            "processed": sum(child.processed for child in children),
            "active": [claim.id for claim in running],
            # What its children execute now (the rest of "active" is reserved, not begun).
            "running": [child.executing for child in children if child.executing is not None],
            "pool": pool.pool_kind,
            "events": pool.config.ENABLE_EVENTS,
        }
        broker.note_seen(pool.worker_id)  # first: a worker that shows as alive has been seen
        broker.heartbeat(pool.worker_id, info, ttl_s=int(pool.config.LEASE_SECONDS))
        startup.renew_name(pool)
        self.remote.beat(info)

    def _sweep(self) -> None:
        broker = get_broker()
        if not broker.acquire("sweep", self.pool.worker_id, int(self.pool.config.SWEEP_INTERVAL * 3000)):
            return
        if broker.ensure_epoch(uuid.uuid4().hex, self.pool.queues):
            self.full_sweep_pending = True
        broker.adopt_legacy()  # ids the previous key layout holds (before per-queue keys)
        full, self.full_sweep_pending = self.full_sweep_pending, False
        self.swept = maintenance.sweep_rows(broker, self.pool.config, full=full)[1]
