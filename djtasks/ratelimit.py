"""Task rate limits ("10/m"), enforced across all workers by a Redis script, changeable at runtime."""

from __future__ import annotations

import re
import time

from .broker import Broker, get_broker
from .exceptions import BrokerUnavailable

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# Workers re-read the runtime overrides at most this often.
OVERRIDES_TTL = 1.0


def parse_rate(rate: str | float | int | None) -> float:
    """Return the milliseconds between starts for "N/s", "N/m", "N/h" or N (per second); 0 means no limit."""
    if rate is None or rate == "":
        return 0.0
    match = _RATE.match(str(rate))
    if match is None:
        raise ValueError(f"rate_limit {rate!r} is not a rate such as '10/s', '10/m' or '10/h'")
    count = float(match.group(1))
    return 0.0 if count == 0 else _PERIODS[match.group(2)] * 1000.0 / count


def set_rate_limit(task_name: str, rate: str | None) -> None:
    """Change a task's rate limit for every worker at once; None or "" returns to the declared one."""
    broker = get_broker()
    if rate is None or rate == "":
        broker.clear_rate_override(task_name)
    else:
        broker.set_rate_override(task_name, parse_rate(rate))


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
        if declared is None and task_name not in self.overrides:
            return 0
        try:
            return self.broker.take_rate_slot(task_name, parse_rate(declared))
        except BrokerUnavailable:
            return 0  # without Redis there is no shared bucket; the task is not held back
