"""Runtime time-limit overrides per task, kept in a Redis hash that every worker reads."""

from __future__ import annotations

import logging

from djtasks.transport.broker import Broker, get_broker
from djtasks.transport.streams import TimeLimits

logger = logging.getLogger("djtasks")
Limits = TimeLimits
MAX_SECONDS = 30 * 86400  # as SOFT_TIME_LIMIT and TIME_LIMIT


def _seconds(value: float | int | str | None, what: str) -> float | None:
    """Read a limit: a positive number of seconds, or 0 / None / "none" for no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "0"}):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} time limit {value!r} is not a number of seconds") from None
    if not 0 <= seconds <= MAX_SECONDS:  # NaN and infinities too
        raise ValueError(f"{what} time limit {value!r} must be from 0 (none) to {MAX_SECONDS:g} seconds")
    return seconds or None


def set_time_limit(task_name: str, soft: float | int | str | None, hard: float | int | str | None) -> Limits:
    """Set a task's soft and hard time limits for every worker; 0 or None means no limit."""
    limits = _limits(_seconds(soft, "soft"), _seconds(hard, "hard"))
    get_broker().set_time_limits(task_name, limits)
    return limits


def clear_time_limit(task_name: str) -> None:
    """Drop a task's runtime override: its declared limits (or the worker's defaults) apply again."""
    get_broker().clear_time_limits(task_name)


def read_time_limits(broker: Broker) -> dict[str, Limits]:
    """Return every task's runtime (soft, hard) override; an entry set_time_limit would refuse is skipped."""
    found = {}
    try:
        entries = broker.time_limits()
    except RecursionError:  # JSON nested too deep for the decoder
        logger.warning("Time-limit overrides unreadable: every override skipped")
        return {}
    for name, (soft, hard) in entries.items():
        try:
            found[name] = _limits(soft, hard)
        except ValueError as exc:
            logger.warning("Time-limit override of %r skipped: %s", name, exc)
    return found


def _limits(soft: object, hard: object) -> Limits:
    for value in (soft, hard):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{value!r} is not a number of seconds")
    limits = (_seconds(soft, "soft"), _seconds(hard, "hard"))  # type: ignore[arg-type]
    if limits[0] is not None and limits[1] is not None and limits[0] >= limits[1]:
        raise ValueError(f"soft time limit ({limits[0]:g} s) must be below the hard one ({limits[1]:g} s)")
    return limits
