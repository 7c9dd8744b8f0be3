"""Runtime time-limit overrides per task, kept in a Redis hash that every worker reads."""

from __future__ import annotations

import json
from typing import Any

from djtasks.transport.broker import Broker, get_broker

Limits = tuple[float | None, float | None]


def _key(broker: Broker) -> str:
    return broker.key("timelimits")


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
    broker = get_broker()
    broker.call(lambda client: client.hset(_key(broker), task_name, json.dumps(limits)))
    return limits


def clear_time_limit(task_name: str) -> None:
    """Drop a task's runtime override: its declared limits (or the worker's defaults) apply again."""
    broker = get_broker()
    broker.call(lambda client: client.hdel(_key(broker), task_name))


def read_time_limits(broker: Broker) -> dict[str, Limits]:
    raw: Any = broker.call(lambda client: client.hgetall(_key(broker)))
    limits: dict[str, Limits] = {}
    for name, value in raw.items():
        try:
            soft, hard = json.loads(value)
        except (ValueError, TypeError):
            continue
        limits[name.decode()] = (soft, hard)
    return limits
