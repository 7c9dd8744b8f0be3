"""Runtime time-limit overrides per task, kept in a Redis hash that every worker reads."""

from __future__ import annotations

from djtasks.transport.broker import Broker, get_broker
from djtasks.transport.streams import TimeLimits

Limits = TimeLimits


def _seconds(value: float | int | str | None, what: str) -> float | None:
    """Read a limit: a positive number of seconds, or 0 / None / "none" for no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "0"}):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} time limit {value!r} is not a number of seconds") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{what} time limit {value!r} must be a positive number of seconds (0 for none)")
    return seconds or None


def set_time_limit(task_name: str, soft: float | int | str | None, hard: float | int | str | None) -> Limits:
    """Set a task's soft and hard time limits for every worker; 0 or None means no limit."""
    limits = (_seconds(soft, "soft"), _seconds(hard, "hard"))
    if limits[0] is not None and limits[1] is not None and limits[0] >= limits[1]:
        raise ValueError(f"soft time limit ({limits[0]:g} s) must be below the hard one ({limits[1]:g} s)")
    get_broker().set_time_limits(task_name, limits)
    return limits


def clear_time_limit(task_name: str) -> None:
    """Drop a task's runtime override: its declared limits (or the worker's defaults) apply again."""
    get_broker().clear_time_limits(task_name)


def read_time_limits(broker: Broker) -> dict[str, Limits]:
    """Return every task's runtime (soft, hard) override."""
    return broker.time_limits()
