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
from dataclasses import dataclass

from django.db import DatabaseError, connections
from django.utils import timezone

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.periodic.beat import Beat
from djtasks.record import transitions
from djtasks.transport.broker import get_broker
from djtasks.worker import maintenance
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


class Duties:
    def __init__(self, pool: Pool, remote: Remote):
        self.pool = pool
        self.remote = remote
        self.timers = Timers()
        self.full_sweep_pending = True
        self.beat = Beat(pool.worker_id, pool.db)

    def run(self) -> None:
        """Do the duties that are due; an outage of Redis or the database waits for the next turn."""
        try:
            self._due(time.monotonic())
        except BrokerUnavailable as exc:
            logger.warning("Worker %s: Redis unavailable during maintenance (%s)", self.pool.worker_id, exc)
        except DatabaseError as exc:
            logger.warning("Worker %s: database unavailable during maintenance (%s)", self.pool.worker_id, exc)
            connections[self.pool.db].close_if_unusable_or_obsolete()
        if not self.pool.stopping:
            self.beat.tick()  # periodic tasks; handles its own Redis and database errors

    def _due(self, now: float) -> None:
        config, timers = self.pool.config, self.timers
        if now >= timers.control:
            # Not on every wake-up: under load the parent wakes per child event, and this
            # round trip was 13% of the worker's samples in the benchmark's profile.
            timers.control = now + CONTROL_POLL_SECONDS
            for message in get_broker().pop_control(self.pool.worker_id):
                self.remote.answer(message)  # revoke included; never raises
        if now >= timers.heartbeat:
            timers.heartbeat = now + max(config.LEASE_SECONDS / 6, 0.2)
            self._heartbeat()
        if now >= timers.reap:
            timers.reap = now + config.REAP_INTERVAL
            maintenance.reap(get_broker(), self.pool.queues)
        if now >= timers.sweep and not self.pool.stopping:
            timers.sweep = now + config.SWEEP_INTERVAL
            self._sweep()
        if now >= timers.expire and not self.pool.stopping and config.RESULT_EXPIRES:
            # result_expires: one worker per interval deletes old finished rows.
            interval = min(60.0, max(1.0, config.RESULT_EXPIRES / 4))
            timers.expire = now + interval
            if get_broker().acquire("expire", self.pool.worker_id, int(interval * 1000)):
                maintenance.expire_results(config)

    def _heartbeat(self) -> None:
        """Say this worker is alive, and extend the leases of the tasks its children hold."""
        broker, pool = get_broker(), self.pool
        pool.collect()  # settle "done" reports first, so finished tasks are not extended
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
        }
        broker.heartbeat(pool.worker_id, info, ttl_s=int(pool.config.LEASE_SECONDS))
        self.remote.beat(info)
        if not running:
            return
        lost = broker.extend(running, int(pool.config.LEASE_SECONDS * 1000))
        if lost:
            logger.info("Leases no longer held for task(s) %s; their results are fenced off", lost)
        tokens = [claim.token for claim in running if claim.id not in lost]
        transitions.extend_leases(pool.db, tokens, timezone.now() + db_lease(pool.config))

    def _sweep(self) -> None:
        broker = get_broker()
        if not broker.acquire("sweep", self.pool.worker_id, int(self.pool.config.SWEEP_INTERVAL * 3000)):
            return
        if broker.ensure_epoch(uuid.uuid4().hex):
            self.full_sweep_pending = True
        full, self.full_sweep_pending = self.full_sweep_pending, False
        maintenance.sweep(broker, self.pool.config, full=full)
