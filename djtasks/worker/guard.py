"""Keep a supervising loop going: an unexpected exception in one step is logged and the loop carries on.

The parent's loop keeps children alive, leases extended and time limits enforced; a child's
loop keeps claiming. Neither may stop because one step met something nobody expected (bad data,
a bug): the step is abandoned for this turn, its traceback logged (at most once per REPEAT_S per
step, with a count of the repeats), and the next step runs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

logger = logging.getLogger("djtasks")
REPEAT_S = 30.0


class Guard:
    def __init__(self, where: str):
        self.where = where
        self.last: dict[str, tuple[float, int]] = {}  # step -> (last logged, repeats since)

    def run(self, step: str, action: Callable[[], object]) -> bool:
        """Run one step; True if it finished, False if it raised (logged) and was abandoned."""
        try:
            action()
        except Exception:
            self.failed(step)
            return False
        return True

    def failed(self, step: str) -> None:
        """Log the exception being handled, rate-limited per step; call from an except block."""
        now = time.monotonic()
        logged_at, repeats = self.last.get(step, (float("-inf"), 0))
        if now - logged_at < REPEAT_S:
            self.last[step] = (logged_at, repeats + 1)
            return
        self.last[step] = (now, 0)
        again = f" ({repeats} more times since it was last logged)" if repeats else ""
        logger.error("%s: unexpected error in %s%s; carrying on", self.where, step, again, exc_info=True)


class Backoff:
    """Capped exponential backoff with full jitter, for reconnecting to Redis or the database."""

    def __init__(self, base: float = 0.1, cap: float = 5.0):
        self.base, self.cap, self.failures = base, cap, 0

    def sleep(self) -> None:
        self.failures += 1
        time.sleep(random.uniform(0, min(self.cap, self.base * 2**self.failures)))

    def reset(self) -> None:
        self.failures = 0
