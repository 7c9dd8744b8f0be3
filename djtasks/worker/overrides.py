"""A worker's copy of the runtime time-limit overrides, re-read from Redis at most once a second."""

from __future__ import annotations

import logging
import time

from djtasks.calling.overrides import Limits, read_time_limits
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.transport.broker import Broker

logger = logging.getLogger("djtasks")
# Worker children re-read the overrides at most this often.
OVERRIDES_TTL = 1.0


class TimeLimitOverrides:
    """Per process: a copy of the overrides, re-read from Redis at most once a second."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.limits: dict[str, Limits] = {}
        self.read_at = float("-inf")

    def get(self, task_name: str) -> Limits | None:
        now = time.monotonic()
        if now - self.read_at > OVERRIDES_TTL:
            self.read_at = now
            try:
                self.limits = read_time_limits(self.broker)
            except BrokerUnavailable as exc:
                logger.debug("Time-limit overrides not refreshed (%s); keeping the last copy", exc)
        return self.limits.get(task_name)
