"""Task rate limits ("10/m"), enforced across all workers by a Redis script, changeable at runtime.

A task declared with rate_limit_key has one bucket per key instead of one for the task; a runtime
override of its rate applies to every key.
"""

from __future__ import annotations

import time

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.rates import parse_rate
from djtasks.transport.broker import Broker

# Workers re-read the runtime overrides at most this often.
OVERRIDES_TTL = 1.0


class Limiter:
    """Per process: knows which tasks have runtime overrides, asks Redis only for limited tasks."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.overrides: set[str] = set()
        self.read_at = 0.0

    def delay_ms(self, task_name: str, declared: str | None) -> int:
        """Return 0 if the task may start now, else how long it must wait (ms)."""
        now = time.monotonic()
        if now - self.read_at > OVERRIDES_TTL:
            try:
                self.overrides = self.broker.rate_overrides()
            except BrokerUnavailable:
                return 0
            self.read_at = now
        if not self.limits(task_name, declared):
            return 0
        try:
            return self.broker.take_rate_slot(task_name, parse_rate(declared))
        except BrokerUnavailable:
            return 0  # without Redis there is no shared bucket; the task is not held back

    def limits(self, task_name: str, declared: str | None) -> bool:
        """Whether a start of this task takes a slot: it declares a rate, or one was set at runtime
        (as of the overrides last read)."""
        return declared is not None or task_name in self.overrides

    def keyed_delay_ms(self, task_name: str, key: str, declared: str | None) -> int:
        """Return 0 if the task may start now for this key, else how long it must wait (ms)."""
        try:
            return self.broker.take_keyed_rate_slot(task_name, key, parse_rate(declared))
        except BrokerUnavailable:
            return 0  # as above: without Redis the task is not held back
