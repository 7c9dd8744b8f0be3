"""--autoscale MAX,MIN: grow the pool while ready work waits, shrink idle children after a cooldown.

Every second the parent compares the ready work of its queues (paused queues left out) with its
idle children: more work than idle children grows the pool (up to MAX); no work for
`cooldown` seconds stops idle children warmly (down to MIN). It uses the pool's own grow and
retire, as pool_grow and pool_shrink do.
"""

from __future__ import annotations

import logging
import time

from djtasks.transport.broker import get_broker
from djtasks.worker.pool import Pool

logger = logging.getLogger("djtasks")
INTERVAL_S = 1.0


def parse(value: str) -> tuple[int, int]:
    """Read Celery's --autoscale MAX,MIN (or MAX alone, MIN 1); raise ValueError saying what is wrong."""
    parts = [part.strip() for part in value.split(",")]
    if len(parts) == 1:
        parts.append("1")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"--autoscale {value!r} is not MAX,MIN (two whole numbers, e.g. 10,3)")
    most, least = int(parts[0]), int(parts[1])
    if least > most:  # Celery accepts either order
        most, least = least, most
    return most, least


class Autoscaler:
    def __init__(self, pool: Pool, most: int, least: int, cooldown: float):
        self.pool, self.most, self.least, self.cooldown = pool, most, least, cooldown
        self.next_look = 0.0
        self.last_demand = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_look or self.pool.stopping:
            return
        self.next_look = now + INTERVAL_S
        broker = get_broker()
        queues = self.pool.queues
        paused = broker.paused(queues)
        ready = sum(n for queue, n in broker.ready_counts(queues).items() if queue not in paused)
        serving = [child for child in self.pool.children() if not child.retiring]
        idle = [child for child in serving if child.executing is None and not child.held]
        if ready:
            self.last_demand = now
        if ready > len(idle) and len(serving) < self.most:
            n = min(ready - len(idle), self.most - len(serving))
            self.pool.grow(n)
            logger.info("Autoscale: %d task(s) waiting, pool grown by %d to %d", ready, n, self.pool.concurrency)
        elif not ready and idle and len(serving) > self.least and now - self.last_demand >= self.cooldown:
            chosen = sorted(idle, key=lambda child: -child.index)[: len(serving) - self.least]
            self.pool.retire([child.index for child in chosen])
            self.last_demand = now  # the next step down waits another cooldown
            logger.info(
                "Autoscale: idle for %.0f s, pool shrunk by %d to %d", self.cooldown, len(chosen), self.pool.concurrency
            )
