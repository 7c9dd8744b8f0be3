"""The checks of single call values: names and ids, seconds, dates, priorities, signatures.

Each returns the value as it will be stored, or raises InvalidCall naming what is wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks.core.exceptions import InvalidCall
from djtasks.core.logs import CONTROL
from djtasks.core.values import text_problem

CELERY_PRIORITY_MAX = 9
ID_LENGTH = 255  # TaskRecord.id, parent_id, root_id, group_id, task_name
QUEUE_LENGTH = 100  # TaskRecord.queue
MAX_RETRIES_COUNT = 2**31 - 1  # TaskRecord.retries: a PositiveIntegerField


def check_name(what: str, value: object, limit: int) -> str:
    """Return a name or id that every database stores as it is; raise InvalidCall saying why not.

    Non-empty, at most `limit` characters, no control characters (they would forge log lines),
    no NUL and no surrogates (PostgreSQL refuses them).
    """
    if not isinstance(value, str) or not value:
        raise InvalidCall(f"{what} must be a non-empty string, not {value!r}.")
    if len(value) > limit:
        raise InvalidCall(f"{what} must be at most {limit} characters long; {value[:40]!r}... has {len(value)}.")
    if CONTROL.search(value) or text_problem(value):
        raise InvalidCall(f"{what} {value[:100]!r} contains a control character or a surrogate.")
    return str.__str__(value)


def seconds(what: str, value: object) -> float:
    """Return a finite number of seconds; raise InvalidCall for NaN, infinity or what is not a number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InvalidCall(f"{what} must be a number of seconds, not {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidCall(f"{what} must be a finite number of seconds, not {value!r}.")
    return number


def later(now: datetime, what: str, value: object) -> datetime:
    """Return now + value seconds; raise InvalidCall if that is not a date Python can hold."""
    try:
        return now + timedelta(seconds=seconds(what, value))
    except (OverflowError, ValueError):
        raise InvalidCall(f"{what}={value!r} is beyond the dates Python can hold (the year 9999).") from None


def from_celery_priority(value: int) -> int:
    """Map Celery's 0..9 (9 runs first, as in apply_async's docs) onto Django's -100..100."""
    if type(value) is not int or not 0 <= value <= CELERY_PRIORITY_MAX:
        raise InvalidCall("celery_priority must be a whole number between 0 and 9 (9 runs first).")
    return round((value - 4.5) * 200 / CELERY_PRIORITY_MAX)


def aware(value: datetime | str, name: str) -> datetime:
    """Return an aware datetime; a naive one is read in the project's TIME_ZONE."""
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:  # well formed, but not a date (the 30th of February)
            parsed = None
        if parsed is None:
            raise InvalidCall(f"{name} {value[:100]!r} is not an ISO 8601 datetime.")
        value = parsed
    if not isinstance(value, datetime):
        raise InvalidCall(f"{name} must be a datetime, not {type(value).__name__}.")
    try:
        return timezone.make_aware(value) if timezone.is_naive(value) else value
    except (OverflowError, ValueError) as exc:
        raise InvalidCall(f"{name} {value!r} cannot be read in the project's time zone ({exc}).") from None


def expiry(value: float | int | datetime | str | None, now: datetime) -> datetime | None:
    """Turn Celery's expires (seconds from now, or a datetime) into an aware datetime."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return later(now, "expires", value)
    return aware(value, "expires")  # type: ignore[arg-type]


def signatures(value: Any, name: str) -> tuple[dict[str, Any], ...]:
    """Accept a signature, a dict, or a list of them; return their JSON dicts."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        data = item.as_dict() if hasattr(item, "as_dict") else item
        if not isinstance(data, Mapping) or "task" not in data and "subtask_type" not in data:
            raise InvalidCall(f"{name} takes signatures such as add.s(16), not {item!r}.")
        out.append(dict(data))
    return tuple(out)


def limit(what: str, value: object) -> float | None:
    """Return a time limit in seconds (a positive finite number) or None; raise InvalidCall otherwise."""
    if value is None:
        return None
    number = seconds(what, value)
    if not 0 < number <= MAX_LIMIT:
        raise InvalidCall(f"{what} must be a positive number of seconds up to {MAX_LIMIT:g} (a year), not {value!r}.")
    return number


# Above it a limit means nothing, and a JSON column may not give the float back exactly (PostgreSQL's jsonb
# returned 2.354818790285627e16 as the integer 23548187902856270).
MAX_LIMIT = 365 * 24 * 3600.0


def flag(what: str, value: object) -> bool | None:
    """Return True, False or None; raise InvalidCall for anything else (1, "yes")."""
    if value is not None and not isinstance(value, bool):
        raise InvalidCall(f"{what} must be True, False or None, not {value!r}.")
    return value
