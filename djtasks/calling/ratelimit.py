"""Change a task's rate limit at runtime, for every worker at once."""

from __future__ import annotations

from djtasks.core.rates import parse_rate
from djtasks.transport.broker import get_broker


def set_rate_limit(task_name: str, rate: str | None) -> None:
    """Change a task's rate limit for every worker at once; None or "" returns to the declared one."""
    broker = get_broker()
    if rate is None or rate == "":
        broker.clear_rate_override(task_name)
    else:
        broker.set_rate_override(task_name, parse_rate(rate))
